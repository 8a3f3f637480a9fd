"""The planner's search: candidate models × quants × contexts × KV types → the best placement that fits.

Pure: it takes a setup, a hardware profile and (optionally) a GGUF header already read, and returns a Plan or
raises InferformError saying what would make the setup fit.
"""

from typing import NamedTuple

from inferform.catalog.models import ModelEntry, find_model, load_models
from inferform.catalog.quants import load_quant_types
from inferform.errors import InferformError
from inferform.gguf import GGUFInfo
from inferform.hardware.profile import HardwareProfile
from inferform.planner import presets
from inferform.planner.memory import LLAMA_CPP, LLAMA_CPP_PYTHON, RunConfig, layer_bytes
from inferform.planner.model import ModelDesc, from_catalog, from_gguf
from inferform.planner.placement import Budgets, Placement, place
from inferform.planner.speed_adapter import SpeedResult, predict_speed
from inferform.spec import Setup

KV_TYPES = ("f16", "q8_0")
REPACK_X86 = frozenset({"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"})  # ggml-cpu repack kernels on AVX2 (repack.cpp)


class Choice(NamedTuple):
    model: ModelDesc
    entry: ModelEntry | None
    file: str
    placement: Placement
    speed: SpeedResult
    context_per_slot: int
    context_goal: int
    quality_rank: int
    meets_floor: bool


def repack_types(hw: HardwareProfile) -> frozenset[str]:
    """Weights ggml-cpu copies into a CPU_REPACK buffer: only on CPU-only runs (a GPU build maps host weights)."""
    if hw.gpus or "avx2" not in hw.cpu.flags:
        return frozenset()
    return REPACK_X86 | ({"Q2_K"} if "avx512f" in hw.cpu.flags else frozenset())


def budgets(hw: HardwareProfile) -> Budgets:
    reserve = presets.reserve()
    unified = any(g.unified_memory for g in hw.gpus)
    if unified:
        return Budgets([reserve.gpu_budget(hw.gpus[0].vram_bytes, True)], reserve.host_budget(hw.ram_bytes), True)
    gpus = []
    for g in hw.gpus:
        cap = reserve.gpu_budget(g.vram_bytes, False)
        if g.free_vram_bytes is not None:
            cap = min(cap, g.free_vram_bytes - reserve.gpu_bytes)
        gpus.append(max(cap, 0))
    return Budgets(gpus, reserve.host_budget(hw.ram_bytes))


def quant_from_gguf(info: GGUFInfo, fallback: str) -> str:
    ftype = info.metadata.get("general.file_type")
    for q in load_quant_types().values():
        if q.ftype is not None and q.ftype == ftype:
            return q.name
    return fallback


def _candidates(setup: Setup, gguf: GGUFInfo | None) -> list[tuple[ModelDesc | None, ModelEntry | None, str, str]]:
    """(description if already known, catalog entry, quant, file) in the order worth trying."""
    spec = setup.model
    pinned = setup.overrides.quant or (spec.quant if spec and spec.quant != "auto" else None)
    entry = find_model(spec.id) if spec and spec.id else None
    if gguf is not None:
        quant = quant_from_gguf(gguf, pinned or "unknown")
        source = spec.file if spec and spec.file else gguf.path  # the plan names the source; apply fetches it
        return [(from_gguf(gguf, quant), entry, quant, source)]
    if spec and spec.file and entry is None:
        raise InferformError.single(
            "the planner needs the model's shapes: give model.id for a remote file, or a local GGUF path",
            hint="inferform models lists catalog ids; a downloaded file can be given as model.file: ./x.gguf")
    entries = [entry] if entry else [m for m in load_models().values() if setup.use_case in m.use_cases]
    ranks = {q.name: q.quality_rank for q in load_quant_types().values()}
    out = []
    for e in entries:
        quants = [pinned.upper()] if pinned else [q.quant for q in e.quants]
        for q in sorted(quants, key=lambda name: -ranks.get(name, 0)):
            listed = e.quant(q)
            file = spec.file if spec and spec.file else (listed.file if listed else f"{e.id}:{q}")
            out.append((None, e, q, file))
    return out


def _contexts(setup: Setup, trained: int, goals: presets.Goals, parallel: int) -> list[int]:
    """Per-slot context sizes to try, largest first. overrides.n_ctx is llama-server's -c: the total over slots;
    setup.context is what one conversation needs."""
    if setup.overrides.n_ctx:
        return [max(setup.overrides.n_ctx // parallel, 1)]
    if isinstance(setup.context, int):
        return [setup.context]
    top = min(goals.context, trained)
    floor = min(goals.min_context, top)
    out, ctx = [], top
    while ctx >= floor:
        out.append(ctx)
        ctx //= 2
    return out or [top]


def search(setup: Setup, hw: HardwareProfile, gguf: GGUFInfo | None = None) -> tuple[Choice, list[Choice]]:
    """The chosen configuration and the feasible runners-up (for `models --fits` and the plan's knobs)."""
    goals = presets.goals(setup.use_case, setup.experience)
    caps = budgets(hw)
    o = setup.overrides
    engine_cfg = _engine_config(setup)
    parallel = (o.parallel or goals.parallel) if setup.engine == LLAMA_CPP else 1
    ubatch = o.ubatch or goals.ubatch
    # llama-cpp-python with logits_all grows its output buffer to n_batch rows of logits: no bigger than a ubatch
    batch = o.batch or (goals.batch if setup.engine == LLAMA_CPP else ubatch)
    fa = o.flash_attn if o.flash_attn is not None else True
    kv_types = [(o.cache_type_k or t, o.cache_type_v or t) for t in KV_TYPES] if fa else [("f16", "f16")]
    if o.cache_type_k or o.cache_type_v:
        kv_types = kv_types[:1]
    if not fa and kv_types[0][1] not in ("f16", "f32", "bf16"):
        raise InferformError.single("a quantized V cache needs flash attention",
                                    hint="remove overrides.flash_attn: false, or use cache_type_v: f16")
    repack = repack_types(hw)
    ranks = {q.name: q.quality_rank for q in load_quant_types().values()}
    feasible: list[Choice] = []
    closest: Choice | None = None
    settled: set[str] = set()  # models whose best quant already fits fully: lower quants cannot beat it
    for desc, entry, quant, file in _candidates(setup, gguf):
        key = entry.id if entry else file
        if key in settled:
            continue
        model = desc or from_catalog(entry, quant)
        lb = layer_bytes(model, repack)
        trained = model.context_trained or (entry.context_trained if entry else 4096)
        contexts = _contexts(setup, trained, goals, parallel)
        for ctx in contexts:
            for ctk, ctv in kv_types:
                cfg = RunConfig(n_ctx=ctx * parallel, parallel=parallel, ubatch=ubatch, batch=batch,
                                cache_type_k=ctk, cache_type_v=ctv, flash_attn=fa, repack=repack,
                                tensor_split=tuple(o.tensor_split or ()), **engine_cfg)
                placement = place(model, cfg, caps, lb, allow_moe_offload=setup.engine == LLAMA_CPP,
                                  pinned_ngl=o.n_gpu_layers, pinned_cpu_moe=o.n_cpu_moe)
                speed = predict_speed(model, placement, hw, lb)
                choice = Choice(model, entry, file, placement, speed, ctx, contexts[0], ranks.get(quant, 0),
                                speed.generate_tps >= goals.min_generate_tps)
                if placement.fits:
                    feasible.append(choice)
                    complete = (placement.all_on_gpu or not caps.gpu) and choice.meets_floor \
                        and ctx >= contexts[0] and ctk == "f16"
                    if complete and setup.experience != "throughput":
                        settled.add(key)
                    break  # f16 KV fits: a quantized cache would only lose quality
                if closest is None or _overshoot(choice, caps) < _overshoot(closest, caps):
                    closest = choice
            else:
                continue
            break  # the largest context that fits, for this model and quant
    if not feasible:
        raise _does_not_fit(setup, hw, caps, closest)
    feasible.sort(key=lambda c: _score(c, goals.prefer, setup.experience), reverse=True)
    return feasible[0], feasible[1:]


def _engine_config(setup: Setup) -> dict:
    """RunConfig fields the engine decides. llama-cpp-python runs one sequence and has no expert offload: a setup
    pinning either for it cannot be run as written."""
    if setup.engine == LLAMA_CPP:
        return {}
    o = setup.overrides
    if o.parallel and o.parallel > 1:
        raise InferformError.single(f"{setup.name}: llama-cpp-python serves one conversation at a time "
                                    f"(overrides.parallel: {o.parallel})",
                                    hint="use engine: llama.cpp for parallel slots, or remove overrides.parallel")
    if o.n_cpu_moe:
        raise InferformError.single(f"{setup.name}: llama-cpp-python cannot keep MoE experts in RAM "
                                    "(no --n-cpu-moe or tensor overrides)",
                                    hint="use engine: llama.cpp for expert offload, or remove overrides.n_cpu_moe")
    logits_all = o.logits_all if o.logits_all is not None else True  # the server's default: logprobs work
    return {"engine": LLAMA_CPP_PYTHON, "logits_all": logits_all}


def _overshoot(c: Choice, caps: Budgets) -> int:
    mem = c.placement.mem
    return max(mem.gpu.total - caps.gpu_total, 0) + max(mem.host.total - caps.host, 0)


def _score(c: Choice, prefer: str, experience: str) -> tuple:
    ctx_ok = c.context_per_slot >= c.context_goal
    params = c.entry.params_b if c.entry else 0.0
    decent = c.quality_rank >= load_quant_types()["Q4_K_M"].quality_rank  # below Q4_K_M quality drops fast
    kv_full = c.placement.cfg.cache_type_k == "f16"
    if experience == "throughput":
        return (c.meets_floor, c.placement.all_on_gpu, ctx_ok, decent, round(c.speed.generate_tps, 0),
                params, c.quality_rank)
    if prefer == "quality":
        return (c.meets_floor, decent, params, c.quality_rank, ctx_ok, kv_full, c.speed.generate_tps)
    return (c.meets_floor, c.placement.all_on_gpu, ctx_ok, decent, params, c.quality_rank, kv_full,
            c.speed.generate_tps)


def _does_not_fit(setup: Setup, hw: HardwareProfile, caps: Budgets, closest: Choice | None) -> InferformError:
    gib = 1024**3
    if closest is None:
        return InferformError.single(f"{setup.name}: no catalog model suits use_case {setup.use_case}")
    mem = closest.placement.mem
    m = closest.model
    name = closest.entry.id if closest.entry else m.architecture
    kv = closest.placement.cfg.cache_type_k
    parts = [f"the closest option, {name} {m.quant} at {closest.context_per_slot:,} tokens with a {kv} KV cache"]
    short = 0
    if caps.gpu:
        parts.append(f"needs {mem.gpu.total / gib:.1f} GiB of {caps.gpu_total / gib:.1f} GiB usable VRAM")
        short += max(mem.gpu.total - caps.gpu_total, 0)
    parts.append(f"and {mem.host.total / gib:.1f} GiB of {caps.host / gib:.1f} GiB usable RAM (weights "
                 f"{mem.host.weights / gib:.1f} + KV {mem.host.kv / gib:.1f} + compute {mem.host.compute / gib:.1f})")
    short += max(mem.host.total - caps.host, 0)
    fixes = f"about {short / gib + 0.5:.0f} GiB more memory, a smaller quant, less context, " \
        "or a bigger target (target.kind: aws-spot picks an instance that holds it)"
    return InferformError.single(f"{setup.name}: nothing fits on this hardware",
                                 hint=" ".join(parts) + "; to fit: " + fixes)
