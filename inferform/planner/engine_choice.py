"""`engine: auto` → the engine that serves the setup, and why (the plan's first explanation).

The rule a practitioner follows: llama.cpp for one person on one machine, and wherever weights must spill into
RAM (it offloads layers and MoE experts; vLLM keeps everything on the GPUs); vLLM on NVIDIA GPUs when many requests
run at once (its continuous batching and paged KV serve them far better), or when the model needs more than one GPU
(tensor parallel, where llama.cpp's layer split makes the GPUs work in turn) — if a safetensors checkpoint of the
model exists (vLLM does not serve GGUF) and it fits in GPU memory.
"""

from inferform.hardware.profile import HardwareProfile
from inferform.setup.spec import Setup


def _checkpoint_exists(setup: Setup) -> bool:
    from inferform.catalog.models import load_models
    from inferform.setup.sources import is_hf_snapshot

    spec = setup.model
    if spec is None:
        return False
    if spec.file:
        return is_hf_snapshot(spec.file) or (not spec.file.endswith(".gguf") and not spec.file.startswith("pypi://"))
    entry = load_models().get(spec.id or "")
    return bool(entry and entry.checkpoints)


def wants_vllm(setup: Setup, hw: HardwareProfile) -> str | None:
    """Why vLLM should serve this auto setup, or None (llama.cpp)."""
    if setup.engine != "auto" or setup.target.is_cloud or not hw.gpus:
        return None
    if any(g.backend != "cuda" for g in hw.gpus) or not _checkpoint_exists(setup):
        return None
    if (setup.serve.concurrency or 1) > 1:
        return (f"engine auto → vLLM: serve.concurrency {setup.serve.concurrency} on CUDA GPUs (continuous batching "
                "and paged KV serve many requests better than llama-server's fixed slots)")
    if setup.experience == "throughput":
        return "engine auto → vLLM: throughput on CUDA GPUs, and the model has a safetensors checkpoint"
    if len(hw.gpus) > 1:
        return (f"engine auto → vLLM: {len(hw.gpus)} GPUs work at once with tensor parallel (llama.cpp's layers "
                "take turns)")
    return None


def concrete(setup: Setup) -> Setup:
    """The setup with `engine: auto` read as llama.cpp, for the GGUF planner (vLLM is chosen before it runs)."""
    if setup.engine != "auto":
        return setup
    from inferform.engines.registry import DEFAULT

    return setup.model_copy(update={"engine": DEFAULT})
