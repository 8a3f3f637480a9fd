"""Start-up time of the fast CLI paths, wall clock, as a user feels it (fresh interpreter each run)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 300.0
RUNS = 21

COMMANDS = {
    "inferform --help": ["--help"],
    "inferform validate setups/demo.yaml": ["validate", str(ROOT / "setups" / "demo.yaml")],
    "inferform validate setups/coder-4080.yaml": ["validate", str(ROOT / "setups" / "coder-4080.yaml")],
    "inferform plan setups/demo.yaml": ["plan", str(ROOT / "setups" / "demo.yaml")],
    "inferform plan setups/coder-4080.yaml": ["plan", str(ROOT / "setups" / "coder-4080.yaml")],
    "inferform plan setups/gpt-oss-120b-8gb.yaml --json": ["plan", str(ROOT / "setups" / "gpt-oss-120b-8gb.yaml"),
                                                           "--json"],
    "inferform plan setups/llama70b-spot.yaml": ["plan", str(ROOT / "setups" / "llama70b-spot.yaml")],  # chooses
}


def time_command(args: list[str]) -> list[float]:
    exe = str(Path(sys.executable).parent / "inferform")
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([exe, *args], capture_output=True, check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> bool:
    print(f"\nStart-up time (wall, {RUNS} runs each, target < {TARGET_MS:.0f} ms)")
    print(f"{'command':45} {'median ms':>10} {'min ms':>8} {'max ms':>8}  verdict")
    ok = True
    for label, args in COMMANDS.items():
        samples = time_command(args)
        median = statistics.median(samples)
        verdict = "ok" if median < TARGET_MS else "TOO SLOW"
        ok &= median < TARGET_MS
        print(f"{label:45} {median:10.0f} {min(samples):8.0f} {max(samples):8.0f}  {verdict}")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
