"""`inferform status` for a cloud setup: where it runs, until when, what it has cost, and whether it still exists.

The recorded state says what apply created; only EC2 knows whether it still runs. A spot instance can be taken
back at any moment and the dead man's switch ends every instance at its TTL, so the live state comes from
`describe_instances` — but only when AWS credentials are configured (found without the network, as `plan` does):
without them status says the live state is unknown rather than guessing or failing. boto3 is imported only then.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from inferform.state import AppliedState

GONE = "gone"
# EC2 states after which the instance never runs again (a terminated one stays visible for about an hour).
_ENDED = ("shutting-down", "terminated")
_NOT_FOUND = ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed")


def live_instance_state(instance_id: str, region: str | None) -> tuple[str, str]:
    """(state, detail) from EC2: running, pending, stopped..., `gone`, or `unknown` when it cannot be told."""
    from inferform.cloud.aws import client, has_credentials

    if not has_credentials():
        return "unknown", "no AWS credentials configured: the live state was not checked"
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        reply = client("ec2", region, attempts=2, timeout_s=5).describe_instances(InstanceIds=[instance_id])
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _NOT_FOUND:
            return GONE, f"EC2 no longer knows {instance_id}"
        return "unknown", f"EC2 answered {code or exc}"
    except BotoCoreError as exc:
        return "unknown", f"EC2 could not be asked: {exc}"
    found = [i for r in reply.get("Reservations", []) for i in r.get("Instances", [])]
    if not found:
        return GONE, f"EC2 no longer knows {instance_id}"
    name = found[0]["State"]["Name"]
    if name in _ENDED:
        reason = found[0].get("StateReason", {}).get("Message") or found[0].get("StateTransitionReason") or ""
        return GONE, f"{name}" + (f": {reason}" if reason else "")
    return name, f"EC2 says {name}"


def _left(seconds: float) -> str:
    minutes = int(abs(seconds) // 60)
    text = f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"
    return f"{text} left" if seconds > 0 else f"expired {text} ago"


def describe_cloud(state: AppliedState, *, now: dt.datetime | None = None, live: bool = True) -> dict[str, Any]:
    """One status row for a cloud setup (the same keys as a local row where they mean the same thing).

    Cost so far is an estimate: hours since apply — up to the expiry, when the switch ends the instance at the
    latest — times the $/h the plan priced. `running` is True/False from EC2, None when it could not be asked.
    """
    from inferform.apply.status import _health

    now = now or dt.datetime.now(dt.UTC)
    args = state.cloud_args or {}
    instance_type = args.get("instance_type") or state.plan.get("target", {}).get("instance_type")
    end = min(now, state.expires_at) if state.expires_at else now
    hours = max((end - state.applied_at).total_seconds() / 3600, 0.0)
    cost = round(hours * state.usd_per_hour, 4) if state.usd_per_hour is not None else None
    left_s = (state.expires_at - now).total_seconds() if state.expires_at else None
    live_state, detail = ("unknown", "not checked") if not live or not state.instance_id else \
        live_instance_state(state.instance_id, state.region)
    hint = None
    if live_state == GONE:
        live_state = "gone (spot interruption or TTL)" if state.market == "spot" else "gone (TTL or terminated)"
        hint = (f"`inferform apply {state.setup_file}` brings it back (a new instance: new address), "
                f"or `inferform destroy {state.setup_file}` clears what is left")
    elif live_state == "unknown" and "credentials" in detail:
        hint = "configure AWS credentials (AWS_PROFILE, `aws configure`) to see whether the instance still runs"
    running = True if live_state == "running" else None if live_state == "unknown" else False
    health = _health(state.endpoint) if running else "not checked"
    return {
        "setup": state.setup, "target": state.target, "where": f"AWS {state.region} ({state.market} {instance_type})",
        "host": state.public_ip or state.host, "engine": state.engine, "endpoint": state.endpoint,
        "since": state.applied_at.isoformat(), "plan_hash": state.plan_hash, "setup_file": state.setup_file,
        "instance_id": state.instance_id, "instance_type": instance_type, "region": state.region,
        "market": state.market, "public_ip": state.public_ip,
        "expires_at": state.expires_at.isoformat() if state.expires_at else None,
        "time_left_s": None if left_s is None else max(int(left_s), 0),
        "time_left": None if left_s is None else _left(left_s),
        "usd_per_hour": state.usd_per_hour, "hours_since_applied": round(hours, 3), "cost_so_far_usd": cost,
        "live_state": live_state, "live_detail": detail, "running": running, "health": health,
        "api_key_file": state.api_key_file, "hint": hint,
    }
