"""The decision table: what the planner chooses for 25 realistic setups (benchmarks/setups/), its objective value,
quality and speed, and the optimum of the same objective found by a brute force over the same candidates (every
placement tried, no bisection). The two must be equal in every row; the three reproductions of the decision
issue (r1-r3) must also hold their targets.

Cloud rows are planned with catalog-snapshot prices; the brute force runs on the instance type the plan chose
(the instance choice itself is checked against its own brute force in tests/test_instance_choice.py).
"""

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inferform.catalog.instances import CatalogPrices, load_instance_types  # noqa: E402
from inferform.catalog.models import find_model  # noqa: E402
from inferform.hardware.detect import detect  # noqa: E402
from inferform.hardware.resolve import instance_profile, resolve_hardware  # noqa: E402
from inferform.planner.brute import brute_force  # noqa: E402
from inferform.planner.compose import make_plan  # noqa: E402
from inferform.planner.instance_plan import plan_cloud  # noqa: E402
from inferform.planner.search import search  # noqa: E402
from inferform.setup.spec import load_setup_located  # noqa: E402

SETUPS = ROOT / "benchmarks" / "setups"


def _plan(path: Path):
    spec, located = load_setup_located(str(path))
    if spec.target.is_cloud:
        plan = plan_cloud(spec, None if spec.target.instance_type == "auto" else
                          instance_profile(load_instance_types()[spec.target.instance_type]), None, CatalogPrices())
        hw = instance_profile(load_instance_types()[plan.target.instance_type])
    else:
        hw = resolve_hardware(spec, located, detect)
        plan = make_plan(spec, hw)
    return spec, hw, plan


def _targets(name: str, plan) -> str | None:
    """The decision issue's reproductions: what an expert accepts (None when the row has no target)."""
    if name.startswith("r1-"):
        return "ok" if plan.speed.generate_tps >= 15 else f"r1 wants >= 15 tok/s, got {plan.speed.generate_tps}"
    if name.startswith("r2-"):
        return "ok" if plan.speed.generate_tps >= 60 else f"r2 wants >= 60 tok/s, got {plan.speed.generate_tps}"
    if name.startswith("r3-"):
        big = find_model(plan.model.id).params_b >= 3
        cheaper = all(r.usd_per_mtok is None or plan.cost.usd_per_mtok < r.usd_per_mtok for r in plan.cost.runner_ups)
        return "ok" if big and cheaper else "r3 wants >= 3B at the lowest $/Mtok of its runners-up"
    return None


def main() -> bool:
    print("\nDecision table: the plan's choice vs the brute-force optimum of the same objective "
          "(python -m benchmarks.decisions)")
    print(f"{'setup':34} {'target':14} {'chosen':44} {'quality':>7} {'tok/s':>7} {'agg':>7} {'$/Mtok':>7} "
          f"{'objective':>9} {'brute':>9} {'s':>5}")
    ok = True
    rows = sorted(SETUPS.glob("*.yaml"))
    for path in rows:
        name = path.stem
        t0 = time.perf_counter()
        spec, hw, plan = _plan(path)
        best, _ = search(spec, hw)
        referee = brute_force(spec, hw)
        same = referee is not None and referee.value.key == best.value.key
        p, c = plan.placement, plan.context
        where = "CPU" if not plan.target.gpus else (f"moe{p.n_cpu_moe}" if p.n_cpu_moe else f"ngl{p.n_gpu_layers}")
        chosen = f"{plan.model.id} {plan.model.quant} {where} {c.n_ctx // c.parallel // 1024}k×{c.parallel} " \
                 f"{c.cache_type_k}"
        target = plan.target.instance_type or ("mac" if any(g.unified_memory for g in hw.gpus) else
                                               f"{len(hw.gpus)}gpu" if hw.gpus else "cpu")
        quality = f"{plan.model.quality.score:.1f}" if plan.model.quality else "?"
        mtok = f"{plan.cost.usd_per_mtok:.3f}" if plan.cost.usd_per_mtok is not None else "-"
        brute = f"{referee.value.value:.2f}" if referee else "none"
        print(f"{name:34} {target:14} {chosen:44} {quality:>7} {plan.speed.generate_tps:>7.1f} "
              f"{plan.speed.aggregate_generate_tps or 0:>7.1f} {mtok:>7} {plan.objective.value:>9.2f} {brute:>9} "
              f"{time.perf_counter() - t0:>5.1f}" + ("" if same else "  << search missed the optimum"))
        ok &= same
        verdict = _targets(name, plan)
        if verdict not in (None, "ok"):
            print(f"  {verdict}")
            ok = False
    print(f"{len(rows)} setups; search == brute force in every row: {'yes' if ok else 'NO'}")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
