"""Find (and, when asked, end) EC2 instances inferform started and nobody is keeping.

An instance tagged `inferform:setup` is left over when its `inferform:expires-at` has passed (its dead man's
switch should have ended it), when it has no valid expiry, or, for instances this user started, when no
inferform state here refers to it (the setup was destroyed or its state lost while the instance lived on).
Another user's unexpired instance is never swept: its state lives on their machine. Listing changes nothing;
terminate() ends exactly the instances it is given.
"""

from __future__ import annotations

import datetime as dt
import getpass
import re
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from inferform.catalog.instances import load_instance_types
from inferform.cloud.aws import DEFAULT_REGION, client
from inferform.errors import EXIT_FAILURE, InferformError
from inferform.state import AppliedState, all_states

TAG_SETUP = "inferform:setup"
TAG_EXPIRES = "inferform:expires-at"
TAG_OWNER = "inferform:owner"
ALIVE = ["pending", "running", "stopping", "stopped"]  # a stopped instance still bills its volumes
_STOPPED_AT = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) GMT\)")


def local_owner() -> str:
    """This user on this machine, as cloud apply writes it into the inferform:owner tag."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


@dataclass
class Found:
    """One inferform-tagged instance and the verdict on it."""

    instance_id: str
    region: str
    setup: str
    instance_type: str
    market: str
    state: str
    owner: str | None
    launched_at: str
    expires_at: str | None
    hours_running: float | None
    usd_per_hour: float | None
    cost_so_far_usd: float | None
    leftover: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _hours(info: dict[str, Any], now: dt.datetime) -> float | None:
    """Hours billed since launch: up to now while it runs, up to the stop for a stopped instance (if AWS says)."""
    launched: dt.datetime = info["LaunchTime"]
    end: dt.datetime | None = now
    if info["State"]["Name"] in ("stopping", "stopped"):
        match = _STOPPED_AT.search(info.get("StateTransitionReason", ""))
        end = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC) if match else None
    return None if end is None else max((end - launched).total_seconds() / 3600, 0.0)


def _price(instance_type: str, region: str, market: str, state: AppliedState | None) -> float | None:
    recorded = getattr(state, "usd_per_hour", None)
    if recorded is not None:
        return recorded
    row = load_instance_types().get(instance_type)
    if row is None:
        return None
    return (row.spot_usd if market == "spot" else row.on_demand_usd).get(region)


def _verdict(instance_id: str, setup: str, owner: str | None, expires: dt.datetime | None, raw_expiry: str | None,
             state: AppliedState | None, now: dt.datetime, me: str) -> tuple[bool, str]:
    if expires is None:
        return True, f"no valid {TAG_EXPIRES} tag ({raw_expiry!r}): nothing would ever end it"
    if expires <= now:
        ago = (now - expires).total_seconds() / 3600
        return True, f"expired {expires.isoformat()} ({ago:.1f} h ago)"
    mine = owner in (None, "", me)
    recorded = getattr(state, "instance_id", None)
    if state is None or state.target == "local":
        if mine:
            return True, f"no inferform state for setup {setup!r} here: destroyed or lost while it kept running"
        return False, f"started by {owner}; its state is on their machine"
    if recorded and recorded != instance_id:
        if mine:
            return True, f"the state of {setup!r} names another instance ({recorded}): a replaced one left behind"
        return False, f"started by {owner}; the state here names {recorded}"
    return False, f"applied (state here), ends {expires.isoformat()}"


def scan_region(region: str, *, now: dt.datetime, states: dict[str, AppliedState], me: str,
                endpoint_url: str | None = None) -> list[Found]:
    ec2 = client("ec2", region, endpoint_url=endpoint_url)
    pages = ec2.get_paginator("describe_instances").paginate(Filters=[
        {"Name": "tag-key", "Values": [TAG_SETUP]}, {"Name": "instance-state-name", "Values": ALIVE}])
    found = []
    for page in pages:
        for reservation in page.get("Reservations", []):
            for info in reservation.get("Instances", []):
                found.append(_describe(info, region, now, states, me))
    return found


def _describe(info: dict[str, Any], region: str, now: dt.datetime, states: dict[str, AppliedState],
              me: str) -> Found:
    tags = {t["Key"]: t["Value"] for t in info.get("Tags", [])}
    setup = tags.get(TAG_SETUP, "?")
    raw_expiry = tags.get(TAG_EXPIRES)
    expires = _parse_time(raw_expiry)
    state = states.get(setup)
    market = "spot" if info.get("InstanceLifecycle") == "spot" else "on-demand"
    itype = info["InstanceType"]
    leftover, reason = _verdict(info["InstanceId"], setup, tags.get(TAG_OWNER), expires, raw_expiry, state, now, me)
    hours = _hours(info, now)
    price = _price(itype, region, market, state if getattr(state, "instance_id", None) == info["InstanceId"]
                   else None)
    cost = round(hours * price, 4) if hours is not None and price is not None else None
    return Found(instance_id=info["InstanceId"], region=region, setup=setup, instance_type=itype, market=market,
                 state=info["State"]["Name"], owner=tags.get(TAG_OWNER), launched_at=info["LaunchTime"].isoformat(),
                 expires_at=expires.isoformat() if expires else raw_expiry,
                 hours_running=round(hours, 3) if hours is not None else None, usd_per_hour=price,
                 cost_so_far_usd=cost, leftover=leftover, reason=reason)


def default_regions() -> list[str]:
    """Where inferform may have started instances: the catalog's regions and every region in local state."""
    regions = {DEFAULT_REGION}
    for row in load_instance_types().values():
        regions.update(row.on_demand_usd)
    for state in all_states():
        if getattr(state, "region", None):
            regions.add(state.region)
    return sorted(regions)


def find(regions: Iterable[str] | None = None, *, now: dt.datetime | None = None,
         endpoint_url: str | None = None) -> list[Found]:
    """Every inferform-tagged instance in the regions, each with its verdict. Reads only."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    now = now or dt.datetime.now(dt.UTC)
    states = {s.setup: s for s in all_states()}
    me = local_owner()
    out: list[Found] = []
    for region in regions or default_regions():
        try:
            out += scan_region(region, now=now, states=states, me=me, endpoint_url=endpoint_url)
        except NoCredentialsError:
            raise InferformError.single("no AWS credentials found", hint="run `aws configure`, set AWS_PROFILE, "
                                        "or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") from None
        except (BotoCoreError, ClientError) as exc:
            raise InferformError.single(f"listing instances in {region} failed: {exc}", exit_code=EXIT_FAILURE,
                                        hint="check the region name and your IAM permissions "
                                             "(ec2:DescribeInstances)") from None
    return sorted(out, key=lambda f: (not f.leftover, f.region, f.setup, f.instance_id))


def terminate(found: Iterable[Found], *, endpoint_url: str | None = None) -> list[str]:
    """End the given instances (and cancel their spot requests so nothing replaces them); their ids."""
    from botocore.exceptions import BotoCoreError, ClientError

    by_region: dict[str, list[str]] = {}
    for f in found:
        by_region.setdefault(f.region, []).append(f.instance_id)
    ended: list[str] = []
    for region, ids in sorted(by_region.items()):
        ec2 = client("ec2", region, endpoint_url=endpoint_url)
        try:
            described = ec2.describe_instances(InstanceIds=ids)
            requests = [i["SpotInstanceRequestId"] for r in described["Reservations"] for i in r["Instances"]
                        if i.get("SpotInstanceRequestId")]
            if requests:
                ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=requests)
            ec2.terminate_instances(InstanceIds=ids)
        except (BotoCoreError, ClientError) as exc:
            done = f" (already ended: {', '.join(ended)})" if ended else ""
            raise InferformError.single(f"terminating {', '.join(ids)} in {region} failed: {exc}{done}",
                                        exit_code=EXIT_FAILURE,
                                        hint="check ec2:TerminateInstances permission; run sweep again") from None
        ended += ids
    return ended


def report(found: list[Found], terminated: list[str], acted: bool) -> dict[str, Any]:
    """What `sweep --json` prints: every tagged instance with its verdict, and what was ended."""
    left = [f for f in found if f.leftover]
    return {"leftovers": [f.to_json() for f in left], "kept": [f.to_json() for f in found if not f.leftover],
            "cost_so_far_usd": round(sum(f.cost_so_far_usd or 0.0 for f in left), 4),
            "terminated": terminated, "dry_run": not acted}
