"""The cloud instance planner: for `instance_type: auto`, the cheapest instance type the setup runs well on.

"Runs well" is the planner's own verdict: search() plans the setup's model on the type's hardware (the same
profile a named type gets, hardware/resolve.py) and the plan fits and reaches the experience's speed floor
(presets.yaml min_generate_tps). Types are tried cheapest first in the setup's region and market, and cheap
necessary conditions (planner/instance_bounds.py) skip most searches, so choosing stays within plan's start-up
budget. When nothing under max_price_per_hour reaches the floor, the cheapest type under the cap that fits at
all is chosen and the plan says so; when nothing under the cap fits, the error names what would.
"""

import math
from typing import NamedTuple

from inferform.catalog.instances import CatalogPrices, InstanceType, load_instance_types
from inferform.errors import InferformError
from inferform.gguf import GGUFInfo
from inferform.hardware.profile import HardwareProfile
from inferform.hardware.resolve import instance_profile
from inferform.planner import choice_cache, presets
from inferform.planner.instance_bounds import Need, need_of
from inferform.planner.search import Choice, search
from inferform.setup.spec import Setup
from inferform.units import usd

MARKETS = {"aws-spot": "spot", "aws-on-demand": "on-demand", "free-trial": "on-demand"}
DEFAULT_REGION = "us-east-1"
RUNNER_UPS = 3


def usd_per_mtok(usd_per_hour: float | None, generate_tps: float) -> float | None:
    """Dollars per million generated tokens at the predicted speed: the aggregate over every slot (one stream
    when the plan has one slot)."""
    if usd_per_hour is None or generate_tps <= 0:
        return None
    return round(usd_per_hour / (generate_tps * 3600) * 1e6, 4)


def machine(row: InstanceType) -> str:
    """'1× L40S 48 GiB + 32 GiB RAM', or '2 vCPU (1 core) + 1 GiB RAM' for CPU-only types."""
    if row.gpu:
        return f"{row.gpu_count}× {row.gpu} {row.gpu_memory_gib:g} GiB + {row.ram_gib:g} GiB RAM"
    cores = row.physical_cores
    return f"{row.vcpus} vCPU ({cores} core{'s' if cores != 1 else ''}) + {row.ram_gib:g} GiB RAM"


class Priced:
    """An instance type with its $/h; its hardware profile is built on first use (most types never need one).
    A slotted class, not a dataclass (README, "Start-up time")."""

    __slots__ = ("_hw", "row", "usd_per_hour")

    def __init__(self, row: InstanceType, usd_per_hour: float) -> None:
        self.row, self.usd_per_hour = row, usd_per_hour
        self._hw: HardwareProfile | None = None

    @property
    def hw(self) -> HardwareProfile:
        if self._hw is None:
            self._hw = instance_profile(self.row)
        return self._hw


class Fitted(NamedTuple):
    """A type the planner can run the setup on, with its best configuration there."""

    priced: Priced
    choice: Choice

    @property
    def row(self) -> InstanceType:
        return self.priced.row

    @property
    def usd_per_hour(self) -> float:
        return self.priced.usd_per_hour

    @property
    def generate_tps(self) -> float:
        return round(self.choice.speed.generate_tps, 1)  # as plan.speed reports it

    @property
    def aggregate_tps(self) -> float:
        return round(self.choice.speed.aggregate_generate_tps, 1)  # as plan.speed reports it

    @property
    def usd_per_mtok(self) -> float | None:
        return usd_per_mtok(self.usd_per_hour, self.aggregate_tps)

    @property
    def meets_floor(self) -> bool:
        return self.choice.meets_floor


class InstanceChoice(NamedTuple):
    chosen: Fitted
    runner_ups: list[Fitted]
    region: str
    market: str
    price_source: str
    need: Need
    cap: float | None
    cannot_hold: int = 0  # cheaper types that cannot hold the model
    too_slow: int = 0  # cheaper types that cannot reach the speed floor
    floor_option: Fitted | None = None  # when chosen is below the floor: the cheapest type that reaches it

    @property
    def hardware(self) -> HardwareProfile:
        return self.chosen.priced.hw


class _Scan:
    """Searches each type at most once; the bounds skip the searches whose answer they already know."""

    def __init__(self, setup: Setup, gguf: GGUFInfo | None, need: Need) -> None:
        self.setup, self.gguf, self.need = setup, gguf, need
        self.done: dict[str, Fitted | None] = {}
        self.errors: dict[str, InferformError] = {}

    def fit(self, p: Priced) -> Fitted | None:
        if p.row.type not in self.done:
            result = None
            if self.need.may_fit(p.hw):
                try:
                    best, _ = search(self.setup, p.hw, self.gguf)
                    result = Fitted(p, best)
                except InferformError as exc:
                    self.errors[p.row.type] = exc
            self.done[p.row.type] = result
        return self.done[p.row.type]


def offered(setup: Setup, prices) -> tuple[list[Priced], str, str]:
    """The types the setup's target may use with their $/h, cheapest first; (types, region, market)."""
    target = setup.target
    region = target.region or DEFAULT_REGION
    market = MARKETS[target.kind]
    rows = [r for r in load_instance_types().values() if target.kind != "free-trial" or r.free_tier]
    table = prices.prices(rows, region, market)
    found = [Priced(r, table[r.type]) for r in rows if r.type in table]
    if not found:
        regions = sorted({reg for r in rows for reg in (r.spot_usd if market == "spot" else r.on_demand_usd)})
        raise InferformError.single(f"{setup.name}: no {market} instance type has a price in {region}",
                                    hint=f"use a region the catalog prices: {', '.join(regions)}")
    found.sort(key=lambda p: (p.usd_per_hour, p.row.type))
    return found, region, market


def choose_instance(setup: Setup, gguf: GGUFInfo | None = None, prices=None) -> InstanceChoice:
    """The cheapest type whose plan fits and reaches the speed floor (throughput: the lowest $/Mtok), its
    runners-up, and why. The answer is remembered (planner/choice_cache.py): a repeated plan searches only the
    types it names."""
    from inferform.planner.engine_choice import concrete

    setup = concrete(setup)  # cloud setups run llama.cpp until vLLM's instance choice lands
    if prices is None:
        prices = CatalogPrices()
    types, region, market = offered(setup, prices)
    need = need_of(setup, gguf)
    scan = _Scan(setup, gguf, need)
    k = choice_cache.key(setup.model_dump_json(), gguf.path if gguf else None,
                         [(p.row.type, p.usd_per_hour) for p in types])
    again = _recalled(choice_cache.load(k), types, scan, region, market, prices.source)
    if again is not None:
        return again
    ic = _choose(setup, types, scan, region, market, prices.source)
    choice_cache.store(k, {"chosen": ic.chosen.row.type, "runner_ups": [f.row.type for f in ic.runner_ups],
                           "cannot_hold": ic.cannot_hold, "too_slow": ic.too_slow,
                           "floor_option": ic.floor_option.row.type if ic.floor_option else None})
    return ic


def _recalled(record: dict | None, types: list[Priced], scan: "_Scan", region: str, market: str,
              source: str) -> InstanceChoice | None:
    """The remembered choice, its types searched again; None when there is none or a named type is gone."""
    if not record:
        return None
    by_type = {p.row.type: p for p in types}
    names = [record["chosen"], *record["runner_ups"], *([record["floor_option"]] if record["floor_option"] else [])]
    if any(name not in by_type for name in names):
        return None
    fitted = [scan.fit(by_type[name]) for name in names]
    if any(f is None for f in fitted):
        return None
    ups = fitted[1:1 + len(record["runner_ups"])]
    floor = fitted[-1] if record["floor_option"] else None
    return InstanceChoice(fitted[0], ups, region, market, source, scan.need, scan.setup.target.max_price_per_hour,
                          record["cannot_hold"], record["too_slow"], floor)


def _choose(setup: Setup, types: list[Priced], scan: "_Scan", region: str, market: str,
            source: str) -> InstanceChoice:
    need = scan.need
    cap = setup.target.max_price_per_hour
    if presets.goals(setup.use_case, setup.experience).objective == "aggregate":
        per_token = _cheapest_per_token(types, scan, need, cap, region, market, source)
        if per_token is not None:
            return per_token
    chosen: Fitted | None = None
    ups: list[Fitted] = []
    cannot_hold = too_slow = 0
    for p in types:
        fitted = scan.fit(p) if need.may_fit(p.hw) and need.may_meet_floor(p.hw) else None
        if fitted is None or not fitted.meets_floor:
            if chosen is None:  # why the cheaper types lost, for the explanation
                holds = fitted is not None or (need.may_fit(p.hw) and scan.done.get(p.row.type, 0) is not None)
                cannot_hold += not holds
                too_slow += holds
            continue
        if chosen is None:
            chosen = fitted
        else:
            ups.append(fitted)
            if len(ups) == RUNNER_UPS:
                break
    result = InstanceChoice(chosen, ups, region, market, source, need, cap, cannot_hold, too_slow) \
        if chosen else None
    if result is not None and (cap is None or chosen.usd_per_hour <= cap):
        return result
    return _below_floor(setup, types, scan, chosen, source, region, market, need, cap)


def _cheapest_per_token(types: list[Priced], scan: "_Scan", need: Need, cap: float | None, region: str,
                        market: str, source: str) -> InstanceChoice | None:
    """Throughput: of the types under the cap, the one whose best plan costs least per million tokens at its
    aggregate speed (the plan's own objective first: above the quality floor, every stream above its floor)."""
    def rank(f: Fitted) -> tuple:
        key = f.choice.value.key
        return (-key[0], -key[1], -key[2], f.usd_per_mtok if f.usd_per_mtok is not None else math.inf,
                f.usd_per_hour, f.row.type)

    goals = presets.goals(scan.setup.use_case, scan.setup.experience)
    most_slots = max(*goals.parallel_options, scan.setup.overrides.parallel or 1)
    fitted: list[Fitted] = []
    best: Fitted | None = None
    for p in types:
        if (cap is not None and p.usd_per_hour > cap) or not need.may_fit(p.hw):
            continue
        if best is not None and rank(best)[:3] == (-1.0, -1.0, -1.0) and best.usd_per_mtok is not None:
            # a stream is never faster than the fastest single stream this machine allows, so a machine where
            # that is under the per-stream floor ranks below the best already found; and no slot count decodes
            # faster than slots × that single stream
            fastest = need.best_tps(p.hw)
            floor_mtok = usd_per_mtok(p.usd_per_hour, most_slots * fastest)
            if fastest < goals.floor_tps or (floor_mtok is not None and floor_mtok >= best.usd_per_mtok):
                continue
        f = scan.fit(p)
        if f is not None:
            fitted.append(f)
            if best is None or rank(f) < rank(best):
                best = f
    if not fitted:
        return None
    fitted.sort(key=rank)
    return InstanceChoice(fitted[0], fitted[1:1 + RUNNER_UPS], region, market, source, need, cap)


def _below_floor(setup: Setup, types: list[Priced], scan: _Scan, floor_option: Fitted | None, source: str,
                 region: str, market: str, need: Need, cap: float | None) -> InstanceChoice:
    """Nothing under the cap reaches the speed floor: the cheapest type under the cap that fits at all."""
    under = [p for p in types if cap is None or p.usd_per_hour <= cap]
    fitting = []
    for p in under:
        fitted = scan.fit(p)
        if fitted is not None:
            fitting.append(fitted)
            if len(fitting) > RUNNER_UPS - 1:
                break
    if not fitting:
        raise _nothing_fits(setup, types, scan, floor_option, region, market, need, cap)
    # the next cheapest under the cap, and the cheapest that reaches the floor (over the cap) when there is one
    ups = fitting[1:RUNNER_UPS] if floor_option is None else [*fitting[1:RUNNER_UPS - 1], floor_option]
    ups.sort(key=lambda f: (f.usd_per_hour, f.row.type))
    return InstanceChoice(fitting[0], ups, region, market, source, need, cap, floor_option=floor_option)


def _nothing_fits(setup: Setup, types: list[Priced], scan: _Scan, floor_option: Fitted | None, region: str,
                  market: str, need: Need, cap: float | None) -> InferformError:
    """Nothing under the cap holds the model: name the cheapest type that does (and the one that is fast enough),
    or, when no type in the region holds it, what the largest one lacks."""
    holds = next((f for p in types if (f := scan.fit(p)) is not None), None)
    if holds is not None:
        options = [holds] + ([floor_option] if floor_option is not None and floor_option is not holds else [])

        def named(f: Fitted) -> str:
            what = f"runs it at ≥ {need.min_generate_tps:g} tok/s" if f.meets_floor else "holds it"
            return (f"the cheapest that {what} is {f.row.type} ({machine(f.row)}) at {usd(f.usd_per_hour)}/h, "
                    f"{f.generate_tps:.1f} tok/s")

        least = math.ceil(options[-1].usd_per_hour * 100) / 100
        return InferformError.single(
            f"{setup.name}: no {market} instance type in {region} at or under max_price_per_hour "
            f"{usd(cap or 0)}/h holds {_model(setup)}",
            hint=f"{'; '.join(named(f) for f in options)}: raise max_price_per_hour to {least:.2f}, or pin a "
                 "smaller quant (model.quant) or less context")
    biggest = max(types, key=lambda p: (p.hw.vram_bytes + p.hw.ram_bytes, -p.usd_per_hour))
    scan.need = Need(0, 0, 0.0, need.model_label)  # let the largest machine's search say what is missing
    scan.done.pop(biggest.row.type, None)
    scan.fit(biggest)
    why = scan.errors.get(biggest.row.type)
    detail = str(why.problems[0].hint) if why and why.problems and why.problems[0].hint else ""
    return InferformError.single(
        f"{setup.name}: no {market} instance type in {region} holds {_model(setup)}, not even {biggest.row.type} "
        f"({machine(biggest.row)})", hint=detail or "a smaller model or quant, or less context")


def _model(setup: Setup) -> str:
    return setup.model.id or setup.model.file if setup.model else f"a catalog model for {setup.use_case}"
