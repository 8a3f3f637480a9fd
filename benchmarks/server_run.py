"""Start llama-server with a planned argv just long enough to read the memory it reports, then stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from inferform.engines.llama_log import LoggedMemory, parse

READY = ("server is listening", "all slots are idle")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_port(argv: list[str], port: int) -> list[str]:
    out = list(argv)
    out[out.index("--port") + 1] = str(port)
    out[out.index("--host") + 1] = "127.0.0.1"
    return out


def stop(proc: subprocess.Popen) -> None:
    """SIGINT the server's process group (it prints its memory table on the way out), then SIGKILL if it hangs."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def load_and_report(binary: Path, argv: list[str], timeout: float = 300) -> tuple[LoggedMemory, str]:
    """Run `argv` (argv[0] replaced by binary) with -lv 4 until it serves; return its logged memory and log."""
    cmd = [str(binary), *with_port(argv[1:], free_port()), "-lv", "4"]
    with tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False) as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        text = ""
        try:
            while time.monotonic() < deadline:
                text = Path(log.name).read_text(errors="replace")
                if any(r in text for r in READY) or proc.poll() is not None:
                    break
                time.sleep(0.2)
        finally:
            stop(proc)
        text = Path(log.name).read_text(errors="replace")
    os.unlink(log.name)
    if not any(r in text for r in READY):
        tail = "\n".join(text.splitlines()[-15:])
        raise RuntimeError(f"llama-server did not start: {' '.join(cmd)}\n{tail}")
    return parse(text), text
