"""Plan → argv for llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`), 0.3.36.

Flag names are the field names of `llama_cpp/server/settings.py` (`Settings = ServerSettings + ModelSettings`,
turned into `--<field>` options by `server/cli.py`; booleans take a value: `--flash_attn true`). Every value the
plan decides, and every server default that allocates memory, is passed explicitly:

- `--logits_all true` (its server default): llama.py then keeps a NumPy `scores` array of n_ctx × n_vocab float32
  and every prompt token requests logits, so the output buffer grows to n_batch × n_vocab × 4. The planner
  counts both (planner/memory.py); with `false` logprobs requests fail.
- `--cache false`: no prompt cache (its RAM variant would hold up to `cache_size`, 2 GiB by default).
- `--use_mmap true --use_mlock false`: its default mlock (`llama_supports_mlock()`) depends on RLIMIT_MEMLOCK of
  the machine it lands on; mapping without pinning behaves the same everywhere, like llama-server.
- `--verbose true`: llama.cpp's buffer-size lines (`model buffer size`, `KV buffer size`, `output buffer size`,
  `compute buffer size`) reach stderr only then (llama_cpp/_logger.py drops INFO when not verbose).

Not settable in this server, so the planner models them as they are (planner/memory.py RunConfig): one sequence
(n_seq_max = 1, kv_unified false), a full-size sliding-window cache (it never sets `swa_full`, libllama's default is
true), no tensor overrides and no `--n-cpu-moe` (so no MoE expert offload), no server-side sampling defaults (the
plan's sampling values are what clients should send).

Secrets and environment: the API key is never put in argv. The server is a pydantic `BaseSettings`, so it reads
`API_KEY` from the environment (`launch_env` builds that from the key file). Two more environment hazards:
`__main__.py` lets `HOST`/`PORT` override `--host/--port` (`uvicorn.run(host=os.getenv("HOST", ...))`) and
`CONFIG_FILE` replace every flag, and any `ModelSettings` field not given on the command line is read from a
same-named variable (e.g. `N_GPU_LAYERS`); passing every value explicitly covers the second, `launch_env` (and
`launch_script_env`, for the run.sh inferform apply places) removes the first.

argv[0] is `python`: the interpreter of the engine venv (the engine role's python_venv.py). Run with that venv's bin dir
first on PATH, or replace argv[0] with `ensure_llama_cpp_python(...) / "bin" / "python"`.
"""

import os
from collections.abc import Mapping
from pathlib import Path

from inferform.catalog.quants import load_ggml_types
from inferform.engines.launch import Launch
from inferform.units import MIB

PYTHON = "python"
MODULE = "llama_cpp.server"
API_KEY_ENV = "API_KEY"
ENV_OVERRIDING_ARGV = ("HOST", "PORT", "CONFIG_FILE")  # read by llama_cpp/server/__main__.py after parsing argv
# Health (engines/registry.py): no /health route, but the OpenAPI document answers 200 (without the API key) once
# create_app() has run, and create_app() loads the model before uvicorn binds the port, so an answer means the model
# is in memory.
READY = "Uvicorn running on"  # uvicorn's line once the model is loaded and the socket is bound


PyServerArgs = Launch  # the fields it reads: see argv()


def ggml_type_id(name: str) -> int:
    """`--type_k/--type_v` take the ggml enum value (f16 → 1, q8_0 → 8), not a name."""
    types = load_ggml_types()
    key = name.upper()
    if key not in types:
        raise ValueError(f"unknown KV cache type {name!r}")
    return types[key].id


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _num(value: float) -> str:
    return f"{value:g}"


def argv(args: Launch, python: str = PYTHON) -> list[str]:
    out = [python, "-m", MODULE, "--model", args.model_path]
    if args.alias:
        out += ["--model_alias", args.alias]
    out += ["--n_ctx", str(args.n_ctx), "--n_batch", str(args.batch), "--n_ubatch", str(args.ubatch)]
    out += ["--n_gpu_layers", str(args.n_gpu_layers)]
    if args.tensor_split:
        out += ["--tensor_split", *(_num(s) for s in args.tensor_split)]
    out += ["--flash_attn", _bool(args.flash_attn), "--type_k", str(ggml_type_id(args.cache_type_k)),
            "--type_v", str(ggml_type_id(args.cache_type_v)), "--offload_kqv", "true"]
    out += ["--n_threads", str(args.threads), "--n_threads_batch", str(args.threads)]
    out += ["--logits_all", _bool(args.logits_all), "--embedding", "false", "--cache", "false",
            "--use_mmap", "true", "--use_mlock", "false", "--verbose", _bool(args.verbose)]
    out += ["--host", args.host, "--port", str(args.port)]
    out += list(args.extra)
    return out


def launch_env(base: Mapping[str, str] | None = None, api_key_file: str | Path | None = None) -> dict[str, str]:
    """The environment to start the server with: HOST/PORT removed (they would override argv), API_KEY set from
    the key file when there is one (never on the command line, where `ps` shows it)."""
    env = dict(os.environ if base is None else base)
    drop = {*ENV_OVERRIDING_ARGV, API_KEY_ENV}  # pydantic-settings matches names case-insensitively
    env = {k: v for k, v in env.items() if k.upper() not in drop}
    if api_key_file is not None:
        key = Path(api_key_file).read_text().strip()
        if not key:
            raise ValueError(f"API key file {api_key_file} is empty")
        env[API_KEY_ENV] = key
    return env


def launch_script_env(loopback: bool) -> tuple[tuple[str, ...], str | None]:
    """What run.sh must do to the environment before it execs the server: the variables to unset (those that
    override argv, and a stray API_KEY), and the variable to fill from "${INFERFORM_API_KEY_FILE}" (None on
    loopback, where the plan asks for no key). Lower-case spellings are unset too (pydantic-settings ignores case)."""
    names = (*ENV_OVERRIDING_ARGV, API_KEY_ENV)
    return (*names, *(n.lower() for n in names)), None if loopback else API_KEY_ENV


def plan_notes(launch: Launch, memory) -> list[str]:
    """What llama-cpp-python does differently, in the plan's words (its memory rules: planner/memory.py)."""
    notes = ["llama-cpp-python: one conversation at a time (n_seq_max 1); no expert offload or tensor overrides; "
             "sliding-window layers get a full-context cache (it keeps libllama's swa_full default); sampling "
             "values are not server defaults there: clients send them with each request"]
    if launch.logits_all:
        notes.append(f"llama-cpp-python keeps logits for every token (logits_all, needed for logprobs): host "
                     f"compute includes its NumPy scores array ({memory.host.scores / MIB:,.0f} MiB = n_ctx × "
                     f"vocabulary × 4 B, filled as the conversation grows) and an output buffer that grows to n_batch "
                     f"rows ({memory.host.output / MIB:,.0f} MiB)")
    if launch.api_key_file is not None:
        notes.append(f"llama-cpp-python reads its API key from the {API_KEY_ENV} environment variable, never argv")
    return notes
