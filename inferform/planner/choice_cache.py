"""The cloud instance choice, remembered between runs: which type won and which were its runners-up.

Choosing searches the setup on every offered type (tens of searches for a throughput setup, which must compare
$/Mtok across all of them); the answer only changes when something it was computed from does. The key covers the
setup as validated, the GGUF header it used, the offered types with their prices (live prices change the key),
and the planner's inputs: every module and data file of the package (size + mtime) and the calibration file. A
hit names the types; they are searched again (a few searches instead of all), so the plan itself is always
computed now, never read back. A miss, or a named type that no longer fits, runs the whole choice.
"""

import json
import zlib
from pathlib import Path
from typing import Any

from inferform.catalog.files import write_cache_json
from inferform.dirs import cache_dir

PACKAGE = Path(__file__).resolve().parent.parent
VERSION = "choice-v1"


def _stamp(paths: list[Path]) -> str:
    parts = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            parts.append(f"{path}:-")
            continue
        parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def _inputs() -> list[Path]:
    from inferform.planner.speed import default_calibration_path

    files = sorted(p for sub in ("planner", "catalog", "hardware", "engines", "setup", "data")
                   for p in (PACKAGE / sub).rglob("*") if p.suffix in (".py", ".yaml"))
    return [*files, PACKAGE / "plan.py", default_calibration_path()]


def key(setup_json: str, gguf_path: str | None, offered: list[tuple[str, float]]) -> str:
    """A 64-bit key (two CRC32s: hashlib's OpenSSL import costs start-up time) over everything the choice read."""
    gguf = _stamp([Path(gguf_path)]) if gguf_path else ""
    text = "\0".join([VERSION, setup_json, gguf, json.dumps(offered), _stamp(_inputs())]).encode()
    return f"{zlib.crc32(text):08x}{zlib.crc32(text[::-1]):08x}"


def _path(k: str) -> Path:
    return cache_dir() / "choices" / f"{k}.json"


def load(k: str) -> dict[str, Any] | None:
    try:
        return json.loads(_path(k).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def store(k: str, record: dict[str, Any]) -> None:
    write_cache_json(_path(k), record)
