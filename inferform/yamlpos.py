"""YAML loading that remembers where every value came from, so errors can name a line.

PyYAML's composer keeps start marks on nodes; we build plain Python data from the node tree ourselves and
record the position of every key and value by path. Only the safe YAML subset is accepted.

Importing PyYAML costs ~35 ms, a tenth of the CLI's start-up budget, and a setup is planned far more often than
it is edited: a parsed setup is kept in the user's cache, keyed by its text and checked against it on load.
"""

import os
import pickle
import zlib
from typing import TYPE_CHECKING, Any, NamedTuple

from inferform.dirs import cache_dir
from inferform.errors import InferformError, Problem

if TYPE_CHECKING:
    import yaml

Path = tuple[str | int, ...]


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


def _cache_file(text: str) -> str:
    return os.path.join(cache_dir(), "setups", f"{zlib.crc32(text.encode()):08x}-{len(text)}.pickle")


def _cached(text: str) -> tuple[Any, dict[Path, tuple[int, int]]] | None:
    try:
        with open(_cache_file(text), "rb") as handle:
            source, data, positions = pickle.load(handle)
    except (OSError, ValueError, EOFError, pickle.UnpicklingError):
        return None
    return (data, positions) if source == text else None


def _keep(text: str, data: Any, positions: dict[Path, tuple[int, int]]) -> None:
    path = _cache_file(text)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as handle:
            pickle.dump((text, data, positions), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache dir only costs speed


def load_yaml(text: str, file: str) -> Located:
    """Parse one YAML document; syntax errors become InferformError with the line YAML reported."""
    hit = _cached(text)
    if hit is not None:
        return Located(hit[0], hit[1], file)
    located = _parse(text, file)
    _keep(text, located.data, located.positions)
    return located


def _parse(text: str, file: str) -> Located:
    import yaml

    try:  # the C composer is ~10x faster; fall back when libyaml is absent
        from yaml import CSafeLoader as _Loader
    except ImportError:  # pragma: no cover
        from yaml import SafeLoader as _Loader  # type: ignore[assignment]
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
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
    """Read a setup file as UTF-8, turning OS and decoding errors into user errors."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
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
