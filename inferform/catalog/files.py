"""Locate and parse catalog data files, once per process and once per data change.

The catalogs are YAML (comments carry sources), but PyYAML builds Python objects in pure Python: ~90 ms for
all catalogs, a third of the CLI's start-up budget. Parsed data is therefore cached as JSON in the user's cache
dir, keyed by each file's path, size and mtime, so only the first run after a data change pays for YAML.
"""

import json
import os
import zlib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from inferform.dirs import cache_dir

T = TypeVar("T")

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def _cache_dir() -> Path:
    return cache_dir() / "catalog"


def _parse_yaml(path: Path) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)


def _jsonable(data: Any) -> Any:
    """YAML dates become ISO strings (pydantic parses them back); everything else is JSON already."""
    if isinstance(data, dict):
        return {k: _jsonable(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_jsonable(v) for v in data]
    if hasattr(data, "isoformat"):
        return data.isoformat()
    return data


@cache
def read_data(relative: str) -> Any:
    """Parsed content of one data file (cached in-process, and on disk as JSON keyed by the file's stat)."""
    path = DATA_DIR / relative
    stat = path.stat()
    key = f"{relative.replace('/', '_')}-{stat.st_size}-{stat.st_mtime_ns}-{zlib.crc32(str(path).encode()):08x}"
    cached = _cache_dir() / f"{key}.json"  # zlib, not hashlib: importing OpenSSL costs milliseconds at start-up
    try:
        return json.loads(cached.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    data = _jsonable(_parse_yaml(path))
    write_cache_json(cached, data)
    return data


def write_cache_json(path: Path, data: Any) -> None:
    """Write a cache entry atomically (a concurrent reader sees the old file or the new one); a read-only cache
    dir only costs speed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def validated(name: str, data: list[str], build: Callable[[], T]) -> T:
    """Catalog rows validated once per change, then unpickled: pydantic builds a model's validator when it is first
    used, and validating every catalog row on each run cost ~15 ms of the CLI's start-up. The key covers the data
    files, the modules defining the row classes and the pydantic version, so any change re-validates."""
    import pickle

    import pydantic

    parts = [pydantic.VERSION]
    for path in [*(DATA_DIR / rel for rel in data), *sorted(Path(__file__).parent.glob("*.py"))]:
        stat = path.stat()
        parts.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
    cached = _cache_dir() / f"{name}-{zlib.crc32(chr(0).join(parts).encode()):08x}.pickle"
    try:
        with open(cached, "rb") as handle:
            return pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        pass
    value = build()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, cached)
        for stale in cached.parent.glob(f"{name}-*.pickle"):
            if stale != cached:
                stale.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only cache dir only costs speed
    return value


def data_files(folder: str) -> list[Path]:
    return sorted((DATA_DIR / folder).glob("*.yaml"))
