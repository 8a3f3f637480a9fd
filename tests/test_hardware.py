"""Hardware detection parses what the OS tools print; setups override detection; the catalog fills names."""

from __future__ import annotations

import json

import pytest

from inferform.errors import InferformError
from inferform.hardware.detect import detect, parse_cpuinfo, parse_meminfo, parse_nvidia_smi
from inferform.hardware.profile import CpuInfo, HardwareProfile
from inferform.hardware.resolve import resolve_hardware
from inferform.setup.spec import parse_setup
from inferform.setup.yamlpos import load_yaml
from inferform.units import GIB

SMI = "0, NVIDIA GeForce RTX 4090, 24564, 23990, 560.35.03, 8.9\n1, NVIDIA A10G, 23028, 22000, 550.1, 8.6\n"
CPUINFO = """processor\t: 0
model name\t: AMD Ryzen 9 7950X 16-Core Processor
flags\t\t: fpu sse2 avx avx2 fma f16c avx512f avx512bw avx512vl
physical id\t: 0
core id\t\t: 0

processor\t: 1
model name\t: AMD Ryzen 9 7950X 16-Core Processor
flags\t\t: fpu sse2 avx avx2 fma f16c avx512f avx512bw avx512vl
physical id\t: 0
core id\t\t: 0

processor\t: 2
model name\t: AMD Ryzen 9 7950X 16-Core Processor
flags\t\t: fpu sse2 avx avx2 fma f16c avx512f avx512bw avx512vl
physical id\t: 0
core id\t\t: 1
"""
MEMINFO = "MemTotal:       65759332 kB\nMemFree:  100 kB\nMemAvailable:   60000000 kB\n"


def test_parse_nvidia_smi():
    gpus = parse_nvidia_smi(SMI)
    assert [g.name for g in gpus] == ["RTX 4090", "A10G"]
    assert gpus[0].vram_bytes == 24564 * 1024**2 and gpus[0].free_vram_bytes == 23990 * 1024**2
    assert gpus[0].compute_capability == "8.9" and gpus[1].driver == "550.1"


def test_parse_cpuinfo_counts_physical_cores_and_flags():
    cpu = parse_cpuinfo(CPUINFO)
    assert cpu.name.startswith("AMD Ryzen 9 7950X")
    assert (cpu.cores, cpu.threads) == (2, 3)
    assert {"avx2", "avx512f"} <= set(cpu.flags) and "sse2" not in cpu.flags


def test_parse_meminfo():
    assert parse_meminfo(MEMINFO) == (65759332 * 1024, 60000000 * 1024)


def fake_machine(smi: str | None):
    files = {"/proc/cpuinfo": CPUINFO, "/proc/meminfo": MEMINFO}
    return lambda: detect(run=lambda argv: smi if argv[0] == "nvidia-smi" else None, read=files.get,
                          system="Linux")


def test_detect_linux_with_and_without_gpu():
    with_gpu = fake_machine(SMI)()
    assert len(with_gpu.gpus) == 2 and with_gpu.ram_bytes == 65759332 * 1024
    without = fake_machine(None)()
    assert without.gpus == [] and any("no NVIDIA GPU" in n for n in without.notes)


def test_detect_macos_apple_silicon():
    values = {"machdep.cpu.brand_string": "Apple M2 Max", "hw.memsize": str(64 * GIB), "hw.physicalcpu": "12",
              "hw.logicalcpu": "12"}
    profile = detect(run=lambda argv: values.get(argv[-1]), read=lambda p: None, system="Darwin")
    assert profile.gpus[0].backend == "metal" and profile.gpus[0].unified_memory
    assert profile.gpus[0].vram_bytes == 64 * GIB and profile.cpu.cores == 12


def test_detect_this_machine_never_crashes():
    profile = detect()
    assert profile.ram_bytes > 0 and profile.cpu.threads >= 1


def resolve(text: str, smi: str | None = SMI) -> HardwareProfile:
    located = load_yaml(text, "s.yaml")
    return resolve_hardware(parse_setup(located), located, fake_machine(smi))


BASE = "name: hw\nuse_case: chat\ntarget:\n  kind: local\n"


def test_no_hardware_section_means_detected():
    profile = resolve(BASE)
    assert [g.name for g in profile.gpus] == ["RTX 4090", "A10G"]


def test_setup_gpus_replace_detection_and_catalog_fills_numbers():
    profile = resolve(BASE + "  hardware:\n    gpus: [{name: RTX 3060 12GB, count: 2}]\n    ram_gib: 32\n")
    assert len(profile.gpus) == 2 and profile.gpus[1].index == 1
    assert profile.gpus[0].vram_bytes == 12 * GIB and profile.gpus[0].bandwidth_gbs == pytest.approx(360)
    assert profile.gpus[0].origin == "catalog" and profile.ram_bytes == 32 * GIB


def test_explicit_values_override_catalog():
    profile = resolve(BASE + "  hardware:\n    gpus: [{name: RTX 4090, vram_gib: 20, bandwidth_gbs: 900}]\n")
    assert profile.gpus[0].vram_bytes == 20 * GIB and profile.gpus[0].bandwidth_gbs == 900
    assert profile.gpus[0].origin == "setup"


def test_empty_gpu_list_means_cpu_only_even_with_a_gpu_present():
    profile = resolve(BASE + "  hardware:\n    gpus: []\n    cpu: {cores: 2}\n")
    assert profile.gpus == [] and profile.cpu.cores == 2 and profile.cpu.threads == 2
    assert profile.cpu.flags  # detected flags survive a partial CPU override


def test_unknown_gpu_without_numbers_fails_with_suggestion():
    with pytest.raises(InferformError) as err:
        resolve(BASE + "  hardware:\n    gpus: [{name: RTX 4809}]\n")
    assert "did you mean" in str(err.value) and "s.yaml:6" in str(err.value)


def test_unknown_gpu_with_numbers_is_fine():
    profile = resolve(BASE + "  hardware:\n    gpus: [{name: Custom Card, vram_gib: 10, bandwidth_gbs: 400}]\n")
    assert profile.gpus[0].name == "Custom Card" and profile.gpus[0].vram_bytes == 10 * GIB


def test_cloud_instance_type_comes_from_catalog():
    text = "name: c\nuse_case: chat\ntarget:\n  kind: aws-spot\n  region: us-east-1\n  instance_type: g5.xlarge\n"
    profile = resolve(text)
    assert profile.gpus[0].name == "A10G" and profile.gpus[0].vram_bytes == 24 * GIB


def test_hardware_command_json(cli):
    result = cli("hardware", "--json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["ram_bytes"] > 0 and "gpus" in data and CpuInfo.model_validate(data["cpu"])


def test_hardware_command_for_setup(cli):
    from tests.conftest import ROOT

    result = cli("hardware", str(ROOT / "setups" / "coder-4080.yaml"), "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["gpus"][0]["name"] == "RTX 4080 SUPER" and data["ram_bytes"] == 64 * GIB
    assert data["cpu"]["cores"] == 16 and data["cpu"]["memory_bandwidth_gbs"] == 80


def test_a_catalog_cpu_brings_its_memory_bandwidth():
    """Detection cannot measure bandwidth; a CPU the catalog lists (as the kernel spells it) brings its peak."""
    from inferform.catalog.cpus import lookup_cpu

    row = lookup_cpu("AMD Ryzen 9 7950X 16-Core Processor")
    assert row is not None and row.name == "Ryzen 9 7950X" and row.max_memory_bandwidth_gbs == pytest.approx(83.2)
    assert lookup_cpu("ryzen 9 7950x") is row and lookup_cpu("AMD EPYC") is None
    detected = resolve(BASE)  # fake_machine's /proc/cpuinfo names a Ryzen 9 7950X
    assert detected.cpu.memory_bandwidth_gbs == pytest.approx(83.2)
    assert any("from the CPU catalog" in n for n in detected.notes)
    given = resolve(BASE + "  hardware:\n    cpu: {memory_bandwidth_gbs: 60}\n")
    assert given.cpu.memory_bandwidth_gbs == 60, "the setup's own figure wins"
    named = resolve(BASE + "  hardware:\n    cpu: {name: Core i9-14900K}\n")
    assert named.cpu.memory_bandwidth_gbs == pytest.approx(89.6)


def test_a_catalog_cpu_without_a_sourced_bandwidth_fills_nothing():
    from inferform.catalog.cpus import lookup_cpu

    row = lookup_cpu("AMD EPYC 7R13 Processor")
    assert row is not None and row.max_memory_bandwidth_gbs is None
    profile = resolve(BASE + "  hardware:\n    cpu: {name: AMD EPYC 7R13 Processor}\n")
    assert profile.cpu.memory_bandwidth_gbs is None
