"""Plan → llama-server argv. Typed, explicit, in the order a human would read it.

Every planned value is passed, and llama.cpp's own fitting is turned off (`--fit off`), so what runs is
what was planned; its defaults that allocate memory behind the plan's back (`-np auto`, the 8 GiB prompt
cache) are pinned too. Flags the plan does not set are not appended.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

BINARY = "llama-server"
HEALTH_PATH = "/health"  # 503 while the model loads, 200 once it can serve


class ServerArgs(NamedTuple):
    model_path: str
    n_ctx: int
    n_gpu_layers: int
    threads: int
    parallel: int
    batch: int
    ubatch: int
    flash_attn: bool
    cache_type_k: str
    cache_type_v: str
    host: str
    port: int | str  # a number, or the ${INFERFORM_ENGINE_PORT} the front fills in
    n_cpu_moe: int = 0
    tensor_overrides: tuple[str, ...] = ()
    tensor_split: tuple[float, ...] = ()
    cache_ram_mib: int = 0
    ctx_checkpoints: int | None = None  # --ctx-checkpoints per slot (the plan counts their host RAM)
    sampling: Mapping[str, float] = MappingProxyType({})
    api_key_file: str | None = None
    alias: str | None = None
    extra: tuple[str, ...] = ()


_SAMPLING_FLAGS = {"temperature": "--temp", "top_p": "--top-p", "top_k": "--top-k", "min_p": "--min-p",
                   "repeat_penalty": "--repeat-penalty"}


def _num(value: float) -> str:
    return f"{value:g}"


def argv(args: ServerArgs, binary: str = BINARY) -> list[str]:
    out = [binary, "-m", args.model_path]
    if args.alias:
        out += ["--alias", args.alias]
    out += ["-c", str(args.n_ctx), "-np", str(args.parallel), "--no-kv-unified"]
    out += ["-ngl", str(args.n_gpu_layers)]
    if args.n_cpu_moe:
        out += ["--n-cpu-moe", str(args.n_cpu_moe)]
    for pattern in args.tensor_overrides:
        out += ["-ot", pattern]
    if args.tensor_split:
        out += ["-ts", ",".join(_num(s) for s in args.tensor_split)]
    out += ["-fa", "on" if args.flash_attn else "off", "-ctk", args.cache_type_k, "-ctv", args.cache_type_v]
    out += ["-b", str(args.batch), "-ub", str(args.ubatch), "-t", str(args.threads)]
    out += ["--cache-ram", str(args.cache_ram_mib), "--fit", "off"]
    if args.ctx_checkpoints is not None:
        out += ["--ctx-checkpoints", str(args.ctx_checkpoints)]
    for key, flag in _SAMPLING_FLAGS.items():
        if key in args.sampling:
            out += [flag, _num(args.sampling[key])]
    out += ["--host", args.host, "--port", str(args.port)]
    if args.api_key_file:
        out += ["--api-key-file", args.api_key_file]
    out += list(args.extra)
    return out
