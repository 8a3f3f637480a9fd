"""AWS through boto3 against a real moto server on 127.0.0.1: instance facts, live prices, and sweep.

The production code is unchanged under test: clients get the moto server's URL through `endpoint_url` (or
boto3's own AWS_ENDPOINT_URL for the CLI), and fake credentials.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from inferform.catalog.instances import load_instance_types
from inferform.cloud import sweep
from inferform.cloud.aws import client, has_credentials
from inferform.cloud.facts import instance_facts
from inferform.cloud.prices import CatalogPrices, LivePrices, lowest_spot, price_book
from inferform.state import AppliedState, write_state
from tests.conftest import ROOT

REGION = "us-east-1"



@pytest.fixture
def aws(aws: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """conftest's moto fixture, with live prices allowed (these tests read them from moto)."""
    monkeypatch.delenv("INFERFORM_OFFLINE", raising=False)
    return aws


# ---- instance facts -------------------------------------------------------------------------------------------

def test_instance_facts_report_gpus_memory_and_cpus(aws):
    facts = instance_facts(["g5.xlarge", "g6e.xlarge", "g4dn.12xlarge", "p4d.24xlarge", "t3.micro"], region=REGION,
                           endpoint_url=aws)
    g5, g6e, g4dn, p4d, t3 = (facts[t] for t in ("g5.xlarge", "g6e.xlarge", "g4dn.12xlarge", "p4d.24xlarge",
                                                 "t3.micro"))
    assert (g5.gpu, g5.gpu_count, g5.gpu_memory_gib, g5.vcpus, g5.ram_gib) == ("A10G", 1, round(22888 / 1024, 3), 4, 16)
    assert (g6e.gpu, g6e.gpu_count, g6e.gpu_memory_gib) == ("L40S", 1, round(45776 / 1024, 3))
    assert (g4dn.gpu, g4dn.gpu_count, g4dn.gpu_memory_gib, g4dn.vcpus) == ("T4", 4, 16, 48)
    assert p4d.gpu == "A100 40GB" and p4d.gpu_count == 8  # the API says "A100": sized to the catalog's name
    assert t3.gpu is None and t3.gpu_count == 0 and t3.free_tier
    assert g5.source.startswith("ec2:DescribeInstanceTypes")


def test_catalog_snapshot_agrees_with_the_ec2_api(aws):
    """The catalog's hand-kept facts match what DescribeInstanceTypes says (GPU memory: nominal vs reported)."""
    catalog = load_instance_types()
    facts = instance_facts(catalog, region=REGION, endpoint_url=aws)
    assert set(catalog) - set(facts) == set(), "catalog types the API does not know"
    for name, row in catalog.items():
        api = facts[name]
        assert (api.gpu, api.gpu_count, api.vcpus, api.ram_gib) == (row.gpu, row.gpu_count, row.vcpus, row.ram_gib), \
            name
        if row.gpu:  # nominal GiB in the catalog; the API reports a little less (or exactly that)
            assert 0.9 * row.gpu_memory_gib <= api.gpu_memory_gib <= row.gpu_memory_gib, name


# ---- prices ---------------------------------------------------------------------------------------------------

def test_lowest_spot_takes_each_zones_latest_price_then_the_cheapest_zone():
    t0 = dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC)
    records = [
        {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1a", "SpotPrice": "0.30", "Timestamp": t0},
        {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1a", "SpotPrice": "0.50",
         "Timestamp": t0 + dt.timedelta(minutes=30)},  # 1a's price now: the older 0.30 is history
        {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1b", "SpotPrice": "0.45", "Timestamp": t0},
        {"InstanceType": "g6.xlarge", "AvailabilityZone": "us-east-1c", "SpotPrice": "0.35", "Timestamp": t0},
    ]
    assert lowest_spot(records) == {"g5.xlarge": 0.45, "g6.xlarge": 0.35}


def test_live_spot_prices_come_from_the_spot_price_history(aws):
    rows = [load_instance_types()[t] for t in ("g5.xlarge", "g6e.xlarge", "t3.micro")]
    book = LivePrices(endpoint_url=aws)
    prices = book.prices(rows, REGION, "spot")
    ec2 = client("ec2", REGION, endpoint_url=aws)
    history = ec2.describe_spot_price_history(InstanceTypes=["g5.xlarge"])["SpotPriceHistory"]
    assert prices["g5.xlarge"] == min(float(h["SpotPrice"]) for h in history)  # moto's price, not the catalog's
    assert prices["g5.xlarge"] != CatalogPrices().prices(rows, REGION, "spot")["g5.xlarge"]
    assert book.source.startswith("live spot price history ")


def test_live_prices_fall_back_to_the_catalog_and_say_so(aws):
    rows = [load_instance_types()[t] for t in ("g5.xlarge", "t3.micro")]
    book = LivePrices(endpoint_url=aws)  # moto has no price list API: get_products fails
    prices = book.prices(rows, REGION, "on-demand")
    assert prices == CatalogPrices().prices(rows, REGION, "on-demand")
    assert book.source.startswith("catalog snapshot 2026-11-23 (live on-demand prices failed")


def test_credentials_are_detected_without_the_network(monkeypatch, tmp_path):
    assert not has_credentials() and isinstance(price_book(), CatalogPrices)  # conftest cleared AWS_* and HOME
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKIA...\naws_secret_access_key = x\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    assert has_credentials() and isinstance(price_book(), LivePrices)
    monkeypatch.setenv("INFERFORM_OFFLINE", "1")
    assert isinstance(price_book(), CatalogPrices)


def test_plan_uses_live_spot_prices_when_credentials_exist_and_catalog_offline(aws, cli):
    setup = str(ROOT / "setups" / "llama70b-spot.yaml")
    live = cli("plan", setup, "--json")
    assert live.code == 0, live.err
    cost = json.loads(live.out)["cost"]
    assert cost["price_source"].startswith("live spot price history")
    history = client("ec2", REGION, endpoint_url=aws).describe_spot_price_history()["SpotPriceHistory"]
    assert cost["usd_per_hour"] in {float(h["SpotPrice"]) for h in history}
    offline = cli("plan", setup, "--json", "--offline")
    assert json.loads(offline.out)["cost"]["price_source"] == "catalog snapshot 2026-11-23"


# ---- sweep ----------------------------------------------------------------------------------------------------

def _launch(aws: str, *, setup: str | None, expires: dt.datetime | None, owner: str | None = None,
            spot: bool = False) -> str:
    ec2 = client("ec2", REGION, endpoint_url=aws)
    tags = []
    if setup:
        tags.append({"Key": sweep.TAG_SETUP, "Value": setup})
        tags.append({"Key": sweep.TAG_OWNER, "Value": owner or sweep.local_owner()})
    if expires:
        tags.append({"Key": sweep.TAG_EXPIRES, "Value": expires.replace(microsecond=0).isoformat()})
    extra = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
    specs = [{"ResourceType": "instance", "Tags": tags}] if tags else []
    reply = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="g5.xlarge",
                              TagSpecifications=specs, **extra)
    return reply["Instances"][0]["InstanceId"]


def _state_of(aws: str, instance_id: str) -> str:
    reply = client("ec2", REGION, endpoint_url=aws).describe_instances(InstanceIds=[instance_id])
    return reply["Reservations"][0]["Instances"][0]["State"]["Name"]


def _applied(setup: str) -> None:
    write_state(AppliedState(setup=setup, setup_file=f"{setup}.yaml", plan_hash="0" * 12, target="aws",
                             applied_at=dt.datetime.now(dt.UTC), host="198.51.100.7",
                             endpoint="http://198.51.100.7:8080", engine="llama.cpp"))


@pytest.fixture
def fleet(aws):
    """Five instances: expired (spot), unexpired and applied here, unexpired with no state here (mine), unexpired
    with no state here (someone else's), and one inferform never tagged."""
    now = dt.datetime.now(dt.UTC)
    _applied("kept-applied")
    return {
        "expired": _launch(aws, setup="old-spot", expires=now - dt.timedelta(hours=1), spot=True),
        "applied": _launch(aws, setup="kept-applied", expires=now + dt.timedelta(hours=10)),
        "orphan": _launch(aws, setup="lost-state", expires=now + dt.timedelta(hours=10)),
        "theirs": _launch(aws, setup="colleague", expires=now + dt.timedelta(hours=10), owner="bob@laptop"),
        "untagged": _launch(aws, setup=None, expires=None),
    }


def test_sweep_finds_expired_and_orphaned_instances_only(aws, fleet):
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=5)  # 5 h after launch: the expired one has run 5 h
    found = {f.instance_id: f for f in sweep.find([REGION], now=later, endpoint_url=aws)}
    assert fleet["untagged"] not in found
    left = {i for i, f in found.items() if f.leftover}
    assert left == {fleet["expired"], fleet["orphan"]}
    expired = found[fleet["expired"]]
    assert expired.market == "spot" and expired.reason.startswith("expired")
    spot_price = load_instance_types()["g5.xlarge"].spot_usd[REGION]
    assert expired.usd_per_hour == spot_price
    assert expired.cost_so_far_usd == pytest.approx(5 * spot_price, rel=0.01)
    assert "no inferform state" in found[fleet["orphan"]].reason
    assert "bob@laptop" in found[fleet["theirs"]].reason and not found[fleet["theirs"]].leftover


def test_terminate_ends_exactly_the_leftovers(aws, fleet):
    leftovers = [f for f in sweep.find([REGION], endpoint_url=aws) if f.leftover]
    assert sweep.terminate(leftovers, endpoint_url=aws) == [f.instance_id for f in leftovers]
    for name, instance in fleet.items():
        ended = _state_of(aws, instance) in ("shutting-down", "terminated")
        assert ended == (name in ("expired", "orphan")), name


def test_cli_sweep_without_yes_terminates_nothing(aws, fleet, cli):
    result = cli("sweep", "--region", REGION, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["dry_run"] and report["terminated"] == []
    assert {f["instance_id"] for f in report["leftovers"]} == {fleet["expired"], fleet["orphan"]}
    assert {f["instance_id"] for f in report["kept"]} == {fleet["applied"], fleet["theirs"]}
    assert all(_state_of(aws, i) in ("pending", "running") for i in fleet.values())
    human = cli("sweep", "--region", REGION)
    assert "2 left over" in human.out and "nothing terminated" in human.out and fleet["expired"] in human.out


def test_cli_sweep_yes_terminates_and_reports(aws, fleet, cli):
    result = cli("sweep", "--region", REGION, "--yes", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert not report["dry_run"] and set(report["terminated"]) == {fleet["expired"], fleet["orphan"]}
    assert _state_of(aws, fleet["applied"]) in ("pending", "running")
    assert _state_of(aws, fleet["untagged"]) in ("pending", "running")
    again = json.loads(cli("sweep", "--region", REGION, "--json").out)
    assert again["leftovers"] == []  # terminated instances are no longer listed


def test_sweep_without_credentials_is_a_clear_error(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup from a test
    result = cli("sweep", "--region", REGION)
    assert result.code == 2 and "no AWS credentials" in result.err and "Traceback" not in result.err
