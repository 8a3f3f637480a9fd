"""Launch: every value the planner decides that some engine's command line carries, in one typed record.

Each engine module turns it into its own argv (`argv(launch)`) and reads only the fields it has flags for; a value
an engine cannot take (slots, expert offload) is refused by the planner before a Launch is made (registry flags).
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple


class Launch(NamedTuple):
    model_path: str
    n_ctx: int
    n_gpu_layers: int
    threads: int
    batch: int
    ubatch: int
    flash_attn: bool
    cache_type_k: str
    cache_type_v: str
    host: str
    port: int | str  # a number, or the ${INFERFORM_ENGINE_PORT} the front fills in
    parallel: int = 1
    n_cpu_moe: int = 0
    tensor_overrides: tuple[str, ...] = ()
    tensor_split: tuple[float, ...] = ()
    cache_ram_mib: int = 0
    ctx_checkpoints: int | None = None  # --ctx-checkpoints per slot (the plan counts their host RAM)
    sampling: Mapping[str, float] = MappingProxyType({})
    api_key_file: str | None = None  # None on loopback: no key is asked for
    alias: str | None = None
    logits_all: bool = True  # llama-cpp-python: logits for every token (needed for logprobs)
    verbose: bool = True  # llama-cpp-python: buffer sizes reach the log only when verbose
    extra: tuple[str, ...] = ()
