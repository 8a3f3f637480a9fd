"""Start-up time of the fast CLI paths, wall clock, as a user feels it (fresh interpreter each run)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 300.0
RUNS = 21

SETUPS = sorted(p.name for p in (ROOT / "setups").glob("*.yaml"))
COMMANDS = {
    "inferform --help": ["--help"],
    "inferform validate setups/demo.yaml": ["validate", str(ROOT / "setups" / "demo.yaml")],
    **{f"inferform plan setups/{name}": ["plan", str(ROOT / "setups" / name)] for name in SETUPS},
    "inferform plan setups/demo.yaml --json": ["plan", str(ROOT / "setups" / "demo.yaml"), "--json"],
    "inferform plan setups/coder-4080.yaml --json": ["plan", str(ROOT / "setups" / "coder-4080.yaml"), "--json"],
}
# Not a target: typer + pydantic + rich doing the least a plan does, with no inferform code (benchmarks/floor_cli.py)
FLOOR = {
    "floor: typer+pydantic+rich, human": ["plan", "x"],
    "floor: typer+pydantic+rich, --json": ["plan", "x", "--json"],
}


def time_command(argv: list[str]) -> list[float]:
    """Wall ms of fresh processes, after one untimed run that fills inferform's caches (parsed setup, catalogs,
    GGUF header). Catalog prices only (INFERFORM_OFFLINE): live AWS prices are a network call by design."""
    env = {**os.environ, "INFERFORM_OFFLINE": "1"}
    subprocess.run(argv, capture_output=True, check=True, env=env)
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=env)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> bool:
    exe = str(Path(sys.executable).parent / "inferform")
    print(f"\nStart-up time (wall, warm caches, {RUNS} runs each, target < {TARGET_MS:.0f} ms)")
    print(f"{'command':50} {'median ms':>10} {'min ms':>8} {'max ms':>8}  verdict")
    ok = True
    for label, args in COMMANDS.items():
        samples = time_command([exe, *args])
        median = statistics.median(samples)
        verdict = "ok" if median < TARGET_MS else "TOO SLOW"
        ok &= median < TARGET_MS
        print(f"{label:50} {median:10.0f} {min(samples):8.0f} {max(samples):8.0f}  {verdict}")
    floor = [sys.executable, str(Path(__file__).with_name("floor_cli.py"))]
    for label, args in FLOOR.items():
        samples = time_command([*floor, *args])
        print(f"{label:50} {statistics.median(samples):10.0f} {min(samples):8.0f} {max(samples):8.0f}  "
              "(libraries alone)")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
