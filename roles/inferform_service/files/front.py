"""inferform's front: the setup's public address, in front of the engine server that serves now.

Why it exists: two servers cannot listen on one port, so replacing a running llama-server used to mean stopping it,
then loading the new one: every request in that gap (12-33 s measured) failed, and a new configuration that could
not start took the old one down with it. The front owns the port; engines listen on loopback ports of their own.
A switch starts the new engine beside the old one, waits until its /health answers 200, and only then sends new
requests to it; the old engine finishes the requests it has and is stopped. A new engine that never gets healthy
is stopped and the old one never notices. When the two do not fit in memory together (the plan says so), the
front holds new requests while the old engine finishes its own (a short grace), stops it, starts the new one and
releases the held requests to it: the gap is latency, not errors. Should the new one fail there, the old
configuration is started again.

One request per connection: the front reads each request's head and body (Content-Length), sends it to the
engine that serves at that moment with `Connection: close`, and relays the answer (streamed tokens too) until the
engine closes. No client connection is ever pinned to an engine, so a switch never cuts a kept-alive connection.

  front.py serve  --dir D --host H --port P --health-path /health
  front.py switch --dir D --generation G [--replace] [--timeout S] [--grace S]
  front.py status --dir D

D holds gen/<G>/ (run.sh, engine.env, service.env, server.log: one configuration, placed by the service role),
`current` (the generation that serves: started again when the front restarts), server.log (a link to the
serving generation's log), backend.json ({generation, pid, port}) and front.sock (the control socket).
Standard library only: it runs on any target Ansible manages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HEAD_LIMIT = 64 * 1024
HOLD_S = 300.0  # how long a request waits for an engine while none serves (a replace, the first start)
DRAIN_S = 600.0  # side by side: the old engine finishes its requests for at most this long
POLL_S = 0.25
HEALTH_POLL_S = 0.05  # a GET on loopback: every 50 ms costs nothing, and during a replace each poll is latency
KEEP_GENERATIONS = 2  # the serving one and the one before it
LINE_LIMIT = 300  # characters of one log line quoted in an error
STOP_S = 10.0  # SIGTERM to SIGKILL for an engine being stopped


def _die_with_parent() -> None:
    """In the engine's child before exec: SIGTERM when the front dies, so a killed front leaves no engine."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux; elsewhere the front stops them)


class Engine:
    """One engine process of one generation, on its own loopback port."""

    def __init__(self, folder: Path, generation: str, health_path: str) -> None:
        self.generation, self.folder, self.health_path = generation, folder / "gen" / generation, health_path
        self.port = _free_port()
        self.inflight = 0
        self.load_s: float | None = None
        self.idle = asyncio.Event()
        self.idle.set()
        log = open(self.folder / "server.log", "ab")  # noqa: SIM115 - the engine keeps it
        log.write(f"==== inferform front: starting generation {generation} on 127.0.0.1:{self.port} at "
                  f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode())
        log.flush()
        script = ("set -a; . ./engine.env; . ./service.env; set +a; "
                  f"INFERFORM_ENGINE_HOST=127.0.0.1 INFERFORM_ENGINE_PORT={self.port} exec ./run.sh")
        self.process = subprocess.Popen(["/bin/sh", "-c", script], cwd=self.folder, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_die_with_parent)
        log.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.folder / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        # cut long lines: one Python exception (vLLM's) can carry the list of every architecture it supports
        return "\n".join(line if len(line) <= LINE_LIMIT else line[:LINE_LIMIT] + " …"
                         for line in text.splitlines()[-lines:])

    async def healthy(self, timeout: float) -> str | None:
        """None once GET health_path answers 200; otherwise why not (exited, or the timeout). The load time goes
        into the engine's log."""
        start = time.monotonic()
        deadline = start + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"the engine exited with status {self.process.returncode} before it was healthy"
            if await _status(self.port, self.health_path) == 200:
                self.load_s = time.monotonic() - start
                with open(self.folder / "server.log", "a") as log:
                    log.write(f"==== inferform front: generation {self.generation} healthy after "
                              f"{self.load_s:.2f} s\n")
                return None
            await asyncio.sleep(HEALTH_POLL_S)
        return f"the engine did not answer 200 on {self.health_path} within {timeout:.0f}s"

    async def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_S
            while self.process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                await asyncio.sleep(0.2)
        self.process.poll()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _status(port: int, path: str) -> int | None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except (OSError, asyncio.TimeoutError):
        return None
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        parts = line.split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    except (OSError, asyncio.TimeoutError, ValueError):
        return None
    finally:
        writer.close()


class Front:
    def __init__(self, folder: Path, host: str, port: int, health_path: str) -> None:
        self.folder, self.host, self.port, self.health_path = folder, host, port, health_path
        self.serving: Engine | None = None
        self.ready = asyncio.Event()
        self.switching = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    def spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- requests --------------------------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            writer.close()
            return
        try:
            request, length = _rewrite(head)
        except ValueError as exc:
            await _answer(writer, str(exc))
            return
        try:
            await asyncio.wait_for(self.ready.wait(), HOLD_S)
        except asyncio.TimeoutError:
            await _answer(writer, "503 Service Unavailable")
            return
        engine = self.serving
        assert engine is not None
        engine.inflight += 1
        engine.idle.clear()
        try:
            await self._relay(engine, request, length, reader, writer)
        finally:
            engine.inflight -= 1
            if engine.inflight == 0:
                engine.idle.set()

    async def _relay(self, engine: Engine, request: bytes, length: int, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", engine.port)
        except OSError:
            await _answer(writer, "502 Bad Gateway")
            return
        try:
            upstream_w.write(request)
            remaining = length
            while remaining > 0:
                chunk = await reader.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                upstream_w.write(chunk)
                remaining -= len(chunk)
            await upstream_w.drain()
            while chunk := await upstream_r.read(1 << 16):
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            upstream_w.close()
            writer.close()

    # --- switching -------------------------------------------------------------------------------------------

    async def switch(self, generation: str, replace: bool, timeout: float, grace: float) -> dict:
        """Serve `generation`: beside the old engine, or (replace) after it. The outcome as a JSON-able dict."""
        if not (self.folder / "gen" / generation / "run.sh").is_file():
            return {"ok": False, "error": f"generation {generation} has no run.sh in {self.folder}/gen"}
        async with self.switching:
            old = self.serving
            held_since = None
            if replace and old is not None:
                self.ready.clear()  # new requests wait from here
                held_since = time.monotonic()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(old.idle.wait(), grace)
                cut = old.inflight
                await old.stop()
                self.serving = None
            new = Engine(self.folder, generation, self.health_path)
            why = await new.healthy(timeout)
            if why is not None:
                tail = new.log_tail()
                await new.stop()
                result = {"ok": False, "error": why, "log_tail": tail, "log": str(new.folder / "server.log"),
                          "old_kept": old is not None and not replace}
                if old is None:
                    self._link_log(new)  # nothing serves: `inferform logs` shows why this one did not
                if replace and old is not None:  # the old configuration is gone: bring it back
                    back = Engine(self.folder, old.generation, self.health_path)
                    again = await back.healthy(timeout)
                    result["old_restarted"] = again is None
                    if again is None:
                        self._serve(back)
                    else:
                        await back.stop()
                return result
            self._serve(new)
            result = {"ok": True, "generation": generation, "pid": new.pid, "port": new.port,
                      "load_s": round(new.load_s or 0, 2)}
            if held_since is not None:
                result["held_s"] = round(time.monotonic() - held_since, 2)
                result["cut_requests"] = cut
            if old is not None and not replace:
                self.spawn(self._drain(old))
            self._prune(keep={generation, *(g.generation for g in (old,) if g)})
            return result

    def _serve(self, engine: Engine) -> None:
        self.serving = engine
        self.ready.set()
        (self.folder / "current.tmp").write_text(engine.generation + "\n")
        os.replace(self.folder / "current.tmp", self.folder / "current")
        (self.folder / "backend.tmp").write_text(json.dumps({"generation": engine.generation, "pid": engine.pid,
                                                             "port": engine.port, "front_pid": os.getpid()}))
        os.replace(self.folder / "backend.tmp", self.folder / "backend.json")
        self._link_log(engine)

    def _link_log(self, engine: Engine) -> None:
        tmp = self.folder / "server.log.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(Path("gen") / engine.generation / "server.log")
        os.replace(tmp, self.folder / "server.log")

    async def _drain(self, old: Engine) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(old.idle.wait(), DRAIN_S)
        await old.stop()

    def _prune(self, keep: set[str]) -> None:
        gens = self.folder / "gen"
        others = sorted((p for p in gens.iterdir() if p.is_dir() and p.name not in keep),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in others[max(0, KEEP_GENERATIONS - len(keep)):]:
            shutil.rmtree(stale, ignore_errors=True)

    # --- control ---------------------------------------------------------------------------------------------

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ask = json.loads(await reader.readline())
            if ask.get("do") == "switch":
                answer = await self.switch(str(ask["generation"]), bool(ask.get("replace")),
                                           float(ask.get("timeout", 300)), float(ask.get("grace", 5)))
            else:
                engine = self.serving
                answer = {"ok": True, "front_pid": os.getpid(), "generation": engine.generation if engine else None,
                          "pid": engine.pid if engine else None, "port": engine.port if engine else None,
                          "alive": bool(engine and engine.process.poll() is None)}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (OSError, ValueError, KeyError) as exc:
            with contextlib.suppress(OSError):
                writer.write(json.dumps({"ok": False, "error": f"bad control request: {exc}"}).encode() + b"\n")
        finally:
            writer.close()

    async def watch(self) -> None:
        """An engine that dies while serving is started again (as systemd's Restart=on-failure would)."""
        while not self.stopping.is_set():
            await asyncio.sleep(1)
            engine = self.serving
            if engine is not None and engine.process.poll() is not None and not self.switching.locked():
                async with self.switching:
                    if self.serving is engine:
                        self.ready.clear()
                        self.serving = None
                        again = Engine(self.folder, engine.generation, self.health_path)
                        if await again.healthy(HOLD_S) is None:
                            self._serve(again)
                        else:
                            await again.stop()
                            await asyncio.sleep(5)

    async def run(self) -> None:
        sock_path = self.folder / "front.sock"
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()
        public = await asyncio.start_server(self.handle, self.host, self.port, reuse_address=True,
                                            limit=HEAD_LIMIT)
        os.chdir(self.folder)  # a socket path is limited to ~100 bytes: bind it by its relative name
        control = await asyncio.start_unix_server(self.control, "front.sock")
        os.chmod(sock_path, 0o600)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        current = self.folder / "current"
        if current.is_file():
            generation = current.read_text().strip()
            if (self.folder / "gen" / generation / "run.sh").is_file():
                self.spawn(self.switch(generation, False, HOLD_S, 0))
        watcher = loop.create_task(self.watch())
        await self.stopping.wait()
        watcher.cancel()
        public.close()
        control.close()
        if self.serving is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.serving.idle.wait(), 5)
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        engines = [self.serving] if self.serving else []
        await asyncio.gather(*(e.stop() for e in engines))
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()


def _rewrite(head: bytes) -> tuple[bytes, int]:
    """The request head with `Connection: close` (the engine then closes after its answer), and the body length."""
    lines = head.split(b"\r\n")
    kept, length = [lines[0]], 0
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key == b"transfer-encoding":
            raise ValueError("411 Length Required")
        if key == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise ValueError("400 Bad Request") from None
        if key in (b"connection", b"keep-alive", b"proxy-connection"):
            continue
        kept.append(line)
    kept.append(b"Connection: close")
    return b"\r\n".join(kept) + b"\r\n\r\n", length


async def _answer(writer: asyncio.StreamWriter, status: str) -> None:
    with contextlib.suppress(OSError):
        body = status.encode()
        writer.write(b"HTTP/1.1 " + body + b"\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
    writer.close()


def _ask(folder: Path, request: dict, timeout: float) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        os.chdir(folder)  # the socket's absolute path may be over the ~100 bytes AF_UNIX allows
        sock.connect("front.sock")
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    return json.loads(data or b'{"ok": false, "error": "the front closed the control connection"}')


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="front.py")
    parser.add_argument("command", choices=["serve", "switch", "status"])
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--health-path", default="/health")
    parser.add_argument("--generation")
    parser.add_argument("--replace", action="store_true")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--grace", type=float, default=5)
    args = parser.parse_args(argv)
    args.dir = args.dir.resolve()
    if args.command == "serve":
        host = "" if args.host in ("0.0.0.0", "::") else args.host  # every address, both families
        async def serve() -> None:  # built inside the loop: Python < 3.10 binds asyncio.Event to a loop when made
            await Front(args.dir, host or None, args.port, args.health_path).run()

        asyncio.run(serve())
        return 0
    # switch / status: wait for the front's control socket (it may have just been started)
    deadline = time.monotonic() + 10
    while True:
        try:
            if args.command == "status":
                answer = _ask(args.dir, {"do": "status"}, 10)
            else:
                answer = _ask(args.dir, {"do": "switch", "generation": args.generation, "replace": args.replace,
                                         "timeout": args.timeout, "grace": args.grace}, args.timeout * 2 + 60)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                answer = {"ok": False, "error": f"the front of {args.dir} does not answer on front.sock"}
                break
            time.sleep(0.1)
    print(json.dumps(answer))
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
