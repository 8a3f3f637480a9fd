"""One apply or destroy per setup at a time: a non-blocking flock on the setup's state folder refuses a second one
instead of interleaving them, and the playbook run a killed apply left behind is ended first (guard.py).

Here rather than in state.py: state sits below apply and cloud and knows nothing of playbooks.
"""

from __future__ import annotations

import fcntl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from inferform.apply.guard import end_orphan
from inferform.errors import EXIT_FAILURE, InferformError
from inferform.state import setup_dir


def run_record(name: str) -> Path:
    """Where a running playbook of this setup records itself (apply/guard.py), for the next apply to find."""
    return setup_dir(name) / "run.json"


@contextmanager
def setup_lock(name: str) -> Iterator[None]:
    """Hold the setup's lock for the duration of an apply/destroy; refuse (exit 1) if another one holds it.

    Holding it, first end a playbook run that a killed apply left behind (its guard normally ends it within a
    fraction of a second; this catches one whose guard was killed too)."""
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
