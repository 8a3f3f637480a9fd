"""A group's plan: each member planned as it would run alone, then the proof of what may be loaded together.

llama-server's router checks no memory: `--models-max` is a count, and each child would fit itself into whatever
happens to be free when it loads. So every child runs its planned argv with `--fit off`, and the plan derives the
count from memory: with --models-max K the router may hold *any* K members at once (it evicts the least recently
used idle one, whichever that is), so K is safe only if the K members that need the most fit together, on every
device, with the router and each child process counted. Per device that is the sum of the K largest figures, so
K is found without trying every set; every set is still classed, for the plan's "fits together" lines.
"""

from itertools import combinations

from inferform.engines import router_preset
from inferform.errors import InferformError
from inferform.hardware.profile import HardwareProfile
from inferform.plan import EngineOut, GroupPlan, MemberOut, Plan, ResidencyOut
from inferform.planner import presets
from inferform.planner.search import budgets
from inferform.setup.group import LoadedGroup
from inferform.units import gib

PRESET_FILE = "models.ini"  # beside run.sh in the service's configuration directory (the router's cwd)
ENGINE_HOST, ENGINE_PORT = "${INFERFORM_ENGINE_HOST}", "${INFERFORM_ENGINE_PORT}"
SHOWN = 8


def _needs(members: list[MemberOut], unified: bool) -> list[list[int]]:
    """Each member's figure per checked dimension: each GPU, then host RAM (Apple: the GPU side, then the sum)."""
    rows = []
    for m in members:
        if unified:
            gpu = m.gpu_bytes[0] if m.gpu_bytes else 0
            rows.append([gpu, gpu + m.host_bytes])
        else:
            rows.append([*m.gpu_bytes, m.host_bytes])
    return rows


def _caps(hw: HardwareProfile) -> tuple[list[int], int, bool]:
    caps = budgets(hw)
    return list(caps.gpu), caps.host, caps.unified


def _fits(rows: list[list[int]], chosen: tuple[int, ...], limits: list[int], fixed: list[int]) -> bool:
    return all(sum(rows[i][d] for i in chosen) + fixed[d] <= limits[d] for d in range(len(limits)))


def _proven_max(rows: list[list[int]], limits: list[int], fixed: list[int]) -> int:
    """The largest K such that every K members fit: per dimension, the K largest figures must fit."""
    best = 0
    for k in range(1, len(rows) + 1):
        if all(sum(sorted((r[d] for r in rows), reverse=True)[:k]) + fixed[d] <= limits[d]
               for d in range(len(limits))):
            best = k
        else:
            break
    return best


def _worst(rows: list[list[int]], k: int, limits: list[int], fixed: list[int]) -> tuple[int, ...]:
    """The k members closest to a budget together (the largest share of any dimension)."""
    def pressure(chosen: tuple[int, ...]) -> float:
        return max((sum(rows[i][d] for i in chosen) + fixed[d]) / max(limits[d], 1) for d in range(len(limits)))
    return max(combinations(range(len(rows)), k), key=pressure)


def _classes(names: list[str], rows: list[list[int]], limits: list[int], fixed: list[int]):
    """Maximal sets that fit and minimal sets that do not (sets of two or more)."""
    n = len(names)
    fit = {c for k in range(1, n + 1) for c in combinations(range(n), k) if _fits(rows, c, limits, fixed)}
    maximal = [c for c in fit if len(c) > 1 and not any(set(c) < set(o) for o in fit)]
    too_big = [c for k in range(2, n + 1) for c in combinations(range(n), k)
               if c not in fit and all(tuple(x for x in c if x != i) in fit for i in c)]
    order = sorted  # stable, readable: by size, then names
    return ([[names[i] for i in c] for c in order(maximal, key=lambda c: (-len(c), c))][:SHOWN],
            [[names[i] for i in c] for c in order(too_big, key=lambda c: (len(c), c))][:SHOWN])


def _dims(hw_gpus: int, unified: bool) -> list[str]:
    if unified:
        return ["GPU (Metal working set)", "memory"]
    return [f"GPU {i}" for i in range(hw_gpus)] + ["host RAM"]


def _shortfall(names: list[str], rows: list[list[int]], chosen: tuple[int, ...], limits: list[int],
               fixed: list[int], labels: list[str]) -> str:
    parts = []
    for d, label in enumerate(labels):
        used = sum(rows[i][d] for i in chosen) + fixed[d]
        if used > limits[d]:
            items = " + ".join(f"{names[i]} {gib(rows[i][d])}" for i in chosen)
            extra = f" + router {gib(fixed[d])}" if fixed[d] else ""
            parts.append(f"{label}: {items}{extra} = {gib(used)} > budget {gib(limits[d])}")
    return "; ".join(parts)


def _host_ram_for(budget: int) -> int:
    """The RAM whose host budget (presets.reserve) is `budget`: the inverse of Reserve.host_budget."""
    reserve = presets.reserve()
    over = int((budget + reserve.host_bytes) / (1 - reserve.host_fraction)) + 1
    return over if reserve.host_budget(over) >= budget and int(over * 0.5) <= budget else 2 * budget


def shared_hardware(hw: HardwareProfile, n: int) -> HardwareProfile:
    """The machine as one of `n` members loaded together sees it: 1/n of every budget, the router and one child
    process counted. A member planned on it fits beside any n - 1 others planned the same way."""
    mem = router_preset.memory()
    router, child = int(mem["router_rss_bytes"]), int(mem["child_process_bytes"])
    gpu_caps, host_cap, unified = _caps(hw)
    reserve = presets.reserve()
    host_share = max((host_cap - router) // n - child, 0)
    gpus = []
    for g, cap in zip(hw.gpus, gpu_caps, strict=True):
        share = cap // n
        if unified:
            gpus.append(g.model_copy(update={"working_set_bytes": max(share, 1)}))
        else:
            gpus.append(g.model_copy(update={"free_vram_bytes": share + reserve.gpu_bytes}))
    note = f"one of {n} members loaded together: 1/{n} of the memory budgets"
    return hw.model_copy(update={"ram_bytes": max(_host_ram_for(host_share), 1), "gpus": gpus,
                                 "notes": [*hw.notes, note]})


def _gpu_bytes(plan: Plan, hw: HardwareProfile) -> list[int]:
    return plan.memory.per_gpu_bytes or ([plan.memory.gpu.total_bytes] if hw.gpus else [])


def _limits(hw: HardwareProfile) -> tuple[list[int], list[int]]:
    """Every checked dimension's budget, and what is in it before any member (the router, in host RAM)."""
    gpu_caps, host_cap, unified = _caps(hw)
    limits = [gpu_caps[0], host_cap] if unified else [*gpu_caps, host_cap]
    return limits, [0] * (len(limits) - 1) + [int(router_preset.memory()["router_rss_bytes"])]


def proven(hw: HardwareProfile, plans: list[Plan]) -> int:
    """How many of these member plans are sure to fit together (the proof plan_group makes)."""
    child = int(router_preset.memory()["child_process_bytes"])
    members = [MemberOut(name=str(i), plan=p, preset={}, gpu_bytes=_gpu_bytes(p, hw),
                         host_bytes=p.memory.host.total_bytes + child) for i, p in enumerate(plans)]
    limits, fixed = _limits(hw)
    return _proven_max(_needs(members, _caps(hw)[2]), limits, fixed)


def over_share(plan: Plan, shared: HardwareProfile) -> bool:
    """Whether a member planned alone needs more than its share of some budget."""
    gpu_caps, host_cap, unified = _caps(shared)
    gpu = _gpu_bytes(plan, shared)
    if unified:
        return gpu[0] > gpu_caps[0] or gpu[0] + plan.memory.host.total_bytes > host_cap
    return plan.memory.host.total_bytes > host_cap or any(u > c for u, c in zip(gpu, gpu_caps, strict=False))


def plan_group(loaded: LoadedGroup, hw: HardwareProfile, member_plans: dict[str, Plan],
               shared: dict[str, float] | None = None) -> GroupPlan:
    """The group plan from each member's own plan, planned on the group's target as if alone, or (`shared`: member
    → its tok/s planned alone) within 1/max_loaded of the memory."""
    group = loaded.group
    mem = router_preset.memory()
    router_bytes, child_bytes = int(mem["router_rss_bytes"]), int(mem["child_process_bytes"])
    preload = set(group.policy.preload)
    members: list[MemberOut] = []
    sections: dict[str, dict[str, str]] = {}
    sleep = group.policy.sleep_idle_s
    if sleep is not None:
        sections[router_preset.DEFAULTS] = {"sleep-idle-seconds": str(sleep)}
    for m in loaded.members:
        plan = member_plans[m.name]
        section = router_preset.section(m.name, plan.engine.argv)
        if m.name in preload:
            section["load-on-startup"] = "true"
        sections[m.name] = section
        members.append(MemberOut(name=m.name, plan=plan, preset=section, gpu_bytes=_gpu_bytes(plan, hw),
                                 host_bytes=plan.memory.host.total_bytes + child_bytes))
    gpu_caps, host_cap, unified = _caps(hw)
    limits, fixed = _limits(hw)
    rows = _needs(members, unified)
    names = [m.name for m in members]
    labels = _dims(len(gpu_caps), unified)
    proven = _proven_max(rows, limits, fixed)
    if proven == 0:
        biggest = _worst(rows, 1, limits, fixed)
        raise InferformError.single(
            f"group {group.name}: member {names[biggest[0]]} does not fit beside the router: "
            + _shortfall(names, rows, biggest, limits, fixed, labels), file=loaded.located.file,
            hint="give that member a smaller context or quant (overrides), or remove it from the group")
    wanted = group.policy.max_loaded
    if isinstance(wanted, int):
        wanted = min(wanted, len(members))  # more than there are members changes nothing
    if isinstance(wanted, int) and wanted > proven:
        worst = _worst(rows, proven + 1, limits, fixed)
        line, col = loaded.located.where(("policy", "max_loaded"))
        raise InferformError.single(
            f"policy.max_loaded is {wanted}, but only {proven} of these members are sure to fit together: "
            + _shortfall(names, rows, worst, limits, fixed, labels), file=loaded.located.file, line=line, column=col,
            hint=f"use max_loaded: {proven} (or auto), or shrink the members (overrides: n_ctx, quant)")
    k = wanted if isinstance(wanted, int) else proven
    if len(preload) > k:
        line, col = loaded.located.where(("policy", "preload"))
        raise InferformError.single(
            f"policy.preload names {len(preload)} members, and only {k} may be loaded at once",
            file=loaded.located.file, line=line, column=col, hint=f"preload at most {k} members")
    worst = _worst(rows, k, limits, fixed)
    fitting, not_fitting = _classes(names, rows, limits, fixed)
    residency = ResidencyOut(
        max_loaded=k, proven_max=proven, decided_by="policy" if isinstance(wanted, int) else "memory",
        gpu_budget_bytes=gpu_caps, host_budget_bytes=host_cap, unified=unified, router_bytes=router_bytes,
        child_bytes=child_bytes, worst_case=[names[i] for i in worst],
        worst_case_gpu_bytes=[sum(rows[i][d] for i in worst) for d in range(len(limits) - 1)] if not unified
        else [sum(rows[i][0] for i in worst)],
        worst_case_host_bytes=sum(rows[i][-1] for i in worst) + router_bytes,
        fitting=fitting, not_fitting=not_fitting)
    router_preset.validate(sections, models_max=k)
    argv = ["llama-server", "--models-preset", PRESET_FILE, "--models-max", str(k),
            "--host", ENGINE_HOST, "--port", ENGINE_PORT]
    first = member_plans[names[0]]
    return GroupPlan(setup=group.name, target=first.target, serve=first.serve,
                     engine=EngineOut(name="llama.cpp", argv=argv), members=members, residency=residency,
                     preload=[n for n in names if n in preload], sleep_idle_seconds=sleep,
                     preset=router_preset.render(sections),
                     explanations=_explain(residency, labels, len(members), sleep,
                                           {n: (t, member_plans[n].speed.generate_tps)
                                            for n, t in (shared or {}).items()}))


def _explain(r: ResidencyOut, labels: list[str], n: int, sleep: int | None,
             shared: dict[str, tuple[float, float]]) -> list[str]:
    lines = []
    if shared:
        speeds = ", ".join(f"{m} {alone:.1f} → {now:.1f} tok/s" for m, (alone, now) in shared.items())
        lines.append(f"planned in 1/{r.max_loaded} of the memory each, so that policy.max_loaded {r.max_loaded} "
                     f"fit together (planned alone they would not): {speeds}; `max_loaded: auto` keeps each at "
                     "full size and swaps them instead (`plan --member NAME` shows each)")
    if r.max_loaded >= n:
        lines.append(f"all {n} members fit in memory together (worst case {', '.join(r.worst_case)}: "
                     f"host {gib(r.worst_case_host_bytes)} of {gib(r.host_budget_bytes)}), so none is evicted")
    else:
        lines.append(f"at most {r.max_loaded} of {n} members are loaded at once (--models-max {r.max_loaded}): "
                     f"any {r.max_loaded} fit together, worst case {' + '.join(r.worst_case)} using host "
                     f"{gib(r.worst_case_host_bytes)} of {gib(r.host_budget_bytes)}"
                     + "".join(f", {labels[d]} {gib(b)} of {gib(r.gpu_budget_bytes[d])}"
                               for d, b in enumerate(r.worst_case_gpu_bytes)))
        lines.append("a request for an unloaded member waits while the least recently used idle member is "
                     "unloaded; a member serving a request is never evicted")
    if r.decided_by == "policy" and r.max_loaded < r.proven_max:
        lines.append(f"policy.max_loaded {r.max_loaded} keeps fewer loaded than the {r.proven_max} that fit")
    if r.not_fitting:
        lines.append("do not fit together: " + "; ".join(" + ".join(c) for c in r.not_fitting))
    lines.append("every child runs its own planned argv with --fit off, so what loads is what this plan sized")
    lines.append(f"the router itself takes {gib(r.router_bytes)} of host RAM and each child "
                 f"{gib(r.child_bytes)} beyond its planned buffers (measured: data/llama_server_router.yaml)")
    if sleep is not None:
        lines.append(f"an idle member frees its weights and KV after {sleep} s (--sleep-idle-seconds) and keeps "
                     "its process, which still counts toward --models-max")
    return lines
