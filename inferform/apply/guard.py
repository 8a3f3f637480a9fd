"""ansible-playbook under a guard: when the inferform process that started it dies, the whole run ends with it.

ansible-runner starts ansible-playbook through pexpect, in a session of its own and ignoring SIGHUP, so an apply
killed with SIGKILL used to leave the playbook, its workers and what they ran (a model download, a pip install, an
engine build) running outside the setup's lock, with nobody to report to, and its temporary folder behind.

ansible-runner starts this script instead (runner.py puts it first on PATH as `ansible-playbook`). It runs the real
ansible-playbook as its child, in its own process group (the session pexpect made), and watches its parent. When
the parent is gone it ends the process group (SIGTERM, then SIGKILL after a grace) and removes the run's folder.
Servers are outside that group: the service role starts them with setsid, or under systemd. The guard records
itself (its pid, process group, parent and folder) in a file the next apply of the setup reads, so an orphan
that outlived this guard too (both killed) is found and ended there (`end_orphan`).

Standard library only; it runs as a script, before and without the inferform package."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

GRACE_S = 5.0
POLL_S = 0.2
MARK = "inferform-guard"  # in the guard's argv, so an orphan's process group is recognised before it is signalled


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_group(pgid: int, folder: str | None, exclude: int | None = None) -> None:
    """End the run: SIGTERM to its process group and to every descendant of `exclude` (Ansible's workers start
    sessions of their own, so a module's download or build is not always in the group), SIGKILL to what is left
    after the grace, then the run's folder. `exclude` (the guard itself, which ignores the SIGTERM) is spared, so
    it can finish the clean-up. The tree is read before anything is signalled: a child whose parent dies first is
    reparented and would be lost from it."""
    targets = set(_members(pgid, exclude)) | (set(_descendants(exclude)) if exclude else set())
    for pid in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and any(alive(pid) for pid in targets):
        time.sleep(POLL_S)
    for pid in targets:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def _stat(pid: int | str) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [state, ppid, pgrp, session, ...], or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Running and not a zombie (kill -0 alone calls a zombie alive until its parent reaps it)."""
    fields = _stat(pid)
    if fields is not None:
        return fields[0] != "Z"
    if Path("/proc").is_dir():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _table() -> dict[int, list[str]]:
    return {int(e.name): f for e in Path("/proc").iterdir() if e.name.isdigit() and (f := _stat(e.name))}


def _descendants(root: int) -> list[int]:
    """Every live process below `root`, from /proc (empty without it)."""
    if not Path("/proc").is_dir():
        return []
    children: dict[int, list[int]] = {}
    for pid, fields in _table().items():
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _members(pgid: int, exclude: int | None = None) -> list[int]:
    """Live (not zombie) processes of the group, `exclude` left out; without /proc, the group if it answers."""
    if not Path("/proc").is_dir():
        return [pgid] if pgid != exclude and _group_alive(pgid) else []
    return [pid for pid, fields in _table().items()
            if pid != exclude and fields[0] != "Z" and int(fields[2]) == pgid]


def end_orphan(record: Path) -> str | None:
    """End the run a dead apply left behind, as its guard file records it; what was ended, or None.

    The group is signalled only when its leader is still this guard (its argv carries MARK) and the apply that
    started it is gone: a pid reused by an unrelated program is never touched."""
    try:
        run = json.loads(record.read_text())
        pgid, parent, folder = int(run["pgid"]), int(run["parent"]), run.get("folder")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        record.unlink(missing_ok=True)
        return None
    if alive(parent):
        return None  # the lock says no other apply runs; a live parent here is a reused pid, not that apply
    ended = None
    try:
        leader = Path(f"/proc/{pgid}/cmdline").read_bytes()
    except OSError:
        leader = b""
    if MARK.encode() in leader and _members(pgid):
        end_group(pgid, folder)
        ended = f"ended the playbook run (process group {pgid}) left behind by an apply that died (pid {parent})"
    elif folder and Path(folder).is_dir():
        shutil.rmtree(folder, ignore_errors=True)
    record.unlink(missing_ok=True)
    return ended


def main(argv: list[str]) -> int:
    parent = int(os.environ["INFERFORM_APPLY_PID"])
    real = os.environ["INFERFORM_ANSIBLE_PLAYBOOK"]
    folder = os.environ.get("INFERFORM_RUN_DIR") or None
    record = os.environ.get("INFERFORM_RUN_RECORD") or None
    if os.getppid() != parent:
        return 1  # the apply died before its playbook started
    if record:
        tmp = f"{record}.{os.getpid()}.tmp"
        Path(tmp).write_text(json.dumps({"guard": os.getpid(), "pgid": os.getpgrp(), "parent": parent,
                                         "folder": folder}))
        os.replace(tmp, record)
    child = subprocess.Popen([real, *argv])
    try:
        while child.poll() is None:
            time.sleep(POLL_S)
            if os.getppid() != parent:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's SIGTERM is for the others
                end_group(os.getpgrp(), folder, exclude=os.getpid())
                return 1
        return child.returncode
    finally:
        if record:
            Path(record).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[2:] if sys.argv[1:2] == [MARK] else sys.argv[1:]))
