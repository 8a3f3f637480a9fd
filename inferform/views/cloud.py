"""Human renderings (rich) of cloud reports: `inferform sweep`, a cloud `apply` (dry run and result), cloud rows
of `status`."""

from typing import Any

from inferform.units import usd


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
                      usd(f["usd_per_hour"]), usd(f["cost_so_far_usd"]), f["reason"])
    out.print(table)
    out.print(f"{len(left)} left over, {usd(report['cost_so_far_usd'])} so far; {len(kept)} kept")
    if report["terminated"]:
        out.print(f"terminated: {', '.join(report['terminated'])}")
        out.print("[dim]`inferform destroy SETUP` clears the state of a setup whose instance was ended here[/]")
    else:
        out.print("nothing terminated: run `inferform sweep --yes` to end them")


def show_cloud_preview(preview: dict[str, Any], out: Any) -> None:
    """`apply --dry-run` of a cloud setup: the instance and its price, the resources, the boot script, the calls."""
    from rich.markup import escape
    from rich.table import Table

    per_mtok = f", {usd(preview['usd_per_mtok'])}/Mtok" if preview["usd_per_mtok"] is not None else ""
    out.print(f"instance: {preview['instance_type']} {preview['market']} in {preview['region']}   "
              f"cost: {usd(preview['usd_per_hour'])}/h{per_mtok} ({escape(preview['price_source'] or '?')})")
    if preview["free_tier"]:
        out.print("  free-tier eligible: free while the account's free-tier hours or credits last; the price above "
                  "is what it costs after")
    for r in preview["runner_ups"]:
        out.print(f"  runner-up {r['instance_type']}: {usd(r['usd_per_hour'])}/h, {r['generate_tps']} tok/s "
                  f"({escape(r['why_not'])})")
    out.print(f"lifetime: ttl {preview['ttl']}, the instance ends itself at apply time + {preview['ttl']} "
              f"(if applied now: {preview['expires_at_if_applied_now']})")
    table = Table("resource", "type", "what", title=f"stack {preview['setup']!r} would create", title_justify="left")
    for row in preview["resources"]:
        table.add_row(row["resource"], row["type"], escape(row["what"]))
    out.print(table)
    out.print(f"tags on every resource: {', '.join(preview['tags'])}")
    out.print("--- user-data.sh (runs first at boot: the dead man's switch is its first command)")
    out.print(escape(preview["user_data"]), end="")
    out.print("--- Pulumi (Automation API)")
    for call in preview["pulumi_calls"]:
        out.print(f"  {escape(call)}")
    out.print("--- apply's checks")
    for check in preview["checks"]:
        out.print(f"  {escape(check)}")


def usage_snippets(endpoint: str, model: str, key_file: str | None) -> list[str]:
    """A curl line and an openai snippet that read the API key from its file: the key itself is never printed."""
    import shlex

    key_expr = f"$(cat {shlex.quote(key_file)})" if key_file else "none"
    curl = (f"curl {endpoint}/chat/completions -H \"Authorization: Bearer {key_expr}\" "
            f"-H 'Content-Type: application/json' -d '{{\"model\": \"{model}\", "
            f"\"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'")
    key_py = f"Path({key_file!r}).read_text().strip()" if key_file else "'none'"
    python = [
        "from pathlib import Path",
        "from openai import OpenAI",
        f"client = OpenAI(base_url={endpoint!r}, api_key={key_py})",
        f"reply = client.chat.completions.create(model={model!r}, "
        "messages=[{'role': 'user', 'content': 'Hello'}])",
        "print(reply.choices[0].message.content)",
    ]
    return [curl, *python]


def _when(iso: str | None) -> str:
    """'2026-11-23 18:58 UTC': minutes are what a person plans by."""
    import datetime as dt

    if not iso:
        return "?"
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _until(expires_at: str | None, time_left: str | None) -> str:
    return f"{_when(expires_at)} ({time_left})" if expires_at else "?"


def show_cloud_applied(row: dict[str, Any], out: Any) -> None:
    """The end of a cloud apply: where it serves, when it ends, what it costs, and how to call it."""
    from rich.markup import escape

    setup_file = row["setup_file"]
    out.print(f"applied {row['setup']} on {row['where']} ({row['instance_id']}): serving {row['endpoint']}")
    out.print(f"dead man's switch: the instance ends itself at {_until(row['expires_at'], row['time_left'])}; "
              f"push it out with `inferform ttl extend {setup_file} 1h`")
    out.print(f"cost: {usd(row['usd_per_hour'])}/h   API key: in {row['api_key_file']} (0600)")
    snippets = usage_snippets(row["endpoint"], row["setup"], row["api_key_file"])
    out.print("call it:")
    out.print(f"  {escape(snippets[0])}", soft_wrap=True)  # unwrapped: it is meant to be copied
    out.print("  # python (pip install openai):")
    for line in snippets[1:]:
        out.print(f"  {escape(line)}", soft_wrap=True)
    out.print(f"end it now: inferform destroy {setup_file}")


def show_cloud_status(row: dict[str, Any], out: Any) -> None:
    """One cloud setup in `inferform status`: live state, endpoint, time left, cost so far."""
    from rich.markup import escape

    health = f"  health {row['health']}" if row["running"] else ""
    live = "state unknown" if row["live_state"] == "unknown" else row["live_state"]
    out.print(f"{row['setup']} on {row['where']} {row['instance_id']}: {row['endpoint']}  instance {live}{health}")
    cost = f"{usd(row['cost_so_far_usd'])} so far ({row['hours_since_applied']:.1f} h × " \
           f"{usd(row['usd_per_hour'])}/h)" if row["cost_so_far_usd"] is not None else "cost unknown"
    out.print(f"  expires {_until(row['expires_at'], row['time_left'])}  {cost}  since {_when(row['since'])}")
    if row["live_state"] == "unknown":
        out.print(f"  [dim]live state unknown: {escape(row['live_detail'])}[/]")
    if row["hint"]:
        out.print(f"  {escape(row['hint'])}")
