"""YAML loading that remembers where every value came from, so errors can name a line.

PyYAML's composer keeps start marks on nodes; we build plain Python data from the node tree ourselves and
record the position of every key and value by path. Only the safe YAML subset is accepted.

Importing PyYAML costs ~35 ms, a tenth of the CLI's start-up budget, and a setup is planned far more often than
it is edited: a parsed setup is kept in the user's cache, keyed by its text and checked against it on load. Only
a setup that validated is kept (`remember`), and the cache keeps the newest `CACHE_ENTRIES` entries.

Setups are small hand-written files, so reading refuses what no setup is: anything but a regular file (a FIFO
would block forever, /dev/zero never ends), more than `MAX_SETUP_BYTES`, and YAML aliases (`*name`). An alias
reuses a node, and a few hundred bytes of nested aliases expand into billions of values when built as plain data
(the "billion laughs"); setups have no need for them.
"""

import os
import pickle
import stat
import zlib
from typing import TYPE_CHECKING, Any, NamedTuple

from inferform.dirs import cache_dir
from inferform.errors import InferformError, Problem

if TYPE_CHECKING:
    import yaml

Path = tuple[str | int, ...]

MAX_SETUP_BYTES = 256 * 1024  # the largest example setup is under 2 KiB
CACHE_ENTRIES = 64


class Located(NamedTuple):
    """Parsed data plus a map from path (as pydantic reports `loc`) to 1-based (line, column)."""

    data: Any
    positions: dict[Path, tuple[int, int]]
    file: str

    def where(self, path: Path) -> tuple[int | None, int | None]:
        """Position of the longest prefix of path that we know (a missing key points at its parent)."""
        for end in range(len(path), -1, -1):
            pos = self.positions.get(tuple(path[:end]))
            if pos:
                return pos
        return (None, None)


def _mark(node: "yaml.Node") -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _construct(node: "yaml.Node", path: Path, positions: dict[Path, tuple[int, int]],
               loader: Any, file: str) -> Any:
    import yaml

    positions.setdefault(path, _mark(node))
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                line, col = _mark(key_node)
                raise InferformError.single("mapping keys must be plain scalars", file=file, line=line, column=col)
            if key in out:
                line, col = _mark(key_node)
                raise InferformError.single(f"duplicate key {key!r}", file=file, line=line, column=col,
                                            hint="keep one of the two entries")
            child = (*path, key)
            positions[child] = _mark(key_node)
            out[key] = _construct(value_node, child, positions, loader, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), positions, loader, file) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _refuse_aliases(root: "yaml.Node", file: str) -> None:
    """Refuse a node reached twice: the composer shares an anchored node among its aliases, so a repeat is one.

    Walked iteratively before anything is built, so a bomb costs one visit per distinct node."""
    import yaml

    seen: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            line, col = _mark(node)
            raise InferformError.single(
                "YAML aliases are not accepted in setup files: the value anchored here is reused by an alias (*)",
                file=file, line=line, column=col, hint="write the value out where it is needed; remove &anchors and "
                                                       "*aliases (and << merge keys)")
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            todo.extend(child for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)


def _cache_file(text: str) -> str:
    return os.path.join(cache_dir(), "setups", f"{zlib.crc32(text.encode()):08x}-{len(text)}.pickle")


def _cached(text: str) -> tuple[Any, dict[Path, tuple[int, int]]] | None:
    try:
        with open(_cache_file(text), "rb") as handle:
            source, data, positions = pickle.load(handle)
    except (OSError, ValueError, EOFError, pickle.UnpicklingError):
        return None
    return (data, positions) if source == text else None


def remember(text: str, located: Located) -> None:
    """Keep a parsed setup that validated, then trim the cache to its newest CACHE_ENTRIES files."""
    path = _cache_file(text)
    try:
        if os.path.exists(path):
            return
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as handle:
            pickle.dump((text, located.data, located.positions), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        entries = sorted(os.scandir(folder), key=lambda e: e.stat().st_mtime, reverse=True)
        for old in entries[CACHE_ENTRIES:]:
            os.unlink(old.path)
    except OSError:
        pass  # a read-only cache dir only costs speed


def from_cache(text: str, file: str) -> Located | None:
    """The parsed setup kept for this exact text (it validated when it was kept), or None."""
    hit = _cached(text)
    return None if hit is None else Located(hit[0], hit[1], file)


def load_yaml(text: str, file: str) -> Located:
    """Parse one YAML document; syntax errors become InferformError with the line YAML reported."""
    return _parse(text, file)


def _parse(text: str, file: str) -> Located:
    import yaml

    try:  # the C composer is ~10x faster; fall back when libyaml is absent
        from yaml import CSafeLoader as _Loader
    except ImportError:  # pragma: no cover
        from yaml import SafeLoader as _Loader  # type: ignore[assignment]
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _refuse_aliases(root, file)
        positions: dict[Path, tuple[int, int]] = {}
        data = None if root is None else _construct(root, (), positions, loader, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        what = exc.problem or str(exc)
        raise InferformError([Problem(f"YAML syntax error: {what}", file, line, col,
                                      "check indentation, quotes and colons on that line")]) from None
    except yaml.YAMLError as exc:
        raise InferformError.single(f"YAML error: {exc}", file=file) from None
    finally:
        loader.dispose()
    return Located(data, positions, file)


def read_text(path: str) -> str:
    """Read a setup file as UTF-8, turning OS and decoding errors into user errors.

    Opened without blocking and checked with fstat before a byte is read: a FIFO or a device is refused at once."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError
            if not stat.S_ISREG(info.st_mode):
                kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) \
                    or stat.S_ISBLK(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a file"
                raise InferformError.single(f"is {kind}, not a regular file; a setup is a YAML file", file=path)
            if info.st_size > MAX_SETUP_BYTES:
                raise InferformError.single(f"is {info.st_size:,} bytes; a setup file is at most "
                                            f"{MAX_SETUP_BYTES // 1024} KiB", file=path,
                                            hint="a setup names a model and a target; models are not put inline")
            with os.fdopen(fd, "rb", closefd=False) as handle:
                raw = handle.read(MAX_SETUP_BYTES + 1)
        finally:
            os.close(fd)
        if len(raw) > MAX_SETUP_BYTES:  # grew while being read
            raise InferformError.single(f"is over {MAX_SETUP_BYTES // 1024} KiB; a setup file is at most that",
                                        file=path)
    except FileNotFoundError:
        raise InferformError.single("file not found", file=path,
                                    hint="check the path; setups live in setups/*.yaml") from None
    except IsADirectoryError:
        raise InferformError.single("is a directory, not a setup file", file=path) from None
    except OSError as exc:
        raise InferformError.single(f"cannot read: {exc.strerror}", file=path) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InferformError.single(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                                    file=path, line=line, hint="save the file as UTF-8") from None
