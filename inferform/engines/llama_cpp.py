"""Plan → llama-server argv. Typed, explicit, in the order a human would read it.

Every planned value is passed, and llama.cpp's own fitting is turned off (`--fit off`), so what runs is
what was planned; its defaults that allocate memory behind the plan's back (`-np auto`, the 8 GiB prompt
cache) are pinned too. Flags the plan does not set are not appended.
"""

from inferform.engines.launch import Launch

BINARY = "llama-server"


ServerArgs = Launch  # the name callers and tests know


_SAMPLING_FLAGS = {"temperature": "--temp", "top_p": "--top-p", "top_k": "--top-k", "min_p": "--min-p",
                   "repeat_penalty": "--repeat-penalty"}


def _num(value: float) -> str:
    return f"{value:g}"


def argv(args: Launch, binary: str = BINARY) -> list[str]:
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


def launch_script_env(loopback: bool) -> tuple[tuple[str, ...], str | None]:
    """llama-server reads nothing from the environment that argv does not pin, and its key from --api-key-file."""
    return (), None


def plan_notes(launch: Launch, memory) -> list[str]:
    """Nothing to add: the plan's generic lines describe llama-server."""
    return []
