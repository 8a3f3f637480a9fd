"""`inferform status` of a group: per member what the router says (its /models), the child's pid and memory.

The router's /health answers 200 whatever its members do, so it is never what status reports: `/models` lists
each member with its state (unloaded, loading, loaded, sleeping, failed and the exit code) and the child's
arguments, whose --port finds the child process (a child of the router) and its RSS.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from itertools import pairwise
from pathlib import Path
from typing import Any

from inferform.state import AppliedState


def router_models(endpoint: str, key_file: str | None, timeout: float = 5) -> list[dict] | str:
    """The router's /models entries, or why they could not be read."""
    base = endpoint.removesuffix("/v1").replace("0.0.0.0", "127.0.0.1")
    headers = {}
    if key_file:
        headers["Authorization"] = "Bearer " + Path(key_file).read_text().strip()
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{base}/models", headers=headers),
                                    timeout=timeout) as response:
            return json.load(response).get("data", [])
    except urllib.error.HTTPError as exc:
        return f"http {exc.code}"
    except (OSError, ValueError):
        return "unreachable"


def router_children(parent: int) -> dict[int, list[str]]:
    """pid → command line of every child of the router, from /proc."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
                continue
            found[int(proc.name)] = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
        except (OSError, ValueError, IndexError):
            continue
    return found


def children_by_alias(parent: int) -> dict[str, int]:
    """Member → pid of its child (the router passes each child `--alias <member>`)."""
    return {args[args.index("--alias") + 1]: pid for pid, args in router_children(parent).items()
            if "--alias" in args[:-1]}


def _children(parent: int) -> dict[int, int]:
    """Port → pid of the router's children (their command lines carry --port)."""
    return {port: pid for pid, args in router_children(parent).items() if (port := _port(args)) is not None}


def _port(args: list[str]) -> int | None:
    for flag, value in pairwise(args):
        if flag == "--port" and value.isdigit():
            return int(value)
    return None


def members(state: AppliedState, router_pid: int | None) -> list[dict[str, Any]] | str:
    """One row per member: state, pid and RSS of its child (while one runs), planned host bytes."""
    from inferform.apply.status import rss_bytes

    listed = router_models(state.endpoint, state.api_key_file)
    if isinstance(listed, str):
        return listed
    planned = {m["name"]: m.get("host_bytes") for m in state.plan.get("members", [])}
    children = _children(router_pid) if router_pid else {}
    rows = []
    for entry in listed:
        status = entry.get("status", {})
        port = _port(status.get("args") or [])
        pid = children.get(port) if port else None
        rows.append({"member": entry.get("id"), "state": "failed" if status.get("failed") else status.get("value"),
                     "exit_code": status.get("exit_code"), "pid": pid, "host_memory_bytes": rss_bytes(pid),
                     "host_memory_planned_bytes": planned.get(entry.get("id"))})
    return rows
