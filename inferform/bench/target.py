"""What `inferform bench` measures: an applied setup (endpoint, key and plan from its state) or a bare URL."""

from __future__ import annotations

import os
import re
from pathlib import Path

from inferform.bench.client import Target
from inferform.errors import InferformError

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _setup_name(setup: str) -> str:
    """A setup file's name, or the argument itself when it is no file but names an applied setup (`bench demo`)."""
    from inferform.state import read_state

    if not Path(setup).exists() and SLUG.fullmatch(setup) and read_state(setup):
        return setup
    from inferform.pipeline import deployment_name

    return deployment_name(setup)


def member_target(target: Target, member: str | None) -> Target:
    """A group is measured one member at a time: the member's plan gives the predictions, its name the `model`."""
    from dataclasses import replace

    plan = target.plan or {}
    if plan.get("kind") != "group":
        if member is not None:
            raise InferformError.single(f"--member {member}: {target.setup} is one setup, not a group",
                                        hint=f"inferform bench {target.setup}")
        return target
    members = {m["name"]: m["plan"] for m in plan.get("members", [])}
    if member not in members:
        from inferform.errors import did_you_mean

        what = "a group is measured one member at a time" if member is None else f"no member named {member!r}"
        raise InferformError.single(f"{target.setup}: {what}", hint=(did_you_mean(member or "", members) or "")
                                    + f" --member one of: {', '.join(members)}")
    return replace(target, plan=members[member], model=member, setup=f"{target.setup}/{member}")


def applied_plan(setup: str) -> tuple[str, object]:
    """(setup name, applied state); exit 2 with the apply command when the setup is not applied."""
    from inferform.state import read_state

    name = _setup_name(setup)
    state = read_state(name)
    if state is None:
        raise InferformError.single(f"setup {name!r} is not applied: there is no endpoint to measure",
                                    file=setup if Path(setup).exists() else None,
                                    hint=f"inferform apply {setup}")
    return name, state


def from_setup(setup: str) -> Target:
    """The applied setup's endpoint (0.0.0.0 reached on loopback), its API key when it has one, and its plan."""
    name, state = applied_plan(setup)
    key = Path(state.api_key_file).read_text().strip() if state.api_key_file else "none"
    endpoint = state.endpoint.replace("://0.0.0.0:", "://127.0.0.1:")
    return Target(endpoint=endpoint, api_key=key, setup=name, plan=state.plan, setup_file=state.setup_file)


def from_url(url: str, setup: str | None = None) -> Target:
    """A bare OpenAI-compatible base URL; the key comes from OPENAI_API_KEY when set (local servers need none).

    With a setup, its applied plan gives the predictions, or it is planned now when it is not applied here (a
    server started by other means, or on another machine).
    """
    endpoint = url.rstrip("/")
    if not endpoint.endswith("/v1"):
        endpoint += "/v1"
    key = os.environ.get("OPENAI_API_KEY") or "none"
    if setup is None:
        return Target(endpoint=endpoint, api_key=key)
    from inferform.state import read_state

    name = _setup_name(setup)
    state = read_state(name)
    if state is not None:
        plan = state.plan
    else:
        from inferform.pipeline import plan_setup

        plan = plan_setup(setup)[1].model_dump(mode="json")
    return Target(endpoint=endpoint, api_key=key, setup=name, plan=plan,
                  setup_file=state.setup_file if state and not Path(setup).exists() else setup)
