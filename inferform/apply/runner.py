"""Run inferform's playbooks through ansible-runner and reduce the outcome to what the CLI needs to say.

Why ansible-runner and not a bare `ansible-playbook` subprocess: it hands back structured events (a task started,
a host changed or failed) that drive a progress bar while the run is quiet, and per-host stats for the summary
("3 changed" / "nothing to do"). Two of its habits are worked around here:

- it persists `env/cmdline`, `env/extravars` and `env/envvars` inside the private data dir and reuses them on the
  next run, so a `--check` of one apply would silently stick to the next: every run gets a fresh directory;
- it runs `ansible-playbook` from PATH, which need not include this interpreter's venv (an installed console
  script is run without activating it): the venv's bin dir is put first.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferform.assets import asset_dir

EventHandler = Callable[[dict[str, Any]], None]

# Messages that say nothing about the cause; for these the task's stderr/stdout tail is quoted instead.
_VAGUE = ("non-zero return code", "MODULE FAILURE", "All items completed", "One or more items failed")
_TAIL_LINES = 15


@dataclass(frozen=True)
class HostStats:
    """One host's line of the play recap."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass(frozen=True)
class PlaybookResult:
    """What a playbook run did: exit status, per-host counts, and why it failed (one message per failed task)."""

    rc: int
    status: str
    hosts: dict[str, HostStats] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)  # what the roles reported with set_stats

    @property
    def succeeded(self) -> bool:
        return self.rc == 0 and self.status == "successful"

    @property
    def changed(self) -> int:
        """Tasks that changed something, summed over hosts: 0 on a re-apply of the same plan."""
        return sum(h.changed for h in self.hosts.values())

    @property
    def ok(self) -> int:
        return sum(h.ok for h in self.hosts.values())

    @property
    def failed(self) -> int:
        """Failed tasks plus unreachable hosts, summed over hosts."""
        return sum(h.failed + h.unreachable for h in self.hosts.values())


def _guarded_playbook(pdd: Path) -> Path:
    """A bin dir holding `ansible-playbook` that runs the real one under guard.py with this interpreter."""
    from inferform.apply import guard

    folder = pdd / "guard-bin"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "ansible-playbook"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{guard.__file__}" {guard.MARK} "$@"\n')
    script.chmod(0o755)
    return folder


def playbook_path(name: str) -> str:
    """Absolute path of a shipped playbook ("apply" or "destroy"), in a checkout or an installed wheel."""
    path = asset_dir("roles") / f"{name.removesuffix('.yml')}.yml"
    if not path.is_file():
        raise FileNotFoundError(f"no playbook named {name!r} in {path.parent}")
    return str(path)


def _tail(text: object, lines: int = _TAIL_LINES) -> str:
    return "\n".join(str(text or "").strip().splitlines()[-lines:])


def failure_message(event: Mapping[str, Any]) -> str | None:
    """The human reason in a runner_on_failed / runner_on_unreachable event, or None for ignored failures.

    Modules put the cause in `msg`; commands and scripts only say "non-zero return code" there and keep the
    cause in stderr, so that is quoted for them. Loops nest one result per item.
    """
    data = event.get("event_data") or {}
    if event.get("event") == "runner_on_failed" and data.get("ignore_errors"):
        return None
    res = data.get("res") or {}
    msg = str(res.get("msg") or "").strip()
    if not msg or msg.startswith(_VAGUE):
        items = [r for r in res.get("results") or [] if isinstance(r, dict) and r.get("failed")]
        detail = "; ".join(str(r.get("msg") or _tail(r.get("stderr"))) for r in items)
        detail = detail or _tail(res.get("stderr")) or _tail(res.get("stdout")) or _tail(res.get("module_stderr"))
        msg = f"{msg}: {detail}" if msg and detail else (msg or detail or "failed without a message")
    host = data.get("host") or "?"
    if str(data.get("task_action", "")).rsplit(".", 1)[-1] in ("fail", "assert"):
        return f"{host}: {msg}"  # the roles' own fail/assert messages are written to stand alone
    return f"{host}: {data.get('task') or '?'}: {msg}"


def _host_stats(stats: Mapping[str, Any] | None) -> dict[str, HostStats]:
    """Turn ansible's {"ok": {host: n}, "failures": {...}, "dark": {...}, ...} into one record per host."""
    stats = stats or {}
    keys = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable", "skipped": "skipped",
            "rescued": "rescued", "ignored": "ignored"}
    hosts: set[str] = set()
    for key in keys:
        hosts.update((stats.get(key) or {}).keys())
    return {h: HostStats(**{name: int((stats.get(key) or {}).get(h, 0)) for key, name in keys.items()})
            for h in sorted(hosts)}


def run_playbook(
    playbook: str,
    extravars: dict[str, Any],
    inventory: str,
    *,
    check: bool = False,
    diff: bool = False,
    on_event: EventHandler | None = None,
    private_data_dir: Path | None = None,
    run_record: Path | None = None,
) -> PlaybookResult:
    """Run `playbook` (a path) against `inventory` (a path or INI text) with `extravars`, quietly.

    Each ansible-runner event is passed to `on_event` as it arrives (for a progress display); an exception in the
    handler stops further calls rather than aborting a half-done apply. `check`/`diff` add `--check`/`--diff`.
    `private_data_dir`, when given, is kept afterwards for debugging (its stale env/ is removed first);
    otherwise a temporary directory is used and deleted, extravars included.

    ansible-playbook runs under guard.py, which ends the run when this process dies; `run_record` is where the
    guard records itself, for the next apply to find an orphan (guard.end_orphan).
    """
    import ansible_runner

    owned = private_data_dir is None
    pdd = Path(tempfile.mkdtemp(prefix="inferform-ansible-")) if owned else Path(private_data_dir)
    if not owned:
        pdd.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(pdd / "env", ignore_errors=True)
    failures: list[str] = []
    artifacts: dict[str, Any] = {}
    handler_broken: list[BaseException] = []

    def handle(event: dict[str, Any]) -> bool:
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
            message = failure_message(event)
            if message:
                failures.append(message)
        if event.get("event") == "playbook_on_stats":
            artifacts.update((event.get("event_data") or {}).get("artifact_data") or {})
        if on_event is not None and not handler_broken:
            try:
                on_event(event)
            except Exception as exc:  # a display bug must not kill the run halfway
                handler_broken.append(exc)
        return True  # keep the event: runner computes .stats from the stored playbook_on_stats event

    venv_bin = str(Path(sys.executable).parent)
    search_path = os.pathsep.join([venv_bin, os.environ.get("PATH", os.defpath)])
    guard_bin = _guarded_playbook(pdd)
    envvars = {
        "PATH": os.pathsep.join([str(guard_bin), search_path]),
        "INFERFORM_APPLY_PID": str(os.getpid()),
        "INFERFORM_ANSIBLE_PLAYBOOK": shutil.which("ansible-playbook", path=search_path) or "ansible-playbook",
        "INFERFORM_RUN_DIR": str(pdd) if owned else "",
        "INFERFORM_RUN_RECORD": str(run_record or ""),
        "ANSIBLE_ROLES_PATH": str(asset_dir("roles")),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_PIPELINING": "1",  # one SSH round trip per task instead of three; harmless locally
    }
    cmdline = " ".join(flag for flag, on in (("--check", check), ("--diff", diff)) if on)
    try:
        runner = ansible_runner.run(
            private_data_dir=str(pdd),
            playbook=playbook,
            inventory=inventory,
            extravars=extravars,
            envvars=envvars,
            cmdline=cmdline or None,
            quiet=True,
            event_handler=handle,
            ident="run",
        )
        status = str(runner.status)
        rc = int(runner.rc) if runner.rc is not None else 1
        hosts = _host_stats(runner.stats)
        if rc != 0 and not failures:
            # No task failed: the playbook did not parse, a variable was undefined, a role spec was violated.
            # ansible-playbook printed the reason; quote the end of it.
            stdout = runner.stdout.read() if runner.stdout else ""
            failures.append(_tail(stdout) or f"ansible-playbook exited with {rc} ({status})")
    finally:
        if owned:
            shutil.rmtree(pdd, ignore_errors=True)
    return PlaybookResult(rc=rc, status=status, hosts=hosts, messages=failures, artifacts=artifacts)
