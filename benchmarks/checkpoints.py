"""Context checkpoints against a running llama-server: what one checkpoint costs in the process, against the plan.

The plan counts up to --ctx-checkpoints copies per slot of a slot's sliding window or recurrent state
(planner/memory.py checkpoint_bytes). They fill only as a conversation grows, so this runs one: a prompt that
grows by 150 words eight times, on the planned argv with its checkpoint count and again with 0. The planned size
of one checkpoint is compared with the largest the server logs creating (the first ones, before the window
fills, are smaller), and the sizes it logs with what the process holds: the difference in anonymous RSS between
the two runs. A synthetic GGUF with the real shapes of Gemma-3-4B (sliding window), truncated so it loads here.
A recurrent model's checkpoint is its slot's RS buffer (12.563 MiB logged on Qwen3.5-35B-A3B shapes, 8 layers,
as planned); its conversation runs too slowly on this CPU for every `make bench`.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.memory_truth import Case, model_path, plan_case
from benchmarks.server_run import free_port, stop, with_port

TOLERANCE = 0.03
CASES = [
    Case("Gemma-3-4B shapes (12 of 34 layers), 16k", "synthetic:gemma-3-4b-it:Q4_K_M", "{n_ctx: 16384, parallel: 1}",
         n_layers=12),
]
MIB = 1 << 20


def _rss_anon(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def converse(binary: Path, argv: list[str], checkpoints: int) -> tuple[int, list[int]]:
    """(anonymous RSS growth over the conversation, sizes of the checkpoints the server logged creating)."""
    args = list(argv[1:])
    i = args.index("--ctx-checkpoints")
    args[i + 1] = str(checkpoints)
    port = free_port()
    cmd = [str(binary), *with_port(args, port), "--checkpoint-min-step", "0", "-lv", "4"]
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.5)

            def ask(text: str) -> None:
                body = json.dumps({"prompt": text, "n_predict": 2}).encode()
                req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", data=body,
                                             headers={"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=600).read()

            ask("hello")
            before = _rss_anon(proc.pid)
            text = " ".join(f"w{i % 200}" for i in range(500))
            for turn in range(8):
                text += " " + " ".join(f"t{turn}n{i}" for i in range(150))
                ask(text)
            grown = _rss_anon(proc.pid) - before
        finally:
            stop(proc)
        logged = Path(log.name).read_text(errors="replace")
    sizes = [round(float(m) * MIB) for m in re.findall(r"created context checkpoint .*size = ([\d.]+) MiB", logged)]
    return grown, sizes


def main() -> bool:
    from inferform.engines.scripts import build

    ensure_llama_cpp = build().ensure_llama_cpp

    binary = ensure_llama_cpp() / "llama-server"
    ok = True
    print("\ncontext checkpoints: one as planned vs logged; those logged vs anonymous RSS held (planned count vs 0)")
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            path = model_path(case, Path(tmp))
            plan = plan_case(case, path)
            argv = plan.engine.argv
            n = int(argv[argv.index("--ctx-checkpoints") + 1])
            one = plan.memory.host.checkpoint_bytes // max(1, n * plan.context.parallel)
            with_ckpt, sizes = converse(binary, argv, n)
            without, _ = converse(binary, argv, 0)
            held, largest = with_ckpt - without, max(sizes, default=0)
            err_one = (one - largest) / largest if largest else 1.0
            err_held = (sum(sizes) - held) / held if held else 1.0
            good = abs(err_one) <= TOLERANCE and abs(err_held) <= TOLERANCE
            ok &= good
            print(f"{case.label:48} one: {one / MIB:7.3f} MiB planned, {largest / MIB:7.3f} logged {err_one:+6.1%};"
                  f" {len(sizes)} created: {sum(sizes) / MIB:7.1f} MiB logged, {held / MIB:7.1f} MiB held "
                  f"{err_held:+6.1%}{'' if good else '  <-- off'}")
    return ok


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
