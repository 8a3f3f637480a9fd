"""Human rendering of a GroupPlan: one row per member, what may be loaded together and why, then the preset."""

from typing import Any

from inferform.plan import GroupPlan
from inferform.units import gib


def show_group_plan(group: GroupPlan, out: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    r = group.residency
    out.print(f"[bold]{group.setup}[/]: {len(group.members)} members behind one llama-server router on "
              f"{group.serve.host}:{group.serve.port} (requests pick a member by `model`)")
    table = Table("member", "use case", "model", "quant", "context", "GPU", "host", "tok/s", "preload")
    for m in group.members:
        p = m.plan
        use_case = p.model.quality.use_case if p.model.quality else "-"
        table.add_row(m.name, use_case, p.model.id or p.model.architecture, p.model.quant,
                      f"{p.context.n_ctx:,}×{p.context.parallel}", " + ".join(gib(b) for b in m.gpu_bytes) or "-",
                      gib(m.host_bytes), f"{p.speed.generate_tps:.1f}", "yes" if m.name in group.preload else "")
    out.print(table)
    budget = f"host {gib(r.host_budget_bytes)}" + "".join(f", GPU {i} {gib(b)}"
                                                          for i, b in enumerate(r.gpu_budget_bytes))
    out.print(f"loaded at once: at most [bold]{r.max_loaded}[/] (--models-max; {r.proven_max} proven to fit, "
              f"decided by {r.decided_by}); budget {budget}")
    if r.fitting:
        out.print("fit together: " + "; ".join(" + ".join(c) for c in r.fitting))
    if r.not_fitting:
        out.print("do not fit together: " + "; ".join(" + ".join(c) for c in r.not_fitting))
    out.print("router: " + escape(" ".join(group.engine.argv)))
    for line in group.explanations:
        out.print(f"  • {escape(line)}")
    out.print("[dim]preset (models.ini):[/]")
    out.print(escape(group.preset.rstrip()), highlight=False)
