"""What runs, where, since when, whether it answers, and how its memory compares with the plan."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from inferform.apply.connection import from_state
from inferform.apply.guard import alive
from inferform.engines.registry import DEFAULT
from inferform.engines.registry import engine as engine_row
from inferform.state import AppliedState, setup_dir
from inferform.targets import is_loopback


def _alive(pid: int | None) -> bool:
    return pid is not None and pid > 0 and alive(pid)


def _health(endpoint: str, engine: str = DEFAULT) -> str:
    path = engine_row(engine).health_path
    base = endpoint.removesuffix("/v1").replace("0.0.0.0", "127.0.0.1")
    try:
        with urllib.request.urlopen(f"{base}{path}", timeout=2) as response:
            return "ok" if response.status == 200 else f"http {response.status}"
    except urllib.error.HTTPError as exc:
        return f"http {exc.code}"
    except OSError:
        return "unreachable"


def rss_bytes(pid: int | None) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, TypeError):
        return None
    return None


def log_location(state: AppliedState) -> str:
    """Where the server log is: a local path, or user@host:path on an ssh target."""
    if state.target not in ("ssh", "aws"):
        return str(setup_dir(state.setup) / "server.log")
    connection = from_state(state)
    return f"{connection.destination}:{connection.shown(connection.state_dir(state.setup))}/server.log"


def _remote(state: AppliedState) -> dict[str, Any]:
    """An ssh target: health over HTTP when this machine can reach the endpoint; its pid and memory are remote."""
    connection = from_state(state)
    host = urllib.parse.urlsplit(state.endpoint).hostname or ""
    if is_loopback(host) and not is_loopback(connection.host):
        port = urllib.parse.urlsplit(state.endpoint).port
        health = (f"not checked: serves on {connection.host}'s loopback "
                  f"(tunnel: {connection.ssh_hint('-N', '-L', f'{port}:127.0.0.1:{port}')})")
    else:
        health = _health(state.endpoint, state.engine)
    return {"where": connection.where(), "running": True if health == "ok" else None, "health": health,
            "host_memory_bytes": None, "log": log_location(state)}


def describe(state: AppliedState) -> dict[str, Any]:
    """One status row. `running` is None when it cannot be told from here (a remote server that does not answer)."""
    planned = state.plan.get("memory", {}).get("host", {}).get("total_bytes")
    row = {"setup": state.setup, "target": state.target, "host": state.host, "engine": state.engine,
           "endpoint": state.endpoint, "since": state.applied_at.isoformat(), "plan_hash": state.plan_hash,
           "pid": state.pid, "host_memory_planned_bytes": planned}
    if state.target == "ssh":
        return {**row, **_remote(state)}
    pid = serving_pid(state) or state.pid
    if state.plan.get("kind") == "group":  # the router's /health is always ok: its /models says what runs
        from inferform.apply.group_status import members

        listed = members(state, pid)
        return {**row, "pid": pid, "where": "this machine", "running": _alive(pid),
                "health": "ok" if isinstance(listed, list) else listed, "host_memory_bytes": rss_bytes(pid),
                "members": listed if isinstance(listed, list) else [], "log": log_location(state)}
    return {**row, "pid": pid, "where": "this machine", "running": _alive(pid),
            "health": _health(state.endpoint, state.engine), "host_memory_bytes": rss_bytes(pid),
            "log": log_location(state)}


def serving(name: str) -> dict[str, Any] | None:
    """What the front of a local setup serves now, from its backend.json: generation, pid and port of the engine,
    and the front's own pid; None when there is no readable record."""
    import json

    try:
        record = json.loads((setup_dir(name) / "backend.json").read_text())
        return {**record, "pid": int(record["pid"]), "front_pid": int(record["front_pid"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def serving_pid(state: AppliedState) -> int | None:
    """The engine the front serves with now (it restarts an engine that died, so the applied pid can be stale)."""
    record = serving(state.setup)
    generation = state.plan_hash
    if state.plan.get("kind") == "group":  # a group's service generation is its router's configuration
        from inferform.plan import GroupPlan
        from inferform.render import router_generation

        generation = router_generation(GroupPlan.model_validate(state.plan))
    return record["pid"] if record and record.get("generation") == generation else None
