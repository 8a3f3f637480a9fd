"""One line of *why* per decision, with its numbers (the knobs and alternatives: planner/decision.py)."""

from inferform.planner.objective import exchange_rate
from inferform.planner.placement import Budgets
from inferform.planner.presets import Goals
from inferform.planner.search import Choice
from inferform.units import GIB


def g(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if n < 10 * GIB else f"{n / GIB:.1f} GiB"


def explanations(c: Choice, caps: Budgets, pinned: list[str], runners_up: list[Choice], goals: Goals) -> list[str]:
    m, p, cfg = c.model, c.placement, c.placement.cfg
    mem = p.mem
    lines = []
    name = c.name
    src = "read from the GGUF header" if m.source == "gguf" else "estimated from the catalog's shapes"
    lines.append(f"model {name} {m.quant}: {g(m.weight_bytes)} of weights in {len(m.tensors)} tensors ({src})")
    lines.append(f"objective ({'above' if c.value.above_floor else 'below'} the floor): {exchange_rate(goals)}")
    if c.quality is not None:
        lines.append(f"quality {c.quality:.1f} points: {c.score.score:g} ({c.score.basis}) × "
                     f"{c.retention.factor:.3f} kept ({c.retention.basis})")
    else:
        lines.append(f"quality unknown: no published score for {name} or no measured divergence for {m.quant}")
    if caps.gpu:
        side = "GPU" if not caps.unified else "Metal working set (the GPU's share of unified memory)"
        state = f" + recurrent state {g(mem.gpu.state)}" if mem.gpu.state else ""
        lines.append(f"weights {g(mem.gpu.weights)} + KV {g(mem.gpu.kv)}{state} + compute {g(mem.gpu.compute)} = "
                     f"{g(mem.gpu.total)} of {g(caps.gpu_total)} usable {side} → {p.why}")
    if caps.unified:
        lines.append(f"unified memory: GPU {g(mem.gpu.total)} + host {g(mem.host.total)} = "
                     f"{g(mem.gpu.total + mem.host.total)} of {g(caps.host)} usable RAM; the GPU side stays under "
                     "Metal's working-set limit (raise it with `sudo sysctl iogpu.wired_limit_mb=N` and "
                     "target.hardware.gpus[0].working_set_gib)")
    lines.append(f"host RAM: weights {g(mem.host.weights)}"
                 + (f" (incl. {g(mem.host.repack)} repacked copies for the CPU kernels)" if mem.host.repack else "")
                 + f" + KV {g(mem.host.kv)}"
                 + (f" + recurrent state {g(mem.host.state)}" if mem.host.state else "")
                 + (f" + context checkpoints {g(mem.host.checkpoints)}" if mem.host.checkpoints else "")
                 + f" + compute/output {g(mem.host.compute)} = {g(mem.host.total)} "
                 f"of {g(caps.host)} usable")
    if m.is_moe and cfg.n_cpu_moe:
        lines.append(f"MoE: the expert tensors (ffn_*_exps) of layers 0-{cfg.n_cpu_moe - 1} stay in RAM; attention "
                     "and shared tensors stay on the GPU, which reads only the active experts per token")
    lines.append(f"context {cfg.n_ctx_actual:,} tokens ({cfg.parallel} slot{'s' if cfg.parallel > 1 else ''} × "
                 f"{c.context_per_slot:,}); the use case asks for {c.context_goal:,}"
                 + ("" if c.context_per_slot >= c.context_goal else " — reduced to fit"))
    kv_layers = ", ".join(f"{k.kind} {k.layers} layers × {k.cells:,} cells × {k.streams} stream(s)"
                          for k in mem.gpu.caches + mem.host.caches)
    lines.append(f"KV cache {cfg.cache_type_k}/{cfg.cache_type_v}: {g(mem.gpu.kv + mem.host.kv)} ({kv_layers})")
    if m.sliding_window:
        lines.append(f"sliding-window layers keep only {m.sliding_window} tokens (+ one ubatch) per sequence, "
                     "so their cache stays small")
    if mem.host.checkpoints or (cfg.ctx_checkpoints == 0 and (m.recurrent or m.sliding_window)):
        fewer = "" if cfg.ctx_checkpoints >= 32 else \
            " (fewer than llama-server's 32: half the host RAM this configuration leaves free)"
        lines.append(f"context checkpoints: up to {cfg.ctx_checkpoints} per slot{fewer}, {g(mem.host.checkpoints)} "
                     "of host RAM at most (each a copy of the slot's " + ("recurrent state" if m.recurrent else
                                                                          "window")
                     + ", so a prompt that rewinds need not be read again; overrides.ctx_checkpoints sets how many)")
    lines.append(f"flash attention {'on' if cfg.flash_attn else 'off'}: "
                 + ("the attention scores never materialise, so the compute buffer stays small"
                    if cfg.flash_attn else "the compute buffer holds n_ctx × ubatch scores per head"))
    lines.append(f"batch {cfg.batch} / ubatch {cfg.ubatch}: the compute buffer grows with ubatch")
    lines.append(f"speed: {c.speed.generate_tps:.1f} tok/s generating, {c.speed.prompt_tps:.0f} tok/s reading "
                 f"the prompt, bound by {c.speed.bound}")
    if c.speed.concurrency > 1:
        lines.append(f"{c.speed.concurrency} slots decoding at once: {c.speed.aggregate_generate_tps:.1f} tok/s in all "
                     f"({c.speed.aggregate_generate_tps / c.speed.concurrency:.1f} per stream); each step reads the "
                     "weights once for every slot")
    lines += c.speed.notes
    lines += m.notes
    if pinned:
        lines.append("pinned by overrides (not planned): " + ", ".join(pinned))
    if runners_up:
        r = runners_up[0]
        lines.append(f"runner-up: {r.name} {r.model.quant} at {r.context_per_slot:,} tokens, "
                     f"{r.speed.generate_tps:.1f} tok/s (objective {r.value.value:.1f} vs {c.value.value:.1f})")
    return lines

