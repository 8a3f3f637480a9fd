"""Aggregate generation throughput of a vLLM replica at a concurrency, and $/Mtok from it.

Why this shape (the aggregate model of planner/concurrency.py, for vLLM's continuous batching): one decode step of n
sequences reads this rank's weights once (routed experts: those any of the n tokens picks), every sequence's KV,
and multiplies n × 2 × active parameters; memory and compute overlap, so a step is overhead + max(memory, compute)
+ the tensor-parallel all-reduces (two per layer). Pipeline stages work on n/PP-sequence micro-batches in turn, so a
token leaves the pipeline every stage step. Each request's prompt is prefilled once (chunked into the same steps),
so over a request's life the replica spends `out` decode steps and its prompt's prefill:
  output tok/s = n × out / (out × step + n × prompt × prefill time per token), × DP replicas.
Factors (data/vllm_speed.yaml) are provisional until fitted; GPU speed is unverified here (no GPU).
"""

from functools import cache
from typing import Any, NamedTuple

from inferform.catalog.files import read_data


class Factors(NamedTuple):
    bw_eff: float
    decode_mfu: float
    prefill_mfu: float
    step_overhead_ms: float
    allreduce_us: float


@cache
def factors(backend: str) -> Factors:
    data: dict[str, Any] = read_data("vllm_speed.yaml")["factors"]
    return Factors(**data.get(backend, data["cuda"]))


class Device(NamedTuple):
    bandwidth_gbs: float
    tflops: float
    backend: str  # cuda | cpu


class Work(NamedTuple):
    """One rank's share of a step (the fullest rank)."""

    dense_bytes: float  # weights read once per step whoever routes where
    expert_bytes: float  # this rank's routed experts
    expert_share: float  # n_expert_used / n_expert (1.0 for dense)
    kv_bytes_per_token: int
    active_params: float  # of this rank, per token
    layers: int  # on this rank's stage


class Throughput(NamedTuple):
    aggregate_tps: float
    single_tps: float
    prompt_tps: float
    bound: str


def _step_ms(w: Work, d: Device, f: Factors, n: float, ctx: float, tp: int) -> tuple[float, str]:
    touched = w.expert_bytes * (1.0 - (1.0 - w.expert_share) ** n) if w.expert_share < 1.0 else w.expert_bytes
    memory = (w.dense_bytes + touched + n * ctx * w.kv_bytes_per_token) / (d.bandwidth_gbs * f.bw_eff * 1e9) * 1e3
    compute = n * 2 * w.active_params / (d.tflops * f.decode_mfu * 1e12) * 1e3 if d.tflops else 0.0
    comm = 2 * w.layers * f.allreduce_us / 1e3 if tp > 1 else 0.0
    bound = f"{d.backend}-memory-bandwidth" if memory >= compute else f"{d.backend}-compute"
    return f.step_overhead_ms + max(memory, compute) + comm, bound


def predict(w: Work, d: Device, *, n: int, prompt: int, output: int, tp: int, pp: int, dp: int) -> Throughput:
    """Output tokens/s of all DP replicas with n sequences each in flight, requests of prompt + output tokens."""
    f = factors(d.backend)
    ctx = prompt + output / 2  # the KV a sequence reads, on average over its decode
    micro = max(n / pp, 1.0)
    step, bound = _step_ms(w, d, f, micro, ctx, tp)
    single, _ = _step_ms(w, d, f, 1.0, ctx, tp)
    # a stage's share of a prompt token; stages work on different chunks at once, so this is the pipeline's rate
    per_tok_prefill_ms = 2 * w.active_params / (d.tflops * f.prefill_mfu * 1e12) * 1e3 if d.tflops else 0.0
    # each sequence gets one token per pass through the PP stages: `output` tokens take output × PP stage steps
    total_ms = output * pp * step + n * prompt * per_tok_prefill_ms
    replica = n * output / (total_ms / 1e3) if total_ms else 0.0
    return Throughput(aggregate_tps=replica * dp, single_tps=1e3 / (single * pp),
                      prompt_tps=1e3 / per_tok_prefill_ms if per_tok_prefill_ms else 0.0, bound=bound)
