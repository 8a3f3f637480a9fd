"""Can the server listen on HOST:PORT, and if not, who holds the port? Prints one JSON object.

Run by the service role on the target before the engine is built or the model fetched, so an apply that could
never start its server stops at once with a message naming the program in the way, instead of after a long build
and a 30 s wait. Python stdlib only (it runs on any target Ansible can manage).

A test bind (SO_REUSEADDR, as servers set it) answers "can we listen" exactly, wildcard/loopback overlaps
included; connecting would miss a server bound to another address. The holder is found from /proc/net/tcp* and
/proc/<pid>/fd on Linux (every process when run as root, the user's own otherwise), or `lsof` elsewhere.
The port counts as this setup's own when its holder is the pid in the setup's pid file (process mode) or the
main pid of its systemd user unit, and that process still carries "--port PORT", the rule supervise.sh uses.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import socket
import subprocess
import sys


def bind_error(host: str, port: int) -> int | None:
    """None when HOST:PORT can be bound now, else the errno (EADDRINUSE, EADDRNOTAVAIL, EACCES...)."""
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno or errno.EADDRINUSE
    return None


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except OSError:
            continue
    return inodes


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def holders(port: int) -> list[dict]:
    """Processes listening on PORT that this user may see: [{"pid", "command"}]."""
    inodes = _listening_inodes(port)
    found: dict[int, str] = {}
    if inodes and os.path.isdir("/proc/self/fd"):
        wanted = {f"socket:[{i}]" for i in inodes}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fds = os.listdir(f"/proc/{entry}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{entry}/fd/{fd}") in wanted:
                        found[int(entry)] = _command(int(entry))
                        break
                except OSError:
                    continue
    elif not os.path.isdir("/proc/self") and shutil.which("lsof"):
        out = subprocess.run(["lsof", "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-Fpc"], capture_output=True,
                             text=True).stdout
        pid = None
        for line in out.splitlines():
            if line.startswith("p"):
                pid = int(line[1:])
                found[pid] = ""
            elif line.startswith("c") and pid is not None:
                found[pid] = line[1:]
    return [{"pid": pid, "command": command} for pid, command in sorted(found.items())]


def _ours_pids(pid_file: str, unit: str, port: int) -> set[int]:
    pids = set()
    try:
        with open(pid_file) as handle:
            text = handle.read().strip()
        if text.isdigit():
            pids.add(int(text))
    except OSError:
        pass
    if unit and shutil.which("systemctl"):
        done = subprocess.run(["systemctl", "--user", "show", "--property=MainPID", "--value", unit],
                              capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip().isdigit() and int(done.stdout.strip()) > 0:
            pids.add(int(done.stdout.strip()))
    return {p for p in pids if f" --port {port} " in f" {_command(p)} "}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid-file", default="")
    parser.add_argument("--unit", default="")
    args = parser.parse_args(argv)
    error = bind_error(args.host, args.port)
    ours = _ours_pids(args.pid_file, args.unit, args.port)
    found = holders(args.port) if error == errno.EADDRINUSE else []
    mine = bool(ours) and (all(h["pid"] in ours for h in found) if found else True)
    held_by = ", ".join(f"pid {h['pid']} ({h['command'][:120] or '?'})" for h in found)
    print(json.dumps({"free": error is None, "error": os.strerror(error) if error else None,
                      "in_use": error == errno.EADDRINUSE, "ours": mine if error else False, "holders": found,
                      "held_by": held_by or "another program (its owner is not visible to this user)"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
