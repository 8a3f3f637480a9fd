"""The engines inferform can run, and what each can do: the one place the rest of the house asks.

Why a registry: the planner, render, apply and status used to branch on engine names; each now reads an Engine
row (its health path, whether it serves several conversations, offloads MoE experts, ...) and calls the engine's
own module for what only it knows (its argv, the environment its launch script fixes, what the plan should say
about it). Adding an engine is its module plus one row here (and, for apply, the engine role's task file that
installs it). Light on purpose: the setup schema imports it at start-up.
"""

import importlib
from types import ModuleType
from typing import NamedTuple

PINNED = "0.3.36"
"""llama-cpp-python version whose vendored llama.cpp both llama.cpp engines run; bump with the memory model
(the engine role's build scripts carry the same pin as their default; tests/test_engines.py holds them equal)."""


class Engine(NamedTuple):
    name: str  # as setup.yaml's `engine:` and the plan's engine.name spell it
    module: str  # argv(Launch), launch_script_env(loopback), plan_notes(Launch, memory)
    summary: str  # how the setup schema describes it
    health_path: str  # answers 200 once the model is loaded and the server can serve
    slots: bool  # several conversations at once (-np); False: one sequence (n_seq_max 1)
    moe_offload: bool  # MoE experts kept in RAM by layer or tensor pattern (--n-cpu-moe, -ot)
    tensor_split: bool  # the setup may pin how layers split across GPUs (overrides.tensor_split)
    ctx_checkpoints: bool  # keeps context checkpoints for sliding-window and recurrent models
    swa_full: bool  # sliding-window layers get a cache as long as the context (libllama's swa_full)
    all_logits: bool  # may keep logits for every token of a batch (logits_all); else one output per slot


ENGINES: dict[str, Engine] = {e.name: e for e in (
    Engine("llama.cpp", "inferform.engines.llama_cpp", "llama.cpp (llama-server)", "/health",
           slots=True, moe_offload=True, tensor_split=True, ctx_checkpoints=True, swa_full=False, all_logits=False),
    Engine("llama-cpp-python", "inferform.engines.llama_cpp_python", "llama-cpp-python", "/openapi.json",
           slots=False, moe_offload=False, tensor_split=False, ctx_checkpoints=False, swa_full=True,
           all_logits=True),
    Engine("vllm", "inferform.engines.vllm", "vLLM (many users, multi-GPU and multi-node)", "/health",
           slots=True, moe_offload=False, tensor_split=False, ctx_checkpoints=False, swa_full=False,
           all_logits=False),
)}
GGUF_ENGINES = ("llama.cpp", "llama-cpp-python")  # serve GGUF files; vllm serves safetensors checkpoints
NAMES: tuple[str, ...] = tuple(ENGINES)
DEFAULT = "llama.cpp"  # what `engine: auto` runs unless the planner picks vLLM (planner/engine_choice.py)


def engine(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; one of {', '.join(NAMES)}") from None


def engine_module(name: str) -> ModuleType:
    """The engine's own module (imported on first use: the schema needs the names, not the argv builders)."""
    return importlib.import_module(engine(name).module)
