"""Aggregate decode speed of N sequences generated at once (llama-server's `-np N` slots, continuous batching).

Why this shape: llama.cpp decodes the N slots' next tokens in one batch, so one step
- reads every weight once (the N tokens share it), plus, for routed experts, the experts any of the N tokens
  routes to: a fraction 1 - (1 - used/total)^N of the device's expert bytes (uniform routing assumed);
- reads every sequence's own KV cache (N × the KV of one sequence);
- multiplies N × 2 × active-parameter FLOPs: at large N decode turns compute bound. On a GPU the compute rate is
  its prefill rate (the same matmul kernels on a batch); on a CPU a batch of a few tokens runs ggml's per-row dot
  products rather than the prompt's GEMM kernels, at a rate fitted on llama-batched-bench runs
  (decode_gflops_per_thread, speed.yaml). Either way never slower than the single stream already runs: at N = 1
  the fitted decode time hides the compute inside the memory time, so the per-token compute charged is at most
  that memory time;
- pays the fixed per-step overhead (launches, sync, sampling) once.
Memory and compute overlap inside the kernels, so a device's step is overhead + max(memory, compute); devices of a
split placement still work one after another, so their step times add. Aggregate tok/s = N ÷ step time. With N = 1
this is exactly the single-stream decode of speed.py; it rises with N while memory bound (sub-linearly: the KV
reads grow with N), and levels off at the compute bound.

Pure functions on the DeviceWork / DeviceTiming values speed.py produces, plus what those do not carry: each
device's KV bytes per sequence and its routed-expert bytes (SeqShare).
"""

from collections.abc import Sequence
from typing import NamedTuple

from inferform.planner.speed import DeviceTiming, DeviceWork


class SeqShare(NamedTuple):
    """What of a device's per-token bytes belongs to one sequence, and its routed experts (for N > 1)."""

    kv_bytes: float = 0.0  # KV read per token of one sequence on this device (part of bytes_per_token)
    expert_active_bytes: float = 0.0  # routed-expert bytes one token reads here (part of bytes_per_token)
    expert_total_bytes: float = 0.0  # every expert's bytes on this device
    expert_share: float = 1.0  # n_expert_used / n_expert


def expert_bytes(share: SeqShare, n: int) -> float:
    """Expert bytes one step of n tokens reads: the experts at least one token routes to."""
    if not share.expert_total_bytes or share.expert_share >= 1.0:
        return share.expert_active_bytes * (1 if share.expert_share >= 1.0 else n)
    touched = share.expert_total_bytes * (1.0 - (1.0 - share.expert_share) ** n)
    return max(min(touched, n * share.expert_active_bytes), share.expert_active_bytes)


def step_ms(work: DeviceWork, timing: DeviceTiming, share: SeqShare, n: int) -> tuple[float, str]:
    """(milliseconds of one decode step of n sequences on this device, what bounds it)."""
    if n < 1:
        raise ValueError("n must be >= 1")
    shared = work.bytes_per_token - share.kv_bytes - share.expert_active_bytes  # read once per step
    memory = (shared + expert_bytes(share, n) + n * share.kv_bytes) / (timing.effective_gbs * 1e9) * 1e3
    memory = max(memory, timing.memory_ms if n == 1 else 0.0)
    rate = timing.batch_tflops or timing.prefill_tflops
    per_token_compute = work.flops_per_token / (rate * 1e12) * 1e3 if rate else 0.0
    compute = n * min(per_token_compute, timing.memory_ms)
    bound = timing.decode_limit if memory >= compute else f"{timing.kind}-compute"
    return timing.overhead_ms + max(memory, compute), bound


def aggregate_tps(work: Sequence[DeviceWork], timings: Sequence[DeviceTiming], shares: Sequence[SeqShare],
                  n: int) -> tuple[float, str]:
    """(tokens/s summed over n concurrent sequences, what bounds the slowest device's step)."""
    if not work or len(work) != len(timings) or len(work) != len(shares):
        raise ValueError("one DeviceWork, DeviceTiming and SeqShare per device")
    steps = [step_ms(w, t, s, n) for w, t, s in zip(work, timings, shares, strict=True)]
    total = sum(ms for ms, _ in steps)
    return n * 1e3 / total, max(steps)[1]


def compute_bound_tps(work: Sequence[DeviceWork], timings: Sequence[DeviceTiming]) -> float:
    """The ceiling aggregate decode approaches as n grows: every device busy only multiplying."""
    per_token = 0.0
    for w, t in zip(work, timings, strict=True):
        rate = t.batch_tflops or t.prefill_tflops
        per_token += min(w.flops_per_token / (rate * 1e12) * 1e3, t.memory_ms) if rate else t.memory_ms
    return 1e3 / per_token if per_token else float("inf")
