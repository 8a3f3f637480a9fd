"""What inferform has applied, per setup, in the user's state dir ($XDG_STATE_HOME/inferform/<setup>/).

State is written atomically (temp file + rename) and only after the step it records has succeeded, so a crash
mid-apply leaves the previous, true state (one apply per setup at a time: apply/lock.py). Below apply and cloud:
both record here, and it imports neither. Secrets never land here: the API key lives in its own 0600 file and state
holds only its path.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pydantic import BaseModel, Field, model_validator

from inferform.dirs import state_dir as state_root
from inferform.errors import EXIT_FAILURE, InferformError
from inferform.targets import is_loopback

if TYPE_CHECKING:
    from inferform.plan import Plan


def setup_dir(name: str) -> Path:
    return state_root() / name


class AppliedState(BaseModel):
    """The last successful apply of one setup."""

    setup: str
    setup_file: str
    plan_hash: str
    applied_at: dt.datetime
    target: str = Field("local", description="local, or ssh: then host and the ssh_* fields say how to reach it.")
    host: str = "localhost"
    ssh_port: int | None = None
    ssh_user: str | None = None
    ssh_key_file: str | None = Field(None, description="Path of the private key; never its contents.")
    ssh_remote_base: str | None = None
    ssh_python: str | None = None
    endpoint: str
    engine: str
    pid: int | None = None
    unit: str | None = None
    api_key_file: str | None = None
    # Cloud targets (target "aws"): what runs where and until when. Never the API key or the Pulumi passphrase.
    cloud_stack: str | None = Field(None, description="Pulumi stack name (the setup name) in inferform's backend.")
    instance_id: str | None = None
    region: str | None = None
    public_ip: str | None = None
    expires_at: dt.datetime | None = Field(None, description="When the instance's dead man's switch fires.")
    market: str | None = Field(None, description="spot or on-demand.")
    usd_per_hour: float | None = None
    cloud_args: dict = Field({}, description="The stack's inputs less secrets, to re-run `up`.")
    plan: dict = Field({}, description="The plan as applied (plan --json), for diffs.")
    render_dir: str | None = Field(None, description="The rendered files of that plan, on this machine: a failed "
                                                     "re-apply brings them back.")

    @model_validator(mode="before")
    @classmethod
    def _from_older(cls, data):
        """State written before render_dir had a field kept it (and the model's sha256) inside the plan dict, and
        its plan's serve had no api_key_required: decided here as the planner decides it."""
        if not isinstance(data, dict) or not data.get("plan"):
            return data
        plan = dict(data["plan"])
        render_dir, sha256 = plan.pop("_render_dir", None), plan.pop("_sha256", None)
        plan = {k: v for k, v in plan.items() if not k.startswith("_")}
        if sha256 and isinstance(plan.get("model"), dict):
            plan["model"] = {**plan["model"], "sha256": plan["model"].get("sha256") or sha256}
        serve = plan.get("serve")
        if isinstance(serve, dict) and "host" in serve and "api_key_required" not in serve:
            plan["serve"] = {**serve, "api_key_required": not is_loopback(str(serve["host"]))}
        return {**data, "plan": plan, "render_dir": data.get("render_dir") or render_dir}

    def applied_plan(self) -> Plan:
        """The recorded plan as a Plan: what destroy and a roll-back act on."""
        from inferform.plan import Plan

        return Plan.model_validate(self.plan)


def refuse_elsewhere(name: str, was: str, now: str) -> NoReturn:
    """An apply whose target is not where the setup is applied would leave the old server running unrecorded."""
    raise InferformError.single(f"{name} is applied on {was}, and this apply targets {now}: the old server would "
                                "keep running unrecorded", hint=f"run `inferform destroy` for {name} first, then apply")


def check_kind(state: AppliedState | None, group: bool) -> None:
    """A name applied as one setup cannot be re-applied as a group (or the reverse) in place: destroy first."""
    if state is None or (state.plan.get("kind") == "group") == group:
        return
    was, now = ("one setup", "a group") if group else ("a group", "one setup")
    raise InferformError.single(f"{state.setup} is applied as {was}, and {state.setup_file} now describes "
                                f"{now} of that name", file=state.setup_file,
                                hint=f"run `inferform destroy` for {state.setup} first (with the file as it was "
                                     "applied), then apply")


def check_owner(state: AppliedState | None, setup_file: str) -> None:
    """Refuse to act on an applied setup from another file that happens to carry the same `name:`.

    The name keys the state, the unit and the files, so a second file named `demo` would silently reconfigure (or
    destroy) the `demo` that the first one applied. A file that was moved keeps its setup: when the recorded file
    no longer exists, the new path takes over."""
    if state is None:
        return
    recorded, given = Path(state.setup_file), Path(setup_file).resolve()
    if recorded != given and recorded.exists():
        raise InferformError.single(
            f"setup {state.setup!r} is applied from {recorded}; {setup_file} has the same name, so acting on it "
            f"would change what that file applied", file=setup_file,
            hint=f"give this setup another `name:` (a name is one deployment on this machine), or use {recorded}")


def _state_file(name: str) -> Path:
    return setup_dir(name) / "state.json"


def read_state(name: str) -> AppliedState | None:
    path = _state_file(name)
    try:
        return AppliedState.model_validate_json(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise InferformError.single(f"state file is unreadable: {exc}", file=str(path),
                                    hint="inspect or remove it; `inferform destroy` needs it to know what runs",
                                    exit_code=EXIT_FAILURE) from None


def write_state(state: AppliedState) -> Path:
    path = _state_file(state.setup)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state.model_dump(mode="json"), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def remove_state(name: str) -> None:
    _state_file(name).unlink(missing_ok=True)


def all_states() -> list[AppliedState]:
    root = state_root()
    found = []
    for path in sorted(root.glob("*/state.json")) if root.is_dir() else []:
        state = read_state(path.parent.name)
        if state:
            found.append(state)
    return found


def api_key_file(name: str) -> Path:
    """The setup's API key file (0600), created with a fresh random key the first time it is needed."""
    import secrets

    path = setup_dir(name) / "api-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("sk-inferform-" + secrets.token_urlsafe(32) + "\n")
    return path
