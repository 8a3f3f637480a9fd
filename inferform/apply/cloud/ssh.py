"""SSH to a fresh cloud instance: wait until it can take Ansible, and re-arm its dead man's switch.

Host keys are pinned on first contact (accept-new) in the setup's own known_hosts file — the same file the SSH
inventory of `apply_plan` uses — so the user's ~/.ssh/known_hosts is never edited, and a changed key later fails.
"""

from __future__ import annotations

import datetime as dt
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from inferform.cloud.instance import shutdown_minutes
from inferform.errors import EXIT_FAILURE, InferformError
from inferform.state import setup_dir

READY_TIMEOUT_S = 900  # a GPU instance's first boot with apt updates takes minutes, not seconds


def known_hosts(name: str) -> Path:
    return setup_dir(name) / "known_hosts"


def ssh_argv(host: str, user: str, key_file: Path, hosts_file: Path, command: str) -> list[str]:
    return ["ssh", "-i", str(key_file), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={hosts_file}", f"{user}@{host}", command]


def wait_for_ssh(host: str, user: str, key_file: Path, hosts_file: Path, *, timeout_s: float = READY_TIMEOUT_S,
                 run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """Until SSH answers and the boot script has finished (cloud-init done, python3 there for Ansible)."""
    # cloud-init's exit code reports errors of any module; python3 being present is what Ansible needs.
    probe = "cloud-init status --wait >/dev/null 2>&1; command -v python3 >/dev/null"
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            done = run(ssh_argv(host, user, key_file, hosts_file, probe), capture_output=True, text=True,
                       timeout=max(30.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            last = "cloud-init was still running"
            continue
        if done.returncode == 0:
            return
        lines = (done.stderr or done.stdout or "").strip().splitlines()
        last = lines[-1] if lines else f"exit {done.returncode}"
        sleep(5)
    raise InferformError.single(f"{user}@{host} did not become ready for SSH within {timeout_s:.0f} s: {last}",
                                hint="the instance still runs until its TTL; `inferform destroy` ends it now",
                                exit_code=EXIT_FAILURE)


def extended_deadline(current: dt.datetime | None, extra_seconds: int, *, now: dt.datetime | None = None,
                      ) -> dt.datetime:
    """The new expiry: `extra_seconds` past the current deadline (or past now, if that is already behind)."""
    if extra_seconds <= 0:
        raise InferformError.single("an extension must be positive", hint="e.g. 1h")
    now = now or dt.datetime.now(dt.UTC)
    base = max(current, now) if current else now
    return (base + dt.timedelta(seconds=extra_seconds)).replace(microsecond=0)


def rearm_command(deadline: dt.datetime, *, now: dt.datetime | None = None) -> str:
    """Shell command run on the instance to move the switch to `deadline`.

    A new `shutdown -h +N` replaces the pending one on systemd (logind keeps a single scheduled shutdown), so no
    `shutdown -c` first: cancelling then re-arming would leave a moment — or, if the second command failed, a
    lifetime — without a switch.
    """
    now = now or dt.datetime.now(dt.UTC)
    minutes = shutdown_minutes(max(60, int((deadline - now).total_seconds())))
    stamp = deadline.isoformat()
    message = f"inferform: TTL extended to {stamp}"
    return (f"sudo shutdown -h +{minutes} {shlex.quote(message)} && "
            f"printf '%s\\n' {shlex.quote(stamp)} | sudo tee /etc/inferform/expires-at >/dev/null")
