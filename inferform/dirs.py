"""Where inferform keeps what it makes for the user: the XDG base directories, resolved here and nowhere else.

Why one module: a test isolates HOME and the XDG variables once (tests/conftest.py) and every room follows.
The engine build scripts (roles/inferform_engine/files/) resolve the cache dir themselves: they run on targets
where inferform is not installed, and follow the same rule.
"""

import os
from pathlib import Path


def _xdg(variable: str, default: str) -> Path:
    return Path(os.environ.get(variable) or os.path.join(os.path.expanduser("~"), default)) / "inferform"


def cache_dir() -> Path:
    """Rebuildable things: parsed catalogs and setups, engine builds, downloaded models."""
    return _xdg("XDG_CACHE_HOME", ".cache")


def state_dir() -> Path:
    """What is applied: one folder per setup (state.json, rendered files, its API key, its log)."""
    return _xdg("XDG_STATE_HOME", os.path.join(".local", "state"))


def config_dir() -> Path:
    """What the user set: the speed calibration written by `bench --calibrate`."""
    return _xdg("XDG_CONFIG_HOME", ".config")


def data_dir() -> Path:
    """What must outlive a cache purge: the Pulumi backend, its passphrase, SSH key pairs of cloud setups."""
    return _xdg("XDG_DATA_HOME", os.path.join(".local", "share"))


def engine_home(version: str, backend: str) -> Path:
    """Where a llama-server build lives (the layout of roles/inferform_engine/files/build_llama_cpp.py)."""
    return cache_dir() / "llama.cpp" / f"{version}-{backend}"


def engine_venv(version: str, backend: str) -> Path:
    """Where a llama-cpp-python venv lives (the layout of roles/inferform_engine/files/python_venv.py)."""
    return cache_dir() / "venvs" / f"llama-cpp-python-{version}-{backend}"
