"""The engine seam: one registry row per engine, and each engine's module answering the same questions.

Adding an engine is its module plus a registry row; these checks hold every row to what the rest of the house
calls on it, and the version pin to the engine role's build scripts (which carry it as their default).
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
import yaml

from inferform.engines import scripts
from inferform.engines.launch import Launch
from inferform.engines.registry import DEFAULT, ENGINES, GGUF_ENGINES, NAMES, PINNED, engine, engine_module
from inferform.setup.spec import EngineName, Setup

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = Launch(model_path="m.gguf", n_ctx=4096, n_gpu_layers=0, threads=4, batch=512, ubatch=512, flash_attn=True,
                cache_type_k="f16", cache_type_v="f16", host="127.0.0.1", port=8081)


def test_the_setup_schema_offers_exactly_the_registered_engines() -> None:
    assert typing.get_args(EngineName) == ("auto", *NAMES) and DEFAULT in NAMES
    assert Setup.model_fields["engine"].default == "auto"  # the planner picks (planner/engine_choice.py)
    with pytest.raises(ValueError, match="unknown engine 'sglang'"):
        engine("sglang")


@pytest.mark.parametrize("name", GGUF_ENGINES)  # vllm takes a VllmLaunch: tests/test_vllm_plan.py
def test_every_engine_module_answers_what_render_apply_and_the_planner_ask(name: str) -> None:
    row, module = engine(name), engine_module(name)
    assert row.health_path.startswith("/")
    words = module.argv(LAUNCH)
    assert "m.gguf" in words and "8081" in words, words
    _, key_env = module.launch_script_env(True)
    assert key_env is None, "on loopback no key is asked for"
    assert isinstance(module.plan_notes(LAUNCH, None if name == "llama.cpp" else _memory()), list)


def test_flags_follow_what_each_engine_can_run() -> None:
    """llama-server serves slots, offloads experts and keeps checkpoints; llama-cpp-python's server none of these."""
    server, py = ENGINES["llama.cpp"], ENGINES["llama-cpp-python"]
    assert (server.slots, server.moe_offload, server.ctx_checkpoints, server.swa_full) == (True, True, True, False)
    assert (py.slots, py.moe_offload, py.ctx_checkpoints, py.swa_full, py.all_logits) == (False, False, False, True,
                                                                                           True)
    assert "-np" in engine_module("llama.cpp").argv(LAUNCH._replace(parallel=4))
    assert "-np" not in engine_module("llama-cpp-python").argv(LAUNCH._replace(parallel=4))


def test_one_version_pin_for_the_package_the_role_and_its_scripts() -> None:
    defaults = yaml.safe_load((ROOT / "roles" / "inferform_engine" / "defaults" / "main.yml").read_text())
    assert scripts.build().PINNED == scripts.python_venv().PINNED == PINNED == defaults["inferform_engine_version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", PINNED)


def test_one_vllm_pin_for_the_planner_the_role_and_its_installer() -> None:
    from inferform.engines import vllm

    defaults = yaml.safe_load((ROOT / "roles" / "inferform_engine" / "defaults" / "main.yml").read_text())
    assert scripts.vllm_venv().PINNED == vllm.PINNED == defaults["inferform_engine_vllm_version"]


def test_the_role_runs_the_scripts_inferform_loads() -> None:
    """The engine role copies its own files/ to the target; inferform loads the same files (no second copy)."""
    defaults = (ROOT / "roles" / "inferform_engine" / "defaults" / "main.yml").read_text()
    for name in ("build_llama_cpp", "python_venv"):
        assert scripts.script_path(name).is_file()
        assert f"{{{{ role_path }}}}/files/{name}.py" in defaults
    assert not (ROOT / "inferform" / "engines" / "build.py").exists()


def _memory():
    class Side:
        scores = 0
        output = 0

    class Memory:
        host = Side()

    return Memory()


@pytest.mark.parametrize("name", NAMES)
def test_the_engine_role_has_a_task_file_for_every_engine(name: str) -> None:
    """The role installs an engine with tasks/<name, '.' and '-' as '_'>.yml (its preflight looks for that file)."""
    assert (ROOT / "roles" / "inferform_engine" / "tasks" / f"{re.sub(r'[.-]', '_', name)}.yml").is_file()
