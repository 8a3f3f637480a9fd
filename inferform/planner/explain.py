"""One line of *why* per decision, with its numbers, and the knobs a user can turn next."""

from inferform.plan import Knob
from inferform.planner.placement import Budgets
from inferform.planner.search import Choice

GIB = 1024**3


def g(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if n < 10 * GIB else f"{n / GIB:.1f} GiB"


def explanations(c: Choice, caps: Budgets, pinned: list[str], runners_up: list[Choice]) -> list[str]:
    m, p, cfg = c.model, c.placement, c.placement.cfg
    mem = p.mem
    lines = []
    name = c.entry.id if c.entry else m.architecture
    src = "read from the GGUF header" if m.source == "gguf" else "estimated from the catalog's shapes"
    lines.append(f"model {name} {m.quant}: {g(m.weight_bytes)} of weights in {len(m.tensors)} tensors ({src})")
    if caps.gpu:
        side = "GPU" if not caps.unified else "unified memory"
        lines.append(f"weights {g(mem.gpu.weights)} + KV {g(mem.gpu.kv)} + compute {g(mem.gpu.compute)} = "
                     f"{g(mem.gpu.total)} of {g(caps.gpu_total)} usable {side} → {p.why}")
    lines.append(f"host RAM: weights {g(mem.host.weights)}"
                 + (f" (incl. {g(mem.host.repack)} repacked copies for the CPU kernels)" if mem.host.repack else "")
                 + f" + KV {g(mem.host.kv)} + compute/output {g(mem.host.compute)} = {g(mem.host.total)} "
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
    lines.append(f"flash attention {'on' if cfg.flash_attn else 'off'}: "
                 + ("the attention scores never materialise, so the compute buffer stays small"
                    if cfg.flash_attn else "the compute buffer holds n_ctx × ubatch scores per head"))
    lines.append(f"batch {cfg.batch} / ubatch {cfg.ubatch}: the compute buffer grows with ubatch")
    lines.append(f"speed: {c.speed.generate_tps:.1f} tok/s generating, {c.speed.prompt_tps:.0f} tok/s reading "
                 f"the prompt, bound by {c.speed.bound}")
    lines += c.speed.notes
    lines += m.notes
    if pinned:
        lines.append("pinned by overrides (not planned): " + ", ".join(pinned))
    if runners_up:
        r = runners_up[0]
        rname = r.entry.id if r.entry else r.model.architecture
        lines.append(f"runner-up: {rname} {r.model.quant} at {r.context_per_slot:,} tokens, "
                     f"{r.speed.generate_tps:.1f} tok/s")
    return lines


def knobs(c: Choice) -> list[Knob]:
    cfg = c.placement.cfg
    out = []
    if cfg.cache_type_k == "f16":
        out.append(Knob(goal="more context", change="overrides: {cache_type_k: q8_0, cache_type_v: q8_0}",
                        effect=f"halves the KV cache ({g(c.placement.mem.gpu.kv + c.placement.mem.host.kv)} now) "
                               "for a barely measurable quality loss"))
    out.append(Knob(goal="more speed", change="a smaller quant (model.quant) or fewer parallel slots",
                    effect="decode speed scales with bytes read per token"))
    out.append(Knob(goal="more quality", change="a bigger quant (model.quant: Q6_K or Q8_0) if memory allows",
                    effect="costs memory and speed in proportion to bits per weight"))
    return out
