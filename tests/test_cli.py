"""The CLI's shape: both entry points work, help and version print, nothing heavy is imported at start-up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

HEAVY = ("pulumi", "pulumi_aws", "ansible", "ansible_runner", "boto3", "botocore", "jinja2", "huggingface_hub",
         "openai")


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.code == 0
    for command in ("validate", "schema", "hardware", "models"):
        assert command in result.out


def test_version(cli):
    result = cli("--version")
    assert result.code == 0 and result.out.startswith("inferform ")


def test_python_dash_m_and_console_script_agree():
    demo = str(ROOT / "setups" / "demo.yaml")
    a = subprocess.run([sys.executable, "-m", "inferform", "validate", demo], capture_output=True, text=True)
    b = subprocess.run([str(ROOT / ".venv" / "bin" / "inferform"), "validate", demo], capture_output=True, text=True)
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout and a.stdout.startswith("ok:")


def test_unknown_command_is_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "inferform", "plna"], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr


def _after(args: list[str], then: str, *, before: str = "", env: dict[str, str] | None = None):
    """Run `inferform ARGS` through cli.main in a fresh interpreter, then the probe code `then` in that process
    (which sees what the command imported, compiled or switched); `before` runs first."""
    code = (f"import sys\n{before}sys.argv = ['inferform', *{args!r}]\n"
            "from inferform.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"{then}\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_fast_paths_import_nothing_heavy(command):
    demo = str(ROOT / "setups" / "demo.yaml")
    done = _after([command, demo], f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_warm_plan_skips_the_slow_imports(tmp_path):
    """The start-up budget (< 300 ms) depends on a warm `plan` never importing PyYAML (setups and catalogs come
    from the cache), never loading importlib.metadata (pydantic's plugin scan) and never compiling tokenize's
    pattern (inspect.signature of a builtin default_factory such as `list` in a pydantic Field)."""
    demo = str(ROOT / "setups" / "coder-4080.yaml")
    probe = ("import tokenize\n"
             "slow = sorted(m for m in ('yaml', 'importlib.metadata') if m in sys.modules)\n"
             "print(slow, tokenize._compile.cache_info().currsize)")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    for _ in range(2):  # the first run fills the cache
        done = _after(["plan", demo], probe, env=env)
        assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[] 0", done.stdout


def test_console_script_collects_garbage_only_in_long_commands():
    """inferform.entry starts with the cyclic collector off (start-up time); the root callback turns it back on
    for every command that is not a quick read command, before the command runs."""
    entry = ("import gc, inferform.cli as cli\n"
             "cli.run = lambda: print(gc.isenabled())\n"
             "from inferform.entry import run\n"
             "run()\n")
    done = subprocess.run([sys.executable, "-c", entry], capture_output=True, text=True)
    assert done.stdout.split() == ["False"], done.stdout + done.stderr
    demo = str(ROOT / "setups" / "demo.yaml")
    for name, collecting in (("validate", "False"), ("plan", "False"), ("logs", "True"), ("destroy", "True")):
        done = _after([name, demo], "print(gc.isenabled())", before="import gc\ngc.disable()\n")
        assert done.stdout.splitlines()[-1] == collecting, (name, done.stdout, done.stderr)


def test_plan_path_modules_generate_no_code_at_import():
    """A plan's start-up is mostly imports, so the modules a plan imports avoid two kinds of code that Python
    compiles or execs at import time:
    - `from __future__ import annotations`: typer, pydantic and NamedTuple read annotations at start-up, and each
      string annotation is compiled (hundreds of compiles, ~5 % of a plan's instructions); ordinary annotations
      are kept, quoted only where a name is defined later;
    - `@dataclass`: each class execs its generated methods (~7 M instructions for 19 fields); records are
      NamedTuples or slotted classes instead."""
    demo = str(ROOT / "setups" / "llama70b-spot.yaml")
    done = _after(["plan", demo, "--offline"],
                  "print('\\n'.join(m.__file__ for n, m in list(sys.modules.items()) if n.startswith('inferform')"
                  " and getattr(m, '__file__', None)))")
    assert done.returncode == 0, done.stderr
    files = [line for line in done.stdout.splitlines() if line.endswith(".py")]
    assert len(files) > 30, files  # the planner, catalogs, spec, plan and the cloud chooser were imported
    assert any(f.endswith("tensors.py") for f in files)  # a catalog model: shapes synthesized into tensors
    sources = {f: Path(f).read_text(encoding="utf-8") for f in files}
    assert [f for f, text in sources.items() if "from __future__ import annotations" in text] == []
    assert [f for f, text in sources.items() if re.search(r"^@(dataclasses\.)?dataclass", text, re.M)] == []
