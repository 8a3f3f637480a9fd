"""`plan --json` of every example setup at another revision and now, compared value by value.

Why: a change to the house (moving modules, typing the Plan) must not change a plan; additions are allowed. This
checks out REV into a temporary git worktree, plans each setup there and here (offline prices, the same machine),
and prints per setup the values that changed (none, or it exits 1) and the keys that are new.

    python scripts/plan_json_diff.py 146c650 [setups/*.yaml benchmarks/setups/*.yaml]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _plan(source_root: Path, setup: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(source_root), "INFERFORM_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "inferform", "plan", "--json", str(setup)], capture_output=True,
                          text=True, env=env, cwd=source_root, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout)


def _flat(value, prefix: str = ""):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flat(inner, f"{prefix}.{key}")
    elif isinstance(value, list) and value and isinstance(value[0], dict | list):
        for i, inner in enumerate(value):
            yield from _flat(inner, f"{prefix}[{i}]")
    else:
        yield prefix, value


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    rev, setups = argv[0], [Path(a).resolve() for a in argv[1:]] or sorted((ROOT / "setups").glob("*.yaml"))
    changed_any = False
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(tree), rev], cwd=ROOT, check=True)
        try:
            for setup in setups:
                before, after = dict(_flat(_plan(tree, setup))), dict(_flat(_plan(ROOT, setup)))
                changed = sorted(k for k in before if before[k] != after.get(k, "<missing>"))
                added = sorted(k for k in after if k not in before)
                changed_any |= bool(changed)
                print(f"{setup.name}: {len(changed)} changed{': ' + ', '.join(changed) if changed else ''}; "
                      f"{len(added)} added{': ' + ', '.join(added) if added else ''}")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    return 1 if changed_any else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
