"""Turn a placement into per-device work for the speed model: bytes read and FLOPs per generated token.

Decode reads, per token, every active weight on each device (experts count n_expert_used / n_expert) and the
KV of one sequence at the planned context; prefill costs 2 FLOPs per active parameter per token.
"""

from functools import cache
from typing import NamedTuple

from inferform.hardware.profile import HardwareProfile
from inferform.planner.memory import LayerBytes
from inferform.planner.model import ModelDesc
from inferform.planner.placement import Placement
from inferform.planner.speed import DeviceWork, load_efficiency, predict

DEFAULT_CPU_BANDWIDTH_GBS = 40.0  # dual-channel DDR4-2666: a conservative desktop when nothing is known


class SpeedResult(NamedTuple):
    prompt_tps: float
    generate_tps: float
    bound: str
    notes: list[str]


@cache
def _efficiency():
    return load_efficiency()


def reload_efficiency() -> None:
    """Forget the cached factors: a calibration written in this process applies to its next plan."""
    _efficiency.cache_clear()


def _active(lb: LayerBytes, model: ModelDesc, placement: Placement) -> tuple[float, float]:
    """(gpu, host) weight bytes read per generated token."""
    share = model.n_expert_used / model.n_expert if model.n_expert else 1.0
    cfg = placement.cfg
    first = placement.mem.first_gpu_layer  # layers first.. are on a GPU
    experts_first = max(first, cfg.n_cpu_moe)  # of those, --n-cpu-moe keeps the experts of layers < N in RAM
    embd_row = lb.embd / max(model.n_vocab, 1)  # one row of the embedding table per token
    head_on_gpu = cfg.n_gpu_layers >= 1 and cfg.n_gpus
    gpu = (lb.head if head_on_gpu else 0.0) + sum(lb.dense[first:]) + sum(lb.expert[experts_first:]) * share
    host = embd_row + (0.0 if head_on_gpu else lb.head) + sum(lb.dense[:first]) \
        + sum(lb.expert[:experts_first]) * share
    return gpu, host


def predict_speed(model: ModelDesc, placement: Placement, hw: HardwareProfile, lb: LayerBytes) -> SpeedResult:
    gpu_bytes, host_bytes = _active(lb, model, placement)
    mem = placement.mem
    per_seq = max(placement.cfg.parallel, 1)
    params_per_byte = model.params_active / max(gpu_bytes + host_bytes, 1.0)
    work: list[DeviceWork] = []
    notes: list[str] = []
    if gpu_bytes and hw.gpus:
        # a layer split runs the GPUs in turn for each token: one DeviceWork per GPU with its share
        shares = list(placement.cfg.tensor_split) or [1.0] * len(hw.gpus)
        total_share = sum(shares)
        for g, share in zip(hw.gpus, shares, strict=False):
            part = share / total_share
            if not g.bandwidth_gbs:
                notes.append(f"{g.name}: bandwidth unknown, assumed 300 GB/s")
            work.append(DeviceWork(name=g.name, kind="gpu", backend=g.backend, bandwidth_gbs=g.bandwidth_gbs or 300.0,
                                   fp16_tflops=g.fp16_tflops or None,
                                   bytes_per_token=(gpu_bytes + mem.gpu.kv / per_seq) * part,
                                   flops_per_token=2 * gpu_bytes * params_per_byte * part, threads=None,
                                   moe=model.is_moe))
    if host_bytes:
        bw = hw.cpu.memory_bandwidth_gbs or DEFAULT_CPU_BANDWIDTH_GBS
        if not hw.cpu.memory_bandwidth_gbs:
            notes.append(f"CPU memory bandwidth unknown, assumed {DEFAULT_CPU_BANDWIDTH_GBS:g} GB/s "
                         "(set target.hardware.cpu.memory_bandwidth_gbs, or run inferform bench --calibrate)")
        work.append(DeviceWork(name=hw.cpu.name, kind="cpu", backend="cpu", bandwidth_gbs=bw, fp16_tflops=None,
                               bytes_per_token=host_bytes + mem.host.kv / per_seq,
                               flops_per_token=2 * host_bytes * params_per_byte, threads=hw.cpu.cores,
                               moe=model.is_moe))
    efficiency = _efficiency()
    result = predict(work, efficiency)
    notes += [f"speed factors for {b}: {efficiency.source_of(b)}" for b in dict.fromkeys(w.backend for w in work)]
    return SpeedResult(result.prompt_tps, result.generate_tps, result.bound, notes)
