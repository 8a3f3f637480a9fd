"""The search's referee: every configuration of the same candidate space with every placement, no bisection and no
shortcut, ranked by the same objective. Tests and `make bench` compare its optimum with what `search` returns.

Slow on purpose (every n_gpu_layers and every --n-cpu-moe value is tried): not on the plan path.
"""

from inferform.engines.registry import engine
from inferform.gguf import GGUFInfo
from inferform.hardware.profile import HardwareProfile
from inferform.planner import presets
from inferform.planner.memory import estimate
from inferform.planner.placement import Placement, fits
from inferform.planner.search import Choice, Trial, best_catalog_score, budgets, judge, kv_avoided, trials
from inferform.setup.spec import Setup


def _placements(t: Trial, setup: Setup, hw: HardwareProfile) -> list[Placement]:
    """Every placement llama-server can be given for this configuration: each -ngl from 0 to all layers, and for
    a MoE model on llama-server each --n-cpu-moe with every layer on the GPU."""
    caps = budgets(hw)
    n = t.model.n_layers
    o = setup.overrides
    if not caps.gpu:
        cfg = t.cfg._replace(n_gpu_layers=0, n_gpus=0)
        mem = estimate(t.model, cfg, t.lb)
        return [Placement(cfg, mem, fits(mem, caps), False, "no GPU: CPU only")]
    base = t.cfg._replace(n_gpus=len(caps.gpu))
    if o.n_gpu_layers is not None or o.n_cpu_moe is not None:
        options = [(o.n_gpu_layers if o.n_gpu_layers is not None else n + 1, o.n_cpu_moe or 0)]
    else:
        options = [(ngl, 0) for ngl in range(n + 2)]
        if t.model.is_moe and engine(setup.engine).moe_offload:
            options += [(n + 1, k) for k in range(1, n + 1)]
    out = []
    for ngl, k in options:
        cfg = base._replace(n_gpu_layers=ngl, n_cpu_moe=k)
        mem = estimate(t.model, cfg, t.lb)
        out.append(Placement(cfg, mem, fits(mem, caps), ngl > n and not k, "brute force"))
    return out


def brute_force(setup: Setup, hw: HardwareProfile, gguf: GGUFInfo | None = None) -> Choice | None:
    """The best feasible configuration by exhaustive enumeration, or None when nothing fits."""
    from inferform.planner.engine_choice import concrete

    setup = concrete(setup)
    goals = presets.goals(setup.use_case, setup.experience)
    best_score = best_catalog_score(setup.use_case)
    best: Choice | None = None
    for t in trials(setup, hw, gguf):
        for p in _placements(t, setup, hw):
            if not p.fits or kv_avoided(t.model, p.cfg):
                continue
            c = judge(t, p, hw, goals, best_score)
            if best is None or c.value.key > best.value.key:
                best = c
    return best
