"""Human renderings (rich) of cloud reports: `inferform sweep`."""

from __future__ import annotations

from typing import Any


def _usd(x: float | None) -> str:
    return "?" if x is None else f"${x:,.4g}"


def show_sweep(report: dict[str, Any], out: Any) -> None:
    from rich.table import Table

    left, kept = report["leftovers"], report["kept"]
    if not left:
        out.print(f"nothing left over ({len(kept)} inferform instance(s) kept)")
        return
    table = Table("instance", "region", "setup", "type", "market", "state", "hours", "$/h", "so far", "why")
    for f in left:
        hours = "?" if f["hours_running"] is None else f"{f['hours_running']:.1f}"
        table.add_row(f["instance_id"], f["region"], f["setup"], f["instance_type"], f["market"], f["state"], hours,
                      _usd(f["usd_per_hour"]), _usd(f["cost_so_far_usd"]), f["reason"])
    out.print(table)
    out.print(f"{len(left)} left over, {_usd(report['cost_so_far_usd'])} so far; {len(kept)} kept")
    if report["terminated"]:
        out.print(f"terminated: {', '.join(report['terminated'])}")
        out.print("[dim]`inferform destroy SETUP` clears the state of a setup whose instance was ended here[/]")
    else:
        out.print("nothing terminated: run `inferform sweep --yes` to end them")
