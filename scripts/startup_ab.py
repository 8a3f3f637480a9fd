"""Start-up of the fast CLI paths at another revision and now, timed back to back in the same rounds.

Why paired: this machine's speed drifts while a benchmark runs, so two separate `make bench` runs disagree by more
than a change costs. Each round runs every command once at REV (a temporary git worktree on PYTHONPATH) and once
here, alternating which goes first; the median of the per-round differences is what the change costs.

    python scripts/startup_ab.py 146c650 [--rounds 21]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).parent / "inferform"
SETUPS = sorted(p.name for p in (ROOT / "setups").glob("*.yaml"))
COMMANDS = {
    "--help": ["--help"],
    "validate demo": ["validate", str(ROOT / "setups" / "demo.yaml")],
    **{f"plan {name.removesuffix('.yaml')}": ["plan", str(ROOT / "setups" / name)] for name in SETUPS},
    "plan demo --json": ["plan", str(ROOT / "setups" / "demo.yaml"), "--json"],
}


def _run(tree: Path, args: list[str]) -> tuple[float, float]:
    """(wall ms, CPU ms of the child): CPU time is the steadier figure on a shared machine."""
    env = {**os.environ, "INFERFORM_OFFLINE": "1", "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([str(EXE), *args], env=env, capture_output=True, check=True)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev")
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(base), args.rev], cwd=ROOT, check=True)
        try:
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(base / "inferform"), str(ROOT / "inferform")],
                           check=True)
            trees = {"base": base, "now": ROOT}
            for tree in trees.values():  # fill each tree's caches (parsed setups, catalogs, choices) once
                for command in COMMANDS.values():
                    _run(tree, command)
            times: dict[tuple[str, str], list[tuple[float, float]]] = {(t, c): [] for t in trees for c in COMMANDS}
            for i in range(args.rounds):
                for label, command in COMMANDS.items():
                    for which in ("base", "now") if i % 2 else ("now", "base"):
                        times[(which, label)].append(_run(trees[which], command))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    print(f"{'command':28} {'wall: base':>10} {'now':>6} {'paired':>7}   {'CPU: base':>9} {'now':>6} {'paired':>7}"
          f"   (ms, medians of {args.rounds} rounds)")
    for label in COMMANDS:
        row = f"{label:28}"
        for k in (0, 1):
            before, after = [s[k] for s in times[("base", label)]], [s[k] for s in times[("now", label)]]
            paired = statistics.median(b - a for a, b in zip(before, after, strict=True))
            row += f" {statistics.median(before):10.0f} {statistics.median(after):6.0f} {paired:+7.1f}  "
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
