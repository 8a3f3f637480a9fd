"""Human rendering of a Plan: what runs, where every part lives, memory per side, speed, and why."""

from typing import Any

from inferform.plan import MemorySide, Plan

GIB = 1024**3


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
    out.print(f"placement: {where}   context {c.n_ctx:,} × {c.parallel} slot(s)   KV {c.cache_type_k}/"
              f"{c.cache_type_v}   flash-attn {'on' if c.flash_attn else 'off'}   batch {c.batch}/{c.ubatch}   "
              f"threads {c.threads}")
    table = Table("memory (GiB)", "weights", "KV cache", "compute+output", "total", "budget", "headroom")

    def row(label: str, s: MemorySide) -> None:
        table.add_row(label, _gib(s.weights_bytes), _gib(s.kv_bytes), _gib(s.compute_bytes), _gib(s.total_bytes),
                      _gib(s.budget_bytes), _gib(s.budget_bytes - s.total_bytes))

    if plan.target.gpus:
        row("GPU", plan.memory.gpu)
    row("host RAM", plan.memory.host)
    out.print(table)
    s = plan.speed
    out.print(f"predicted: [bold]{s.generate_tps:.1f} tok/s[/] generating, {s.prompt_tps:.0f} tok/s prompt "
              f"(bound: {s.bound})")
    _show_cost(plan, out)
    out.print("sampling: " + ", ".join(f"{k}={v:g}" for k, v in plan.sampling.items()))
    # one print per block, not per line: each rich print renders and measures anew (half of show_plan's time)
    out.print("\n".join(["", "[bold]why[/]", *(f"  · {escape(line)}" for line in plan.explanations)]))
    if plan.knobs:
        out.print("\n".join(["", "[bold]knobs[/]",
                             *(escape(f"  · {k.goal}: {k.change} — {k.effect}") for k in plan.knobs)]))
    out.print("\n[bold]command[/]\n  " + escape(" ".join(plan.engine.argv)), soft_wrap=True)


def _usd(x: float | None) -> str:
    return "?" if x is None else f"${x:,.4g}"


def _show_cost(plan: Plan, out: Any) -> None:
    """Cloud targets: the instance, its price and $/Mtok, and the runners-up the instance planner weighed."""
    from rich.table import Table

    t, cost = plan.target, plan.cost
    if t.instance_type is None:
        return
    free = " (free tier: $0 while free-tier hours/credits last; this is the on-demand price after)" \
        if cost.free_tier else ""
    out.print(f"instance: [bold]{t.instance_type}[/] {t.market or ''} in {t.region}   "
              f"cost: [bold]{_usd(cost.usd_per_hour)}/h[/], {_usd(cost.usd_per_mtok)}/Mtok{free}   "
              f"[dim]({cost.price_source})[/]")
    if cost.runner_ups:
        table = Table("runner-up", "$/h", "gen tok/s", "$/Mtok", "why not")
        for r in cost.runner_ups:
            table.add_row(r.instance_type, _usd(r.usd_per_hour), f"{r.generate_tps:.1f}", _usd(r.usd_per_mtok),
                          r.why_not)
        out.print(table)
