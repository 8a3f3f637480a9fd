"""The cloud commands as a user meets them: apply (dry run, refusals, what it prints), status with live EC2 state,
destroy that never acts on this machine, ttl extend, and apply bringing back a preempted instance.

EC2 is a moto server on 127.0.0.1 started here (boto3 reaches it through AWS_ENDPOINT_URL, as in
tests/test_cloud_aws.py). The Pulumi CLI is not installed and there is no AWS account: `pulumi up` itself cannot
run, so the apply test replaces only the Automation API's Stack (what `up` is called with) and stops at the SSH
wait; everything before and after it — preflight, the stack inputs, state, the live check — is the real code.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from inferform.apply.cloud import files as cloud_files
from inferform.apply.cloud import run as cloud
from inferform.apply.cloud.status import describe_cloud
from inferform.cloud.aws import client
from inferform.errors import EXIT_FAILURE, InferformError
from inferform.state import AppliedState, read_state, setup_dir, state_root, write_state
from tests.conftest import ROOT

REGION = "us-east-1"
SPOT = str(ROOT / "setups" / "llama70b-spot.yaml")
NAME = "llama70b-spot"
PRICE = 1.158  # the plan's $/h for llama70b-spot from the catalog snapshot (g4dn.12xlarge spot, us-east-1)
CLOUD_SDKS = ("pulumi", "pulumi_aws", "boto3", "botocore")






def launch(instance_type: str = "g4dn.12xlarge") -> str:
    ec2 = client("ec2", REGION)
    reply = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType=instance_type,
                              InstanceMarketOptions={"MarketType": "spot"})
    return reply["Instances"][0]["InstanceId"]


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def record(instance_id: str, *, applied_ago_h: float, expires_in_h: float, setup_file: str = SPOT) -> AppliedState:
    """The state a cloud apply writes (cloud._cloud_fields), for an instance created `applied_ago_h` hours ago."""
    now = dt.datetime.now(dt.UTC)
    state = AppliedState(
        setup=NAME, setup_file=setup_file, plan_hash="0123456789abcdef", engine="llama.cpp", target="aws",
        applied_at=now - dt.timedelta(hours=applied_ago_h), host="127.0.0.1",
        endpoint=f"http://127.0.0.1:{closed_port()}/v1", cloud_stack=NAME, instance_id=instance_id, region=REGION,
        public_ip="127.0.0.1", expires_at=(now + dt.timedelta(hours=expires_in_h)).replace(microsecond=0),
        market="spot", usd_per_hour=PRICE, api_key_file=str(setup_dir(NAME) / "api-key"),
        cloud_args={"setup": NAME, "region": REGION, "instance_type": "g4dn.12xlarge", "market": "spot", "gpu": True},
        ssh_user="ubuntu")
    write_state(state)
    return state


# ---- status ---------------------------------------------------------------------------------------------------

def test_status_of_a_running_cloud_instance_shows_time_left_and_cost(aws, cli):
    instance = launch()
    record(instance, applied_ago_h=2, expires_in_h=1)
    result = cli("status", "--json")
    assert result.code == 0, result.err
    [row] = json.loads(result.out)
    assert row["target"] == "aws" and row["instance_id"] == instance
    assert (row["instance_type"], row["region"], row["market"]) == ("g4dn.12xlarge", REGION, "spot")
    assert row["live_state"] == "running" and row["running"] is True
    assert 3500 < row["time_left_s"] <= 3600 and row["time_left"].endswith("left")
    assert row["usd_per_hour"] == PRICE
    assert row["cost_so_far_usd"] == pytest.approx(2 * PRICE, rel=0.01)
    assert row["health"] == "unreachable"  # asked of the endpoint only because EC2 says it runs
    human = cli("status")
    assert "instance running" in human.out and "left" in human.out
    assert f"${2 * PRICE:.3f}"[:5] in human.out and "so far" in human.out


def test_status_after_termination_says_gone_and_how_to_bring_it_back(aws, cli):
    instance = launch()
    record(instance, applied_ago_h=1, expires_in_h=2)
    client("ec2", REGION).terminate_instances(InstanceIds=[instance])
    [row] = json.loads(cli("status", "--json").out)
    assert row["live_state"] == "gone (spot interruption or TTL)" and row["running"] is False
    assert f"inferform apply {SPOT}" in row["hint"]
    human = cli("status", SPOT)
    assert "gone (spot interruption or TTL)" in human.out and f"inferform apply {SPOT}" in human.out


def test_status_of_an_instance_ec2_does_not_know_says_gone(aws, cli):
    record("i-0123456789abcdef0", applied_ago_h=1, expires_in_h=2)
    [row] = json.loads(cli("status", "--json").out)
    assert row["live_state"].startswith("gone") and "no longer knows" in row["live_detail"]


def test_status_without_credentials_says_unknown_without_asking_aws(tmp_path):
    """In a fresh process: no credentials → live state unknown, no boto3 import (so no network call), no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    record("i-0123456789abcdef0", applied_ago_h=1, expires_in_h=2)
    code = ("import sys; sys.argv = ['inferform', 'status', '--json']\nfrom inferform.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {CLOUD_SDKS!r}), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]"
    [row] = json.loads(done.stdout)
    assert row["live_state"] == "unknown" and row["running"] is None and "no AWS credentials" in row["live_detail"]
    assert row["cost_so_far_usd"] == pytest.approx(PRICE, rel=0.01) and row["expires_at"]


def test_cost_so_far_stops_at_the_expiry() -> None:
    state = record("i-0123456789abcdef0", applied_ago_h=5, expires_in_h=-2)  # a 3 h TTL that passed 2 h ago
    row = describe_cloud(state, live=False)
    assert row["cost_so_far_usd"] == pytest.approx(3 * PRICE, rel=0.01)
    assert row["time_left_s"] == 0 and row["time_left"] == "expired 2h 00m ago"


# ---- apply ----------------------------------------------------------------------------------------------------

def test_apply_without_pulumi_exits_2_with_install_hint_and_creates_nothing(no_pulumi, cli):
    result = cli("apply", SPOT)
    assert result.code == 2, result.err
    assert "Pulumi CLI is not installed" in result.err and "curl -fsSL https://get.pulumi.com | sh" in result.err
    assert "Traceback" not in result.err
    assert not state_root().exists(), "a refused apply created the state dir"
    assert not cloud_files.data_root().exists(), "a refused apply created the Pulumi backend dir"


def test_apply_dry_run_shows_instance_cost_and_stack_without_cloud_sdks():
    code = (f"import sys; sys.argv = ['inferform', 'apply', {SPOT!r}, '--dry-run']\n"
            "from inferform.cli import main\ntry:\n    main()\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {CLOUD_SDKS!r}), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
    out = done.stdout
    planned = json.loads(subprocess.run([sys.executable, "-m", "inferform", "plan", SPOT, "--json", "--offline"],
                                        capture_output=True, text=True, cwd=ROOT, check=True).stdout)
    itype, price = planned["target"]["instance_type"], planned["cost"]["usd_per_hour"]
    assert f"instance: {itype} spot in us-east-1" in out and f"${price:,.4g}/h" in out and "/Mtok" in out
    assert f"runner-up {planned['cost']['runner_ups'][0]['instance_type']}" in out
    assert "stack 'llama70b-spot' would create" in out
    assert "from 203.0.113.7/32 only" in out and "interruption terminate" in out
    user_data = out.split("--- user-data.sh")[1].splitlines()
    assert user_data[1] == "#!/bin/bash" and user_data[3].startswith("shutdown -h +180 ")  # the switch, first
    assert "stack.up(refresh=True)" in out and "--- run.sh" in out
    assert "dry run: nothing applied" in out
    assert not state_root().exists() and not cloud_files.data_root().exists()


def test_dry_run_values_are_the_ones_apply_passes_to_the_stack():
    """The preview is computed without the stack; check it against the InstanceArgs apply would build."""
    from inferform.apply.cloud.preflight import Preflight
    from inferform.apply.cloud.preview import preview
    from inferform.apply.cloud.stacks import load_stack
    from inferform.pipeline import plan_setup as _plan_for

    spec, plan = _plan_for(SPOT)
    shown = preview(plan)
    checked = Preflight(region=REGION, market="spot", ttl_seconds=3 * 3600, allowed_cidrs=("203.0.113.7/32",),
                        owner=shown["owner"], cidrs_defaulted=False, max_price=spec.target.max_price_per_hour)
    args = cloud._instance_args(load_stack("inferform_aws"), plan, checked, ssh_public_key="k", api_key="s")
    assert (shown["instance_type"], shown["region"], shown["market"]) == (args.instance_type, args.region,
                                                                           args.market)
    assert (shown["root_volume_gib"], shown["serve_port"], shown["max_price"]) == (args.root_volume_gib,
                                                                                    args.serve_port, args.max_price)
    assert shown["allowed_cidrs"] == list(args.allowed_cidrs)
    assert set(shown["tags"]) == set(args.tags)


def test_apply_refuses_a_cloud_setup_applied_locally_before(cli):
    write_state(AppliedState(setup=NAME, setup_file="/x/local.yaml", plan_hash="h", applied_at=dt.datetime.now(dt.UTC),
                             endpoint="http://127.0.0.1:8080/v1", engine="llama.cpp"))
    result = cli("apply", SPOT)
    assert result.code == 2 and "destroy" in result.err and "keep running unrecorded" in result.err


def test_apply_prints_endpoint_switch_cost_and_snippets_that_read_the_key_file(cli, monkeypatch):
    """The CLI's end of a cloud apply (apply_cloud itself needs Pulumi and AWS; it is replaced here): the snippets
    it prints are then run against a local server that checks the key, and the key itself is never printed."""
    secret = "sk-inferform-never-print-me"
    server, port = _chat_server(secret)
    key_file = setup_dir(NAME) / "api-key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(secret + "\n")

    def fake_apply(plan, setup_file, on_event=None, checked=None):
        assert checked is not None  # preflight ran in the CLI, before the progress display
        state = record("i-0abc", applied_ago_h=0, expires_in_h=3)
        return state.model_copy(update={"endpoint": f"http://127.0.0.1:{port}/v1", "api_key_file": str(key_file)})

    monkeypatch.setattr(cloud, "preflight", lambda plan: SimpleNamespace())
    monkeypatch.setattr(cloud, "apply_cloud", fake_apply)
    try:
        result = cli("apply", SPOT)
        assert result.code == 0, result.err
        out = result.out
        assert secret not in out and secret not in result.err
        assert f"serving http://127.0.0.1:{port}/v1" in out
        assert "dead man's switch: the instance ends itself at" in out and "2h 59m left" in out
        assert f"${PRICE}/h" in out and f"inferform ttl extend {SPOT} 1h" in out
        assert f"inferform destroy {SPOT}" in out
        lines = out.splitlines()
        curl = next(line.strip() for line in lines if line.strip().startswith("curl "))
        assert str(key_file) in curl
        ran = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
        assert ran.returncode == 0 and "hello from the endpoint" in ran.stdout, ran.stderr
        start = next(i for i, line in enumerate(lines) if line.strip() == "from pathlib import Path")
        python = "\n".join(line.strip() for line in lines[start:start + 5])
        ran = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0 and ran.stdout.strip() == "hello from the endpoint", ran.stderr
    finally:
        server.shutdown()


def _chat_server(secret: str) -> tuple[ThreadingHTTPServer, int]:
    """An OpenAI-shaped /v1/chat/completions that answers only with the right bearer key."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Authorization") != f"Bearer {secret}":
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": NAME, "choices": [
                {"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "hello from the endpoint"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


# ---- apply brings a preempted instance back ---------------------------------------------------------------------

class FakeStack:
    """Pulumi's Automation API Stack as apply_cloud uses it: records how `up` was called, returns outputs."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self.up_calls: list[dict] = []
        self.workspace = SimpleNamespace(install_plugin=lambda *args: None)

    def up(self, **kwargs):
        self.up_calls.append(kwargs)
        values = {"instance_id": self.instance_id, "public_ip": "198.51.100.20", "public_dns": "ec2.example",
                  "security_group_id": "sg-1", "endpoint": "http://198.51.100.20:8080/v1", "expires_at": "-",
                  "api_key": "[secret]"}
        return SimpleNamespace(outputs={k: SimpleNamespace(value=v) for k, v in values.items()})


@pytest.fixture
def pulumi_up(aws, fake_pulumi, monkeypatch):
    """apply_cloud with the Stack replaced and the SSH wait stopping the run: returns run(instance_id) → (stack,
    the stack inputs it built). Prices from the catalog, so the plan is the one the other tests see."""
    import pulumi.automation

    monkeypatch.setenv("INFERFORM_OFFLINE", "1")

    def run(instance_id: str):
        stack = FakeStack(instance_id)
        built = []
        monkeypatch.setattr(pulumi.automation, "create_or_select_stack", lambda **kwargs: stack)
        monkeypatch.setattr(cloud, "_program", lambda module, args: built.append(args) or (lambda: None))

        def stop(*_args, **_kwargs):
            raise InferformError.single("stopped before SSH", exit_code=EXIT_FAILURE)

        monkeypatch.setattr(cloud, "wait_for_ssh", stop)
        from inferform.pipeline import plan_setup as _plan_for

        _, plan = _plan_for(SPOT)
        with pytest.raises(InferformError, match="stopped before SSH"):
            cloud.apply_cloud(plan, SPOT)
        return stack, built[0]

    return run


def test_apply_refreshes_so_a_terminated_instance_is_recreated(pulumi_up):
    stack, args = pulumi_up("i-0new")
    [call] = stack.up_calls
    assert call.get("refresh") is True, "without --refresh, Pulumi's state still lists a preempted instance"
    state = read_state(NAME)  # recorded before the SSH wait: the instance exists and costs money
    assert state is not None and state.target == "aws" and state.instance_id == "i-0new"
    assert state.expires_at == dt.datetime.fromisoformat(args.expires_at)
    assert 3 * 3600 - 120 < (state.expires_at - dt.datetime.now(dt.UTC)).total_seconds() <= 3 * 3600 + 60


def test_the_roles_apply_accepts_the_instance_just_recorded(pulumi_up):
    """The SSH apply refuses to strand a server on another host; the state written after `up` must name the
    instance it then configures (before the fix it named 'this machine', and every cloud apply stopped there)."""
    from inferform.apply.cloud.files import ssh_key_file
    from inferform.apply.connection import Connection, from_state
    from inferform.apply.local import _check_connection

    pulumi_up("i-0new")
    state = read_state(NAME)
    connection = Connection(kind="ssh", host="198.51.100.20", user="ubuntu", key_file=ssh_key_file(NAME))
    assert from_state(state) == connection
    _check_connection(connection, state, NAME)  # raises if it would refuse


def test_reapply_of_a_running_instance_keeps_its_deadline_and_start(pulumi_up):
    instance = launch()
    before = record(instance, applied_ago_h=1, expires_in_h=1)
    _stack, args = pulumi_up(instance)  # the refresh found it alive: same instance
    assert args.expires_at == before.expires_at.isoformat() and 3400 < args.ttl_seconds <= 3600
    state = read_state(NAME)
    assert state.expires_at == before.expires_at and state.applied_at == before.applied_at


def test_reapply_after_preemption_gets_a_full_ttl(pulumi_up):
    instance = launch()
    before = record(instance, applied_ago_h=1, expires_in_h=1)
    client("ec2", REGION).terminate_instances(InstanceIds=[instance])
    _stack, args = pulumi_up("i-0replacement")
    assert args.ttl_seconds == 3 * 3600
    state = read_state(NAME)
    assert state.instance_id == "i-0replacement" and state.expires_at > before.expires_at + dt.timedelta(hours=1)
    assert state.applied_at > before.applied_at


# ---- destroy ----------------------------------------------------------------------------------------------------

@pytest.fixture
def playbooks(monkeypatch) -> list:
    """Every Ansible playbook run (the local destroy path runs one on this machine)."""
    from inferform.apply import runner

    ran: list = []
    monkeypatch.setattr(runner, "run_playbook", lambda *args, **kwargs: ran.append(args) or SimpleNamespace(rc=0))
    return ran


def test_destroy_of_a_cloud_setup_takes_the_cloud_path(no_pulumi, playbooks, cli):
    result = cli("destroy", SPOT)
    assert result.code == 2 and "Pulumi CLI is not installed" in result.err
    assert playbooks == [] and not state_root().exists()


def test_destroy_follows_the_recorded_cloud_state_whatever_the_file_says(no_pulumi, playbooks, cli, write):
    """A setup file edited to kind local after a cloud apply: the state says an instance runs, so destroy must
    reach for Pulumi, not stop a server on this machine and forget the instance."""
    record("i-0abc", applied_ago_h=1, expires_in_h=2)
    local = write(f"name: {NAME}\nuse_case: chat\ntarget: {{kind: local}}\nmodel: {{id: gemma-3-1b-it}}\n")
    # the same file, edited: the state names it as the file that applied the setup
    write_state(read_state(NAME).model_copy(update={"setup_file": str(Path(local).resolve())}))
    result = cli("destroy", local)
    assert result.code == 2 and "Pulumi CLI is not installed" in result.err
    assert playbooks == []
    assert read_state(NAME) is not None and read_state(NAME).instance_id == "i-0abc"  # untouched


# ---- ttl extend -------------------------------------------------------------------------------------------------

def test_ttl_extend_with_nothing_applied_is_a_clear_error(cli):
    result = cli("ttl", "extend", SPOT, "2h")
    assert result.code == 2 and "no cloud instance applied" in result.err and "Traceback" not in result.err


@pytest.mark.parametrize("duration", ["2x", "2", "0h", "1.5h", "two hours"])
def test_ttl_extend_refuses_a_bad_duration(cli, duration):
    record("i-0abc", applied_ago_h=1, expires_in_h=2)
    result = cli("ttl", "extend", SPOT, duration)
    assert result.code == 2 and "is not a duration like '90m', '2h' or '1d'" in result.err, result.err
    assert read_state(NAME).expires_at is not None


def test_ttl_extend_refuses_without_pulumi_before_touching_the_instance(no_pulumi, cli):
    before = record("i-0abc", applied_ago_h=1, expires_in_h=2)
    result = cli("ttl", "extend", SPOT, "2h")
    assert result.code == 2 and "Pulumi CLI is not installed" in result.err
    assert read_state(NAME).expires_at == before.expires_at


def test_logs_of_a_cloud_setup_point_at_the_instance(cli):
    record("i-0abc", applied_ago_h=1, expires_in_h=2)
    result = cli("logs", SPOT)
    assert result.code == 2 and "runs on 127.0.0.1" in result.err
    assert "ubuntu@127.0.0.1:~/.local/state/inferform/llama70b-spot/server.log" in result.err, result.err
