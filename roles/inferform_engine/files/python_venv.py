"""A dedicated virtualenv holding llama-cpp-python's OpenAI-compatible server, built from source, cached.

Why a venv of its own: llama-cpp-python compiles llama.cpp at install time with backend-specific CMake flags
(CUDA, Metal, ...), pins its own dependency set (fastapi, uvicorn, pydantic-settings, numpy) and must not be
mixed into inferform's environment. One venv per version+backend under
``($XDG_CACHE_HOME or ~/.cache)/inferform/venvs/llama-cpp-python-<version>-<backend>``; the build takes
minutes (10-15 on two cores), so it is done once, under a file lock, and recorded by a marker file written last.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from pathlib import Path


def _sibling(name: str):
    """A script that lies beside this one (the engine role copies them to the target together; inferform loads
    both from the role's files/): one backend table and one version pin for both engines."""
    import importlib.util

    module_name = f"inferform_engine_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


_build = _sibling("build_llama_cpp")
BACKEND_FLAGS, BACKEND_TOOLS, PINNED, host_cflags = (_build.BACKEND_FLAGS, _build.BACKEND_TOOLS, _build.PINNED,
                                                     _build.host_cflags)

# CMAKE_ARGS per backend. cpu keeps llama-cpp-python's defaults (it builds the CPU backend natively).
# The same backends and tool checks as the llama-server build (one table: build.py stays stdlib-only so the
# engine role can run it on a target; importing it here costs nothing).
BACKEND_CMAKE_ARGS: dict[str, tuple[str, ...]] = BACKEND_FLAGS
MARKER = "inferform-venv.json"

Progress = Callable[[str], None]


class PythonEngineError(Exception):
    """The engine venv cannot be created or its build failed; the message names what to install or the log."""


def venvs_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inferform" / "venvs"


def venv_dir(version: str = PINNED, backend: str = "cpu") -> Path:
    return venvs_root() / f"llama-cpp-python-{version}-{backend}"


def venv_python(home: Path) -> Path:
    return home / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def check_toolchain(backend: str) -> None:
    """Fail before a long pip build with a message naming the missing tool, not a scikit-build traceback."""
    if backend not in BACKEND_CMAKE_ARGS:
        raise PythonEngineError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_CMAKE_ARGS)}")
    if not shutil.which("cmake"):
        raise PythonEngineError(
            "cmake not found: llama-cpp-python builds llama.cpp from source; install cmake "
            "(apt-get install cmake, brew install cmake or pip install cmake)"
        )
    cc = os.environ.get("CC")
    cxx = os.environ.get("CXX")
    if not (cc and shutil.which(cc)) and not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        raise PythonEngineError("no C compiler found: install one (apt-get install build-essential) or set $CC")
    if not (cxx and shutil.which(cxx)) and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise PythonEngineError("no C++ compiler found: install one (apt-get install build-essential) or set $CXX")
    if backend in BACKEND_TOOLS:
        exe, what = BACKEND_TOOLS[backend]
        if not shutil.which(exe):
            raise PythonEngineError(f"backend {backend!r} needs {exe}: install {what}")


def _marker_ok(home: Path, expect: dict[str, object]) -> bool:
    try:
        got = json.loads((home / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return all(got.get(k) == v for k, v in expect.items()) and venv_python(home).is_file()


def _local_sdists() -> list[str]:
    """Folders already holding the sdist (inferform's llama.cpp build downloads the same one): no re-download."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    d = Path(base) / "inferform" / "llama.cpp" / "sdist"
    return [str(d)] if d.is_dir() else []


def ensure_llama_cpp_python(version: str = PINNED, backend: str = "cpu", progress: Progress | None = None) -> Path:
    """Return the venv dir holding `llama-cpp-python[server]==version` built for `backend`, building if needed.

    Idempotent: a marker file (version, backend, CMAKE_ARGS) written after a successful install means done.
    Concurrent callers serialise on a lock file; the second finds the marker and returns at once.
    """
    say: Progress = progress or (lambda _msg: None)
    if backend not in BACKEND_CMAKE_ARGS:
        raise PythonEngineError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_CMAKE_ARGS)}")
    cmake_args = " ".join(BACKEND_CMAKE_ARGS[backend])
    home = venv_dir(version, backend)
    cflags = host_cflags()  # the AMX exclusion (build.py says why); pip configures afresh, so env is enough
    expect: dict[str, object] = {"package": "llama-cpp-python", "version": version, "backend": backend,
                                 "cmake_args": cmake_args, "cflags": cflags}
    if _marker_ok(home, expect):
        return home
    check_toolchain(backend)
    home.parent.mkdir(parents=True, exist_ok=True)
    with (home.parent / f".{home.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _marker_ok(home, expect):
            return home
        started = time.monotonic()
        (home / MARKER).unlink(missing_ok=True)
        # a venv without a matching marker is made afresh: pip would keep an installed llama-cpp-python of the
        # same version built with other flags ("Requirement already satisfied"), so a flag change never applied
        say(f"creating venv {home}")
        venv.EnvBuilder(with_pip=True, clear=True).create(home)
        log = home / "install.log"
        log.write_text("")
        env = dict(os.environ)
        env["CMAKE_ARGS"] = cmake_args
        for var in ("CFLAGS", "CXXFLAGS"):
            env[var] = " ".join(x for x in (env.get(var, ""), cflags) if x)
        env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        env["FORCE_CMAKE"] = "1"
        cmd = [str(venv_python(home)), "-m", "pip", "install", "--no-binary", "llama-cpp-python"]
        for d in _local_sdists():
            cmd += ["--find-links", d]
        cmd.append(f"llama-cpp-python[server]=={version}")
        say(f"pip installing llama-cpp-python[server]=={version} ({backend}); builds llama.cpp, several minutes")
        with log.open("a") as out:
            out.write(f"$ CMAKE_ARGS={cmake_args!r} {' '.join(cmd)}\n")
            out.flush()
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
        if rc != 0:
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
            raise PythonEngineError(
                f"pip install of llama-cpp-python=={version} failed (exit {rc}); log: {log}\n{tail}")
        record = {**expect, "build_seconds": round(time.monotonic() - started, 1),
                  "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (home / MARKER).write_text(json.dumps(record, indent=2) + "\n")  # written last: presence means complete
        say(f"installed in {record['build_seconds']}s -> {home}")
        return home


def main(argv: list[str] | None = None) -> int:
    """`python python_venv.py [--backend cpu]`: build the venv if needed, print its path."""
    return _build.script_main(argv, "python python_venv.py", __doc__.splitlines()[0],
                              lambda backend, version, say: ensure_llama_cpp_python(version, backend, progress=say),
                              PythonEngineError)


if __name__ == "__main__":
    raise SystemExit(main())
