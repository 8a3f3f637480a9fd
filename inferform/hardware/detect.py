"""Detect this machine's hardware: nvidia-smi for NVIDIA GPUs, /proc and lscpu on Linux, sysctl on macOS.

Every probe is a small function over injectable `run`/`read` callables, so tests describe any machine by
feeding the text these tools print instead of faking the OS.
"""

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable

from inferform.hardware.profile import CpuInfo, GpuInfo, HardwareProfile
from inferform.units import GIB, MIB

Run = Callable[[list[str]], str | None]
Read = Callable[[str], str | None]

KERNEL_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                "amx_tile", "amx_int8", "amx_bf16", "neon", "asimd", "sve", "dotprod", "i8mm")


def run_command(argv: list[str]) -> str | None:
    """stdout of a command, or None when it is missing, fails or hangs (detection must never crash)."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def read_file(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


NVIDIA_QUERY = ["nvidia-smi", "--query-gpu=index,name,memory.total,memory.free,driver_version,compute_cap",
                "--format=csv,noheader,nounits"]


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """Parse `nvidia-smi --query-gpu=index,name,memory.total,memory.free,driver_version,compute_cap` CSV (MiB)."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 6 or not parts[2].replace(".", "").isdigit():
            continue
        index, name, total, free, driver, cc = parts[:6]
        gpus.append(GpuInfo(index=int(index), name=re.sub(r"^NVIDIA (GeForce )?", "", name), vendor="nvidia",
                            backend="cuda", vram_bytes=int(float(total)) * MIB,
                            free_vram_bytes=int(float(free)) * MIB if free.replace(".", "").isdigit() else None,
                            driver=driver or None, compute_capability=cc if cc not in ("", "[N/A]") else None))
    return gpus


def parse_meminfo(text: str) -> tuple[int | None, int | None]:
    values = {}
    for line in text.splitlines():
        match = re.match(r"^(\w+):\s+(\d+) kB", line)
        if match:
            values[match.group(1)] = int(match.group(2)) * 1024
    return values.get("MemTotal"), values.get("MemAvailable")


def parse_cpuinfo(text: str) -> CpuInfo:
    """Model name, physical cores (distinct physical id/core id pairs), threads and kernel-relevant flags."""
    name, flags, threads = "unknown CPU", set(), 0
    cores: set[tuple[str, str]] = set()
    physical = core = ""
    for line in text.splitlines():
        key, _, value = (s.strip() for s in line.partition(":"))
        if key == "processor":
            threads += 1
        elif key in ("model name", "Model", "cpu model") and name == "unknown CPU":
            name = value
        elif key in ("flags", "Features"):
            flags.update(value.split())
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
            cores.add((physical, core))
    threads = max(threads, 1)
    kept = [f for f in KERNEL_FLAGS if f in flags]
    return CpuInfo(name=re.sub(r"\s+", " ", name), cores=len(cores) or threads, threads=threads, flags=kept)


def detect_linux(run: Run, read: Read) -> HardwareProfile:
    cpu = parse_cpuinfo(read("/proc/cpuinfo") or "")
    total, available = parse_meminfo(read("/proc/meminfo") or "")
    notes = []
    if cpu.threads == 1 and os.cpu_count():
        cpu = cpu.model_copy(update={"threads": os.cpu_count(), "cores": os.cpu_count()})
    smi = run(NVIDIA_QUERY)
    gpus = parse_nvidia_smi(smi) if smi else []
    if smi is None:
        notes.append("no NVIDIA GPU found (nvidia-smi absent or failing)")
    return HardwareProfile(os="linux", arch=platform.machine(), cpu=cpu, ram_bytes=total or 1 * GIB,
                           ram_available_bytes=available, gpus=gpus, notes=notes)


def detect_macos(run: Run) -> HardwareProfile:
    def sysctl(key: str) -> str:
        return (run(["sysctl", "-n", key]) or "").strip()

    brand = sysctl("machdep.cpu.brand_string") or "Apple silicon"
    ram = int(sysctl("hw.memsize") or 0) or 8 * GIB
    cores = int(sysctl("hw.physicalcpu") or os.cpu_count() or 1)
    threads = int(sysctl("hw.logicalcpu") or cores)
    cpu = CpuInfo(name=brand, cores=cores, threads=threads, flags=["neon"] if "Apple" in brand else [])
    gpus = []
    if brand.startswith("Apple M"):
        # Metal can wire most of unified memory; the planner applies its own reserve on top of this figure.
        gpus.append(GpuInfo(index=0, name=brand.removeprefix("Apple ").strip(), vendor="apple", backend="metal",
                            vram_bytes=ram, unified_memory=True))
    return HardwareProfile(os="macos", arch=platform.machine(), cpu=cpu, ram_bytes=ram, gpus=gpus)


def detect(run: Run = run_command, read: Read = read_file, system: str | None = None) -> HardwareProfile:
    """The profile of this machine; unknown parts stay at conservative defaults and are noted."""
    system = system or platform.system()
    if system == "Darwin":
        return detect_macos(run)
    return detect_linux(run, read)
