"""What the cloud instance planner picks for the example cloud setups, at what price and speed, and how fast.

Prices are the catalog snapshot (deterministic: no AWS call), so the table only changes when the catalog, the
memory or speed model, or the chooser does. "searches" counts the planner searches the chooser ran (the bounds in
planner/instance_bounds.py skip the rest); "ms" is the whole cloud plan, choice and final plan, in-process.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inferform.catalog.instances import CatalogPrices  # noqa: E402
from inferform.errors import InferformError  # noqa: E402
from inferform.planner import instances  # noqa: E402
from inferform.planner.instance_plan import plan_cloud  # noqa: E402
from inferform.setup.spec import load_setup  # noqa: E402


def cloud_setups() -> list[Path]:
    return [p for p in sorted((ROOT / "setups").glob("*.yaml")) if load_setup(str(p)).target.is_cloud]


def _usd(x: float | None) -> str:
    return "?" if x is None else f"${x:,.4g}"


def main() -> bool:
    print("\nInstance choice for the example cloud setups (catalog snapshot prices)")
    print(f"{'setup':16} {'chosen':15} {'$/h':>8} {'tok/s':>6} {'$/Mtok':>8}  {'runner-up':32} {'searches':>8} "
          f"{'ms':>6}")
    ok = True
    calls = 0
    original = instances.search

    def counted(*args, **kwargs):
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    instances.search = counted
    try:
        for path in cloud_setups():
            setup = load_setup(str(path))
            calls = 0
            start = time.perf_counter()
            try:
                plan = plan_cloud(setup, None if setup.target.instance_type == "auto" else _hw(setup), None,
                                  CatalogPrices())
            except InferformError as exc:
                ok = False
                print(f"{setup.name:16} FAILED: {str(exc).splitlines()[0]}")
                continue
            ms = (time.perf_counter() - start) * 1000
            c = plan.cost
            up = c.runner_ups[0] if c.runner_ups else None
            up_txt = f"{up.instance_type} {_usd(up.usd_per_hour)}/h {_usd(up.usd_per_mtok)}/Mtok" if up else "-"
            print(f"{setup.name:16} {plan.target.instance_type:15} {_usd(c.usd_per_hour):>8} "
                  f"{plan.speed.generate_tps:6.1f} {_usd(c.usd_per_mtok):>8}  {up_txt:32} {calls:8d} {ms:6.0f}")
    finally:
        instances.search = original
    return ok


def _hw(setup):
    from inferform.hardware.resolve import resolve_hardware

    return resolve_hardware(setup, None, lambda: None)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
