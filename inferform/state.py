"""What inferform has applied, per setup, in the user's state dir ($XDG_STATE_HOME/inferform/<setup>/).

State is written atomically (temp file + rename) and only after the step it records has succeeded, so a crash
mid-apply leaves the previous, true state. One apply per setup at a time: a non-blocking flock refuses a second
one instead of interleaving them. Secrets never land here: the API key lives in its own 0600 file and state
holds only its path.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field

from inferform.errors import EXIT_FAILURE, InferformError


def state_root() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "inferform"


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


def run_record(name: str) -> Path:
    """Where a running playbook of this setup records itself (apply/guard.py), for the next apply to find."""
    return setup_dir(name) / "run.json"


@contextmanager
def setup_lock(name: str) -> Iterator[None]:
    """Hold the setup's lock for the duration of an apply/destroy; refuse (exit 1) if another one holds it.

    Holding it, first end a playbook run that a killed apply left behind (its guard normally ends it within a
    fraction of a second; this catches one whose guard was killed too)."""
    from inferform.apply.guard import end_orphan

    folder = setup_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InferformError.single(f"another inferform apply or destroy of {name!r} is running",
                                        hint="wait for it to finish; two at once would interleave",
                                        exit_code=EXIT_FAILURE) from None
        ended = end_orphan(run_record(name))
        if ended:
            sys.stderr.write(f"note: {ended}\n")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
