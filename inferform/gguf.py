"""A fast GGUF header and tensor-table reader: exact bytes per tensor in milliseconds.

gguf.GGUFReader materialises every metadata array (a 150k-entry vocab) as numpy objects and takes seconds on
big files; the planner only needs scalar metadata, the lengths of arrays, small per-layer arrays, and the tensor
table. This reader walks the header once with struct and skips what it does not keep.
"""

import mmap
import os
import pickle
import re
import struct
import zlib
from pathlib import Path
from typing import Any, NamedTuple

from inferform.catalog.quants import load_ggml_types
from inferform.dirs import cache_dir
from inferform.errors import InferformError

MAGIC = b"GGUF"
SMALL_ARRAY = 4096  # keep arrays up to this length (per-layer head counts, SWA patterns); skip vocabularies

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_PER_LAYER = re.compile(r"^blk\.(\d+)\.")


class Tensor(NamedTuple):
    """One tensor of a GGUF file. A NamedTuple, not a dataclass: plans build tens of thousands of these, and
    defining a frozen dataclass alone costs a CLI start-up a millisecond or more (its methods are exec'd)."""

    name: str
    shape: tuple[int, ...]
    type_name: str
    n_bytes: int
    layer: int | None  # blk.N. index; None for token_embd/output/...: the planner asks thousands of times
    is_expert: bool  # MoE expert tensors (ffn_*_exps): RAM candidates first
    n_elements: int

    @classmethod
    def of(cls, name: str, shape: tuple[int, ...], type_name: str, n_bytes: int) -> "Tensor":
        match = _PER_LAYER.match(name)
        count = 1
        for dim in shape:
            count *= dim
        return cls(name, shape, type_name, n_bytes, int(match.group(1)) if match else None, "_exps." in name, count)


class GGUFInfo(NamedTuple):
    """What the planner keeps of a GGUF file."""

    path: str
    version: int
    metadata: dict[str, Any]
    array_lengths: dict[str, int]
    tensors: list[Tensor]
    file_bytes: int = 0

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    def arch_value(self, key: str, default: Any = None) -> Any:
        """Architecture-scoped metadata, e.g. arch_value('block_count') reads '<arch>.block_count'."""
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)


class _Cursor:
    def __init__(self, buf: Any, path: str) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def unpack(self, fmt: str) -> Any:
        try:
            value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        except struct.error:
            raise self.truncated() from None
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        end = self.pos + length
        if end > len(self.buf):
            raise self.truncated()
        raw = bytes(self.buf[self.pos:end])
        self.pos = end
        return raw.decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        buf, pos, size = self.buf, self.pos, len(self.buf)
        unpack = struct.Struct("<Q").unpack_from
        for _ in range(count):
            if pos + 8 > size:
                raise self.truncated()
            pos += 8 + unpack(buf, pos)[0]
        if pos > size:
            raise self.truncated()
        self.pos = pos

    def truncated(self) -> InferformError:
        return InferformError.single("GGUF file is truncated or corrupt (header runs past the end)", file=self.path,
                                     hint="download the file again; inferform verifies size and sha256")


def _value(cur: _Cursor, vtype: int) -> tuple[Any, int | None]:
    """(value, array length) — arrays longer than SMALL_ARRAY come back as None with their length."""
    if vtype in _SCALARS:
        return cur.unpack(_SCALARS[vtype]), None
    if vtype == _STRING:
        return cur.string(), None
    if vtype == _ARRAY:
        etype, count = cur.unpack("<I"), cur.unpack("<Q")
        if count > SMALL_ARRAY or etype == _ARRAY:
            if etype == _STRING:
                cur.skip_strings(count)
            elif etype in _SCALARS:
                cur.pos += count * struct.calcsize(_SCALARS[etype])
            else:
                for _ in range(count):
                    _value(cur, etype)
            return None, count
        return [_value(cur, etype)[0] for _ in range(count)], count
    raise InferformError.single(f"unknown GGUF value type {vtype}", file=cur.path)


def read_gguf(path: str | Path) -> GGUFInfo:
    """Parse metadata and the tensor table of a GGUF file (or the first part of a split file).

    Skipping a vocabulary still walks every string (SmolLM2: 98k of them, ~25 ms; Llama 3: ~400k), so a parsed
    header is kept in the user's cache, keyed by the file's path, size and modification time."""
    path = str(path)
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            cached = _cache_file(path, stat)
            info = _cached(cached)
            if info is None:
                with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                    info = _parse(buf, path)
                _keep(cached, info)
            return info
    except (OSError, ValueError) as exc:
        raise InferformError.single(f"cannot read GGUF: {exc}", file=path) from None


CACHE_FORMAT = 3  # bump when GGUFInfo or Tensor changes shape: an older inferform must not read newer pickles


def _cache_file(path: str, stat: os.stat_result) -> Path:
    name = f"{zlib.crc32(path.encode()):08x}-{stat.st_size}-{stat.st_mtime_ns}.pickle"
    return cache_dir() / f"gguf-v{CACHE_FORMAT}" / name


def _cached(cached: Path) -> GGUFInfo | None:
    try:
        with open(cached, "rb") as handle:
            info = pickle.load(handle)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError):
        return None
    return info if isinstance(info, GGUFInfo) else None


def _keep(cached: Path, info: GGUFInfo) -> None:
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(info, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, cached)
        for stale in cached.parent.glob(cached.name.split("-")[0] + "-*.pickle"):  # older versions of this file
            if stale != cached:
                stale.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only cache dir only costs speed


def _parse(buf: Any, path: str) -> GGUFInfo:
    if bytes(buf[:4]) != MAGIC:
        raise InferformError.single("not a GGUF file (bad magic)", file=path,
                                    hint="model files must be GGUF; convert with llama.cpp's convert_hf_to_gguf.py")
    cur = _Cursor(buf, path)
    cur.pos = 4
    version = cur.unpack("<I")
    if version not in (2, 3):
        raise InferformError.single(f"unsupported GGUF version {version}", file=path)
    n_tensors, n_kv = cur.unpack("<Q"), cur.unpack("<Q")
    metadata: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for _ in range(n_kv):
        key = cur.string()
        value, length = _value(cur, cur.unpack("<I"))
        if value is not None:
            metadata[key] = value
        if length is not None:
            lengths[key] = length
    types = {t.id: t for t in load_ggml_types().values()}
    tensors = []
    data_end = 0
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.unpack("<I")
        shape = tuple(cur.unpack("<Q") for _ in range(n_dims))
        type_id = cur.unpack("<I")
        offset = cur.unpack("<Q")  # within the data section
        ggml = types.get(type_id)
        if ggml is None:
            raise InferformError.single(f"tensor {name} has unknown ggml type id {type_id}", file=path)
        elements = 1
        for dim in shape:
            elements *= dim
        tensors.append(Tensor.of(name, shape, ggml.name, elements // ggml.block_size * ggml.type_size))
        data_end = max(data_end, offset + tensors[-1].n_bytes)
    _check_complete(cur.pos, data_end, int(metadata.get("general.alignment", 32) or 32), len(buf), path)
    return GGUFInfo(path, version, metadata, lengths, tensors, file_bytes=len(buf))


def _check_complete(header_end: int, data_end: int, alignment: int, size: int, path: str) -> None:
    """Refuse a file that ends before its last tensor: llama.cpp would refuse it only at load time ("tensor data
    is not within the file bounds"), which for a re-apply comes after the running server was replaced. The data
    section starts at the header's end, aligned to general.alignment."""
    needed = -(-header_end // alignment) * alignment + data_end
    if size < needed:
        raise InferformError.single(
            f"GGUF file is truncated: its header describes {needed:,} bytes of tensors and header, and the file "
            f"has {size:,} bytes", file=path, hint="download or copy the file again (an interrupted transfer "
                                                   "leaves a file like this); inferform verifies size and sha256")
