"""The decision shown: the configurations the plan beat (with why each lost) and the knobs a user can turn next.

Knobs are never advice in the abstract: each one re-plans the setup with the knob turned (a quant pinned, the KV
type flipped, more context, more or fewer slots) and reports what that plan would be. A knob whose plan does not
fit, or names a quant the catalog does not list, is not shown.
"""

from inferform.catalog.quants import load_quant_types
from inferform.engines.registry import engine
from inferform.errors import InferformError
from inferform.gguf import GGUFInfo
from inferform.hardware.profile import HardwareProfile
from inferform.plan import Alternative, Knob
from inferform.planner.objective import Scored, speed_of
from inferform.planner.presets import Goals
from inferform.planner.search import Choice, search
from inferform.setup.spec import ModelSpec, Setup
from inferform.units import GIB

ALTERNATIVES = 5


def where(c: Choice) -> str:
    """The placement in a few words."""
    cfg, n = c.placement.cfg, c.model.n_layers
    if not cfg.n_gpus:
        return "CPU only"
    if cfg.n_cpu_moe:
        return f"experts of {cfg.n_cpu_moe}/{n} layers in RAM"
    if cfg.n_gpu_layers > n:
        return "all on GPU"
    return f"{cfg.n_gpu_layers}/{n} layers on GPU"


def _speed_word(goals: Goals) -> str:
    return "request tok/s" if goals.speed_metric == "completion" else "tok/s"


def _metric(c: Choice, goals: Goals) -> float:
    s = c.speed
    return speed_of(Scored(c.quality, s.generate_tps, s.prompt_tps, s.aggregate_generate_tps, s.concurrency,
                           c.context_per_slot), goals)


def why_not(alt: Choice, chosen: Choice, goals: Goals) -> str:
    """One line: which term of the objective the alternative lost on, with both figures."""
    a, c = alt.value, chosen.value
    unit = _speed_word(goals)
    if alt.quality is None and chosen.quality is not None:
        return "no published quality figure for this model or quant"
    if goals.objective == "aggregate":
        if c.quality_ok and not a.quality_ok:
            if alt.retention is not None and alt.retention.factor < goals.min_retention:
                return f"{alt.model.quant} keeps {alt.retention.factor:.0%} of the model's score (floor " \
                       f"{goals.min_retention:.0%})"
            return f"quality {alt.quality or 0:.1f} is under the floor ({goals.quality_floor_fraction:.0%} of the " \
                   "use case's best score)"
        if c.above_floor and not a.above_floor:
            return f"each of its {alt.speed.concurrency} streams gets under {goals.floor_tps:g} tok/s"
        return f"{alt.speed.aggregate_generate_tps:.0f} aggregate tok/s vs {chosen.speed.aggregate_generate_tps:.0f}"
    if c.above_floor and not a.above_floor:
        return f"{_metric(alt, goals):.1f} {unit} is under the {goals.floor_tps:g} {unit} floor"
    parts = []
    if alt.quality is not None and chosen.quality is not None:
        parts.append(f"quality {alt.quality:.1f} vs {chosen.quality:.1f}")
    parts.append(f"{_metric(alt, goals):.1f} vs {_metric(chosen, goals):.1f} {unit}")
    if alt.context_per_slot < chosen.context_per_slot:
        parts.append(f"context {alt.context_per_slot:,} vs {chosen.context_per_slot:,}")
    return ", ".join(parts) + f": worth {a.value:.1f} points vs {c.value:.1f}"


def alternatives(chosen: Choice, others: list[Choice], goals: Goals,
                 usd_per_hour: float | None = None) -> list[Alternative]:
    """The best configurations the plan beat: each model's best, and the chosen model's other quants."""
    picked: list[Choice] = []
    seen = {(chosen.name, chosen.model.quant)}
    models_seen = {chosen.name}
    for c in others:  # best first: one per model, then other quants of any model already shown
        if c.name not in models_seen and (c.name, c.model.quant) not in seen:
            picked.append(c)
            models_seen.add(c.name)
            seen.add((c.name, c.model.quant))
        if len(picked) >= ALTERNATIVES - 2:
            break
    for c in others:
        if len(picked) >= ALTERNATIVES:
            break
        if c.name == chosen.name and (c.name, c.model.quant) not in seen:
            picked.append(c)
            seen.add((c.name, c.model.quant))
    picked.sort(key=lambda c: c.value.key, reverse=True)
    out = []
    for c in picked:
        cfg, mem = c.placement.cfg, c.placement.mem
        agg = c.speed.aggregate_generate_tps
        mtok = round(usd_per_hour / (agg * 3600) * 1e6, 4) if usd_per_hour and agg else None
        out.append(Alternative(
            model=c.name, quant=c.model.quant, placement=where(c), n_gpu_layers=cfg.n_gpu_layers,
            n_cpu_moe=cfg.n_cpu_moe, context=c.context_per_slot, parallel=cfg.parallel,
            cache_type=cfg.cache_type_k, quality=None if c.quality is None else round(c.quality, 1),
            generate_tps=round(c.speed.generate_tps, 1), aggregate_generate_tps=round(agg, 1),
            gpu_bytes=mem.gpu.total, host_bytes=mem.host.total, objective=round(c.value.value, 2),
            usd_per_mtok=mtok, why_not=why_not(c, chosen, goals)))
    return out


def _replan(setup: Setup, hw: HardwareProfile, gguf: GGUFInfo | None) -> Choice | None:
    try:
        return search(setup, hw, gguf)[0]
    except InferformError:
        return None


def _knob(goal: str, change: str, new: Choice, now: Choice) -> Knob:
    mem = new.placement.mem
    q = f", quality {new.quality - now.quality:+.1f} ({new.quality:.1f})" \
        if new.quality is not None and now.quality is not None else ""
    agg = ""
    if new.speed.concurrency > 1 or now.speed.concurrency > 1:
        agg = f", {new.speed.aggregate_generate_tps:.0f} aggregate (now {now.speed.aggregate_generate_tps:.0f})"
    effect = (f"{new.model.quant}, {where(new)}, {new.context_per_slot:,} tokens × {new.placement.cfg.parallel}, "
              f"KV {new.placement.cfg.cache_type_k}: {new.speed.generate_tps:.1f} tok/s "
              f"(now {now.speed.generate_tps:.1f}){agg}{q}, GPU {mem.gpu.total / GIB:.1f} GiB, "
              f"RAM {mem.host.total / GIB:.1f} GiB")
    return Knob(goal=goal, change=change, effect=effect, quant=new.model.quant,
                generate_tps=round(new.speed.generate_tps, 1),
                aggregate_generate_tps=round(new.speed.aggregate_generate_tps, 1), gpu_bytes=mem.gpu.total,
                host_bytes=mem.host.total, quality=None if new.quality is None else round(new.quality, 1))


def _with_quant(setup: Setup, chosen: Choice, quant: str) -> Setup:
    """The setup pinned to the chosen catalog model at another quant (and that quant's catalog file)."""
    model = setup.model or ModelSpec(id=chosen.entry.id)
    pinned = model.model_copy(update={"id": chosen.entry.id, "quant": quant, "file": None, "sha256": None})
    return setup.model_copy(update={"model": pinned, "overrides": setup.overrides.model_copy(update={"quant": None})})


def _quant_neighbours(chosen: Choice) -> tuple[str | None, str | None]:
    """The catalog's next bigger and next smaller quant of the chosen model (by bits per weight)."""
    if chosen.entry is None:
        return None, None
    types = load_quant_types()
    listed = sorted({q.quant.upper() for q in chosen.entry.quants if q.quant.upper() in types},
                    key=lambda q: types[q].bits_per_weight)
    here = chosen.model.quant.upper()
    if here not in listed:
        return None, None
    i = listed.index(here)
    return (listed[i + 1] if i + 1 < len(listed) else None), (listed[i - 1] if i > 0 else None)


def knobs(setup: Setup, hw: HardwareProfile, gguf: GGUFInfo | None, chosen: Choice) -> list[Knob]:
    """Each knob is the plan re-made with one thing turned; only the ones that fit are kept."""
    out: list[Knob] = []
    # a GGUF file at hand is one quant: the catalog's other quants are other files, not knobs of this one
    bigger, smaller = _quant_neighbours(chosen) if gguf is None else (None, None)
    pinned_model = setup.model is not None and setup.model.id is not None
    keep = setup if pinned_model or chosen.entry is None else _with_quant(setup, chosen, "auto")
    for goal, quant in (("more quality", bigger), ("more speed", smaller)):
        if quant and (new := _replan(_with_quant(keep, chosen, quant), hw, gguf)) is not None:
            out.append(_knob(goal, f"model.quant: {quant}", new, chosen))
    base = keep if chosen.entry is None or gguf is not None else _with_quant(keep, chosen, chosen.model.quant)
    cfg = chosen.placement.cfg
    o = base.overrides
    if not (o.cache_type_k or o.cache_type_v) and cfg.flash_attn:
        flip = "f16" if cfg.cache_type_k != "f16" else "q8_0"
        turned = base.model_copy(update={"overrides": o.model_copy(update={"cache_type_k": flip,
                                                                            "cache_type_v": flip})})
        if (new := _replan(turned, hw, gguf)) is not None:
            goal = "more context or layers on the GPU" if flip == "q8_0" else "an unquantized KV cache"
            out.append(_knob(goal, f"overrides: {{cache_type_k: {flip}, cache_type_v: {flip}}}", new, chosen))
    trained = chosen.model.context_trained or (chosen.entry.context_trained if chosen.entry else 0)
    if not o.n_ctx and chosen.context_per_slot * 2 <= trained:
        longer = base.model_copy(update={"context": chosen.context_per_slot * 2})
        if (new := _replan(longer, hw, gguf)) is not None:
            out.append(_knob("more context", f"context: {chosen.context_per_slot * 2}", new, chosen))
    if engine(setup.engine).slots and not o.parallel:
        for n in (cfg.parallel * 2, cfg.parallel // 2):
            if n < 1 or n == cfg.parallel:
                continue
            turned = base.model_copy(update={"overrides": o.model_copy(update={"parallel": n})})
            if (new := _replan(turned, hw, gguf)) is not None:
                goal = "more users at once" if n > cfg.parallel else "faster single streams"
                out.append(_knob(goal, f"overrides: {{parallel: {n}}}", new, chosen))
    return out
