"""Swaps under load: a served setup re-applied while a bounded loop of chat requests runs against it.

Four re-applies of the demo setup (SmolLM2-135M on this CPU), each under the same load (1 and 4 clients, each a
loop of short chat completions through the official `openai` client, no retries):
  - a changed context, where old and new fit in memory together (the new engine starts beside the old one);
  - a changed context on a machine too small for both (ram_gib 0.5: the old engine stops first);
  - a model file that plans (its header and size are sound) but cannot start (an unknown tokenizer);
  - the same setup again (no changes), timed.
Printed: requests, failed requests and the longest gap between two answers, per scenario. Targets (issue 14):
0 failed for the config that cannot start; 0 failed side by side; otherwise a gap no longer than the new engine's
load time + 2 s (its load time is what the front reports it held requests for). The alias bomb and /dev/zero
as setups: exit 2 in under a second. A no-op re-apply: under 3 s.

Runs in a temporary home with the real caches linked (the llama-server build and the model package), so the
engine is built at most once per machine. Needs the llama-server build; without it the benchmark builds it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
REAL_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inferform"
SHARED = ("llama.cpp", "venvs", "pypi")
RUN_S = 20.0  # how long the load runs after the re-apply ended, at most (the loop is bounded)


def _home(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var, sub in (("HOME", ""), ("XDG_STATE_HOME", ".local/state"), ("XDG_CACHE_HOME", ".cache"),
                     ("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share")):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(folder / sub)
    cache = folder / ".cache" / "inferform"
    cache.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        (REAL_CACHE / name).mkdir(parents=True, exist_ok=True)
        (cache / name).symlink_to(REAL_CACHE / name, target_is_directory=True)
    env["INFERFORM_OFFLINE"] = "1"
    return env


def _inferform(env: dict[str, str], *args: str) -> tuple[int, str, float]:
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "inferform", *args], env=env, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def _setup(folder: Path, port: int, **changes: Any) -> Path:
    setup = yaml.safe_load((ROOT / "setups" / "demo.yaml").read_text())
    setup["name"], setup["serve"]["port"] = "bench-swap", port
    for key, value in changes.items():
        if key == "ram_gib":
            setup["target"]["hardware"]["ram_gib"] = value
        elif key == "model_file":
            setup["model"] = {"file": value}
        else:
            setup[key] = value
    path = folder / "bench-swap.yaml"
    path.write_text(yaml.safe_dump(setup, sort_keys=False))
    return path


class Load:
    """`clients` threads, each a loop of short chat completions, until stopped; every answer and failure kept."""

    def __init__(self, port: int, clients: int) -> None:
        from openai import OpenAI

        self.client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=120)
        self.done: list[float] = []
        self.failed: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.client.chat.completions.create(model="bench-swap", max_tokens=4,
                                                    messages=[{"role": "user", "content": "Say hi."}])
                with self.lock:
                    self.done.append(time.monotonic())
            except Exception as exc:  # every failure counts, whatever its kind
                with self.lock:
                    self.failed.append(type(exc).__name__)
                time.sleep(0.05)

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(150)
        self.ended = time.monotonic()

    def longest_gap(self) -> float:
        marks = sorted([self.started, *self.done, self.ended])
        return max(b - a for a, b in itertools.pairwise(marks))


def _scenario(env: dict[str, str], setup: Path, port: int, clients: int) -> dict[str, Any]:
    with Load(port, clients) as load:
        time.sleep(2)
        code, out, took = _inferform(env, "apply", str(setup))
        deadline = time.monotonic() + min(RUN_S, 5)
        while time.monotonic() < deadline:
            time.sleep(0.2)
    held = None
    for line in out.splitlines():
        if line.startswith("swap:"):
            held = line
    return {"apply_exit": code, "apply_s": round(took, 1), "requests": len(load.done) + len(load.failed),
            "failed": len(load.failed), "gap_s": round(load.longest_gap(), 2), "said": held, "out": out}


def _load_time(state_dir: Path) -> float | None:
    """The serving engine's load time, as the front wrote it into the engine's log when it became healthy."""
    try:
        text = (state_dir / "server.log").read_text(errors="replace")
    except OSError:
        return None
    marks = [line for line in text.splitlines() if line.startswith("==== inferform front: generation")]
    return float(marks[-1].split(" healthy after ")[1].split()[0]) if marks else None


def _bad_input(folder: Path, env: dict[str, str]) -> list[tuple[str, int, float]]:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb = folder / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    out = []
    for what, path in (("9-level alias bomb", str(bomb)), ("/dev/zero", "/dev/zero")):
        code, _, took = _inferform(env, "validate", path)
        out.append((what, code, took))
    return out


def main() -> bool:
    from tests.processes import free_port
    from tests.test_apply_e2e import unstartable_gguf

    ok = True
    with tempfile.TemporaryDirectory(prefix="inferform-bench-swap-") as tmp:
        folder = Path(tmp)
        env = _home(folder / "home")
        print("\nbad setups (issue 14: exit 2 in under a second)")
        for what, code, took in _bad_input(folder, env):
            hit = code == 2 and took < 1.0
            ok &= hit
            print(f"  {what:<20} exit {code} in {took:.2f}s {'' if hit else '  <-- over target'}")
        port = free_port()
        state_dir = folder / "home" / ".local" / "state" / "inferform" / "bench-swap"
        code, out, took = _inferform(env, "apply", str(_setup(folder, port)))
        if code != 0:
            print(f"swap benchmark: the first apply failed ({code}):\n{out}")
            return False
        print(f"\nswaps under load (demo setup, first apply {took:.1f}s)")
        print(f"  {'scenario':<44} {'clients':>7} {'requests':>8} {'failed':>6} {'gap s':>6} {'goal':>10}")
        rows = []
        for clients, context in ((1, 4096), (4, 2048)):
            # side by side: a changed context
            result = _scenario(env, _setup(folder, port, context=context), port, clients)
            rows.append(("changed context, old and new fit together", clients, result, "0 failed",
                         result["failed"] == 0 and result["apply_exit"] == 0
                         and "fit in memory together" in (result["said"] or "")))
            # a config that cannot start
            result = _scenario(env, _setup(folder, port, model_file=str(unstartable_gguf(folder))), port, clients)
            rows.append(("new config cannot start", clients, result, "0 failed",
                         result["failed"] == 0 and result["apply_exit"] == 1))
        # not side by side: a machine too small for both (the plans say so)
        # ram_gib 0.5: a 268 MiB budget; 8192 and 4096 tokens of context need 208 + 163 MiB, 96 of them shared
        _inferform(env, "apply", str(_setup(folder, port, ram_gib=0.5, context=8192)))
        for clients, context in ((1, 4096), (4, 8192)):
            result = _scenario(env, _setup(folder, port, ram_gib=0.5, context=context), port, clients)
            load = _load_time(state_dir)
            goal = (load or 0) + 2
            rows.append((f"changed context, too small for both (load {load or 0:.1f}s)", clients, result,
                         f"gap ≤{goal:.1f}s", result["apply_exit"] == 0 and result["gap_s"] <= goal
                         and "together, over the" in (result["said"] or "")))
        for what, clients, result, goal, hit in rows:
            ok &= hit
            print(f"  {what:<44} {clients:>7} {result['requests']:>8} {result['failed']:>6} {result['gap_s']:>6.2f} "
                  f"{goal:>10}{'' if hit else '  <-- missed'}")
            if not hit:
                print("    " + result["out"].strip().replace("\n", "\n    ")[-1500:])
        code, out, took = _inferform(env, "apply", str(folder / "bench-swap.yaml"))
        hit = code == 0 and "no changes" in out and took < 3
        ok &= hit
        print(f"\nno-op re-apply: exit {code} in {took:.2f}s (goal < 3 s){'' if hit else '  <-- missed: ' + out}")
        _inferform(env, "destroy", str(folder / "bench-swap.yaml"))
        shutil.rmtree(folder / "home", ignore_errors=True)
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
