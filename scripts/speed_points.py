"""The published llama-bench CSV as the planner sees it: each row's hardware (GPU catalog, or memory arithmetic for
CPUs and integrated GPUs), the model's bytes and FLOPs per token, the per-device work, and the fit/held-out split.

Used by scripts/fit_speed.py, which fits the speed model's factors to these points.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from benchmarks.speed_accuracy import SpeedPoint as Point
from inferform.catalog.files import read_data
from inferform.catalog.gpus import lookup_gpu
from inferform.catalog.models import load_models
from inferform.planner.speed import DEFAULT_UBATCH, DeviceWork, gpu_arch

GIB = 2**30
OLD_BUILD_BEFORE = "2025-01-01"  # rows dated before this ran builds whose prefill was markedly slower
GUIDE_URL = "llama.cpp/discussions/15396"  # the gpt-oss guide: its command is -b 2048 -ub 2048 for pp2048


def row_ubatch(r: dict[str, str]) -> int:
    """The ubatch a prompt test ran with: `-ub N` from the notes, else the guide's 2048, else the default, capped by
    the prompt length (a 512-token prompt is one 512-token ubatch whatever -ub says)."""
    import re

    n_prompt = int(r["test"][2:] or DEFAULT_UBATCH) if r["test"][2:].isdigit() else DEFAULT_UBATCH
    found = re.search(r"-ub (\d+)", r["notes"] + " " + r["offload_note"])
    if found:
        ub = int(found.group(1))
    elif GUIDE_URL in r["source_url"] and n_prompt >= 2048:
        ub = 2048
    else:
        ub = DEFAULT_UBATCH
    return min(ub, n_prompt)


@dataclass(frozen=True)
class Hw:
    """How one CSV hardware string maps onto the catalog (or onto memory arithmetic)."""

    group: str  # hardware configuration: the unit the fit/held-out split works on
    gpu: str | None = None  # catalog name
    count: int = 1
    bandwidth_gbs: float | None = None  # overrides the catalog / the only figure for CPUs and iGPUs
    threads: int | None = None
    note: str = ""


def _mem(name: str, channels: int) -> float:
    """Peak bandwidth of `channels` 64-bit channels of a memory.yaml type."""
    row = next(r for r in read_data("memory.yaml")["memory_types"] if r["name"] == name)
    return round(row["bandwidth_per_channel_gbs"] * channels, 1)


CATALOG_GPUS = {  # CSV hardware → catalog GPU name (also the configuration's name)
    "RTX 3080 Ti 12GB": "RTX 3080 Ti", "RTX 3080 10GB": "RTX 3080 10GB", "RTX 4070 Ti 12GB": "RTX 4070 Ti",
    "RTX 4080 16GB": "RTX 4080", "RTX 4090 24GB": "RTX 4090", "RTX 5060 Ti 16GB": "RTX 5060 Ti 16GB",
    "RTX 5070 Ti 16GB": "RTX 5070 Ti", "RTX 5090 32GB": "RTX 5090", "M1 7c GPU (8GB)": "M1",
    "M1 Max 32c GPU (64GB)": "M1 Max", "M1 Max (64GB)": "M1 Max", "M1 Pro (32GB)": "M1 Pro",
    "M3 Max 40c GPU (64GB)": "M3 Max", "M3 Ultra 80c GPU (512GB)": "M3 Ultra", "A100 80GB PCIe": "A100 80GB PCIe",
    "A100 SXM4 80GB": "A100 80GB", "A40 48GB": "A40", "RTX A6000 48GB": "RTX A6000", "H100 PCIe 80GB": "H100 PCIe",
    "L40S 48GB": "L40S", "Tesla V100-PCIE-16GB": "V100 PCIe 16GB", "Tesla T4 16GB (Kaggle)": "T4",
    "RTX 2000 Ada 16GB (VM passthrough)": "RTX 2000 Ada", "AMD Instinct MI50 (gfx906)": "Instinct MI50",
    "NVIDIA GB10 (Asus Ascent GX10 / DGX Spark class)": "GB10", "RX 6700 XT 12GB (+Ryzen 7 5700X)": "RX 6700 XT",
    "RX 9070 XT 16GB (+Ryzen 7 7700X)": "RX 9070 XT", "Radeon 8060S (Ryzen AI Max+ 395, 128GB)": "Radeon 8060S",
    "Radeon 8060S (Framework Desktop, Ryzen AI Max+ 395, 128GB LPDDR5X-8000)": "Radeon 8060S",
}


def hardware_table() -> dict[str, Hw | str]:
    """CSV hardware → Hw, or → the reason its rows are excluded."""
    ddr5_2ch = "dual-channel DDR5-5600 assumed: 128 GB needs SO-DIMMs (memory.yaml DDR5-5600 x 2)"
    split = "layer split: the two cards work in turn"
    table: dict[str, Hw | str] = {csv_name: Hw(name, name) for csv_name, name in CATALOG_GPUS.items()}
    return table | {
        "2x RTX 3090 24GB": Hw("2x RTX 3090", "RTX 3090", 2, note=split),
        "2x RTX 4090 24GB": Hw("2x RTX 4090", "RTX 4090", 2, note=split),
        "M4 Max (36GB)": Hw("M4 Max 32c", "M4 Max", bandwidth_gbs=410,
                            note="the 36 GB M4 Max is the 14-core CPU / 32-core GPU bin: 410 GB/s (gpus.yaml)"),
        "RTX PRO 6000 Blackwell Max-Q 96GB": Hw("RTX PRO 6000 Max-Q", "RTX PRO 6000 Blackwell"),
        "RTX PRO 6000 Blackwell Workstation 96GB": Hw("RTX PRO 6000 Workstation", "RTX PRO 6000 Blackwell"),
        "Radeon 8060S (Ryzen AI Max+ 395; system not stated)": Hw(
            "Radeon 8060S", "Radeon 8060S", note="every Ryzen AI Max+ 395 has 256-bit LPDDR5X-8000"),
        "Radeon 890M iGPU (Ryzen AI 9 HX 370, 128GB; 64GB to VRAM)": Hw(
            "Radeon 890M", bandwidth_gbs=_mem("DDR5-5600", 2), note=ddr5_2ch),
        "Radeon 780M iGPU (Ryzen 9 7940HS, 128GB RAM)": Hw(
            "Radeon 780M", bandwidth_gbs=_mem("DDR5-5600", 2), note=ddr5_2ch),
        "Radeon 660M iGPU (Ryzen 5 6600H, DDR5-4800 2ch)": Hw("Radeon 660M", bandwidth_gbs=_mem("DDR5-4800", 2)),
        "Radeon Vega 7 iGPU (Ryzen 5 5600H, 2x32GB DDR4-3200)": Hw("Radeon Vega 7", bandwidth_gbs=_mem("DDR4-3200", 2)),
        "Ryzen 7 7700 (DDR5, speed not stated)": Hw(
            "Ryzen 7 7700", bandwidth_gbs=_mem("DDR5-5200", 2), threads=8,
            note="DDR5-5200 (AM5 official speed, cpus.yaml) x 2 channels assumed; threads = its 8 cores (default)"),
        "Core i5-4278U (MacBook Pro 2014, 8GB DDR3L-1600)": Hw(
            "Core i5-4278U", bandwidth_gbs=25.6, threads=2,
            note="computed: DDR3L-1600 x 2 channels x 8 B = 25.6 GB/s (memory.yaml formula; no DDR3 row there)"),
        "Core i3-1315U (Framework 12)": Hw("Core i3-1315U", threads=2, note="memory not in the excerpt: pp rows only"),
        "EPYC 9554 64c (12ch DDR5-5600, 460.8 GB/s theoretical)": Hw(
            "EPYC 9554", bandwidth_gbs=460.8, threads=64, note="threads not stated: its 64 cores assumed"),
        "GTX 1650 Super 4GB + Ryzen 5 3500 (16GB DDR4-2667)":
            "15.3 GiB model on a 16 GB-RAM host: the notes flag page-cache/mmap pressure, so it measures paging",
    }


@dataclass(frozen=True)
class ModelFacts:
    """What decides bytes and FLOPs per token; shapes from the catalog where it has the model."""

    n_embd: int = 0
    n_vocab: int = 0
    tied: bool = True  # tied: the table is also the output head, read whole every token
    expert_params: float = 0.0
    expert_share: float = 1.0  # n_expert_used / n_expert
    expert_bits: float | None = None  # None: the file's average bits per weight
    active_share: float | None = None  # MoE without shapes: active/total params from the name (A3B)
    note: str = ""

    @property
    def moe(self) -> bool:
        return self.expert_share < 1 or self.active_share is not None


def _catalog(model_id: str, expert_bits: float | None = None) -> ModelFacts:
    s = load_models()[model_id].shapes
    experts = s.n_moe_layers * s.n_expert * (3 if s.ffn_gated else 2) * s.n_embd * s.n_ff_expert
    share = s.n_expert_used / s.n_expert if s.n_expert else 1.0
    return ModelFacts(s.n_embd, s.n_vocab, s.tied_embeddings, experts, share, expert_bits)


def model_facts(model: str, params_b: float) -> ModelFacts:
    family = " ".join(model.split()[:2])
    mxfp4 = 4.25  # MXFP4: 32 4-bit values + one 8-bit scale; gpt-oss keeps experts MXFP4 in every file
    if family.startswith("gpt-oss"):
        return _catalog("gpt-oss-20b" if params_b < 50 else "gpt-oss-120b", mxfp4)
    table = {
        "llama 8B": lambda: _catalog("llama-3.1-8b-instruct"),
        "llama 70B": lambda: _catalog("llama-3.3-70b-instruct"),
        "llama 3B": lambda: _catalog("llama-3.2-3b-instruct"),
        "llama 7B": lambda: ModelFacts(4096, 32000, False, note="Llama-2/Mistral-7B shapes: 4096 x 32000, untied"),
        "qwen3moe 30B.A3B": lambda: _catalog("qwen3-30b-a3b"),
        "gemma3 12B": lambda: _catalog("gemma-3-12b-it"),
        "gemma3 27B": lambda: _catalog("gemma-3-27b-it"),
        "Phi-4 14B": lambda: _catalog("phi-4"),
        "qwen35 27B": lambda: ModelFacts(5120, 248320, False, note="Qwen3.5-27B shapes (THUDM/slime qwen3.5-27B.sh)"),
        "gemma4 31B": lambda: ModelFacts(note="shapes not sourced: whole file counted"),
        "gemma4 26B.A4B": lambda: ModelFacts(active_share=4 / params_b, note="active share 4B/total from the name"),
        "qwen35moe 35B.A3B": lambda: ModelFacts(active_share=3 / params_b, note="active share 3B/total from the name"),
    }
    return table[family]()


def work_per_token(size_gib: float, params_b: float, m: ModelFacts) -> tuple[float, float]:
    """(bytes read per generated token, FLOPs per prompt token) for the whole model."""
    file_bytes, params = size_gib * GIB, params_b * 1e9
    if m.active_share is not None:
        return file_bytes * m.active_share, 2 * params * m.active_share
    avg_bits = file_bytes * 8 / params
    expert_bytes = m.expert_params * (m.expert_bits or avg_bits) / 8
    rest_bits = (file_bytes - expert_bytes) * 8 / max(params - m.expert_params, 1.0)
    embd_params = 0.0 if m.tied else m.n_embd * m.n_vocab
    read = file_bytes - expert_bytes * (1 - m.expert_share) - embd_params * rest_bits / 8
    active = params - m.expert_params * (1 - m.expert_share) - embd_params
    return read, 2 * active


def load_points(csv_path: Path) -> tuple[list[Point], list[dict[str, str]]]:
    """Usable points and the excluded rows with reasons."""
    table = hardware_table()
    points: list[Point] = []
    excluded: list[dict[str, str]] = []
    with open(csv_path, newline="", encoding="utf-8") as handle:
        for i, r in enumerate(csv.DictReader(handle), start=1):
            hw = table[r["hardware"]]
            where = {"row": str(i), "hardware": r["hardware"], "model": r["model"], "test": r["test"]}
            if isinstance(hw, str):
                excluded.append({**where, "reason": hw})
                continue
            phase = "pp" if r["test"].startswith("pp") else "tg"
            kind = "cpu" if r["hardware_kind"] == "cpu" else "gpu"
            if phase == "tg" and hw.bandwidth_gbs is None and hw.gpu is None:
                excluded.append({**where, "reason": hw.note})
                continue
            facts = model_facts(r["model"], float(r["params_b"]))
            total_bytes, total_flops = work_per_token(float(r["size_gib"]), float(r["params_b"]), facts)
            entry = lookup_gpu(hw.gpu) if hw.gpu else None
            bandwidth = hw.bandwidth_gbs or (entry.bandwidth_gbs if entry else 1.0)
            backend = "cpu" if kind == "cpu" else r["backend"].split(",")[0].lower()  # "Metal,BLAS" -> metal
            arch = gpu_arch(entry.name, backend, entry.compute_capability) if entry and kind == "gpu" else None
            devices = [DeviceWork(name=hw.group, kind=kind, backend=backend, bandwidth_gbs=bandwidth,
                                  fp16_tflops=entry.fp16_tflops if entry else None,
                                  bytes_per_token=total_bytes / hw.count, flops_per_token=total_flops / hw.count,
                                  threads=hw.threads, moe=facts.moe, arch=arch,
                                  ubatch=row_ubatch(r) if phase == "pp" else DEFAULT_UBATCH)
                       for _ in range(hw.count)]
            old = bool(r["source_date"]) and r["source_date"] < OLD_BUILD_BEFORE
            points.append(Point(i, f"{hw.group}|{backend}", backend, phase, r["hardware"], r["model"], r["test"],
                                float(r["tps"]), devices, old_build=old))
    return points, excluded


def assign_splits(points: list[Point]) -> None:
    """Per backend, order configurations by hash and hold out every third (ranks 2, 5, 8, ...)."""
    by_backend: dict[str, set[str]] = {}
    for p in points:
        by_backend.setdefault(p.backend, set()).add(p.group)
    held = set()
    for groups in by_backend.values():
        ranked = sorted(groups, key=lambda g: hashlib.sha256(g.encode()).hexdigest())
        held |= {g for k, g in enumerate(ranked) if k % 3 == 2}
    for p in points:
        p.split = "held_out" if p.group in held else "fit"
