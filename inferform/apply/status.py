"""What runs, where, since when, whether it answers, and how its memory compares with the plan."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any

from inferform.apply.state import AppliedState, setup_dir


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _health(endpoint: str) -> str:
    base = endpoint.removesuffix("/v1").replace("0.0.0.0", "127.0.0.1")
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
            return "ok" if response.status == 200 else f"http {response.status}"
    except urllib.error.HTTPError as exc:
        return f"http {exc.code}"
    except OSError:
        return "unreachable"


def _rss_bytes(pid: int | None) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, TypeError):
        return None
    return None


def describe(state: AppliedState) -> dict[str, Any]:
    planned = state.plan.get("memory", {}).get("host", {}).get("total_bytes")
    return {"setup": state.setup, "target": state.target, "host": state.host, "engine": state.engine,
            "endpoint": state.endpoint, "since": state.applied_at.isoformat(), "plan_hash": state.plan_hash,
            "pid": state.pid, "running": _alive(state.pid), "health": _health(state.endpoint),
            "host_memory_bytes": _rss_bytes(state.pid), "host_memory_planned_bytes": planned,
            "log": str(setup_dir(state.setup) / "server.log")}
