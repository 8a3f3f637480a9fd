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
- Prompt processing is compute bound, but the catalog knows fp16 TFLOPS for few GPUs and mixes conventions
  (GeForce: FP32-accumulate; data centre: FP16), and llama.cpp's quantized prefill runs its own int8/fp16 kernels
  anyway. What does predict a GPU's prefill rate is its architecture: within one generation (CUDA compute
  capability, Apple chip generation) compute per unit of memory bandwidth is nearly constant (Ada ≈ 110 FLOP per
  byte on an 8B Q4_K_M, Ampere ≈ 65, Apple M1 ≈ 20), and bigger parts of a generation carry a little less compute
  per byte, so rate = FLOP/byte(architecture) × bandwidth × (bandwidth / 1 TB/s)^(exponent - 1). An architecture
  the fit never saw uses its backend's factor. A calibration file may still set compute_eff: then the fp16 TFLOPS
  path is used for GPUs whose TFLOPS are known.
- Each prompt ubatch also pays a fixed cost (graph build, launches, the output/sampling step): per-ubatch
  milliseconds ÷ ubatch tokens per prompt token. It is what makes small models and small ubatches slower per FLOP.
- Routed experts (MoE) split a batch across experts, so their prefill runs at a fitted fraction of the dense rate.
- Weights left in host RAM are not multiplied on the CPU during prefill: for a batch of at least
  OP_OFFLOAD_MIN_BATCH tokens ggml's scheduler hands the op to the GPU and copies the weights over PCIe, once per
  ubatch (and of a MoE tensor only the experts the ubatch routes to). So a GPU's prompt time also includes
  streamed bytes ÷ (link bandwidth × fitted PCIe efficiency) ÷ ubatch; the copy and the compute run on one stream,
  one after the other, so the two times add.

The factors live in inferform/data/speed.yaml (written by `python scripts/fit_speed.py` from published llama-bench
figures, with the fit and held-out errors), and a local calibration file written by `inferform bench --calibrate`
overrides any of them per backend.
"""

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from inferform.catalog.files import DATA_DIR
from inferform.errors import InferformError

GPU_POOL = "gpu"  # factors fitted on every GPU backend together: the fallback for a backend without its own
DEFAULT_CPU_THREADS = 8  # llama.cpp's default is the physical core count; 8 is a typical desktop
SPEED_DATA = DATA_DIR / "speed.yaml"
OP_OFFLOAD_MIN_BATCH = 32  # ggml-cuda.cu: GGML_OP_OFFLOAD_MIN_BATCH default; smaller batches compute where weights live
DEFAULT_UBATCH = 512  # llama.cpp's default -ub


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
    arch: str | None = None  # prefill class: "cuda-8.9" (compute capability), "metal-m3"; None: the backend's factor
    ubatch: int = DEFAULT_UBATCH  # prompt tokens per ubatch (-ub)
    streamed_bytes: float = 0.0  # host-RAM weight bytes this GPU copies in per ubatch (ggml op offload)
    link_gbs: float | None = None  # host-to-device link bandwidth (PCIe, GB/s per direction); None: the default


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
    prefill_bw_exponent: float | None = None  # rate ∝ bandwidth^exponent within an architecture (1: proportional)
    ubatch_overhead_ms: float | None = None  # fixed prefill cost per ubatch per device
    pcie_eff: float | None = None  # fraction of the link's spec bandwidth that streaming host weights reaches
    pre2025_prefill_factor: float | None = None  # prefill of pre-2025 builds relative to current ones (fit only)
    decode_gflops_per_thread: float | None = None  # CPU matmul rate on a decode batch of a few tokens (concurrency)

    def merged(self, over: "BackendFactors") -> "BackendFactors":
        """These factors with every value `over` sets replacing ours."""
        return self._replace(**{k: getattr(over, k) for k in FACTOR_KEYS if getattr(over, k) is not None})


FACTOR_KEYS = BackendFactors._fields


class Efficiency(NamedTuple):
    """Factors per backend, and where each backend's factors came from (for explanations).

    arch_prefill: FLOP per byte of spec bandwidth (at 1 TB/s) per GPU architecture, where the fit saw one.
    link_gbs: the host-to-device bandwidth a GPU without its own figure gets (PCIe 4.0 x16).
    """

    factors: dict[str, BackendFactors]
    origin: Mapping[str, str] = MappingProxyType({})
    arch_prefill: Mapping[str, float] = MappingProxyType({})
    link_gbs: float = 31.5

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
    compute_ms: float = 0.0  # the prefill FLOPs' share of prefill_ms
    stream_ms: float = 0.0  # copying host-resident weights over PCIe, per prompt token
    batch_tflops: float = 0.0  # effective matmul rate when several sequences decode in one batch (concurrency.py)

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


def gpu_arch(name: str, backend: str, compute_capability: str | None = None) -> str | None:
    """The prefill class of a GPU: CUDA compute capability, or the Apple chip generation; None when unknown.

    Catalog rows without a compute capability get it from speed.yaml `inputs.compute_capability` (sourced there).
    """
    if backend == "cuda":
        if not compute_capability:
            from inferform.catalog.files import read_data

            filled = read_data(SPEED_DATA.name).get("inputs", {}).get("compute_capability") or {}
            compute_capability = filled.get(name)
        return f"cuda-{compute_capability}" if compute_capability else None
    if backend == "metal":
        words = name.split()
        gen = next((x for x in words if len(x) == 2 and x[0] == "M" and x[1].isdigit()), None)
        return f"metal-{gen.lower()}" if gen else None
    return None


def _need(value: float | None, what: str, backend: str) -> float:
    if value is None:
        raise InferformError.single(f"speed factor {what} is missing for backend {backend!r}",
                                    hint="run `python scripts/fit_speed.py` or fix the calibration file")
    return value


def prefill_rate(w: DeviceWork, f: BackendFactors, arch_prefill: Mapping[str, float]) -> tuple[float, str]:
    """(FLOP/s, how it was derived) of the device's dense prefill kernels; the MoE factor is applied by the caller."""
    if w.kind == "cpu":
        threads = w.threads or DEFAULT_CPU_THREADS
        per = _need(f.gflops_per_thread, "gflops_per_thread", w.backend)
        return threads * per * 1e9, f"{threads} threads × {per:g} GFLOPS"
    if w.fp16_tflops and f.compute_eff:
        return w.fp16_tflops * 1e12 * f.compute_eff, f"{w.fp16_tflops:g} fp16 TFLOPS × {f.compute_eff:.2f}"
    per_byte, which = (arch_prefill[w.arch], w.arch) if w.arch in arch_prefill else (
        _need(f.prefill_flops_per_byte, "prefill_flops_per_byte", w.backend), f"{w.backend} average")
    exponent = f.prefill_bw_exponent or 1.0
    rate = per_byte * w.bandwidth_gbs * 1e9 * (w.bandwidth_gbs / 1000.0) ** (exponent - 1.0)
    how = f"{w.bandwidth_gbs:g} GB/s × {per_byte:g} FLOP/byte ({which})"
    if exponent != 1.0:
        how += f" × (GB/s ÷ 1000)^{exponent - 1:+.2f}"
    return rate, how


def _time_device(w: DeviceWork, f: BackendFactors, eff: "Efficiency | None" = None) -> DeviceTiming:
    if w.bandwidth_gbs <= 0 or w.bytes_per_token < 0 or w.flops_per_token < 0 or w.streamed_bytes < 0:
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
    rate, _ = prefill_rate(w, f, eff.arch_prefill if eff else {})
    if w.moe:
        rate *= f.moe_prefill_factor or 1.0
    ubatch = max(w.ubatch, 1)
    compute_ms = w.flops_per_token / rate * 1e3
    fixed_ms = (f.ubatch_overhead_ms or 0.0) / ubatch if w.kind == "gpu" and w.flops_per_token else 0.0
    stream_ms = 0.0
    if w.streamed_bytes:
        link = (w.link_gbs or (eff.link_gbs if eff else 31.5)) * 1e9 * _need(f.pcie_eff, "pcie_eff", w.backend)
        stream_ms = w.streamed_bytes / link / ubatch * 1e3
    prefill_limit = f"{w.kind}-compute" if stream_ms <= compute_ms + fixed_ms else "pcie-weight-streaming"
    # a decode batch of a few tokens runs the CPU's per-row dot-product kernels, not its prompt GEMMs
    batch_rate = threads * f.decode_gflops_per_thread * 1e9 if w.kind == "cpu" and f.decode_gflops_per_thread \
        else rate
    return DeviceTiming(w.name, w.kind, w.backend, memory_ms, overhead_ms, bw / 1e9, limit,
                        compute_ms + fixed_ms + stream_ms, rate / 1e12, prefill_limit, compute_ms, stream_ms,
                        batch_rate / 1e12)


def _explain(w: DeviceWork, t: DeviceTiming, f: BackendFactors, source: str,
             arch_prefill: Mapping[str, float]) -> list[str]:
    head = f"{w.name} ({w.backend}): "
    decode = (f"{head}decode {w.bytes_per_token / 1e9:.2f} GB/token at {t.effective_gbs:.0f} GB/s effective "
              f"({w.bandwidth_gbs:g} GB/s × {f.bw_eff:.2f}")
    if t.decode_limit == "cpu-threads":
        decode += f", capped at {w.threads or DEFAULT_CPU_THREADS} threads × {f.gbs_per_thread:g} GB/s"
    elif t.decode_limit.endswith("kernel-throughput"):
        decode += f", capped at the {w.backend} kernels' fitted ceiling of {f.bw_cap_gbs:g} GB/s"
    decode += f") = {t.memory_ms:.2f} ms + {t.overhead_ms:.2f} ms fixed per token"
    _, how = prefill_rate(w, f, arch_prefill)
    if w.moe and f.moe_prefill_factor:
        how += f", × {f.moe_prefill_factor:g} for routed experts"
    prefill = (f"{head}prefill {w.flops_per_token / 1e9:.1f} GFLOP/token at {t.prefill_tflops:.1f} TFLOPS "
               f"({how}) = {t.prefill_ms:.3f} ms per prompt token")
    if t.stream_ms:
        prefill += (f", of which {t.stream_ms:.3f} ms copy {w.streamed_bytes / 1e9:.1f} GB of host-RAM weights per "
                    f"{w.ubatch}-token ubatch over the PCIe link")
    return [decode, prefill, f"{head}factors from {source}"]


def predict(work: list[DeviceWork], efficiency: Efficiency, *, explain: bool = True) -> SpeedPrediction:
    """Prompt and generation speed of one sequence on a placement; split placements add their devices' times.
    explain=False leaves the explanation empty: the planner's search prices thousands of placements."""
    if not work:
        raise ValueError("predict() needs at least one device")
    timings, lines = [], []
    for w in work:
        f = efficiency.for_backend(w.backend)
        t = _time_device(w, f, efficiency)
        timings.append(t)
        if explain:
            lines += _explain(w, t, f, efficiency.source_of(w.backend), efficiency.arch_prefill)
    decode_ms = sum(t.decode_ms for t in timings)
    prefill_ms = sum(t.prefill_ms for t in timings)
    slowest = max(timings, key=lambda t: t.decode_ms)
    slowest_pp = max(timings, key=lambda t: t.prefill_ms)
    if len(timings) > 1 and explain:
        share = slowest.decode_ms / decode_ms
        lines.append(f"split placement: devices run one after another per token; {slowest.name} takes "
                     f"{share:.0%} of the {decode_ms:.2f} ms")
    if explain:
        lines.append(f"generation {1e3 / decode_ms:.1f} tok/s, bound by {slowest.decode_limit} on {slowest.name}; "
                     f"prompt {1e3 / prefill_ms:.0f} tok/s, bound by {slowest_pp.prefill_limit} on "
                     f"{slowest_pp.name}")
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
    from inferform.dirs import config_dir

    return config_dir() / "calibration.yaml"


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

    data = read_data(SPEED_DATA.name)
    packaged = _factors_from(data, str(SPEED_DATA))
    fitted = data.get("provenance", {}).get("date", "?")
    origin = {b: f"packaged speed.yaml (fit {fitted})" for b in packaged}
    extras = {"arch_prefill": MappingProxyType({str(k): float(v) for k, v in
                                                (data.get("arch_prefill_flops_per_byte") or {}).items()}),
              "link_gbs": float(data.get("inputs", {}).get("pcie", {}).get("default_gbs", 31.5))}
    path = calibration_path or default_calibration_path()
    if not use_calibration or (calibration_path is None and not path.exists()):
        return Efficiency(packaged, origin, **extras)
    try:
        local = _factors_from(_read_yaml(path), str(path))
    except OSError as exc:
        raise InferformError.single(f"cannot read calibration file: {exc}", file=str(path)) from None
    merged = dict(packaged)
    for backend, over in local.items():
        merged[backend] = merged.get(backend, BackendFactors()).merged(over)
        origin[backend] = f"calibration {path}"
    return Efficiency(merged, origin, **extras)
