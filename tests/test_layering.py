"""The house's layers, held by its imports: data flows setup → plan → rendered files → apply → state, and each room
imports only the rooms below it.

Every import counts, also the ones inside functions (the CLI's lazy imports are how start-up stays fast, and a
lazy import across a layer is still a dependency). The rules are checked on the source (ast), so they fail the
moment someone adds such an import, whether or not a test happens to run that code path; a second check imports
the planner in a fresh interpreter and looks at what came with it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "inferform"
CLOUD_SDKS = ("boto3", "botocore", "pulumi", "pulumi_aws")
ANSIBLE = ("ansible", "ansible_runner")
PRESENTATION = ("rich", "typer", "inferform.views", "inferform.cli")
ACTING = ("inferform.apply", "inferform.cloud", "inferform.state", "inferform.render", "inferform.pipeline")
PLANNER = ("inferform.planner",)

# room (a package folder or one module, relative to inferform/) -> module prefixes it must never import
RULES: dict[str, tuple[str, ...]] = {
    # the planner decides; it knows nothing of how a plan is applied, priced live or shown
    "planner": (*ACTING, *PRESENTATION, *CLOUD_SDKS, *ANSIBLE),
    # what the planner reads: catalogs, hardware, the setup file, the engines' argv builders
    "catalog": (*PLANNER, *ACTING, *PRESENTATION, *CLOUD_SDKS, *ANSIBLE, "inferform.engines", "inferform.setup"),
    "hardware": (*PLANNER, *ACTING, *PRESENTATION, *CLOUD_SDKS, *ANSIBLE),
    "setup": (*PLANNER, *ACTING, *PRESENTATION, *CLOUD_SDKS, *ANSIBLE),
    "engines": (*PLANNER, *ACTING, *PRESENTATION, *CLOUD_SDKS, *ANSIBLE, "inferform.setup"),
    "plan.py": (*PLANNER, *ACTING, *PRESENTATION, *CLOUD_SDKS, *ANSIBLE, "inferform.setup"),
    # views print plans and rows; they decide nothing and act on nothing
    "views": (*PLANNER, "inferform.apply", "inferform.pipeline", *CLOUD_SDKS, *ANSIBLE),
    # state sits below apply and cloud: both record into it
    "state.py": (*PLANNER, "inferform.apply", "inferform.cloud", *PRESENTATION, *CLOUD_SDKS, *ANSIBLE),
    # cloud facts and prices, the TTL and boot script, the sweep: below apply, never the planner's internals
    "cloud": ("inferform.apply", *PLANNER, *PRESENTATION, "inferform.pipeline", *ANSIBLE),
    # apply acts on a Plan alone: it never plans again and reads no setup file
    "apply": (*PLANNER, "inferform.pipeline", "inferform.cli", "inferform.setup.spec", "inferform.setup.references",
              "inferform.setup.yamlpos"),
    "render.py": (*PLANNER, "inferform.apply", "inferform.cloud", *PRESENTATION, *CLOUD_SDKS, *ANSIBLE),
}
# Where a rule has a reason to bend, it is named here with the reason (none today).
ALLOWED: set[tuple[str, str]] = set()


def imports_of(source: str, module: str) -> list[tuple[int, str]]:
    """Every module a source imports (absolute, relative imports resolved against `module`), with its line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]  # `from inferform import views`
    return found


def violations(room: str, files: list[Path]) -> list[str]:
    banned = RULES[room]
    out = []
    for path in files:
        rel = path.relative_to(PACKAGE.parent)
        module = ".".join(rel.with_suffix("").parts)
        for line, name in imports_of(path.read_text(), module):
            hit = next((b for b in banned if name == b or name.startswith(b + ".")), None)
            if hit and (str(rel), hit) not in ALLOWED:
                out.append(f"{rel}:{line} imports {name} ({room} must not import {hit})")
    return sorted(set(out))


def room_files(room: str) -> list[Path]:
    target = PACKAGE / room
    return [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))


@pytest.mark.parametrize("room", sorted(RULES))
def test_room_imports_only_rooms_below_it(room: str) -> None:
    files = room_files(room)
    assert files, f"room {room} is gone: update RULES"
    assert violations(room, files) == []


def test_an_import_across_a_layer_is_caught(tmp_path: Path) -> None:
    """The checker itself: an import added across a layer (also inside a function, or relative) is reported."""
    planted = PACKAGE / "planner" / "search.py"
    source = planted.read_text()
    for added in ("from inferform.apply.local import apply_plan\n",
                  "def f():\n    import boto3\n",
                  "from ..views import plan\n",
                  "from inferform import pipeline\n"):
        fake = tmp_path / "inferform" / "planner" / "search.py"
        fake.parent.mkdir(parents=True, exist_ok=True)
        fake.write_text(source + "\n" + added)
        module = "inferform.planner.search"
        hits = [name for _, name in imports_of(fake.read_text(), module)
                if any(name == b or name.startswith(b + ".") for b in RULES["planner"])]
        assert hits, f"not caught: {added!r}"
    assert violations("planner", [planted]) == []


def test_planning_loads_no_sdk_no_apply_and_no_views() -> None:
    """What a plan needs, imported in a fresh interpreter: neither the cloud SDKs nor Ansible nor the apply and
    view rooms come along (the pipeline brings prices and hardware; the planner itself brings none of them)."""
    code = ("import sys\n"
            "import inferform.planner.compose, inferform.planner.instance_plan, inferform.planner.instances\n"
            "import inferform.planner.decision, inferform.planner.search\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'pulumi', 'pulumi_aws',"
            " 'ansible', 'ansible_runner', 'rich', 'typer') or m.startswith(('inferform.apply', 'inferform.views',"
            " 'inferform.cloud', 'inferform.state', 'inferform.render', 'inferform.cli')))\n"
            "print('\\n'.join(bad))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
