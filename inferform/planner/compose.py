"""Assemble the Plan (the --json contract) from the search's choice: memory table, speed, argv, explanations."""

from inferform.engines.launch import Launch
from inferform.engines.registry import engine, engine_module
from inferform.gguf import GGUFInfo
from inferform.hardware.profile import HardwareProfile
from inferform.plan import (
    ContextOut,
    CostOut,
    EngineOut,
    GpuRef,
    MemoryOut,
    MemorySide,
    ModelOut,
    ObjectiveOut,
    PlacementOut,
    Plan,
    QualityOut,
    ServeOut,
    SpeedOut,
    SshOut,
    TargetOut,
)
from inferform.planner import presets
from inferform.planner.decision import alternatives, knobs
from inferform.planner.explain import explanations
from inferform.planner.memory import RunConfig, checkpoint_bytes, estimate
from inferform.planner.model import ModelDesc
from inferform.planner.objective import exchange_rate
from inferform.planner.search import Choice, budgets, search
from inferform.setup.sources import model_filename
from inferform.setup.spec import Setup

MODEL_DIR = "${INFERFORM_MODEL_DIR}"  # apply substitutes where the model role put the file
# The engine listens where the front says (a loopback port of its own); run.sh defaults these to serve.host/port, so
# the rendered files also run without the front (inferform render). The front owns serve.host:serve.port.
ENGINE_HOST, ENGINE_PORT = "${INFERFORM_ENGINE_HOST}", "${INFERFORM_ENGINE_PORT}"


FRONT_NOTE = ("served on {host}:{port} by inferform's front, which hands each request to the engine on a loopback "
              "port of its own: a re-apply starts the new engine beside the old one (or, when both do not fit in "
              "memory, right after it, holding requests meanwhile) and switches without failing a request")


def _side(s, budget: int) -> MemorySide:
    return MemorySide(weights_bytes=s.weights, kv_bytes=s.kv, state_bytes=s.state, checkpoint_bytes=s.checkpoints,
                      compute_bytes=s.compute, total_bytes=s.total, budget_bytes=budget)


def _pinned(setup: Setup) -> list[str]:
    pinned = [f"{k}={v}" for k, v in setup.overrides.model_dump(exclude_none=True).items()]
    if isinstance(setup.context, int):
        pinned.append(f"context={setup.context}")
    return pinned


CHECKPOINTS_MAX = 32  # llama-server's own --ctx-checkpoints default
CHECKPOINTS_SHARE = 0.5  # of the host RAM the chosen configuration leaves free


def with_checkpoints(model: ModelDesc, cfg: RunConfig, setup: Setup, host_budget: int) -> RunConfig:
    """How many context checkpoints per slot llama-server may keep (sliding-window and recurrent models).

    Unpinned, they get up to llama-server's default of 32 within half of the host RAM the chosen configuration
    leaves free: they fill as conversations grow and only spare re-reading a rewound prompt, so they never push
    out a better model or context. Fewer than the default, or none, is said in the plan."""
    if not engine(setup.engine).ctx_checkpoints or setup.overrides.ctx_checkpoints is not None:
        return cfg
    mem = estimate(model, cfg, exact=True)  # the search's configuration holds none (search._engine_config)
    one = checkpoint_bytes(model, cfg._replace(ctx_checkpoints=1), mem.gpu.caches + mem.host.caches,
                           mem.gpu.state + mem.host.state)  # one per slot, all slots
    if not one:
        return cfg._replace(ctx_checkpoints=CHECKPOINTS_MAX)  # nothing to copy: the flag costs nothing
    free = host_budget - mem.host.total
    return cfg._replace(ctx_checkpoints=max(0, min(CHECKPOINTS_MAX, int(free * CHECKPOINTS_SHARE) // one)))


def make_plan(setup: Setup, hw: HardwareProfile, gguf: GGUFInfo | None = None,
              model_path: str | None = None) -> Plan:
    from inferform.planner.engine_choice import concrete

    setup = concrete(setup)
    choice, runners = search(setup, hw, gguf)
    caps = budgets(hw)
    goals = presets.goals(setup.use_case, setup.experience)
    cfg = with_checkpoints(choice.model, choice.placement.cfg, setup, caps.host)
    mem = estimate(choice.model, cfg, exact=True)  # the exact mapped range for the chosen configuration
    choice = choice._replace(placement=choice.placement._replace(mem=mem, cfg=cfg))
    m = choice.model
    sampling = dict(goals.sampling)
    for key in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty"):
        value = getattr(setup.overrides, key)
        if value is not None:
            sampling[key] = value
    threads = hw.cpu.cores
    override_patterns: tuple[str, ...] = ()
    path = model_path or f"{MODEL_DIR}/{model_filename(choice.file, setup.model.sha256 if setup.model else None)}"
    engine_argv, engine_notes = _engine_argv(setup, cfg, mem, hw, path, threads, sampling, override_patterns,
                                             m.n_nextn)
    pinned = _pinned(setup)
    return Plan(
        setup=setup.name, fits=True,
        target=_target(setup, hw),
        model=ModelOut(id=choice.entry.id if choice.entry else None, quant=m.quant, file=choice.file,
                       file_bytes=m.file_bytes, architecture=m.architecture, n_layers=m.n_layers, source=m.source,
                       quality=_quality(choice, setup.use_case), sha256=setup.model.sha256 if setup.model else None),
        placement=PlacementOut(n_gpu_layers=cfg.n_gpu_layers if hw.gpus else 0, n_cpu_moe=cfg.n_cpu_moe,
                               tensor_overrides=list(override_patterns),
                               tensor_split=list(cfg.tensor_split) or None),
        context=ContextOut(n_ctx=cfg.n_ctx_actual, cache_type_k=cfg.cache_type_k, cache_type_v=cfg.cache_type_v,
                           flash_attn=cfg.flash_attn, parallel=cfg.parallel, batch=cfg.batch, ubatch=cfg.ubatch,
                           threads=threads),
        memory=MemoryOut(gpu=_side(mem.gpu, caps.gpu_total), host=_side(mem.host, caps.host),
                         per_gpu_bytes=list(mem.per_gpu) if hw.gpus else []),
        speed=SpeedOut(prompt_tps=round(choice.speed.prompt_tps, 1), generate_tps=round(choice.speed.generate_tps, 1),
                       bound=choice.speed.bound, concurrency=choice.speed.concurrency,
                       aggregate_generate_tps=round(choice.speed.aggregate_generate_tps, 1)),
        sampling=sampling,
        engine=EngineOut(name=setup.engine, argv=engine_argv),
        cost=CostOut(),
        explanations=_for_engine(explanations(choice, caps, pinned, runners, goals), setup) + engine_notes
        + [FRONT_NOTE.format(host=setup.serve.host, port=setup.serve.port)],
        pinned=pinned, knobs=knobs(setup, hw, gguf, choice),
        objective=ObjectiveOut(experience=setup.experience, rule=exchange_rate(goals),
                               value=round(choice.value.value, 2),
                               unit="aggregate tok/s" if goals.objective == "aggregate" else "points",
                               above_floor=choice.value.above_floor),
        alternatives=alternatives(choice, runners, goals),
        serve=ServeOut(host=setup.serve.host, port=setup.serve.port, api_key_required=not setup.serve.is_loopback),
    )


def _target(setup: Setup, hw: HardwareProfile) -> TargetOut:
    """The target as apply acts on it; the cloud planner (instance_plan.py) adds the instance type and market."""
    t = setup.target
    ssh = None if t.ssh is None else SshOut(host=t.ssh.host, port=t.ssh.port, user=t.ssh.user,
                                            key_file=t.ssh.key_file, python=t.ssh.python,
                                            remote_base=t.ssh.remote_base)
    return TargetOut(kind=t.kind, instance_type=None, region=t.region,
                     gpus=[GpuRef(name=g.name, vram_bytes=g.vram_bytes) for g in hw.gpus], ssh=ssh, ttl=t.ttl,
                     allowed_cidrs=[str(c) for c in t.allowed_cidrs] if t.allowed_cidrs is not None else None,
                     max_price_per_hour=t.max_price_per_hour)


def _quality(c: Choice, use_case: str) -> QualityOut | None:
    if c.score is None or c.retention is None:
        return None
    return QualityOut(use_case=use_case, score=round(c.quality, 2), full_precision=c.score.score,
                      retention=round(c.retention.factor, 4), basis=f"{c.score.basis}; {c.retention.basis}",
                      source=c.score.source, substituted=c.score.substituted)


def _engine_argv(setup: Setup, cfg, mem, hw: HardwareProfile, path: str, threads: int,
                 sampling: dict[str, float], override_patterns: tuple[str, ...],
                 n_nextn: int = 0) -> tuple[list[str], list[str]]:
    """The engine's command line for the planned configuration, and what the plan should say about the engine.

    llama.cpp counts -ngl over every block in the file, MTP blocks included (i_gpu_start = block_count + 1 - ngl),
    while the planner places the trunk: a file with MTP blocks gets them added so the same trunk layers land on
    the GPU."""
    ngl = cfg.n_gpu_layers + n_nextn if hw.gpus and cfg.n_gpu_layers else 0
    launch = Launch(model_path=path, n_ctx=cfg.n_ctx_actual, n_gpu_layers=ngl, threads=threads,
                    parallel=cfg.parallel, batch=cfg.batch, ubatch=cfg.ubatch, flash_attn=cfg.flash_attn,
                    cache_type_k=cfg.cache_type_k, cache_type_v=cfg.cache_type_v, host=ENGINE_HOST,
                    port=ENGINE_PORT, n_cpu_moe=cfg.n_cpu_moe, tensor_overrides=override_patterns,
                    tensor_split=cfg.tensor_split, sampling=sampling,
                    api_key_file=None if setup.serve.is_loopback else "${INFERFORM_API_KEY_FILE}",
                    alias=setup.name, ctx_checkpoints=cfg.ctx_checkpoints, logits_all=cfg.logits_all)
    module = engine_module(setup.engine)
    return module.argv(launch), module.plan_notes(launch, mem)


def _for_engine(lines: list[str], setup: Setup) -> list[str]:
    """Drop generic lines that are false for the engine: one that keeps full-size sliding-window caches."""
    if not engine(setup.engine).swa_full:
        return lines
    return [line for line in lines if not line.startswith("sliding-window layers keep only")]
