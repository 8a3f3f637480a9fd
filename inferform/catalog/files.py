"""Locate and parse catalog data files, once per process and once per data change.

The catalogs are YAML (comments carry sources), but PyYAML builds Python objects in pure Python: ~90 ms for
all catalogs, a third of the CLI's start-up budget. Parsed data is therefore cached as JSON in the user's cache
dir, keyed by each file's path, size and mtime, so only the first run after a data change pays for YAML.
"""

from __future__ import annotations

import json
import os
import zlib
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "inferform" / "catalog"


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
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only cache dir only costs speed
    return data


def data_files(folder: str) -> list[Path]:
    return sorted((DATA_DIR / folder).glob("*.yaml"))
