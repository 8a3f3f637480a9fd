"""Where inferform keeps what it makes for the user: XDG base directories, one place for every module."""

import os
from pathlib import Path


def _xdg(variable: str, default: str) -> Path:
    return Path(os.environ.get(variable) or os.path.join(os.path.expanduser("~"), default)) / "inferform"


def cache_dir() -> Path:
    """Rebuildable things: parsed catalogs and setups, engine builds, downloaded models."""
    return _xdg("XDG_CACHE_HOME", ".cache")
