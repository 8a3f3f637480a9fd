"""The front (roles/inferform_service/files/front.py) with stand-in engines: tiny HTTP servers that answer their
generation's name, start after a delay, or never start. What a swap promises, without building llama.cpp: the
answer switches only when the new engine is healthy, a new engine that cannot start leaves the old one serving,
requests are held (not refused) while a replace runs, and no request fails across any of it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.processes import alive, free_port

FRONT = ROOT / "roles" / "inferform_service" / "files" / "front.py"
ENGINE = """\
import http.server, os, sys, time
time.sleep(float(sys.argv[2]))
name = sys.argv[1].encode()
class H(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self.send_response(200); self.send_header("Content-Length", str(len(name))); self.end_headers()
        self.wfile.write(name)
    do_GET = do_POST = _answer
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer((os.environ["INFERFORM_ENGINE_HOST"], int(os.environ["INFERFORM_ENGINE_PORT"])),
                                H).serve_forever()
"""


def _generation(folder: Path, name: str, delay: float = 0.0, broken: bool = False) -> None:
    gen = folder / "gen" / name
    gen.mkdir(parents=True)
    (gen / "engine.env").write_text("")
    (gen / "service.env").write_text("")
    body = "exit 3" if broken else f'exec {sys.executable} {folder / "engine.py"} {name} {delay}'
    (gen / "run.sh").write_text(f"#!/bin/sh\necho starting {name}\n{body}\n")
    (gen / "run.sh").chmod(0o755)


def _ask(folder: Path, *args: str) -> dict:
    done = subprocess.run([sys.executable, str(FRONT), *args, "--dir", str(folder)], capture_output=True, text=True,
                          timeout=120)
    return json.loads(done.stdout)


def _get(port: int) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat", data=b'{"x": 1}', method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


class Load:
    def __init__(self, port: int) -> None:
        self.port, self.answers, self.failures = port, [], []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.answers.append(_get(self.port))
            except Exception as exc:  # any failure counts
                self.failures.append(repr(exc))

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


@pytest.fixture
def front(tmp_path: Path):
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / "engine.py").write_text(ENGINE)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(FRONT), "serve", "--dir", str(folder), "--host", "127.0.0.1",
                             "--port", str(port), "--health-path", "/health"])
    yield folder, port, proc
    proc.terminate()
    proc.wait(timeout=30)


def test_switches_hold_requests_and_never_fail_one(front) -> None:
    folder, port, _proc = front
    _generation(folder, "a")
    first = _ask(folder, "switch", "--generation", "a", "--timeout", "30")
    assert first["ok"] and _get(port) == "a"
    assert (folder / "current").read_text().strip() == "a"
    assert json.loads((folder / "backend.json").read_text())["pid"] == first["pid"]

    with Load(port) as load:
        _generation(folder, "broken", broken=True)
        failed = _ask(folder, "switch", "--generation", "broken", "--timeout", "10")
        assert not failed["ok"] and failed["old_kept"] and "exited with status 3" in failed["error"]
        assert "starting broken" in failed["log_tail"]
        assert _get(port) == "a" and alive(first["pid"]), "the serving engine was never touched"

        _generation(folder, "b", delay=1.5)  # side by side: b loads while a answers
        beside = _ask(folder, "switch", "--generation", "b", "--timeout", "30")
        assert beside["ok"] and _get(port) == "b"
        deadline = time.monotonic() + 15
        while alive(first["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(first["pid"]), "the old engine stops once its requests are done"

        _generation(folder, "c", delay=1.0)  # replace: b stops first, requests wait for c
        replaced = _ask(folder, "switch", "--generation", "c", "--replace", "--timeout", "30", "--grace", "1")
        assert replaced["ok"] and replaced["held_s"] >= 1.0 and _get(port) == "c"

        _generation(folder, "broken2", broken=True)  # replace that fails: c is started again
        back = _ask(folder, "switch", "--generation", "broken2", "--replace", "--timeout", "10", "--grace", "1")
        assert not back["ok"] and back["old_restarted"] and _get(port) == "c"
    assert load.failures == [], load.failures[:3]
    assert set(load.answers) == {"a", "b", "c"}, "every answer came from a healthy engine"
    assert _ask(folder, "status")["generation"] == "c"


def test_the_front_restarts_the_serving_generation_and_its_engines_die_with_it(front) -> None:
    folder, port, proc = front
    _generation(folder, "a")
    engine = _ask(folder, "switch", "--generation", "a", "--timeout", "30")["pid"]
    proc.terminate()
    proc.wait(timeout=30)
    assert not alive(engine), "stopping the front stops its engine"
    again = subprocess.Popen([sys.executable, str(FRONT), "serve", "--dir", str(folder), "--host", "127.0.0.1",
                              "--port", str(port)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = _ask(folder, "status")
            if status.get("alive"):
                break
            time.sleep(0.2)
        assert status["generation"] == "a" and _get(port) == "a", "the serving generation comes back"
        again.kill()  # SIGKILL: no clean-up; the engine still dies with its parent (PR_SET_PDEATHSIG)
        again.wait()
        deadline = time.monotonic() + 10
        while alive(status["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(status["pid"])
    finally:
        if again.poll() is None:
            again.kill()
