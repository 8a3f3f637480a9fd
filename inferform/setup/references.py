"""Checks that need the catalogs or the filesystem: everything a setup names must exist.

Schema validation (setup/spec.py) knows shapes of values; this module knows whether a model id, a GPU name, a quant
or a local model file is real. Every problem is located at its line in the setup.
"""

from pathlib import Path

from inferform.catalog.names import canonical_gpu, gpu_names, instance_type_names, model_ids, quant_names
from inferform.engines.registry import DEFAULT, engine
from inferform.errors import InferformError, Problem, did_you_mean
from inferform.setup.sources import is_hf_snapshot, model_file_path
from inferform.setup.spec import Setup
from inferform.setup.yamlpos import Located


def _not_a_file(path: Path) -> str:
    """Why a path that is no regular file cannot be a model: a FIFO or a device would be read forever."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISDIR(mode):
        return "is a directory; name the .gguf file in it"
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else \
        "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
    return f"is {kind}, not a regular file; a model is a .gguf file"


def find_problems(setup: Setup, located: Located) -> list[Problem]:
    problems: list[Problem] = []

    def add(message: str, path: tuple, hint: str | None = None) -> None:
        line, col = located.where(path)
        problems.append(Problem(message, located.file, line, col, hint))

    quants = quant_names()
    if setup.model is not None:
        if setup.model.id is not None and setup.model.id not in model_ids():
            add(f"unknown model id {setup.model.id!r}", ("model", "id"),
                did_you_mean(setup.model.id, model_ids()) or "run `inferform models`, or give model.file")
        if setup.model.file is not None:
            path = model_file_path(located.file, setup.model.file)
            checkpoint = setup.engine in ("vllm", "auto") and path is not None and (path / "config.json").is_file()
            if is_hf_snapshot(setup.model.file) and setup.engine not in ("vllm", "auto"):
                add(f"model.file {setup.model.file!r} is a whole repository; {setup.engine} serves one GGUF file",
                    ("model", "file"), "name the file (hf://org/repo/file.gguf), or use engine: vllm")
            elif path is not None and not path.is_file() and not checkpoint:
                add(f"model file {str(path)!r} {_not_a_file(path)}", ("model", "file"),
                    "check the path (relative paths are relative to the setup file), or use hf://org/repo/file.gguf")
    for where, quant in ((("model", "quant"), setup.model.quant if setup.model else "auto"),
                         (("overrides", "quant"), setup.overrides.quant)):
        formats = {"BF16", "FP8", "MXFP4_MOE", "AWQ", "GPTQ", "NVFP4"} if setup.engine == "vllm" else set()
        if quant and quant != "auto" and quant.upper() not in {*quants, *formats}:
            add(f"unknown quantization {quant!r}", where,
                did_you_mean(quant.upper(), quants) or f"one of: {', '.join(sorted(quants))}")
    hardware = setup.target.hardware
    for i, gpu in enumerate(hardware.gpus if hardware else []):
        if canonical_gpu(gpu.name) is None and gpu.vram_gib is None:
            close = did_you_mean(gpu.name, set(gpu_names().values()))
            add(f"unknown GPU {gpu.name!r} and no vram_gib given", ("target", "hardware", "gpus", i, "name"),
                (close + " Or " if close else "") + "give vram_gib (and bandwidth_gbs) for a GPU the catalog lacks")
    if setup.target.is_cloud and setup.target.instance_type != "auto":
        types = instance_type_names()
        if setup.target.instance_type not in types:
            add(f"unknown instance type {setup.target.instance_type!r}", ("target", "instance_type"),
                did_you_mean(setup.target.instance_type, types) or "use instance_type: auto")
    if setup.target.is_cloud and setup.serve.is_loopback:
        add(f"serve.host is {setup.serve.host}: on a cloud instance the endpoint would be unreachable from outside "
            "it", ("serve", "host"), "leave serve.host out, or set 0.0.0.0: apply generates an API key and the "
                                     "security group admits only target.allowed_cidrs")
    eng = engine(DEFAULT if setup.engine == "auto" else setup.engine)
    for knob, can in (("n_cpu_moe", eng.moe_offload), ("tensor_split", eng.tensor_split)):
        if not can and getattr(setup.overrides, knob) is not None:
            add(f"overrides.{knob} is not supported by {eng.name}", ("overrides", knob),
                "use engine: llama.cpp for MoE offload and tensor splits")
    return problems


def check_references(setup: Setup, located: Located) -> None:
    problems = find_problems(setup, located)
    if problems:
        raise InferformError(problems)
