"""How fast a placement runs: prompt and generation tokens/s from bytes, FLOPs and a few fitted factors.

Why this shape (see DESIGN.md, "Speed model"):
- Generation reads every active weight (and the KV cache) once per token, so its time is bytes ÷ effective
  bandwidth. Devices of a split placement work one after the other on each token (layer split, or experts on the
  CPU), so their times add.
- Fast GPUs do not reach bandwidth ÷ bytes on small models: each token also pays a fixed cost per device (kernel
  launches, synchronisation, sampling), modelled as a constant per token per device, fitted per backend.
- HBM cards fall short on big models too (A100/H100 reach about half their spec bandwidth even on F16 and 70B rows,
  consumer cards 80-90 %): llama.cpp's decode kernels top out near a fixed GB/s, so a fitted per-backend ceiling
  caps the effective bandwidth. A CPU's decode bandwidth is likewise capped at threads × per-thread GB/s.
- Prompt processing is compute bound. The catalog's fp16_tflops mixes conventions (GeForce: FP32-accumulate; data
  centre: FP16) and llama.cpp's quantized prefill runs int8 kernels anyway, so the fit tries both "FLOPs ÷
  (fp16 TFLOPS × efficiency)" and "FLOPs ÷ (bandwidth × FLOP/byte)" (GPUs of a class carry roughly constant compute
  per unit of bandwidth) and keeps the one that cross-validates better; the TFLOPS path is used whenever a backend
  has a compute_eff (a calibration file may set one). MoE prefill runs at a fitted fraction of the dense rate.

The factors live in inferform/data/speed.yaml (written by `python scripts/fit_speed.py` from published llama-bench
figures, with the fit and held-out errors), and a local calibration file written by `inferform bench --calibrate`
overrides any of them per backend.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from inferform.errors import InferformError

GPU_POOL = "gpu"  # factors fitted on every GPU backend together: the fallback for a backend without its own
DEFAULT_CPU_THREADS = 8  # llama.cpp's default is the physical core count; 8 is a typical desktop
SPEED_DATA = Path(__file__).resolve().parent.parent / "data" / "speed.yaml"


class DeviceWork(NamedTuple):
    """What one device does per token of a placement (the planner fills this from its tensor split)."""

    name: str
    kind: Literal["gpu", "cpu"]
    backend: str  # cuda | rocm | metal | vulkan | sycl | cpu
    bandwidth_gbs: float  # spec memory bandwidth of this device (GB/s, 10^9 bytes)
    fp16_tflops: float | None  # dense fp16 tensor throughput; None when the catalog does not know it
    bytes_per_token: float  # weights read + KV read for one generated token on this device
    flops_per_token: float  # 2 × active parameters on this device (prefill cost of one prompt token)
    threads: int | None = None  # CPU threads llama.cpp uses (None: DEFAULT_CPU_THREADS)
    moe: bool = False  # routed experts: a prompt batch splits across experts, so prefill runs below the dense rate


class BackendFactors(NamedTuple):
    """Fitted efficiencies of one backend. None means "not fitted here": the GPU pool's value is used."""

    bw_eff: float | None = None  # fraction of spec bandwidth that decode reaches
    bw_cap_gbs: float | None = None  # most GB/s the backend's decode kernels reach on any device (HBM cards)
    token_overhead_ms: float | None = None  # fixed cost per generated token per device
    compute_eff: float | None = None  # fraction of fp16_tflops that prefill reaches (dense weights)
    prefill_flops_per_byte: float | None = None  # prefill FLOP/s per (byte/s of spec bandwidth), TFLOPS unknown
    moe_prefill_factor: float | None = None  # prefill rate of MoE weights relative to dense
    gflops_per_thread: float | None = None  # CPU prefill throughput of one thread
    gbs_per_thread: float | None = None  # CPU decode bandwidth one thread can pull

    def merged(self, over: "BackendFactors") -> "BackendFactors":
        """These factors with every value `over` sets replacing ours."""
        return self._replace(**{k: getattr(over, k) for k in FACTOR_KEYS if getattr(over, k) is not None})


FACTOR_KEYS = BackendFactors._fields


class Efficiency(NamedTuple):
    """Factors per backend, and where each backend's factors came from (for explanations)."""

    factors: dict[str, BackendFactors]
    origin: Mapping[str, str] = MappingProxyType({})

    def for_backend(self, backend: str) -> BackendFactors:
        """The backend's factors, gaps filled from the GPU pool (a CPU never borrows GPU factors)."""
        own = self.factors.get(backend, BackendFactors())
        if backend == "cpu":
            return own
        return self.factors.get(GPU_POOL, BackendFactors()).merged(own)

    def source_of(self, backend: str) -> str:
        return self.origin.get(backend) or self.origin.get(GPU_POOL, "packaged speed.yaml")


class DeviceTiming(NamedTuple):
    """One device's share of a token: the numbers behind the explanation."""

    name: str
    kind: str
    backend: str
    memory_ms: float  # bytes ÷ effective bandwidth
    overhead_ms: float  # fixed per-token cost
    effective_gbs: float
    decode_limit: str  # what bounds this device's decode time
    prefill_ms: float  # per prompt token
    prefill_tflops: float  # effective
    prefill_limit: str

    @property
    def decode_ms(self) -> float:
        return self.memory_ms + self.overhead_ms


class SpeedPrediction(NamedTuple):
    prompt_tps: float
    generate_tps: float
    bound: str  # what limits generation: {gpu,cpu}-memory-bandwidth, gpu-kernel-throughput, per-token-overhead,
    #             cpu-threads
    prompt_bound: str  # what limits prompt processing: gpu-compute, cpu-compute
    devices: list[DeviceTiming]
    explanation: list[str]


def _need(value: float | None, what: str, backend: str) -> float:
    if value is None:
        raise InferformError.single(f"speed factor {what} is missing for backend {backend!r}",
                                    hint="run `python scripts/fit_speed.py` or fix the calibration file")
    return value


def _time_device(w: DeviceWork, f: BackendFactors) -> DeviceTiming:
    if w.bandwidth_gbs <= 0 or w.bytes_per_token < 0 or w.flops_per_token < 0:
        raise ValueError(f"{w.name}: bandwidth must be > 0 and work >= 0")
    bw = w.bandwidth_gbs * 1e9 * _need(f.bw_eff, "bw_eff", w.backend)
    limit = f"{w.kind}-memory-bandwidth"
    if f.bw_cap_gbs and f.bw_cap_gbs * 1e9 < bw:
        bw, limit = f.bw_cap_gbs * 1e9, f"{w.kind}-kernel-throughput"
    threads = w.threads or DEFAULT_CPU_THREADS
    if w.kind == "cpu" and f.gbs_per_thread:
        thread_bw = threads * f.gbs_per_thread * 1e9
        if thread_bw < bw:
            bw, limit = thread_bw, "cpu-threads"
    memory_ms = w.bytes_per_token / bw * 1e3
    overhead_ms = _need(f.token_overhead_ms, "token_overhead_ms", w.backend)
    if overhead_ms > memory_ms:
        limit = "per-token-overhead"
    if w.kind == "cpu":
        rate = threads * _need(f.gflops_per_thread, "gflops_per_thread", w.backend) * 1e9
    elif w.fp16_tflops and f.compute_eff:
        rate = w.fp16_tflops * 1e12 * f.compute_eff
    else:
        rate = w.bandwidth_gbs * 1e9 * _need(f.prefill_flops_per_byte, "prefill_flops_per_byte", w.backend)
    if w.moe:
        rate *= f.moe_prefill_factor or 1.0
    return DeviceTiming(w.name, w.kind, w.backend, memory_ms, overhead_ms, bw / 1e9, limit,
                        w.flops_per_token / rate * 1e3, rate / 1e12, f"{w.kind}-compute")


def _explain(w: DeviceWork, t: DeviceTiming, f: BackendFactors, source: str) -> list[str]:
    head = f"{w.name} ({w.backend}): "
    decode = (f"{head}decode {w.bytes_per_token / 1e9:.2f} GB/token at {t.effective_gbs:.0f} GB/s effective "
              f"({w.bandwidth_gbs:g} GB/s × {f.bw_eff:.2f}")
    if t.decode_limit == "cpu-threads":
        decode += f", capped at {w.threads or DEFAULT_CPU_THREADS} threads × {f.gbs_per_thread:g} GB/s"
    elif t.decode_limit.endswith("kernel-throughput"):
        decode += f", capped at the {w.backend} kernels' fitted ceiling of {f.bw_cap_gbs:g} GB/s"
    decode += f") = {t.memory_ms:.2f} ms + {t.overhead_ms:.2f} ms fixed per token"
    if w.kind == "cpu":
        how = f"{w.threads or DEFAULT_CPU_THREADS} threads × {f.gflops_per_thread:g} GFLOPS"
    elif w.fp16_tflops and f.compute_eff:
        how = f"{w.fp16_tflops:g} fp16 TFLOPS × {f.compute_eff:.2f}"
    else:
        how = f"{w.bandwidth_gbs:g} GB/s × {f.prefill_flops_per_byte:g} FLOP/byte"
    if w.moe and f.moe_prefill_factor:
        how += f", × {f.moe_prefill_factor:g} for routed experts"
    prefill = (f"{head}prefill {w.flops_per_token / 1e9:.1f} GFLOP/token at {t.prefill_tflops:.1f} TFLOPS "
               f"({how}) = {t.prefill_ms:.3f} ms per prompt token")
    return [decode, prefill, f"{head}factors from {source}"]


def predict(work: list[DeviceWork], efficiency: Efficiency) -> SpeedPrediction:
    """Prompt and generation speed of one sequence on a placement; split placements add their devices' times."""
    if not work:
        raise ValueError("predict() needs at least one device")
    timings, lines = [], []
    for w in work:
        f = efficiency.for_backend(w.backend)
        t = _time_device(w, f)
        timings.append(t)
        lines += _explain(w, t, f, efficiency.source_of(w.backend))
    decode_ms = sum(t.decode_ms for t in timings)
    prefill_ms = sum(t.prefill_ms for t in timings)
    slowest = max(timings, key=lambda t: t.decode_ms)
    slowest_pp = max(timings, key=lambda t: t.prefill_ms)
    if len(timings) > 1:
        share = slowest.decode_ms / decode_ms
        lines.append(f"split placement: devices run one after another per token; {slowest.name} takes "
                     f"{share:.0%} of the {decode_ms:.2f} ms")
    lines.append(f"generation {1e3 / decode_ms:.1f} tok/s, bound by {slowest.decode_limit} on {slowest.name}; "
                 f"prompt {1e3 / prefill_ms:.0f} tok/s, bound by {slowest_pp.prefill_limit} on {slowest_pp.name}")
    return SpeedPrediction(prompt_tps=1e3 / prefill_ms if prefill_ms else float("inf"),
                           generate_tps=1e3 / decode_ms, bound=slowest.decode_limit,
                           prompt_bound=slowest_pp.prefill_limit, devices=timings, explanation=lines)


def _factors_from(data: Any, where: str) -> dict[str, BackendFactors]:
    """Parse a `factors:` mapping (backend → {key: number}); unknown keys are errors, so typos do not pass silently."""
    if not isinstance(data, dict) or not isinstance(data.get("factors"), dict):
        raise InferformError.single("no `factors:` mapping (backend → factor values)", file=where)
    out: dict[str, BackendFactors] = {}
    for backend, values in data["factors"].items():
        if not isinstance(values, dict):
            raise InferformError.single(f"factors for {backend!r} must be a mapping", file=where)
        unknown = set(values) - set(FACTOR_KEYS)
        if unknown:
            raise InferformError.single(f"unknown speed factor(s) for {backend!r}: {', '.join(sorted(unknown))}",
                                        file=where, hint=f"known factors: {', '.join(FACTOR_KEYS)}")
        try:
            parsed = {k: (None if v is None else float(v)) for k, v in values.items()}
        except (TypeError, ValueError) as exc:
            raise InferformError.single(f"factors for {backend!r} must be numbers ({exc})", file=where) from None
        if any(v is not None and v <= 0 for v in parsed.values()):
            raise InferformError.single(f"factors for {backend!r} must be positive", file=where)
        out[str(backend)] = BackendFactors(**parsed)
    return out


def default_calibration_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "inferform" / "calibration.yaml"


def _read_yaml(path: Path) -> Any:
    import yaml

    with open(path, encoding="utf-8") as handle:
        try:
            return yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise InferformError.single(f"calibration file is not valid YAML: {exc}", file=str(path)) from None


def load_efficiency(calibration_path: Path | None = None, *, use_calibration: bool = True) -> Efficiency:
    """Packaged factors, with a calibration file's values (same keys, per backend) taking precedence.

    The calibration file is `calibration_path` when given (it must exist), else
    $XDG_CONFIG_HOME/inferform/calibration.yaml when present: a measured bench on the user's own machine beats a
    fit to other people's machines. `use_calibration=False` gives the packaged factors alone (benchmarks).
    """
    from inferform.catalog.files import read_data

    packaged = _factors_from(read_data(SPEED_DATA.name), str(SPEED_DATA))
    fitted = read_data(SPEED_DATA.name).get("provenance", {}).get("date", "?")
    origin = {b: f"packaged speed.yaml (fit {fitted})" for b in packaged}
    path = calibration_path or default_calibration_path()
    if not use_calibration or (calibration_path is None and not path.exists()):
        return Efficiency(packaged, origin)
    try:
        local = _factors_from(_read_yaml(path), str(path))
    except OSError as exc:
        raise InferformError.single(f"cannot read calibration file: {exc}", file=str(path)) from None
    merged = dict(packaged)
    for backend, over in local.items():
        merged[backend] = merged.get(backend, BackendFactors()).merged(over)
        origin[backend] = f"calibration {path}"
    return Efficiency(merged, origin)
