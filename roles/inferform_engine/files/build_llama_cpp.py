"""Build llama.cpp's `llama-server`, `llama-bench` and `llama-batched-bench` from a pinned source, cached per
version and backend.

Why build at all: prebuilt llama.cpp binaries cannot be downloaded from every machine we target, but PyPI can
be reached, and the llama-cpp-python sdist vendors a complete llama.cpp tree. Pinning the sdist version pins
the exact llama.cpp commit the planner's memory model was checked against, so the binaries we deploy and the
numbers we predict agree. Builds are slow (minutes), so the result is cached and the call is idempotent.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PINNED = "0.3.36"
"""llama-cpp-python version whose vendored llama.cpp we build; bump together with the memory model."""

BASE_FLAGS: tuple[str, ...] = (
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # no network fetch at configure time
    "-DLLAMA_BUILD_UI=OFF",  # no npm toolchain needed
    "-DBUILD_SHARED_LIBS=OFF",  # self-contained binaries we can copy anywhere
    "-DLLAMA_CURL=OFF",  # models are fetched by us, not by llama-server
    "-DCMAKE_BUILD_TYPE=Release",
)
BACKEND_FLAGS: dict[str, tuple[str, ...]] = {
    "cpu": (),
    "cuda": ("-DGGML_CUDA=ON",),
    "metal": ("-DGGML_METAL=ON",),
    "vulkan": ("-DGGML_VULKAN=ON",),
    "rocm": ("-DGGML_HIP=ON",),
}
# Tools a backend needs beyond cmake + C++ compiler: (executable, what to install).
BACKEND_TOOLS: dict[str, tuple[str, str]] = {
    "cuda": ("nvcc", "the CUDA toolkit (nvcc on PATH, e.g. apt-get install nvidia-cuda-toolkit)"),
    "vulkan": ("glslc", "the Vulkan SDK / glslc (e.g. apt-get install glslc libvulkan-dev)"),
    "rocm": ("hipcc", "ROCm with hipcc on PATH"),
}
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
"""Compiler flags that keep ggml's AMX path out of a native x86 build (it still gets AVX-512 and VNNI).

Why: on Sapphire Rapids and newer, `-march=native` compiles ggml's AMX kernels, which repack weights into an
extra "AMX" buffer the memory model does not count (a plan would be wrong by that buffer), and they crashed
(SIGSEGV in ggml_backend_amx_mul_mat at the first decode) on a sandboxed Xeon whose kernel granted the tile
permission. Explicit -mno-* flags win over -march=native in GCC and Clang, whatever their order.
"""


def host_cflags() -> str:
    """C/C++ flags for a CPU build on this machine: the AMX exclusion on x86-64, nothing elsewhere."""
    return NO_AMX if platform.machine().lower() in ("x86_64", "amd64") else ""


def arch_flags() -> tuple[str, ...]:
    """The cmake definitions carrying `host_cflags()` (part of the cache key, so a change rebuilds)."""
    cflags = host_cflags()
    return (f"-DCMAKE_C_FLAGS={cflags}", f"-DCMAKE_CXX_FLAGS={cflags}") if cflags else ()


TARGETS: tuple[str, ...] = ("llama-server", "llama-bench", "llama-batched-bench")
"""llama-batched-bench measures aggregate decode of N parallel sequences (benchmarks/batched.py checks the
planner's concurrency model against it)."""
OPTIONAL_TARGETS: tuple[str, ...] = ("llama-fit-params",)  # only in newer llama.cpp trees

Progress = Callable[[str], None]


class BuildError(Exception):
    """A build cannot start or failed; the message says what to install or where the log is."""


def cache_root() -> Path:
    """Where builds live: one place per user so every project and venv shares the same slow build."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inferform" / "llama.cpp"


@dataclass(frozen=True)
class Source:
    """Where llama.cpp source comes from. Only "pypi-sdist" exists now.

    To add "git-tag" or "release-tarball": give the kind a `fetch` branch that returns an archive path and a
    `subdir` that names the llama.cpp root inside it; the rest of the build does not care where it came from.
    """

    kind: str = "pypi-sdist"
    version: str = PINNED

    def fetch(self, root: Path, progress: Progress) -> Path:
        """Return a local archive of the source, downloading it once."""
        if self.kind != "pypi-sdist":
            raise BuildError(f"source kind {self.kind!r} is not supported yet (only 'pypi-sdist')")
        dest = root / "sdist"
        found = sorted(dest.glob(f"llama_cpp_python-{self.version}.tar.gz"))
        if found:
            return found[0]
        progress(f"downloading llama-cpp-python=={self.version} sdist")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-binary",
            ":all:",
            "--no-deps",
            f"llama-cpp-python=={self.version}",
            "-d",
            str(dest),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(dest.glob(f"llama_cpp_python-{self.version}.tar.gz"))
        if done.returncode != 0 or not found:
            raise BuildError(f"pip download of llama-cpp-python=={self.version} failed:\n{done.stderr[-2000:]}")
        return found[0]

    def subdir(self) -> str:
        """Path of the llama.cpp tree inside the archive."""
        return f"llama_cpp_python-{self.version}/vendor/llama.cpp"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_toolchain(backend: str) -> None:
    """Fail before a minutes-long build with a message naming what to install, not a cmake stack trace."""
    if backend not in BACKEND_FLAGS:
        raise BuildError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_FLAGS)}")
    if not shutil.which("cmake"):
        raise BuildError("cmake not found: install it (apt-get install cmake, brew install cmake or pip install cmake)")
    cxx = os.environ.get("CXX")
    if not (cxx and shutil.which(cxx)) and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise BuildError(
            "no C++ compiler found: install one (apt-get install build-essential, or xcode-select "
            "--install on macOS), or point $CXX at it"
        )
    if backend in BACKEND_TOOLS:
        exe, what = BACKEND_TOOLS[backend]
        if not shutil.which(exe):
            raise BuildError(f"backend {backend!r} needs {exe}: install {what}")


def _run(cmd: list[str], log: Path, what: str) -> None:
    """Run one build step appending to the log; on failure show the tail so the cause is visible at once."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
        raise BuildError(f"{what} failed (exit {rc}); full log: {log}\n{tail}")


def _manifest_ok(path: Path, expect: dict[str, object], bin_dir: Path) -> bool:
    try:
        got = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    same = all(got.get(k) == v for k, v in expect.items())
    targets = got.get("targets", [])
    # a build from before a target was added to TARGETS is incomplete: rebuild (the cmake tree makes it quick)
    return same and set(TARGETS) <= set(targets) and all((bin_dir / t).is_file() for t in targets)


def ensure_llama_cpp(
    backend: str = "cpu", version: str = PINNED, progress: Progress | None = None, source: Source | None = None
) -> Path:
    """Return the bin dir holding llama-server and llama-bench for `backend`, building them if needed."""
    say: Progress = progress or (lambda _msg: None)
    source = source or Source(version=version)
    flags = [*BASE_FLAGS, *BACKEND_FLAGS.get(backend, ()), *arch_flags()]
    root = cache_root()
    home = root / f"{version}-{backend}"
    bin_dir, manifest = home / "bin", home / "manifest.json"
    expect: dict[str, object] = {"version": version, "backend": backend, "source": source.kind, "cmake_flags": flags}
    if _manifest_ok(manifest, expect, bin_dir):
        return bin_dir
    check_toolchain(backend)
    home.mkdir(parents=True, exist_ok=True)
    # One build per version+backend at a time: a second caller waits and then finds the manifest.
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _manifest_ok(manifest, expect, bin_dir):
            return bin_dir
        started = time.monotonic()
        archive = source.fetch(root, say)
        src = root / f"src-{source.kind}-{version}"
        if not (src / source.subdir() / "CMakeLists.txt").is_file():
            say(f"extracting {archive.name}")
            shutil.rmtree(src, ignore_errors=True)
            with tarfile.open(archive) as tar:
                prefix = source.subdir() + "/"
                members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
                tar.extractall(src, members=members, filter="data")
        tree, build = src / source.subdir(), home / "build"
        log = home / "build.log"
        log.write_text("")
        say(f"configuring ({backend})")
        _run(["cmake", "-S", str(tree), "-B", str(build), *flags], log, "cmake configure")
        helptext = subprocess.run(
            ["cmake", "--build", str(build), "--target", "help"], capture_output=True, text=True
        ).stdout
        targets = [*TARGETS, *(t for t in OPTIONAL_TARGETS if t in helptext)]
        jobs = str(os.cpu_count() or 1)
        say(f"building {', '.join(targets)} with -j{jobs} (several minutes)")
        _run(
            ["cmake", "--build", str(build), "--config", "Release", "-j", jobs, "--target", *targets],
            log,
            "cmake build",
        )
        staging = home / "bin.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for t in targets:
            built = next((p for p in (build / "bin" / t, build / "bin" / "Release" / t) if p.is_file()), None)
            if built is None:
                raise BuildError(f"build finished but {t} was not produced under {build / 'bin'}; see {log}")
            shutil.copy2(built, staging / t)
        shutil.rmtree(bin_dir, ignore_errors=True)
        staging.rename(bin_dir)
        record = {
            **expect,
            "targets": targets,
            "source_sha256": sha256(archive),
            "archive": archive.name,
            "build_seconds": round(time.monotonic() - started, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        manifest.write_text(json.dumps(record, indent=2) + "\n")  # written last: its presence means "complete"
        say(f"built in {record['build_seconds']}s -> {bin_dir}")
        return bin_dir


def script_main(argv: list[str] | None, prog: str, description: str, ensure: Callable[..., Path],
                failure: type[Exception]) -> int:
    """The command line both build scripts share: --backend, --version; progress on stderr, the path on stdout,
    and "error: ..." (exit 1) naming what to install, which the engine role shows as is."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--backend", default="cpu", choices=sorted(BACKEND_FLAGS))
    parser.add_argument("--version", default=PINNED, help="llama-cpp-python version whose llama.cpp to build")
    args = parser.parse_args(argv)
    try:
        path = ensure(args.backend, args.version, lambda m: print(m, file=sys.stderr, flush=True))
    except failure as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python build_llama_cpp.py [--backend cpu]`: build if needed, print the bin dir."""
    return script_main(argv, "python build_llama_cpp.py", __doc__.splitlines()[0],
                       lambda backend, version, say: ensure_llama_cpp(backend, version, progress=say), BuildError)


if __name__ == "__main__":
    raise SystemExit(main())
