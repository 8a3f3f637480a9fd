"""Locate and parse catalog data files once per process."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@cache
def read_data(relative: str) -> Any:
    """Parsed YAML of one data file (cached: catalogs are read-only at run time)."""
    with open(DATA_DIR / relative, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Loader)


def data_files(folder: str) -> list[Path]:
    return sorted((DATA_DIR / folder).glob("*.yaml"))
