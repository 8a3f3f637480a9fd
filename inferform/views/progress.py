"""The progress line of apply and destroy, fed by ansible-runner events: the task being run and how many have run.

It appears with the first event, so an apply that needs no playbook (no changes) prints none, and it ends with
the outcome: the last task's name ("Remove the service") would read as if that task had just run.

Ansible reports a task when it starts and when it ends, and an engine build is one task of 10-20 minutes. For a
target on this machine the build's own log is watched while that task runs: cmake's `[ 45%]` lines become the
percentage on the progress line (`watch`: task-name prefix → log file)."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

_PERCENT = re.compile(rb"\[\s*(\d{1,3})%\]")


class PlaybookProgress:
    """A context manager around a rich Progress; `on_event` is the runner's event handler."""

    def __init__(self, watch: dict[str, Path] | None = None) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 TextColumn("[dim]{task.completed} tasks"), TimeElapsedColumn(), transient=False)
        self._task = self.progress.add_task("starting", total=None)
        self._started = False
        self._watch = watch or {}
        self._watched: Path | None = None
        self._task_name = ""
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def description(self) -> str:
        return str(self.progress.tasks[0].description)

    def on_event(self, event: dict[str, Any]) -> None:
        if not self._started:
            self.progress.start()
            self._started = True
        data = event.get("event_data") or {}
        if event.get("event") == "playbook_on_task_start":
            self._task_name = str(data.get("task", ""))
            self._watched = next((log for prefix, log in self._watch.items() if self._task_name.startswith(prefix)),
                                 None)
            self.progress.update(self._task, description=self._task_name, advance=1)
            if self._watched is not None and self._thread is None:
                self._thread = threading.Thread(target=self._follow, daemon=True)
                self._thread.start()
        elif event.get("event") == "playbook_on_stats":
            failed = any(data.get(key) for key in ("failures", "dark"))
            self.progress.update(self._task, description="[red]stopped by a failed task" if failed else "[green]done")

    def _follow(self) -> None:
        """While a watched task runs, put its log's last percentage on the line, once a second."""
        while not self._done.wait(1.0):
            log, name = self._watched, self._task_name
            if log is None:
                continue
            percent = build_percent(log)
            if percent is not None and self._task_name == name:
                self.progress.update(self._task, description=f"{name} [bold]{percent}%")

    def __enter__(self) -> PlaybookProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        if self._started:
            self.progress.stop()


def build_percent(log: Path) -> int | None:
    """The last `[ NN%]` in the end of a cmake build log, or None."""
    try:
        with log.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            found = _PERCENT.findall(handle.read())
    except OSError:
        return None
    return int(found[-1]) if found else None
