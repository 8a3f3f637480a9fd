"""Groups without an engine: bad group files exit 2 at their line, the co-residency proof, and the router preset
(section from argv, the format's traps refused, round trip through the reader)."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferform.engines import router_preset
from inferform.errors import InferformError
from inferform.planner.group import _fits, _proven_max
from tests.conftest import ROOT

TARGET = """target:
  kind: local
  hardware: {gpus: [], cpu: {cores: 2}, ram_gib: RAM}
"""
SMOL = "{id: smollm2-135m-instruct, quant: Q4_1}"


def group(body: str, ram: float = 16) -> str:
    return "name: mix\n" + TARGET.replace("RAM", str(ram)) + body


def two(ctx_a: int = 2048, ctx_b: int = 2048, policy: str = "") -> str:
    return group(f"""models:
  a:
    use_case: chat
    model: {SMOL}
    context: {ctx_a}
  b:
    use_case: chat
    model: {SMOL}
    context: {ctx_b}
{policy}""")


def located_error(result, line: int, *words: str) -> None:
    assert result.code == 2, result.out + result.err
    assert re.search(rf"\.yaml:{line}(:\d+)?: ", result.err), result.err
    for word in words:
        assert word in result.err, result.err
    assert "Traceback" not in result.err


def test_an_empty_group_is_refused_at_its_line(cli, write):
    located_error(cli("validate", write(group("models: {}\n"))), 5, "at least one member")


def test_a_missing_member_file_is_refused_at_its_line(cli, write):
    path = write(group("models:\n  coder:\n    setup: nowhere.yaml\n"))
    located_error(cli("plan", path), 7, "nowhere.yaml", "does not exist")


def test_two_members_with_one_name_are_refused(cli, write):
    body = f"models:\n  a:\n    use_case: chat\n    model: {SMOL}\n  a:\n    use_case: coding\n"
    located_error(cli("validate", write(group(body))), 9, "duplicate key 'a'")


def test_a_member_on_another_target_is_refused(cli, write, tmp_path):
    (tmp_path / "far.yaml").write_text("""name: far
use_case: chat
target:
  kind: ssh
  ssh: {host: gpu-box.lan}
  hardware: {gpus: [], cpu: {cores: 8}, ram_gib: 64}
""")
    located_error(cli("validate", write(group("models:\n  far:\n    setup: far.yaml\n"))), 7,
                  "kind ssh", "one router serves every member on one machine")


def test_a_value_the_preset_would_cut_is_refused(cli, write, tmp_path):
    (tmp_path / "a;b.gguf").write_bytes(b"GGUF")
    body = "models:\n  a:\n    use_case: chat\n    model: {file: ./a;b.gguf}\n"
    located_error(cli("validate", write(group(body))), 8, "';' or '#'", "rename")


def test_a_member_name_the_router_would_rewrite_is_refused(cli, write):
    body = f"models:\n  'qwen:7b':\n    use_case: chat\n    model: {SMOL}\n"
    located_error(cli("validate", write(group(body))), 6, "qwen:7b")


def test_preload_must_name_members(cli, write):
    located_error(cli("validate", write(two(policy="policy:\n  preload: [c]\n"))), 15, "no member")


def test_the_example_group_plans_with_its_proof(cli):
    result = cli("plan", str(ROOT / "setups" / "two-small.yaml"), "--json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert plan["kind"] == "group" and [m["name"] for m in plan["members"]] == ["smol", "gemma"]
    assert plan["engine"]["argv"][plan["engine"]["argv"].index("--models-max") + 1] == "2"
    sections = router_preset.parse(plan["preset"])
    assert sections["smol"]["load-on-startup"] == "true" and "load-on-startup" not in sections["gemma"]
    for m in plan["members"]:
        assert sections[m["name"]] == m["preset"] and m["preset"]["fit"] == "off"
        assert "alias" not in m["preset"] and "host" not in m["preset"] and "port" not in m["preset"]


def test_a_budget_for_one_member_loads_one_and_says_which_pairs_do_not_fit(cli, write):
    result = cli("plan", write(two(16384, 16384), ), "--json")
    assert result.code == 0, result.err
    roomy = json.loads(result.out)["residency"]
    assert roomy["max_loaded"] == 2
    tight = cli("plan", write(group(two(8192, 8192)[len(group("")):], ram=1.0)), "--json")
    assert tight.code == 0, tight.err
    r = json.loads(tight.out)["residency"]
    assert r["max_loaded"] == 1 and r["not_fitting"] == [["a", "b"]] and r["fitting"] == []


def test_max_loaded_above_what_fits_exits_2_with_numbers(cli, write):
    body = two(8192, 8192, "policy:\n  max_loaded: 2\n")[len(group("")):]
    located_error(cli("plan", write(group(body, ram=1.0))), 15, "only 1", "GiB", "budget")


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=6),
       st.integers(0, 120), st.integers(0, 120), st.integers(0, 10))
def test_proven_max_is_the_largest_k_whose_every_k_set_fits(rows, gpu_cap, host_cap, router):
    """The top-K shortcut agrees with trying every set of K members."""
    rows = [list(r) for r in rows]
    limits, fixed = [gpu_cap, host_cap], [0, router]
    brute = 0
    for k in range(1, len(rows) + 1):
        if all(_fits(rows, c, limits, fixed) for c in itertools.combinations(range(len(rows)), k)):
            brute = k
        else:
            break
    assert _proven_max(rows, limits, fixed) == brute


def test_sections_come_from_the_argv_flag_by_flag():
    argv = ["llama-server", "-m", "${INFERFORM_MODEL_DIR}/x.gguf", "--alias", "x", "-c", "4096", "-np", "2",
            "--no-kv-unified", "-ot", "blk\\.1\\.ffn=CPU", "-ot", "blk\\.2\\.ffn=CPU", "--fit", "off",
            "--host", "${INFERFORM_ENGINE_HOST}", "--port", "${INFERFORM_ENGINE_PORT}",
            "--api-key-file", "${INFERFORM_API_KEY_FILE}"]
    section = router_preset.section("x", argv)
    assert section == {"model": "${INFERFORM_MODEL_DIR}/x.gguf", "ctx-size": "4096", "parallel": "2",
                       "kv-unified": "false", "override-tensor": "blk\\.1\\.ffn=CPU,blk\\.2\\.ffn=CPU",
                       "fit": "off"}
    with pytest.raises(InferformError, match="cannot write"):
        router_preset.section("x", [*argv, "--lora-scaled", "a.gguf", "0.5"])
    with pytest.raises(InferformError, match="appears twice"):
        router_preset.section("x", [*argv, "-c", "8192"])


@pytest.mark.parametrize(("sections", "models_max", "why"), [
    ({"a": {"model": "/m/a;b.gguf"}}, 2, "';', '#'"),
    ({"a": {"model": "/m/a.gguf", "models-max": "1"}}, 2, "router owns"),
    ({"a": {"model": "/m/a.gguf", "api-key": "x"}}, 2, "router owns"),
    ({"a": {"model": "/m/a.gguf", "bogus-key": "1"}}, 2, "not a key llama-server knows"),
    ({"a": {"ctx-size": "4096"}}, 2, "names no model"),
    ({"a": {"model": "/m/a.gguf", "load-on-startup": "true"}}, 0, "refuses to start"),
    ({"a": {"model": "/m/a", "load-on-startup": "true"}, "b": {"model": "/m/b", "load-on-startup": "true"}}, 1,
     "refuses to start"),
    ({"A": {"model": "/m/a"}, "a": {"model": "/m/b"}}, 2, "differ only in case"),
    ({"*": {"sleep-idle-seconds": "60"}}, 2, "no member section"),
])
def test_the_preset_traps_are_refused(sections, models_max, why):
    with pytest.raises(InferformError, match=re.escape(why)):
        router_preset.validate(sections, models_max=models_max)


def test_the_reader_sees_what_the_router_sees():
    text = router_preset.render({"*": {"sleep-idle-seconds": "600"}, "a": {"model": "/m/a.gguf", "c": "1"}})
    assert router_preset.parse(text) == {"*": {"sleep-idle-seconds": "600"}, "a": {"model": "/m/a.gguf", "c": "1"}}
    with pytest.raises(InferformError, match="appears twice"):
        router_preset.parse("[a]\nmodel = x\nmodel = y\n")


def test_render_writes_the_router_files_and_the_key_goes_by_environment(tmp_path, write):
    from inferform.pipeline import plan_group_setup
    from inferform.render import render_group, router_generation

    body = two()[len(group("")):].replace("models:", "serve: {host: 0.0.0.0, port: 8090}\nmodels:")
    _, plan = plan_group_setup(write(group(body)))
    assert plan.serve.api_key_required
    for m in plan.members:
        assert "api-key-file" not in m.preset, "the key goes to the router by LLAMA_API_KEY, not per member"
    written = {p.name: p for p in render_group(plan, tmp_path / "out", "/srv/models")}
    run = written["run.sh"].read_text()
    assert 'LLAMA_API_KEY=$(cat "${INFERFORM_API_KEY_FILE}")' in run and "export LLAMA_API_KEY" in run
    assert "--models-preset models.ini --models-max 2" in run
    assert router_generation(plan) in run, "run.sh names the router's generation, not the plan"
    assert written["models.ini"].read_text() == plan.preset
    bad = plan.model_copy(update={"preset": plan.preset.replace("[b]", "[b]\nbogus = 1")})
    with pytest.raises(InferformError, match="bogus"):
        render_group(bad, tmp_path / "bad", "/srv/models")
    with pytest.raises(InferformError, match="';', '#'"):
        render_group(plan, tmp_path / "cut", "/srv/mod;els")


def test_a_preset_only_change_keeps_the_router_generation(write):
    from inferform.pipeline import plan_group_setup
    from inferform.render import plan_hash, router_generation
    from inferform.views.plan_diff import group_diff_lines

    _, before = plan_group_setup(write(two(2048, 2048), "a.yaml"))
    _, after = plan_group_setup(write(two(2048, 1024), "b.yaml"))
    assert plan_hash(before) != plan_hash(after) and router_generation(before) == router_generation(after)
    lines = group_diff_lines(before.model_dump(mode="json"), after)
    assert lines[0].startswith("~ member b restarts: ") and "ctx-size 2048 -> 1024" in lines[0]
    assert not any("member a" in line for line in lines) and not any("router" in line for line in lines)
    _, fewer = plan_group_setup(write(two(policy="policy:\n  max_loaded: 1\n"), "c.yaml"))
    assert router_generation(fewer) != router_generation(before)
    assert "the router restarts" in "\n".join(group_diff_lines(before.model_dump(mode="json"), fewer))


def test_bench_measures_a_group_one_member_at_a_time(write):
    from inferform.bench.client import Target
    from inferform.bench.target import member_target
    from inferform.pipeline import plan_group_setup

    _, plan = plan_group_setup(write(two()))
    target = Target(endpoint="http://127.0.0.1:1/v1", api_key="none", setup="mix", plan=plan.model_dump(mode="json"))
    picked = member_target(target, "b")
    assert picked.model == "b" and picked.plan == plan.members[1].plan.model_dump(mode="json")
    with pytest.raises(InferformError, match="one member at a time"):
        member_target(target, None)
    with pytest.raises(InferformError, match="no member named 'c'"):
        member_target(target, "c")


def test_a_member_too_big_for_the_machine_exits_2_with_its_name(cli, write):
    result = cli("plan", write(group(two(32768, 2048)[len(group("")):], ram=0.4)))
    assert result.code == 2 and "member 'a'" in result.err, result.err


def _gpu_group(gpus: str, ram: float, ctx: int, model: str = "qwen3-8b") -> str:
    members = "".join(f"""  {n}:
    use_case: chat
    model: {{id: {model}, quant: Q4_K_M}}
    context: {ctx}
""" for n in ("a", "b", "c"))
    return f"""name: gpus
target:
  kind: local
  hardware: {{gpus: [{gpus}], cpu: {{cores: 8}}, ram_gib: {ram}}}
models:
{members}"""


def _largest_k(dims: list[list[int]], caps: list[int], fixed: list[int]) -> int:
    """From the plan's own figures: the most members whose biggest-k sums fit every dimension."""
    k = 0
    while k < len(dims[0]) and all(sum(sorted(d, reverse=True)[:k + 1]) + f <= c
                                   for d, c, f in zip(dims, caps, fixed, strict=True)):
        k += 1
    return k


def test_each_gpu_is_its_own_budget(cli, write):
    result = cli("plan", write(_gpu_group("{name: RTX 4090, count: 2}", 64, 8192, "qwen3-32b")), "--json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    r, members = plan["residency"], plan["members"]
    assert len(r["gpu_budget_bytes"]) == 2 and len(r["worst_case_gpu_bytes"]) == 2
    for m in members:
        assert len(m["gpu_bytes"]) == 2 and sum(m["gpu_bytes"]) == m["plan"]["memory"]["gpu"]["total_bytes"]
    dims = [[m["gpu_bytes"][0] for m in members], [m["gpu_bytes"][1] for m in members],
            [m["host_bytes"] for m in members]]
    caps = [*r["gpu_budget_bytes"], r["host_budget_bytes"]]
    assert r["max_loaded"] == _largest_k(dims, caps, [0, 0, r["router_bytes"]]) == 2
    assert r["not_fitting"] == [["a", "b", "c"]]


def test_apple_unified_memory_counts_gpu_and_host_together(cli, write):
    result = cli("plan", write(_gpu_group("{name: M1 Max}", 64, 8192, "qwen3-32b")), "--json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    r, members = plan["residency"], plan["members"]
    assert r["unified"] is True and len(r["gpu_budget_bytes"]) == 1
    dims = [[m["gpu_bytes"][0] for m in members], [m["gpu_bytes"][0] + m["host_bytes"] for m in members]]
    caps = [r["gpu_budget_bytes"][0], r["host_budget_bytes"]]
    assert r["max_loaded"] == _largest_k(dims, caps, [0, r["router_bytes"]]) == 2


def test_plan_member_shows_that_members_whole_plan(cli):
    group = ROOT / "setups" / "two-small.yaml"
    whole = json.loads(cli("plan", str(group), "--json").out)
    one = cli("plan", str(group), "--member", "gemma", "--json")
    assert one.code == 0, one.err
    assert json.loads(one.out) == whole["members"][1]["plan"]
    assert "gemma-3-270m-it" in cli("plan", str(group), "--member", "gemma").out
    missing = cli("plan", str(group), "--member", "nope")
    assert missing.code == 2 and "--member one of: smol, gemma" in missing.err
    assert cli("plan", str(ROOT / "setups" / "demo.yaml"), "--member", "x").code == 2


def test_a_name_applied_as_one_setup_is_not_reapplied_as_a_group(cli, write):
    import datetime as dt

    from inferform.state import AppliedState, write_state

    path = write(two(), "mix.yaml")
    write_state(AppliedState(setup="mix", setup_file=path, plan_hash="0" * 16, applied_at=dt.datetime.now(dt.UTC),
                             endpoint="http://127.0.0.1:1/v1", engine="llama.cpp", plan={"model": {"file": "x"}}))
    result = cli("apply", path)
    assert result.code == 2 and "applied as one setup" in result.err and "destroy" in result.err, result.err


def test_max_loaded_beyond_the_member_count_is_the_member_count(cli, write):
    result = cli("plan", write(two(policy="policy:\n  max_loaded: 5\n")), "--json")
    assert result.code == 0, result.err
    r = json.loads(result.out)["residency"]
    assert r["max_loaded"] == 2 and r["decided_by"] == "policy"


def _two_8b(policy: str, coder_context: str = "") -> str:
    return f"""name: share
target:
  kind: local
  hardware: {{gpus: [{{name: RTX 4060}}], cpu: {{cores: 8}}, ram_gib: 32}}
models:
  coder:
    use_case: coding
    model: {{id: qwen3-8b}}
{coder_context}  chat:
    use_case: chat
    model: {{id: qwen3-8b}}
{policy}"""


def test_an_explicit_max_loaded_plans_auto_members_in_their_share(cli, write):
    alone = json.loads(cli("plan", write(_two_8b(""), "a.yaml"), "--json").out)
    assert alone["residency"]["max_loaded"] == 1, "planned alone, the two 8B members do not fit an 8 GB card together"
    result = cli("plan", write(_two_8b("policy: {max_loaded: 2}\n"), "b.yaml"), "--json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    r = plan["residency"]
    assert r["max_loaded"] == r["proven_max"] == 2 and r["decided_by"] == "policy"
    for before, after in zip(alone["members"], plan["members"], strict=True):
        assert after["gpu_bytes"][0] <= r["gpu_budget_bytes"][0] // 2
        assert after["plan"]["speed"]["generate_tps"] <= before["plan"]["speed"]["generate_tps"]
    assert any("planned in 1/2 of the memory" in line and "tok/s" in line for line in plan["explanations"])


def test_a_pinned_member_is_not_shrunk_for_max_loaded(cli, write):
    result = cli("plan", write(_two_8b("policy: {max_loaded: 2}\n", "    context: 32768\n")))
    assert result.code == 2 and "only 1" in result.err, result.err


def test_commands_that_take_one_setup_say_so_for_a_group(cli):
    group = str(ROOT / "setups" / "two-small.yaml")
    for args in (("models", "--fits", group), ("hardware", group)):
        result = cli(*args)
        assert result.code == 2 and "is a group file" in result.err and "--member" in result.err, result.err
