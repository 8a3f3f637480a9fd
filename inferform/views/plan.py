"""Human rendering of a Plan: what runs, where every part lives, memory per side, speed, and why."""

from typing import Any

from inferform.plan import MemorySide, Plan
from inferform.units import GIB, usd


def _gib(n: int) -> str:
    return f"{n / GIB:.2f}"


def show_plan(plan: Plan, out: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    m, c, p = plan.model, plan.context, plan.placement
    out.print(f"[bold]{plan.setup}[/]: {m.id or m.architecture} [bold]{m.quant}[/] ({m.file_bytes / 1e9:.2f} GB, "
              f"{m.architecture}, {m.n_layers} layers; {m.source})")
    where = f"{p.n_gpu_layers} layers on GPU" if plan.target.gpus else "CPU only"
    if p.n_cpu_moe:
        where += f", experts of {p.n_cpu_moe} layers in RAM"
    if plan.vllm is None:  # llama-server's knobs; a vLLM plan has its own line
        out.print(f"placement: {where}   context {c.n_ctx:,} × {c.parallel} slot(s)   KV {c.cache_type_k}/"
                  f"{c.cache_type_v}   flash-attn {'on' if c.flash_attn else 'off'}   batch {c.batch}/{c.ubatch}   "
                  f"threads {c.threads}")
    else:
        v = plan.vllm
        layout = f"TP {v.tensor_parallel} × PP {v.pipeline_parallel} × DP {v.data_parallel}" \
            + (" + EP" if v.expert_parallel else "")
        out.print(f"vLLM ({v.device}): {layout}   max_model_len {v.max_model_len:,}   max_num_seqs {v.max_num_seqs}   "
                  f"KV {v.kv_bytes_per_token:,} B/token/GPU → {v.kv_tokens:,} tokens, {v.max_concurrency:.2f}× at "
                  f"full length   dtype {v.dtype}")
    # hybrid models' recurrent state and llama-server's context checkpoints get their own columns when present:
    # the total counts them, and the row should add up
    sides = [plan.memory.gpu, plan.memory.host] if plan.target.gpus else [plan.memory.host]
    state = any(side.state_bytes for side in sides)
    ckpt = any(side.checkpoint_bytes for side in sides)
    table = Table("memory (GiB)", "weights", "KV cache", *(["state"] if state else []),
                  *(["checkpoints"] if ckpt else []), "compute+output", "total", "budget", "headroom")

    def row(label: str, s: MemorySide) -> None:
        table.add_row(label, _gib(s.weights_bytes), _gib(s.kv_bytes), *([_gib(s.state_bytes)] if state else []),
                      *([_gib(s.checkpoint_bytes)] if ckpt else []), _gib(s.compute_bytes), _gib(s.total_bytes),
                      _gib(s.budget_bytes), _gib(s.budget_bytes - s.total_bytes))

    if plan.target.gpus:
        row("GPU", plan.memory.gpu)
    row("host RAM", plan.memory.host)
    out.print(table)
    s = plan.speed
    agg = f", [bold]{s.aggregate_generate_tps:.1f} tok/s[/] over {s.concurrency} slots" \
        if s.concurrency > 1 and s.aggregate_generate_tps else ""
    out.print(f"predicted: [bold]{s.generate_tps:.1f} tok/s[/] generating{agg}, {s.prompt_tps:.0f} tok/s prompt "
              f"(bound: {s.bound})")
    q = plan.model.quality
    if q is not None:
        out.print(f"quality: [bold]{q.score:.1f}[/] points for {q.use_case} ({q.full_precision:g} × {q.retention:.3f})"
                  + (" [dim](general score: no use-case score published)[/]" if q.substituted else ""))
    if plan.objective is not None:
        o = plan.objective
        out.print(f"objective ({o.experience}): [bold]{o.value:g}[/] {o.unit}"
                  + ("" if o.above_floor else " [yellow](below the speed floor: nothing faster fits)[/]"))
    _show_cost(plan, out)
    out.print("sampling: " + ", ".join(f"{k}={v:g}" for k, v in plan.sampling.items()))
    # one print per block, not per line: each rich print renders and measures anew (half of show_plan's time)
    out.print("\n".join(["", "[bold]why[/]", *(f"  · {escape(line)}" for line in plan.explanations)]))
    _show_alternatives(plan, out)
    if plan.knobs:
        out.print("\n".join(["", "[bold]knobs[/]",
                             *(escape(f"  · {k.goal}: {k.change} — {k.effect}") for k in plan.knobs)]))
    out.print("\n[bold]command[/]\n  " + escape(" ".join(plan.engine.argv)), soft_wrap=True)


def _show_cost(plan: Plan, out: Any) -> None:
    """Cloud targets: the instance, its price and $/Mtok, and the runners-up the instance planner weighed."""
    from rich.table import Table

    t, cost = plan.target, plan.cost
    if t.instance_type is None:
        return
    free = " (free tier: $0 while free-tier hours/credits last; this is the on-demand price after)" \
        if cost.free_tier else ""
    out.print(f"instance: [bold]{t.instance_type}[/] {t.market or ''} in {t.region}   "
              f"cost: [bold]{usd(cost.usd_per_hour)}/h[/], {usd(cost.usd_per_mtok)}/Mtok{free}   "
              f"[dim]({cost.price_source})[/]")
    if cost.runner_ups:
        table = Table("runner-up", "$/h", "gen tok/s", "$/Mtok", "why not")
        for r in cost.runner_ups:
            table.add_row(r.instance_type, usd(r.usd_per_hour), f"{r.generate_tps:.1f}", usd(r.usd_per_mtok),
                          r.why_not)
        out.print(table)


def _show_alternatives(plan: Plan, out: Any) -> None:
    """The configurations the plan beat, by the same objective, one line each with why not (one print: a rich
    table per plan costs more start-up than the plan's whole search)."""
    from rich.markup import escape

    if not plan.alternatives:
        return
    lines = ["", "[bold]alternatives it beat[/]"]
    for a in plan.alternatives:
        quality = "quality ?" if a.quality is None else f"quality {a.quality:.1f}"
        agg = f" ({a.aggregate_generate_tps:.0f} over {a.parallel})" if a.parallel > 1 else ""
        cost = f", {usd(a.usd_per_mtok)}/Mtok" if a.usd_per_mtok is not None else ""
        lines.append(escape(f"  · {a.model} {a.quant}, {a.placement}, {a.context:,} × {a.parallel}, KV {a.cache_type}: "
                            f"{quality}, {a.generate_tps:.1f} tok/s{agg}, {a.gpu_bytes / GIB:.1f} GiB GPU + "
                            f"{a.host_bytes / GIB:.1f} GiB RAM{cost} — {a.why_not}"))
    out.print("\n".join(lines))
