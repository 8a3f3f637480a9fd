"""The co-residency proof against measurement: a group's router with every member loaded, each context filled.

Plans setups/two-small.yaml, writes its preset with the real model dir (plus `log-verbosity = 4` under `[*]`, so
each child logs its buffers), starts the pinned llama-server as the router, sends every member a prompt that
fills most of its context, then reads:
  * each child's logged buffers (weights, KV, compute) against the member's planned figures (target: within 5 %),
  * the RSS of the router and of each child, the child's RSS beyond its planned host bytes (what
    data/llama_server_router.yaml's child_process_bytes must cover) and the sum against the planned host budget.

    python -m benchmarks.router_memory          (needs the CPU build and both small models: make install)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.server_run import free_port
from inferform.apply.group_status import children_by_alias
from inferform.apply.status import rss_bytes
from inferform.dirs import cache_dir, engine_home
from inferform.engines.llama_log import parse
from inferform.engines.registry import PINNED
from inferform.units import MIB

ROOT = Path(__file__).resolve().parent.parent
GROUP = ROOT / "setups" / "two-small.yaml"
TOLERANCE = 0.05


def _ask(port: int, model: str, words: int) -> None:
    body = {"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": "hello world " * words}]}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        json.load(response)


def main() -> bool:
    from inferform.pipeline import plan_group_setup

    binary = engine_home(PINNED, "cpu") / "bin" / "llama-server"
    models = cache_dir() / "models"
    _, group = plan_group_setup(str(GROUP))
    missing = [m.name for m in group.members
               if not (models / m.preset["model"].split("/")[-1]).is_file()]
    if not binary.is_file() or missing:
        print(f"router memory: skipped (needs {binary} and the models of {', '.join(missing) or '-'} in {models}: "
              f"`inferform apply {GROUP.relative_to(ROOT)}` once places them)")
        return True
    folder = Path(tempfile.mkdtemp(prefix="router-memory-"))
    preset = group.preset.replace("${INFERFORM_MODEL_DIR}", str(models))
    (folder / "models.ini").write_text("[*]\nlog-verbosity = 4\n\n" + preset)
    port = free_port()
    argv = [str(binary), "--models-preset", "models.ini",
            "--models-max", str(group.residency.max_loaded), "--host", "127.0.0.1", "--port", str(port)]
    log = open(folder / "router.log", "wb")  # noqa: SIM115 - the router keeps it
    router = subprocess.Popen(argv, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ok = True
    try:
        time.sleep(2)
        for m in group.members:
            _ask(port, m.name, int(m.plan.context.n_ctx * 0.35))  # ~0.7 tokens of context per "hello world "
        kids = children_by_alias(router.pid)
        text = (folder / "router.log").read_text(errors="replace")
        print(f"router memory ({GROUP.name}, --models-max {group.residency.max_loaded}):")
        router_rss = rss_bytes(router.pid)
        total = router_rss
        print(f"  router RSS {router_rss / MIB:.1f} MiB (planned {group.residency.router_bytes / MIB:.1f})")
        for m in group.members:
            pid = kids[m.name]
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            child_port = args[args.index("--port") + 1]  # the router prefixes each child's log lines: [PORT]
            logged = parse("\n".join(line for line in text.splitlines() if line.startswith(f"[{child_port}]")))
            side = logged.side(False)
            host = m.plan.memory.host
            rss = rss_bytes(pid)
            total += rss
            beyond = rss - (host.total_bytes - host.checkpoint_bytes)
            print(f"  {m.name}: RSS {rss / MIB:.1f} MiB, planned host {host.total_bytes / MIB:.1f} MiB "
                  f"({host.checkpoint_bytes / MIB:.1f} of it checkpoints), beyond the planned buffers "
                  f"{beyond / MIB:.1f} MiB (allowed {group.residency.child_bytes / MIB:.1f})")
            for what, planned, seen in (("weights", host.weights_bytes, side["weights"]),
                                        ("KV", host.kv_bytes, side["kv"]),
                                        ("compute", host.compute_bytes, side["compute"])):
                error = abs(planned - seen) / max(seen, 1)
                mark = "ok" if error <= TOLERANCE else "MISS"
                ok &= error <= TOLERANCE
                print(f"    {what:8s} planned {planned / MIB:8.2f} MiB  logged {seen / MIB:8.2f} MiB  "
                      f"{error * 100:5.1f} %  {mark}")
            ok &= beyond <= group.residency.child_bytes
        budget = group.residency.host_budget_bytes
        print(f"  router + children RSS {total / MIB:.1f} MiB; planned worst case "
              f"{group.residency.worst_case_host_bytes / MIB:.1f} MiB; host budget {budget / MIB:.1f} MiB "
              f"{'ok' if total <= min(budget, group.residency.worst_case_host_bytes) else 'MISS'}")
        ok &= total <= min(budget, group.residency.worst_case_host_bytes)
    finally:
        os.killpg(router.pid, signal.SIGTERM)
        router.wait(30)
        log.close()
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
