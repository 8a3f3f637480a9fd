"""Start-up time of the fast CLI paths, wall clock, as a user feels it (fresh interpreter each run).

The machine's speed drifts while a benchmark runs (a shared VM), so the commands are timed in rounds, one run of
each per round, and every command sees the same drift. The floor (typer + pydantic + rich doing the least a plan
does, benchmarks/floor_cli.py) is timed in the same rounds: "over floor" is what inferform itself costs.
"""

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
# Not a target: the libraries alone. A plan is compared with the floor that prints the same way.
FLOOR_HUMAN, FLOOR_JSON = "floor: typer+pydantic+rich, human", "floor: typer+pydantic+rich, --json"
FLOOR = {FLOOR_HUMAN: ["plan", "x"], FLOOR_JSON: ["plan", "x", "--json"]}


def time_rounds(argvs: dict[str, list[str]]) -> dict[str, list[float]]:
    """Wall ms of fresh processes, RUNS rounds of every command, after one untimed run of each that fills
    inferform's caches (parsed setup, catalogs, GGUF header). Catalog prices only (INFERFORM_OFFLINE): live AWS
    prices are a network call by design."""
    env = {**os.environ, "INFERFORM_OFFLINE": "1"}
    for argv in argvs.values():
        subprocess.run(argv, capture_output=True, check=True, env=env)
    samples: dict[str, list[float]] = {label: [] for label in argvs}
    for _ in range(RUNS):
        for label, argv in argvs.items():
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True, env=env)
            samples[label].append((time.perf_counter() - start) * 1000)
    return samples


def main() -> bool:
    exe = str(Path(sys.executable).parent / "inferform")
    floor = [sys.executable, str(Path(__file__).with_name("floor_cli.py"))]
    argvs = {**{label: [exe, *args] for label, args in COMMANDS.items()},
             **{label: [*floor, *args] for label, args in FLOOR.items()}}
    samples = time_rounds(argvs)
    medians = {label: statistics.median(values) for label, values in samples.items()}
    print(f"\nStart-up time (wall, warm caches, {RUNS} rounds, target < {TARGET_MS:.0f} ms)")
    print(f"{'command':50} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'over floor':>11}  verdict")
    ok = True
    for label in COMMANDS:
        median = medians[label]
        verdict = "ok" if median < TARGET_MS else "TOO SLOW"
        ok &= median < TARGET_MS
        over = ""
        if " plan " in label:
            over = f"{median - medians[FLOOR_JSON if label.endswith('--json') else FLOOR_HUMAN]:+.0f} ms"
        print(f"{label:50} {median:10.0f} {min(samples[label]):8.0f} {max(samples[label]):8.0f} {over:>11}  "
              f"{verdict}")
    for label in FLOOR:
        print(f"{label:50} {medians[label]:10.0f} {min(samples[label]):8.0f} {max(samples[label]):8.0f} "
              f"{'':>11}  (libraries alone)")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
