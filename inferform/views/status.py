"""Human rendering of `inferform status`: one line per applied setup (cloud ones by views/cloud.py), and for a
group one line per member."""

from typing import Any

from inferform.units import gib


def show_status(rows: list[dict[str, Any]], out: Any) -> None:
    if not rows:
        out.print("nothing applied")
    for r in rows:
        if r["target"] == "aws":
            from inferform.views.cloud import show_cloud_status

            show_cloud_status(r, out)
            continue
        mem = r["host_memory_bytes"]
        used = f"{gib(mem)} RSS" if mem else "-"
        planned = r["host_memory_planned_bytes"]
        plan_txt = f" (planned {gib(planned)} host)" if planned else ""
        running = {True: "running", False: "not running", None: "unknown"}[r["running"]]
        out.print(f"{r['setup']} on {r['where']}: {r['endpoint']}  health {r['health']}  pid {r['pid']} "
                  f"({running})  since {r['since']}  {used}{plan_txt}")
        for m in r.get("members", []):
            rss = f"{gib(m['host_memory_bytes'])} RSS" if m["host_memory_bytes"] else "-"
            failed = f" (exit {m['exit_code']})" if m.get("exit_code") else ""
            out.print(f"  {m['member']}: {m['state']}{failed}  pid {m['pid'] or '-'}  {rss}"
                      f" (planned {gib(m['host_memory_planned_bytes'] or 0)} host)")
