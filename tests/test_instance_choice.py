"""The cloud instance planner against a brute force over the whole catalog: it picks the cheapest type the planner
runs the setup on (fits, and reaches the experience's speed floor), its shortcuts never skip a type that would
have won, and its prices, runner-ups and refusals say what they should."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

import pytest

from inferform.catalog.instances import CatalogPrices, load_instance_types
from inferform.errors import InferformError
from inferform.hardware.resolve import instance_profile
from inferform.planner import presets
from inferform.planner.instance_bounds import need_of
from inferform.planner.instance_plan import plan_cloud
from inferform.planner.instances import MARKETS, choose_instance
from inferform.planner.search import Choice, search
from inferform.setup.spec import Setup, parse_setup
from inferform.setup.yamlpos import load_yaml
from tests.conftest import ROOT

VARIANTS = {
    "llama70b-spot": (ROOT / "setups" / "llama70b-spot.yaml").read_text(),
    "free-tier-cpu": (ROOT / "setups" / "free-tier-cpu.yaml").read_text(),
    "moe-on-demand": "name: moe\nuse_case: chat\nexperience: latency\n"
                     "target: {kind: aws-on-demand, region: us-west-2}\nmodel: {id: gpt-oss-120b}\n",
    "python-engine": "name: py\nuse_case: coding\nexperience: accuracy\ntarget: {kind: aws-spot, region: us-east-1}\n"
                     "model: {id: qwen3-32b}\nengine: llama-cpp-python\n",
    "pinned-kv": "name: kv\nuse_case: rag\nexperience: latency\ntarget: {kind: aws-spot, region: us-west-2}\n"
                 "model: {id: qwen2.5-14b-instruct}\noverrides: {cache_type_k: q4_0, cache_type_v: q4_0}\n",
    "dense-latency": "name: dense\nuse_case: coding\nexperience: latency\ntarget: {kind: aws-spot, region: us-east-1}\n"
                     "model: {id: qwen2.5-coder-32b-instruct}\ncontext: 32768\n",
    "auto-model-free": "name: free\nuse_case: chat\nexperience: latency\ntarget: {kind: free-trial}\n",
    "llama70b-latency": (ROOT / "setups" / "llama70b-spot.yaml").read_text().replace("experience: throughput",
                                                                                     "experience: latency"),
}


def setup_of(name: str) -> Setup:
    return parse_setup(load_yaml(VARIANTS[name], f"{name}.yaml"))


@dataclass
class Outcome:
    instance_type: str
    usd_per_hour: float
    best: Choice | None  # None: the planner cannot run the setup there


@cache
def brute_force(name: str) -> tuple[Outcome, ...]:
    """Search every priced type of the setup's region and market, cheapest first."""
    setup = setup_of(name)
    region = setup.target.region or "us-east-1"
    rows = [r for r in load_instance_types().values() if setup.target.kind != "free-trial" or r.free_tier]
    prices = CatalogPrices().prices(rows, region, MARKETS[setup.target.kind])
    out = []
    for itype, price in sorted(prices.items(), key=lambda kv: (kv[1], kv[0])):
        try:
            best, _ = search(setup, instance_profile(load_instance_types()[itype]))
        except InferformError:
            best = None
        out.append(Outcome(itype, price, best))
    return tuple(out)


def per_token(name: str) -> bool:
    """Throughput setups are chosen by $/Mtok at the aggregate speed, the others by $/h above the floor."""
    setup = setup_of(name)
    return presets.goals(setup.use_case, setup.experience).objective == "aggregate"


def mtok(o: Outcome) -> float:
    return o.usd_per_hour / (round(o.best.speed.aggregate_generate_tps, 1) * 3600) * 1e6


def winners(name: str, cap: float | None = None) -> list[Outcome]:
    """The brute force's order: cheapest $/h that reaches the floor; for throughput, every type under the cap by
    the plan's objective (quality floor, stream floor) and then $/Mtok."""
    if per_token(name):
        fitted = [o for o in brute_force(name) if o.best is not None and (cap is None or o.usd_per_hour <= cap)]
        return sorted(fitted, key=lambda o: (tuple(-k for k in o.best.value.key[:3]), round(mtok(o), 4),
                                             o.usd_per_hour, o.instance_type))
    return [o for o in brute_force(name) if o.best is not None and o.best.meets_floor
            and (cap is None or o.usd_per_hour <= cap)]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_chooses_the_cheapest_type_that_runs_the_setup(name):
    expected = winners(name, setup_of(name).target.max_price_per_hour)
    assert expected, f"{name}: the brute force finds no type; pick a variant that has one"
    ic = choose_instance(setup_of(name), None, CatalogPrices())
    assert ic.chosen.row.type == expected[0].instance_type
    assert ic.chosen.usd_per_hour == expected[0].usd_per_hour
    assert ic.chosen.meets_floor or per_token(name)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_shortcuts_never_skip_a_type_the_planner_accepts(name):
    """The bounds that skip searches are necessary conditions: every type that fits passes the memory bound, and
    every type that reaches the floor passes the speed bound."""
    setup = setup_of(name)
    need = need_of(setup)
    for o in brute_force(name):
        if o.best is None:
            continue
        hw = instance_profile(load_instance_types()[o.instance_type])
        assert need.may_fit(hw), f"{name}: {o.instance_type} fits but the memory bound rejects it"
        if o.best.meets_floor:
            assert need.may_meet_floor(hw), \
                f"{name}: {o.instance_type} reaches {o.best.speed.generate_tps:.1f} tok/s but the speed bound says " \
                f"at most {need.best_tps(hw):.1f}"


def test_runner_ups_are_the_next_cheapest_fitting_types():
    plan = plan_cloud(setup_of("llama70b-spot"), None, None, CatalogPrices())
    expected = winners("llama70b-spot")
    ups = plan.cost.runner_ups
    assert 2 <= len(ups) <= 3
    assert [u.instance_type for u in ups] == [o.instance_type for o in expected[1:1 + len(ups)]]
    per_mtok = [u.usd_per_mtok for u in ups]  # a throughput setup: runners-up by $/Mtok at the aggregate speed
    assert per_mtok == sorted(per_mtok) and per_mtok[0] >= plan.cost.usd_per_mtok
    for u in ups:
        assert u.usd_per_mtok == pytest.approx(u.usd_per_hour / (u.generate_tps * 3600) * 1e6, abs=1e-4)
        assert u.why_not


def test_plan_reports_the_choice_with_price_speed_and_why(cli):
    result = cli("plan", str(ROOT / "setups" / "llama70b-spot.yaml"), "--json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    target, cost = plan["target"], plan["cost"]
    row = load_instance_types()[target["instance_type"]]
    assert (target["region"], target["market"]) == ("us-east-1", "spot")
    assert cost["usd_per_hour"] == row.spot_usd["us-east-1"] <= 6.0
    tps = plan["speed"]["aggregate_generate_tps"]  # all slots busy: what a throughput plan is priced at
    assert plan["speed"]["concurrency"] > 1 and tps > plan["speed"]["generate_tps"]
    assert cost["usd_per_mtok"] == pytest.approx(cost["usd_per_hour"] / (tps * 3600) * 1e6, abs=1e-4)
    assert cost["price_source"] == "catalog snapshot 2026-11-23" and not cost["free_tier"]
    why = plan["explanations"][0]
    assert why.startswith(f"{target['instance_type']}: the lowest $/Mtok of the spot types in us-east-1") \
        and "/Mtok" in why
    assert f"runner-up {cost['runner_ups'][0]['instance_type']}" in why
    assert [g["name"] for g in target["gpus"]] == [row.gpu] * row.gpu_count  # multi-GPU types plan as such
    human = cli("plan", str(ROOT / "setups" / "llama70b-spot.yaml"))
    assert "runner-up" in human.out and target["instance_type"] in human.out and "/Mtok" in human.out


def test_free_trial_picks_a_free_tier_type_and_says_what_it_costs_after(cli):
    result = cli("plan", str(ROOT / "setups" / "free-tier-cpu.yaml"), "--json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    row = load_instance_types()[plan["target"]["instance_type"]]
    assert row.free_tier and plan["target"]["market"] == "on-demand" and plan["cost"]["free_tier"]
    assert plan["cost"]["usd_per_hour"] == row.on_demand_usd["us-east-1"]
    assert all(load_instance_types()[u["instance_type"]].free_tier for u in plan["cost"]["runner_ups"])
    assert "free while free-tier hours/credits last, then" in plan["explanations"][0]


def test_a_price_cap_nothing_meets_exits_2_naming_what_would_fit(cli, write):
    text = VARIANTS["llama70b-spot"].replace("max_price_per_hour: 6.0", "max_price_per_hour: 0.1")
    result = cli("plan", write(text), "--json")
    assert result.code == 2 and result.out == ""
    holds = next(o for o in brute_force("llama70b-spot") if o.best is not None)
    fast = winners("llama70b-spot")[0]
    assert f"the cheapest that holds it is {holds.instance_type}" in result.err
    assert f"at ≥ 5 tok/s is {fast.instance_type}" in result.err and "raise max_price_per_hour" in result.err


def test_a_cap_below_every_fast_type_takes_the_cheapest_that_fits_and_says_so():
    setup = setup_of("llama70b-latency")
    setup = setup.model_copy(update={"target": setup.target.model_copy(update={"max_price_per_hour": 0.5})})
    plan = plan_cloud(setup, None, None, CatalogPrices())
    holds = [o for o in brute_force("llama70b-latency") if o.best is not None and o.usd_per_hour <= 0.5]
    assert plan.target.instance_type == holds[0].instance_type
    floor = presets.goals(setup.use_case, setup.experience).min_generate_tps
    assert f"below the {floor:g} tok/s" in plan.explanations[0] and "over the $0.5/h cap" in plan.explanations[0]
    assert any(u.why_not.startswith("over max_price_per_hour") for u in plan.cost.runner_ups)
    prices = [u.usd_per_hour for u in plan.cost.runner_ups]
    nxt = holds[1] if len(holds) > 1 else winners("llama70b-latency")[0]  # the next under the cap, else the fast one
    assert prices == sorted(prices) and plan.cost.runner_ups[0].instance_type == nxt.instance_type


def test_nothing_in_the_region_holds_it_exits_2_with_what_to_change(cli, write):
    text = VARIANTS["free-tier-cpu"].replace("gemma-3-1b-it", "llama-3.3-70b-instruct").replace("Q4_K_M", "Q4_0")
    result = cli("plan", write(text))
    assert result.code == 2 and "no on-demand instance type in us-east-1 holds llama-3.3-70b-instruct" in result.err
    assert "To fix:" in result.err


def test_a_named_type_is_priced_and_held_to_the_setup(cli, write):
    named = VARIANTS["llama70b-spot"].replace("instance_type: auto", "instance_type: g5.12xlarge")
    plan = json.loads(cli("plan", write(named), "--json").out)
    assert plan["target"]["instance_type"] == "g5.12xlarge" and plan["cost"]["runner_ups"] == []
    assert plan["cost"]["usd_per_hour"] == load_instance_types()["g5.12xlarge"].spot_usd["us-east-1"]
    over = named.replace("max_price_per_hour: 6.0", "max_price_per_hour: 1.0")
    refused = cli("plan", write(over, "over.yaml"))
    assert refused.code == 2 and "over max_price_per_hour" in refused.err
    not_free = VARIANTS["free-tier-cpu"].replace("instance_type: auto", "instance_type: g5.xlarge")
    refused = cli("plan", write(not_free, "nf.yaml"))
    assert refused.code == 2 and "not free-tier eligible" in refused.err


def test_models_fits_plans_on_the_chosen_instance(cli):
    result = cli("models", "--fits", str(ROOT / "setups" / "llama70b-spot.yaml"), "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)  # the chosen instance holds at least the setup's own model


def test_cloud_plan_without_credentials_imports_no_aws_sdk():
    import subprocess
    import sys

    code = ("import sys; sys.argv=['inferform','plan',%r]\nfrom inferform.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    done = subprocess.run([sys.executable, "-c", code % str(ROOT / "setups" / "llama70b-spot.yaml")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"



def test_instance_threads_are_physical_cores() -> None:
    """llama.cpp's -t on an instance is its physical cores: vCPUs / threads per core (2 on x86, 1 on Graviton)."""
    types = load_instance_types()
    expect = {"t2.micro": 1, "t3.micro": 1, "t4g.micro": 2, "t4g.small": 2, "c7i-flex.large": 1, "g5.xlarge": 2,
              "g6e.48xlarge": 96, "p5.48xlarge": 96}
    for itype, cores in expect.items():
        row = types[itype]
        hw = instance_profile(row)
        assert row.physical_cores == hw.cpu.cores == cores, itype
        assert hw.cpu.threads == row.vcpus
    for row in types.values():
        assert row.threads_per_core == (1 if row.family in ("t2", "t4g") else 2), row.type


def test_free_trial_considers_every_free_tier_type() -> None:
    from inferform.planner.instances import offered

    free = {t for t, r in load_instance_types().items() if r.free_tier}
    assert free >= {"t2.micro", "t3.micro", "t3.small", "t4g.micro", "t4g.small", "c7i-flex.large", "m7i-flex.large"}
    setup = setup_of("free-tier-cpu")
    types, _, market = offered(setup, CatalogPrices())
    assert {p.row.type for p in types} == free and market == "on-demand"


def test_a_repeated_choice_searches_only_the_types_it_named(monkeypatch):
    """The choice is remembered: the same setup and prices search the chosen type and its runners-up only, and
    the answer is the full scan's; other prices are another key, so the whole scan runs again."""
    from inferform.planner import instances

    calls: list[str] = []
    real = instances.search

    def counted(setup, hw, gguf=None):
        calls.append(hw.cpu.name)
        return real(setup, hw, gguf)

    monkeypatch.setattr(instances, "search", counted)
    setup = setup_of("llama70b-spot")
    first = choose_instance(setup, None, CatalogPrices())
    full = len(calls)
    calls.clear()
    again = choose_instance(setup, None, CatalogPrices())
    assert again.chosen.row.type == first.chosen.row.type
    assert [f.row.type for f in again.runner_ups] == [f.row.type for f in first.runner_ups]
    assert len(calls) == 1 + len(first.runner_ups) < full

    class Cheaper(CatalogPrices):
        def prices(self, rows, region, market):
            return {t: p * 0.9 for t, p in super().prices(rows, region, market).items()}

    calls.clear()
    choose_instance(setup, None, Cheaper())
    assert len(calls) >= full  # the whole scan (a cheaper table can bring one more type under the cap)
