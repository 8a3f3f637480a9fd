"""A cloud setup's plan: the planner's plan on the chosen (or named) instance type, with target, cost and why.

Prices come from a PriceBook the caller hands in (pipeline.py): the catalog snapshot (catalog/instances.py), or
live AWS prices when credentials allow (cloud/prices.py); without one, the snapshot.
"""

from inferform.catalog.instances import CatalogPrices, load_instance_types
from inferform.errors import InferformError
from inferform.gguf import GGUFInfo
from inferform.hardware.profile import HardwareProfile
from inferform.plan import CostOut, Plan, RunnerUp
from inferform.planner import presets
from inferform.planner.compose import make_plan
from inferform.planner.instances import (
    DEFAULT_REGION,
    MARKETS,
    Fitted,
    InstanceChoice,
    choose_instance,
    machine,
    usd_per_mtok,
)
from inferform.setup.spec import Setup
from inferform.units import usd


def plan_cloud(setup: Setup, hw: HardwareProfile | None, gguf: GGUFInfo | None = None, prices=None) -> Plan:
    """Plan a cloud setup; hw is None when the instance type is 'auto' and the instance planner chooses it."""
    from inferform.planner.engine_choice import concrete

    setup = concrete(setup)
    if prices is None:
        prices = CatalogPrices()
    if hw is None:
        ic = choose_instance(setup, gguf, prices)
        plan = make_plan(setup, ic.hardware, gguf)
        return _priced(plan, setup, ic.chosen.row.type, ic.market, ic.region, ic.chosen.usd_per_hour,
                       ic.price_source, [runner_up(f, ic.chosen, ic.cap) for f in ic.runner_ups],
                       explain_choice(ic, plan, setup))
    return _named(setup, hw, gguf, prices)


def _named(setup: Setup, hw: HardwareProfile, gguf: GGUFInfo | None, prices) -> Plan:
    """A type named in the setup: the plan on it, priced, and refused when the setup's own limits rule it out."""
    target = setup.target
    row = load_instance_types()[target.instance_type]
    region, market = target.region or DEFAULT_REGION, MARKETS[target.kind]
    if target.kind == "free-trial" and not row.free_tier:
        free = sorted(t for t, r in load_instance_types().items() if r.free_tier)
        raise InferformError.single(f"{setup.name}: {row.type} is not free-tier eligible",
                                    hint=f"use instance_type: auto or one of {', '.join(free)}; "
                                         "or target.kind: aws-spot / aws-on-demand")
    price = prices.prices([row], region, market).get(row.type)
    cap = target.max_price_per_hour
    if price is not None and cap is not None and price > cap:
        raise InferformError.single(
            f"{setup.name}: {row.type} costs {usd(price)}/h {market} in {region} ({prices.source}), over "
            f"max_price_per_hour {usd(cap)}/h", hint="raise max_price_per_hour, or use instance_type: auto to "
                                                     "get the cheapest type that runs the setup")
    plan = make_plan(setup, hw, gguf)
    if price is None:
        line = f"{row.type} (named in the setup): no {market} price in {region} in the catalog; cost unknown"
    else:
        mtok = usd_per_mtok(price, plan.speed.aggregate_generate_tps or plan.speed.generate_tps)
        line = (f"{row.type} (named in the setup; {machine(row)}): {usd(price)}/h {market} in {region}, "
                f"{plan.speed.generate_tps:.1f} tok/s → {usd(mtok) + '/Mtok' if mtok is not None else '?'}")
    return _priced(plan, setup, row.type, market, region, price, prices.source, [],
                   [line, f"prices: {prices.source}"])


def _priced(plan: Plan, setup: Setup, instance_type: str, market: str, region: str, price: float | None,
            source: str, runner_ups: list[RunnerUp], why: list[str]) -> Plan:
    target = plan.target.model_copy(update={"instance_type": instance_type, "region": region, "market": market})
    tps = plan.speed.aggregate_generate_tps or plan.speed.generate_tps
    cost = CostOut(usd_per_hour=price, usd_per_mtok=usd_per_mtok(price, tps),
                   price_source=source, free_tier=setup.target.kind == "free-trial", runner_ups=runner_ups)
    # the configurations the plan beat ran on this same instance: priced at its $/h and their own aggregate speed
    alternatives = [a.model_copy(update={"usd_per_mtok": usd_per_mtok(price, a.aggregate_generate_tps)})
                    for a in plan.alternatives]
    return plan.model_copy(update={"target": target, "cost": cost, "alternatives": alternatives,
                                   "explanations": [*why, *plan.explanations]})


def explain_choice(ic: InstanceChoice, plan: Plan, setup: Setup) -> list[str]:
    """One line with numbers: what was chosen, why it and not a cheaper type, and the runner-up."""
    c = ic.chosen
    free = setup.target.kind == "free-trial"
    kind = "free-tier" if free else ic.market
    slots = max(plan.context.parallel, 1)
    what = (f"{plan.model.id or plan.model.architecture} {plan.model.quant} at {plan.context.n_ctx // slots:,} "
            f"tokens × {slots} slot(s)")
    floor = f"{ic.need.min_generate_tps:g} tok/s"
    mtok = _mtok(c)
    price = (f"free while free-tier hours/credits last, then {usd(c.usd_per_hour)}/h on-demand "
             f"({c.generate_tps:.1f} tok/s → {mtok})" if free
             else f"{usd(c.usd_per_hour)}/h, {c.generate_tps:.1f} tok/s → {mtok}")
    if presets.goals(setup.use_case, setup.experience).objective == "aggregate":
        line = (f"{c.row.type}: the lowest $/Mtok of the {kind} types in {ic.region} under the cap, running {what} "
                f"at {c.aggregate_tps:.1f} tok/s over all slots: {usd(c.usd_per_hour)}/h → {mtok}")
    elif c.meets_floor:
        line = f"{c.row.type}: cheapest {kind} type in {ic.region} whose {machine(c.row)} runs {what} at ≥ {floor}"
        line += f": {price}"
        parts = [f"{n} {text}" for n, text in ((ic.cannot_hold, "cannot hold it"),
                                               (ic.too_slow, f"cannot reach {floor}")) if n]
        if parts:
            line += f"; {ic.cannot_hold + ic.too_slow} cheaper types fall short ({', '.join(parts)})"
    else:
        line = (f"{c.row.type}: cheapest {kind} type in {ic.region} whose {machine(c.row)} holds {what}, but at "
                f"{c.generate_tps:.1f} tok/s, below the {floor} that {setup.experience} aims for: {price}")
        if ic.floor_option is not None:
            f = ic.floor_option
            line += (f"; the cheapest that reaches {floor} is {f.row.type} at {usd(f.usd_per_hour)}/h "
                     f"({f.generate_tps:.1f} tok/s), over the {usd(ic.cap or 0)}/h cap")
    if ic.runner_ups:
        r = ic.runner_ups[0]
        line += f"; runner-up {r.row.type} {usd(r.usd_per_hour)}/h, {r.generate_tps:.1f} tok/s, {_mtok(r)}"
    return [line, f"prices: {ic.price_source}"]


def _mtok(f: Fitted) -> str:
    return f"{usd(f.usd_per_mtok)}/Mtok" if f.usd_per_mtok is not None else "?/Mtok"


def runner_up(f: Fitted, chosen: Fitted, cap: float | None) -> RunnerUp:
    """A runner-up as the plan reports it, with what it would change."""
    if cap is not None and f.usd_per_hour > cap:
        why = f"over max_price_per_hour ({usd(cap)}/h)"
    else:
        why = f"{usd(f.usd_per_hour - chosen.usd_per_hour)}/h more"
    if not chosen.meets_floor and f.meets_floor:
        why += f"; reaches the speed floor ({f.generate_tps:.1f} tok/s)"
    elif f.usd_per_mtok is not None and chosen.usd_per_mtok is not None and f.usd_per_mtok < chosen.usd_per_mtok:
        why += f", but cheaper per token ({f.aggregate_tps:.1f} vs {chosen.aggregate_tps:.1f} tok/s)"
    elif f.usd_per_mtok is not None and chosen.usd_per_mtok is not None and f.usd_per_mtok > chosen.usd_per_mtok:
        why = f"{usd(f.usd_per_mtok)}/Mtok vs {usd(chosen.usd_per_mtok)} ({f.aggregate_tps:.1f} tok/s over " \
              f"{f.choice.speed.concurrency} slot(s))"
        if not f.choice.value.quality_ok:
            why += "; under the quality floor"
    return RunnerUp(instance_type=f.row.type, usd_per_hour=f.usd_per_hour, generate_tps=f.aggregate_tps,
                    usd_per_mtok=f.usd_per_mtok, why_not=why)
