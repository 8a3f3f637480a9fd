"""Fit the speed model's factors to published llama-bench figures and write inferform/data/speed.yaml.

    python scripts/fit_speed.py [--csv PATH] [--dry-run]

Each CSV row becomes the per-device work the planner would hand to `inferform.planner.speed.predict`: bytes read
per generated token (file bytes, minus the token-embedding table of which one row is read, minus the experts a
token does not use) and FLOPs per prompt token (2 × active parameters). Hardware comes from the GPU catalog, or,
for CPUs and integrated GPUs, from the memory configuration the row's notes state (memory.yaml arithmetic).

Rows are split by hardware configuration (all rows of one machine + backend land in one set) so the held-out error
says how well the model predicts hardware it has never seen. Within each backend the configurations are ordered by
a hash of their name and every third one is held out: deterministic, and every backend keeps fit rows.
Decode: grid + closed-form least squares on relative error; prefill: log-space least squares (numpy only), with the
TFLOPS-vs-bandwidth variant chosen by leave-one-configuration-out error on the fit set. Backends with too little
data inherit the pooled GPU fit.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.speed_accuracy import SpeedPoint as Point  # noqa: E402
from benchmarks.speed_accuracy import summarize  # noqa: E402
from inferform.catalog.files import read_data  # noqa: E402
from inferform.catalog.gpus import lookup_gpu  # noqa: E402
from inferform.catalog.models import load_models  # noqa: E402
from inferform.planner.speed import (  # noqa: E402
    DEFAULT_CPU_THREADS,
    FACTOR_KEYS,
    GPU_POOL,
    BackendFactors,
    DeviceWork,
    Efficiency,
)

CSV_PATH = ROOT.parent / "shared" / "data" / "llama-bench-published.csv"
OUT_PATH = ROOT / "inferform" / "data" / "speed.yaml"
GIB = 2**30
MIN_OWN_ROWS = 4  # a backend gets its own two-parameter decode fit only with this many fit rows
MIN_CAPPED = 3  # a bandwidth ceiling needs this many configurations above it


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


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
            devices = [DeviceWork(name=hw.group, kind=kind, backend=backend, bandwidth_gbs=bandwidth,
                                  fp16_tflops=entry.fp16_tflops if entry else None,
                                  bytes_per_token=total_bytes / hw.count, flops_per_token=total_flops / hw.count,
                                  threads=hw.threads, moe=facts.moe) for _ in range(hw.count)]
            points.append(Point(i, f"{hw.group}|{backend}", backend, phase, r["hardware"], r["model"], r["test"],
                                float(r["tps"]), devices))
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


def _decode_fit(pts: list[Point], *, overhead_ms: float | None = None,
                allow_cap: bool = False) -> tuple[float, float | None, float]:
    """(bw_eff, bw_cap_gbs, overhead_ms) minimising squared relative error of
    t = Σ_devices bytes / min(BW·bw_eff, cap) + overhead·devices: grid over (bw_eff, cap), overhead in closed form.

    A ceiling is kept only when at least MIN_CAPPED configurations run into it, so one fast machine cannot set it.
    """
    t = np.array([1 / p.measured_tps for p in pts])
    n = np.array([float(len(p.devices)) for p in pts])
    owner = np.array([i for i, p in enumerate(pts) for _ in p.devices])
    byt = np.array([d.bytes_per_token for p in pts for d in p.devices])
    bw = np.array([d.bandwidth_gbs * 1e9 for p in pts for d in p.devices])
    caps = [np.inf, *(c * 1e9 for c in range(600, 4001, 50))] if allow_cap else [np.inf]
    best = (math.inf, 1.0, np.inf, 0.0)
    for e in np.arange(0.40, 1.0001, 0.005):
        for cap in caps:
            f = np.bincount(owner, byt / np.minimum(bw * e, cap), minlength=len(pts))
            c = overhead_ms / 1e3 if overhead_ms is not None else max(
                float(np.dot(n / t, 1 - f / t) / np.dot(n / t, n / t)), 0.0)
            err = float(np.sum(((f + c * n) / t - 1) ** 2))
            if err < best[0] - 1e-12:
                best = (err, float(e), cap, c * 1e3)
    _, e, cap, c = best
    if np.isfinite(cap) and len({p.group for p in pts if any(d.bandwidth_gbs * 1e9 * e > cap for d in p.devices)}) \
            < MIN_CAPPED:
        return _decode_fit(pts, overhead_ms=overhead_ms, allow_cap=False)
    return float(round(e, 3)), (float(round(cap / 1e9)) if np.isfinite(cap) else None), float(round(c, 3))


def _prefill_rows(pts: list[Point], use_tflops: bool) -> tuple[list[str], list[bool], np.ndarray]:
    """Per row: which path predicts it (TFLOPS known or not), MoE or not, log of the rate the factor must supply."""
    paths, moe, y = [], [], []
    for p in pts:
        tf = use_tflops and all(d.fp16_tflops for d in p.devices)
        base = [(d.fp16_tflops * 1e12) if tf else (d.bandwidth_gbs * 1e9) for d in p.devices]
        y.append(math.log(sum(d.flops_per_token / b for d, b in zip(p.devices, base, strict=True)) * p.measured_tps))
        paths.append("compute_eff" if tf else "prefill_flops_per_byte")
        moe.append(any(d.moe for d in p.devices))
    return paths, moe, np.array(y)


def _prefill_fit(pts: list[Point], use_tflops: bool) -> tuple[dict[tuple[str, str], float], float]:
    """Log-space least squares: one factor per (backend, path) plus one MoE factor shared by every backend."""
    paths, moe, y = _prefill_rows(pts, use_tflops)
    keys = sorted({(p.backend, path) for p, path in zip(pts, paths, strict=True)})
    x = np.array([[float((p.backend, path) == k) for k in keys] + [float(m)]
                  for p, path, m in zip(pts, paths, moe, strict=True)])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return {k: float(math.exp(c)) for k, c in zip(keys, coef[:-1], strict=True)}, float(math.exp(coef[-1]))


def _pooled_prefill(pts: list[Point], moe_factor: float, use_tflops: bool) -> dict[str, float]:
    paths, moe, y = _prefill_rows(pts, use_tflops)
    y = y - np.log(moe_factor) * np.array(moe, dtype=float)
    return {path: float(math.exp(np.mean([v for v, q in zip(y, paths, strict=True) if q == path])))
            for path in set(paths)}


def _cpu_fit(tg: list[Point], pp: list[Point], moe_factor: float) -> BackendFactors:
    """CPU: grid over (bandwidth efficiency, per-thread GB/s) on log error; prefill GFLOPS per thread (geo mean).

    The per-token overhead is not fitted (too few rows): a nominal 0.1 ms. The MoE prefill factor is the GPUs'.
    """
    best = (math.inf, 1.0, 1e9)
    for e in np.arange(0.30, 1.001, 0.01):
        for g in (*np.arange(2.0, 30.01, 0.5), 1e9):
            err = sum(math.log((sum(d.bytes_per_token / min(d.bandwidth_gbs * e, (d.threads or DEFAULT_CPU_THREADS) * g)
                                    for d in p.devices) / 1e9 + 1e-4) * p.measured_tps) ** 2 for p in tg)
            if err < best[0] - 1e-12:
                best = (err, float(e), float(g))
    per_thread = [d.flops_per_token * p.measured_tps / (d.threads or DEFAULT_CPU_THREADS) / 1e9
                  for p in pp for d in p.devices]
    gflops = float(math.exp(np.mean(np.log(per_thread)))) if per_thread else None
    return BackendFactors(bw_eff=round(best[1], 3), token_overhead_ms=0.1, moe_prefill_factor=round(moe_factor, 3),
                          gflops_per_thread=_r(gflops, 2), gbs_per_thread=best[2] if best[2] < 1e8 else None)


def prefill_cv(pts: list[Point], use_tflops: bool) -> float:
    """Leave-one-configuration-out median abs % error of the GPU prefill fit (fit set only): picks the variant."""
    errs = []
    for group in sorted({p.group for p in pts}):
        train = [p for p in pts if p.group != group]
        test = [p for p in pts if p.group == group]
        per_backend, moe_factor = _prefill_fit(train, use_tflops)
        pooled = _pooled_prefill(train, moe_factor, use_tflops)
        paths, moe, y = _prefill_rows(test, use_tflops)
        for p, path, m, v in zip(test, paths, moe, y, strict=True):
            factor = per_backend.get((p.backend, path)) or pooled.get(path) or pooled["prefill_flops_per_byte"]
            errs.append(abs(math.exp(math.log(factor) + m * math.log(moe_factor) - v) - 1) * 100)
    return round(float(np.median(errs)), 1)


def fit(points: list[Point], use_tflops: bool) -> dict[str, BackendFactors]:
    """Factors per backend from the fit set; the pooled GPU fit fills gaps of backends with little data."""
    fit_pts = [p for p in points if p.split == "fit"]
    gpu = [p for p in fit_pts if p.backend != "cpu"]
    gpu_tg = [p for p in gpu if p.phase == "tg"]
    bw, cap, oh = _decode_fit(gpu_tg, allow_cap=True)
    per_backend_pp, moe_factor = _prefill_fit([p for p in gpu if p.phase == "pp"], use_tflops)
    pooled_pp = _pooled_prefill([p for p in gpu if p.phase == "pp"], moe_factor, use_tflops)
    factors = {GPU_POOL: BackendFactors(bw_eff=bw, bw_cap_gbs=cap, token_overhead_ms=oh,
                                        compute_eff=_r(pooled_pp.get("compute_eff")),
                                        prefill_flops_per_byte=_r(pooled_pp.get("prefill_flops_per_byte"), 1),
                                        moe_prefill_factor=round(moe_factor, 3))}
    for backend in sorted({p.backend for p in gpu}):
        tg = [p for p in gpu_tg if p.backend == backend]
        own: dict[str, float | None] = {}
        if len(tg) >= MIN_OWN_ROWS and len({p.group for p in tg}) >= 2:
            own["bw_eff"], own["bw_cap_gbs"], own["token_overhead_ms"] = _decode_fit(
                tg, allow_cap=len({p.group for p in tg}) >= 4)
        elif tg:  # too little data for two parameters: keep the pooled overhead, fit the bandwidth share
            own["bw_eff"], _, _ = _decode_fit(tg, overhead_ms=oh)
        for path in ("compute_eff", "prefill_flops_per_byte"):
            value = per_backend_pp.get((backend, path))
            own[path] = _r(value, 1 if path == "prefill_flops_per_byte" else 3)
        factors[backend] = BackendFactors(**own)
    cpu = [p for p in fit_pts if p.backend == "cpu"]
    factors["cpu"] = _cpu_fit([p for p in cpu if p.phase == "tg"], [p for p in cpu if p.phase == "pp"], moe_factor)
    return factors


HEADER = """\
# Speed-model factors (inferform/planner/speed.py), fitted by `python scripts/fit_speed.py` to the published
# llama-bench figures in shared/data/llama-bench-published.csv. Do not edit by hand: rerun the script.
# A local calibration file ($XDG_CONFIG_HOME/inferform/calibration.yaml, written by `inferform bench --calibrate`)
# with the same `factors:` keys overrides any of these per backend.
#
# factors (per backend; "gpu" is the pooled fit over every GPU backend, used where a backend lacks a value):
#   bw_eff                 fraction of spec memory bandwidth that decode reaches
#   bw_cap_gbs             most GB/s the backend's decode kernels reach on any device (HBM cards run into it)
#   token_overhead_ms      fixed cost per generated token per device (launches, sync); CPU: not fitted, nominal
#   compute_eff            fraction of fp16_tflops that prefill reaches; absent = prefill is bandwidth-proportional
#                          (the fit picks the variant by cross-validation, see provenance.prefill_variant)
#   prefill_flops_per_byte prefill FLOP/s per byte/s of spec bandwidth
#   moe_prefill_factor     prefill rate of routed-expert (MoE) weights relative to dense ones
#   gflops_per_thread      CPU prefill throughput per thread
#   gbs_per_thread         CPU decode bandwidth one thread can pull (caps threads x this below bw_eff x bandwidth)
# points: every usable CSV row as the planner sees it; dev = one entry per device:
#   [kind, backend, spec GB/s, fp16 TFLOPS, GB read per generated token, GFLOP per prompt token, threads, moe]
"""


def _flow(value: object) -> str:
    """One YAML flow value (JSON is a subset of YAML; keeps each point on one line)."""
    return json.dumps(value, ensure_ascii=False)


def dump_speed_yaml(path: Path, factors: dict[str, BackendFactors], provenance: dict[str, object],
                    points: list[Point], excluded: list[dict[str, str]], table: dict[str, Hw | str]) -> None:
    lines = [HEADER, "factors:"]
    for backend, f in factors.items():
        values = {k: getattr(f, k) for k in FACTOR_KEYS if getattr(f, k) is not None}
        lines.append(f"  {backend}: {_flow(values)}")
    lines += ["", "provenance:"] + [f"  {k}: {_flow(v)}" for k, v in provenance.items()]
    for split in ("fit", "held_out"):
        groups = sorted({p.group for p in points if p.split == split})
        lines.append(f"  {split}_configurations: {_flow(groups)}")
    notes = {name: hw.note for name, hw in table.items() if isinstance(hw, Hw) and hw.note}
    lines.append("  hardware_notes:")
    lines += [f"    {_flow(name)}: {_flow(note)}" for name, note in notes.items()]
    lines.append("  excluded:")
    lines += [f"    - {_flow(e)}" for e in excluded]
    lines += ["", "points:"]
    for p in points:
        dev = [[d.kind, d.backend, d.bandwidth_gbs, d.fp16_tflops, round(d.bytes_per_token / 1e9, 4),
                round(d.flops_per_token / 1e9, 3), d.threads, d.moe] for d in p.devices]
        entry = {"row": p.row, "set": p.split, "group": p.group, "phase": p.phase, "hardware": p.hardware,
                 "model": p.model, "test": p.test, "tps": p.measured_tps, "dev": dev}
        lines.append(f"  - {_flow(entry)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=CSV_PATH)
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    parser.add_argument("--dry-run", action="store_true", help="print the fit, write nothing")
    args = parser.parse_args(argv)
    points, excluded = load_points(args.csv)
    assign_splits(points)
    fit_pp = [p for p in points if p.split == "fit" and p.phase == "pp" and p.backend != "cpu"]
    cv = {"tflops": prefill_cv(fit_pp, True), "bandwidth": prefill_cv(fit_pp, False)}
    use_tflops = cv["tflops"] < cv["bandwidth"]
    factors = fit(points, use_tflops)
    eff = Efficiency(factors, {b: "this fit" for b in factors})
    print(f"prefill leave-one-configuration-out median abs % error on the fit set: {cv} "
          f"-> {'fp16_tflops' if use_tflops else 'bandwidth-proportional'} prefill")
    errors = summarize(points, eff)
    print("\n".join([f"{b:7} {f}" for b, f in factors.items()] + [f"{k:14} {v}" for k, v in errors.items()]))
    print(f"{len(points)} points ({sum(p.split == 'held_out' for p in points)} held out), {len(excluded)} excluded")
    if not args.dry_run:
        provenance = {"date": dt.date.today().isoformat(), "command": "python scripts/fit_speed.py",
                      "data": "shared/data/llama-bench-published.csv", "errors": errors,
                      "prefill_variant_cv_median_abs_pct": cv,
                      "prefill_variant": "fp16_tflops" if use_tflops else "bandwidth-proportional"}
        dump_speed_yaml(args.out, factors, provenance, points, excluded, hardware_table())
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
