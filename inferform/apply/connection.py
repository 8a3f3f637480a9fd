"""How Ansible reaches the machine a setup runs on: this one (connection local) or another one over SSH.

The roles are the same either way; only the inventory line and the target-side paths differ. Over SSH the paths
are the remote user's (~/.cache/inferform, ~/.local/state/inferform/<setup>), or live under `remote_base` when
one is given. Those are written as Jinja expressions over the target's gathered facts rather than resolved here,
because the controller does not know the remote home before Ansible has connected.

Host keys: the first connection to a host accepts and pins its key (StrictHostKeyChecking=accept-new) in a
known_hosts file of inferform's own, so the user's ~/.ssh/known_hosts is never edited and a changed key on a
later apply fails instead of being trusted silently.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# Hostnames and IPv4 addresses can name the inventory host directly; anything else (IPv6) gets a fixed alias so
# the INI parser does not read "host:port" into it. ansible_host always carries the real address.
_PLAIN_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
# The remote user's home, known only once Ansible has gathered facts there (apply.yml gathers them first).
HOME = "{{ ansible_facts.user_dir }}"


@dataclass(frozen=True)
class Connection:
    """Where the roles run: kind local (this machine, no SSH) or ssh (host/port/user/key)."""

    kind: Literal["local", "ssh"] = "local"
    host: str = "localhost"
    port: int = 22
    user: str | None = None
    key_file: Path | None = None  # private key; its path may be recorded, its contents never
    remote_base: str | None = None  # base dir on the target for cache and state; None: the remote user's home dirs
    python: str | None = None  # Python on the target; None: Ansible discovers it (auto_silent)

    def __post_init__(self) -> None:
        if self.kind not in ("local", "ssh"):
            raise ValueError(f"connection kind {self.kind!r}: use local or ssh")
        if self.kind == "ssh" and not self.host:
            raise ValueError("an ssh connection needs a host")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"ssh port {self.port} is not a TCP port")
        if self.remote_base is not None and (not self.remote_base.startswith("/")
                                             or re.search(r"[\s'\"{}]", self.remote_base)):
            raise ValueError(f"remote_base {self.remote_base!r} must be an absolute path without spaces or quotes")

    @property
    def is_ssh(self) -> bool:
        return self.kind == "ssh"

    @property
    def inventory_name(self) -> str:
        if self.kind == "local":
            return "localhost"
        return self.host if _PLAIN_HOST.match(self.host) else "target"

    @property
    def destination(self) -> str:
        """user@host (or host), as ssh takes it."""
        return f"{self.user}@{self.host}" if self.user else self.host

    def where(self) -> str:
        """user@host:port for messages."""
        return "this machine" if self.kind == "local" else f"{self.destination}:{self.port}"

    def ssh_hint(self, *args: str) -> str:
        """An ssh command line a person can run to reach the target (with the key and port apply used)."""
        words = ["ssh", *(["-p", str(self.port)] if self.port != 22 else []),
                 *(["-i", str(self.key_file)] if self.key_file else []), *args, self.destination]
        return " ".join(shlex.quote(w) for w in words)

    def inventory(self, known_hosts: Path | None = None) -> str:
        """One-host INI inventory. `known_hosts` is the file SSH pins the target's host key in (ssh only)."""
        if self.kind == "local":
            return f"localhost ansible_connection=local ansible_python_interpreter={shlex.quote(sys.executable)}\n"
        ssh_args = ["-o", "StrictHostKeyChecking=accept-new"]
        if known_hosts is not None:
            ssh_args += ["-o", f"UserKnownHostsFile={shlex.quote(str(known_hosts))}"]
        pairs: list[tuple[str, str]] = [("ansible_connection", "ssh"), ("ansible_host", self.host),
                                        ("ansible_port", str(self.port))]
        if self.user:
            pairs.append(("ansible_user", self.user))
        if self.key_file is not None:
            pairs.append(("ansible_ssh_private_key_file", str(self.key_file)))
        pairs += [("ansible_ssh_common_args", " ".join(ssh_args)),
                  ("ansible_python_interpreter", self.python or "auto_silent")]
        fields = " ".join(shlex.quote(f"{key}={value}") for key, value in pairs)
        return f"{self.inventory_name} {fields}\n"

    # --- paths on the target ----------------------------------------------------------------------------

    def _base(self, xdg: str) -> str:
        """The target dir that plays the role of ~/.cache or ~/.local/state (xdg is 'cache' or 'state')."""
        if self.remote_base:
            return f"{self.remote_base.rstrip('/')}/{xdg}"
        home_sub = ".cache" if xdg == "cache" else ".local/state"
        return f"{HOME}/{home_sub}"

    def cache_dir(self) -> str:
        """inferform's cache on the target (engine builds, pypi installs); its last part is 'inferform'."""
        return f"{self._base('cache')}/inferform"

    def model_dir(self) -> str:
        return f"{self.cache_dir()}/models"

    def state_dir(self, setup: str) -> str:
        return f"{self._base('state')}/inferform/{setup}"

    def shown(self, path: str) -> str:
        """A target path for people: the facts expression for the remote home reads as ~."""
        return path.replace(HOME, "~")


def from_plan(plan) -> Connection:
    """The connection a plan's target asks for (pipeline.py made its key path absolute)."""
    ssh = plan.target.ssh
    if plan.target.kind != "ssh" or ssh is None:
        return Connection()
    return Connection(kind="ssh", host=ssh.host, port=ssh.port, user=ssh.user,
                      key_file=Path(ssh.key_file) if ssh.key_file else None, remote_base=ssh.remote_base,
                      python=ssh.python)


def from_state(state) -> Connection:
    """The connection an AppliedState recorded, so destroy and status reach the host that apply used (a cloud
    instance is reached over SSH like an ssh target: never this machine)."""
    if state.target not in ("ssh", "aws"):
        return Connection()
    return Connection(kind="ssh", host=state.host, port=state.ssh_port or 22, user=state.ssh_user,
                      key_file=Path(state.ssh_key_file) if state.ssh_key_file else None,
                      remote_base=state.ssh_remote_base, python=state.ssh_python)


def state_fields(connection: Connection) -> dict[str, object]:
    """What AppliedState records about a connection: where and how, never a key's contents."""
    if not connection.is_ssh:
        return {"target": "local", "host": "localhost"}
    return {"target": "ssh", "host": connection.host, "ssh_port": connection.port, "ssh_user": connection.user,
            "ssh_key_file": str(connection.key_file) if connection.key_file else None,
            "ssh_remote_base": connection.remote_base, "ssh_python": connection.python}


LOCAL = Connection()
