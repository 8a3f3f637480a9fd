"""Turn a placement into per-device work for the speed model: bytes read and FLOPs per generated token.

Decode reads, per token, every active weight on each device (experts count n_expert_used / n_expert) and the
KV of one sequence at the planned context; prefill costs 2 FLOPs per active parameter per token.

Prefill with weights in host RAM (-ngl below the layer count, or --n-cpu-moe): for a ubatch of at least
OP_OFFLOAD_MIN_BATCH tokens ggml's scheduler runs the matrix multiplications of host-resident weights on the first
GPU (ggml-backend.cpp: a higher-priority backend whose offload_op accepts the op takes it; ggml-cuda.cu accepts
batches of >= GGML_OP_OFFLOAD_MIN_BATCH, default 32) and copies those weights over PCIe once per ubatch, only the
experts the ubatch routes to (ggml_backend_sched_compute_splits). So the CPU does none of the prompt's FLOPs; the
GPU does them all and also streams the host weights. llama-server's `--no-op-offload` turns this off; the planner
never passes it. Apple GPUs share memory with the CPU, so nothing is streamed there.

Concurrency: `-np N` slots decode together; inferform/planner/concurrency.py says how the step time grows with N.
"""

from functools import cache
from typing import NamedTuple

from inferform.hardware.profile import HardwareProfile
from inferform.planner.concurrency import SeqShare, aggregate_tps
from inferform.planner.memory import LayerBytes
from inferform.planner.model import ModelDesc
from inferform.planner.placement import Placement
from inferform.planner.speed import (
    OP_OFFLOAD_MIN_BATCH,
    SPEED_DATA,
    DeviceWork,
    SpeedPrediction,
    gpu_arch,
    load_efficiency,
    predict,
)

DEFAULT_CPU_BANDWIDTH_GBS = 40.0  # dual-channel DDR4-2666: a conservative desktop when nothing is known


class SpeedResult(NamedTuple):
    prompt_tps: float
    generate_tps: float
    bound: str
    notes: list[str]
    aggregate_generate_tps: float = 0.0  # tokens/s summed over `concurrency` sequences decoding at once
    concurrency: int = 1  # the placement's -np slots
    aggregate_bound: str = ""  # what bounds the aggregate: memory traffic, or compute at many slots


@cache
def _efficiency():
    return load_efficiency()


@cache
def _link_gbs() -> dict[str, float]:
    """Per-GPU host link bandwidth where it is not PCIe 4.0 x16 (speed.yaml inputs.link_gbs, sourced there)."""
    from inferform.catalog.files import read_data

    table = read_data(SPEED_DATA.name).get("inputs", {}).get("link_gbs") or {}
    return {k: float(v) for k, v in table.items() if isinstance(v, int | float)}


def reload_efficiency() -> None:
    """Forget the cached factors: a calibration written in this process applies to its next plan."""
    _efficiency.cache_clear()


class _Split(NamedTuple):
    """Where the weights of a placement sit, in bytes."""

    gpu: float  # weight bytes one generated token reads on the GPUs
    host: float  # ... in host RAM
    gpu_expert_active: float
    host_expert_active: float
    gpu_expert_total: float
    host_expert_total: float
    host_matmul: float  # host-resident weights a GPU would multiply for a big batch (not the embedding table)


def _split(lb: LayerBytes, model: ModelDesc, placement: Placement) -> _Split:
    share = model.n_expert_used / model.n_expert if model.n_expert else 1.0
    cfg = placement.cfg
    first = placement.mem.first_gpu_layer  # layers first.. are on a GPU
    experts_first = max(first, cfg.n_cpu_moe)  # of those, --n-cpu-moe keeps the experts of layers < N in RAM
    embd_row = lb.embd / max(model.n_vocab, 1)  # one row of the embedding table per token
    head_on_gpu = cfg.n_gpu_layers >= 1 and cfg.n_gpus
    # a tied output layer multiplies by the whole token_embd table every token (its own copy when on a GPU)
    head = lb.head + (lb.embd if lb.tied else 0.0)
    gpu_experts, host_experts = sum(lb.expert[experts_first:]), sum(lb.expert[:experts_first])
    gpu = (head if head_on_gpu else 0.0) + sum(lb.dense[first:]) + gpu_experts * share
    host_dense = (0.0 if head_on_gpu else head) + sum(lb.dense[:first])
    host = (0.0 if lb.tied and not head_on_gpu else embd_row) + host_dense + host_experts * share
    return _Split(gpu, host, gpu_experts * share, host_experts * share, gpu_experts, host_experts,
                  host_dense + host_experts)


def _plan_work(model: ModelDesc, placement: Placement, hw: HardwareProfile,
               lb: LayerBytes) -> tuple[list[DeviceWork], list[SeqShare], list[str]]:
    """The per-device work of one sequence, each device's per-sequence share (for concurrency), and notes."""
    s = _split(lb, model, placement)
    mem, cfg = placement.mem, placement.cfg
    per_seq = max(cfg.parallel, 1)
    share = model.n_expert_used / model.n_expert if model.n_expert else 1.0
    params_per_byte = model.params_active / max(s.gpu + s.host, 1.0)
    ubatch = max(cfg.ubatch, 1)
    work: list[DeviceWork] = []
    shares: list[SeqShare] = []
    notes: list[str] = []
    host_flops = 2 * s.host * params_per_byte
    offload = bool(s.gpu and hw.gpus and s.host_matmul and ubatch >= OP_OFFLOAD_MIN_BATCH
                   and hw.gpus[0].backend != "metal" and not hw.gpus[0].unified_memory)
    if s.gpu and hw.gpus:
        # a layer split runs the GPUs in turn for each token: one DeviceWork per GPU with its share
        splits = list(cfg.tensor_split) or [1.0] * len(hw.gpus)
        total_share = sum(splits)
        for i, (g, part_of) in enumerate(zip(hw.gpus, splits, strict=False)):
            part = part_of / total_share
            if not g.bandwidth_gbs:
                notes.append(f"{g.name}: bandwidth unknown, assumed 300 GB/s")
            streamed = 0.0
            if offload and i == 0:
                touched = 1.0 - (1.0 - share) ** ubatch if share < 1.0 else 1.0
                streamed = (s.host_matmul - s.host_expert_total) + s.host_expert_total * touched
            work.append(DeviceWork(
                name=g.name, kind="gpu", backend=g.backend, bandwidth_gbs=g.bandwidth_gbs or 300.0,
                fp16_tflops=g.fp16_tflops or None, bytes_per_token=(s.gpu + mem.gpu.kv / per_seq) * part,
                flops_per_token=2 * s.gpu * params_per_byte * part + (host_flops if offload and i == 0 else 0.0),
                threads=None, moe=model.is_moe, arch=gpu_arch(g.name, g.backend, g.compute_capability),
                ubatch=ubatch, streamed_bytes=streamed, link_gbs=_link_gbs().get(g.name)))
            shares.append(SeqShare(kv_bytes=mem.gpu.kv / per_seq * part, expert_active_bytes=s.gpu_expert_active * part,
                                   expert_total_bytes=s.gpu_expert_total * part, expert_share=share))
        if offload:
            notes.append(f"prompt: ubatch {ubatch} >= {OP_OFFLOAD_MIN_BATCH}, so the GPU multiplies the "
                         f"{s.host_matmul / 1e9:.1f} GB of host-RAM weights too, copying them over PCIe per ubatch")
    if s.host:
        bw = hw.cpu.memory_bandwidth_gbs or DEFAULT_CPU_BANDWIDTH_GBS
        if not hw.cpu.memory_bandwidth_gbs:
            notes.append(f"CPU memory bandwidth unknown, assumed {DEFAULT_CPU_BANDWIDTH_GBS:g} GB/s "
                         "(set target.hardware.cpu.memory_bandwidth_gbs, or run inferform bench --calibrate)")
        work.append(DeviceWork(name=hw.cpu.name, kind="cpu", backend="cpu", bandwidth_gbs=bw, fp16_tflops=None,
                               bytes_per_token=s.host + mem.host.kv / per_seq,
                               flops_per_token=0.0 if offload else host_flops, threads=hw.cpu.cores,
                               moe=model.is_moe, ubatch=ubatch))
        shares.append(SeqShare(kv_bytes=mem.host.kv / per_seq, expert_active_bytes=s.host_expert_active,
                               expert_total_bytes=s.host_expert_total, expert_share=share))
    return work, shares, notes


def _predict(model: ModelDesc, placement: Placement, hw: HardwareProfile,
             lb: LayerBytes) -> tuple[SpeedPrediction, list[DeviceWork], list[SeqShare], list[str]]:
    work, shares, notes = _plan_work(model, placement, hw, lb)
    efficiency = _efficiency()
    result = predict(work, efficiency, explain=False)  # plans quote the notes, not the per-device lines
    notes += [f"speed factors for {b}: {efficiency.source_of(b)}" for b in dict.fromkeys(w.backend for w in work)]
    return result, work, shares, notes


def aggregate_generate_tps(model: ModelDesc, placement: Placement, hw: HardwareProfile, lb: LayerBytes,
                           n: int) -> float:
    """Generated tokens/s summed over n sequences decoding at once on this placement (n = 1: single stream).

    The per-sequence KV is the placement's (its context per slot), whatever n is: n only says how many of the
    slots are busy.
    """
    result, work, shares, _ = _predict(model, placement, hw, lb)
    if n == 1:
        return result.generate_tps
    return aggregate_tps(work, result.devices, shares, n)[0]


def predict_speed(model: ModelDesc, placement: Placement, hw: HardwareProfile, lb: LayerBytes) -> SpeedResult:
    result, work, shares, notes = _predict(model, placement, hw, lb)
    n = max(placement.cfg.parallel, 1)
    aggregate, bound = result.generate_tps, result.bound
    if n > 1:
        aggregate, bound = aggregate_tps(work, result.devices, shares, n)
        notes.append(f"{n} slots decoding at once: {aggregate:.1f} tok/s in all ({aggregate / n:.1f} each), "
                     f"bound by {bound}")
    return SpeedResult(result.prompt_tps, result.generate_tps, result.bound, notes, aggregate, n, bound)
