"""Cloud apply without a cloud: preflight refusals (exit 2, nothing created), the boot script, root volume sizing,
the local files it keeps (0600, no secrets in state), SSH readiness and TTL extension logic.

The Pulumi CLI is not installed here and there is no AWS account: each test exercises the real function up to
the point where it would need one, and asserts what it refuses or produces before then.
"""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

from inferform.apply.cloud import files as cloud_files
from inferform.apply.cloud import preflight as cloud_preflight
from inferform.apply.cloud import run as cloud
from inferform.apply.cloud import ssh as cloud_ssh
from inferform.cloud.instance import expires_at, render_user_data, root_volume_gib, shutdown_minutes, ttl_seconds
from inferform.errors import EXIT_BAD_INPUT, EXIT_FAILURE, InferformError
from inferform.plan import Plan
from inferform.setup.spec import Setup
from inferform.state import AppliedState, read_state, state_root, write_state
from inferform.units import GIB

AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
           "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
           "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")


def cloud_plan(**target) -> Plan:
    """The plan of cloud_setup(**target) on its named instance type, priced from the catalog: what apply acts on."""
    from inferform.catalog.instances import CatalogPrices, load_instance_types
    from inferform.hardware.resolve import instance_profile
    from inferform.planner.instance_plan import plan_cloud

    spec = cloud_setup(**target)
    return plan_cloud(spec, instance_profile(load_instance_types()[spec.target.instance_type]), None, CatalogPrices())


def cloud_setup(**target) -> Setup:
    base = {"kind": "aws-spot", "region": "us-east-1", "instance_type": "g6e.xlarge", "ttl": "3h",
            "allowed_cidrs": ["203.0.113.7/32"], "max_price_per_hour": 2.0}
    base.update(target)
    return Setup.model_validate({"name": "cloud-test", "use_case": "chat", "target": base,
                                 "model": {"id": "gemma-3-1b-it", "quant": "Q4_K_M"},
                                 "serve": {"host": "0.0.0.0", "port": 8080}})


@pytest.fixture
def no_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials anywhere botocore looks: env cleared, empty config files, no instance metadata service."""
    for var in AWS_ENV:
        monkeypatch.delenv(var, raising=False)
    for var, name in (("AWS_SHARED_CREDENTIALS_FILE", "credentials"), ("AWS_CONFIG_FILE", "config")):
        empty = tmp_path / f"empty-aws-{name}"
        empty.write_text("")
        monkeypatch.setenv(var, str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # on an EC2 CI runner the instance role would answer



def nothing_created() -> None:
    assert not state_root().exists(), f"preflight created {state_root()}"
    assert not cloud_files.data_root().exists(), f"preflight created {cloud_files.data_root()}"


# --- preflight --------------------------------------------------------------------------------------------

def test_missing_pulumi_cli_is_refused_with_install_hint_and_nothing_created(no_pulumi) -> None:
    with pytest.raises(InferformError) as caught:
        cloud.preflight(cloud_plan())
    assert caught.value.exit_code == EXIT_BAD_INPUT
    text = str(caught.value)
    assert "Pulumi CLI is not installed" in text
    assert "curl -fsSL https://get.pulumi.com | sh" in text and "pulumi.com/docs" in text
    nothing_created()


def test_apply_cloud_refuses_before_touching_anything_without_pulumi(no_pulumi, tmp_path: Path) -> None:
    with pytest.raises(InferformError) as caught:
        cloud.apply_cloud(cloud_plan(), str(tmp_path / "setup.yaml"))
    assert caught.value.exit_code == EXIT_BAD_INPUT and "Pulumi CLI" in str(caught.value)
    nothing_created()


def test_destroy_cloud_refuses_without_pulumi_and_creates_nothing(no_pulumi) -> None:
    with pytest.raises(InferformError, match="Pulumi CLI") as caught:
        cloud.destroy_cloud("cloud-test")
    assert caught.value.exit_code == EXIT_BAD_INPUT
    nothing_created()


def test_missing_aws_credentials_are_refused_with_a_hint(no_aws) -> None:
    with pytest.raises(InferformError) as caught:
        cloud_preflight.check_aws_credentials("us-east-1")
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert "no AWS credentials" in str(caught.value)
    assert "AWS_PROFILE" in str(caught.value) and "aws configure" in str(caught.value)


def test_preflight_reaches_and_refuses_on_missing_credentials(no_aws, fake_pulumi) -> None:
    with pytest.raises(InferformError, match="no AWS credentials") as caught:
        cloud.preflight(cloud_plan())
    assert caught.value.exit_code == EXIT_BAD_INPUT
    nothing_created()


def test_credentials_from_the_environment_pass(no_aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert cloud_preflight.check_aws_credentials("eu-west-1") == "eu-west-1"
    with pytest.raises(InferformError, match="no AWS region"):
        cloud_preflight.check_aws_credentials(None)
    assert cloud_preflight.check_aws_credentials(None, need_region=False) is None


def test_a_named_but_missing_aws_profile_is_refused(no_aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nobody-has-this-profile")
    with pytest.raises(InferformError, match="could not be loaded") as caught:
        cloud_preflight.check_aws_credentials("us-east-1")
    assert caught.value.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize(("target", "message"), [
    ({"ttl": None}, "needs target.ttl"),
    ({"allowed_cidrs": ["203.0.113.7/32", "0.0.0.0/0"]}, "whole internet"),
    ({"allowed_cidrs": ["::/0"]}, "whole internet"),
])
def test_setup_problems_are_refused_first(no_pulumi, target: dict, message: str) -> None:
    """Bad setups are refused before the CLI check: the fix is in the file, whatever is installed."""
    with pytest.raises(InferformError, match=message) as caught:
        cloud.preflight(cloud_plan(**target))
    assert caught.value.exit_code == EXIT_BAD_INPUT
    nothing_created()


def test_loopback_serve_host_is_refused_for_cloud(no_pulumi) -> None:
    plan = cloud_plan()
    loopback = plan.model_copy(update={"serve": plan.serve.model_copy(update={"host": "127.0.0.1",
                                                                             "api_key_required": False})})
    with pytest.raises(InferformError, match="unreachable"):
        cloud.preflight(loopback)


# --- allowed_cidrs default --------------------------------------------------------------------------------

def test_default_cidr_is_the_callers_ip_only() -> None:
    assert cloud_preflight.default_cidrs(lambda: "8.8.4.4\n") == ("8.8.4.4/32",)
    assert cloud_preflight.default_cidrs(lambda: "2606:4700:4700::1111") == ("2606:4700:4700::1111/128",)


def test_checkip_failure_is_an_error_never_the_whole_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*_args, **_kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(InferformError) as caught:
        cloud_preflight.default_cidrs()
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert "set target.allowed_cidrs" in str(caught.value) and "0.0.0.0/0" not in str(caught.value)


@pytest.mark.parametrize("answer", ["", "<html>rate limited</html>", "0.0.0.0", "10.0.0.5", "::"])
def test_checkip_nonsense_is_an_error(answer: str) -> None:
    with pytest.raises(InferformError, match="allowed_cidrs"):
        cloud_preflight.default_cidrs(lambda: answer)


def test_preflight_without_allowed_cidrs_asks_checkip_and_fails_closed(
        no_aws, fake_pulumi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setattr(cloud_preflight, "fetch_public_ip", lambda: (_ for _ in ()).throw(OSError("timed out")))
    with pytest.raises(InferformError, match="could not be determined"):
        cloud.preflight(cloud_plan(allowed_cidrs=None))
    monkeypatch.setattr(cloud_preflight, "fetch_public_ip", lambda: "8.8.8.8")
    checked = cloud.preflight(cloud_plan(allowed_cidrs=None))
    assert checked.allowed_cidrs == ("8.8.8.8/32",) and checked.cidrs_defaulted
    assert checked.market == "spot" and checked.ttl_seconds == 3 * 3600 and checked.max_price == 2.0
    assert cloud.preflight(cloud_plan(kind="aws-on-demand")).market == "on-demand"
    nothing_created()


# --- boot script, lifetime, volume ------------------------------------------------------------------------

def test_user_data_arms_the_switch_first_and_quotes_what_it_embeds() -> None:
    text = render_user_data(setup="my-setup", ttl_seconds=90 * 60 + 30, expires_at="2026-11-23T20:00:00+00:00")
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash" and lines[1].startswith("set -e")
    assert lines[2].startswith("shutdown -h +91 '"), lines[2]
    assert "printf '%s\\n' 2026-11-23T20:00:00+00:00 > /etc/inferform/expires-at" in text
    assert "install -y -q python3" in text
    hostile = render_user_data(setup="x; rm -rf /", ttl_seconds=60, expires_at="$(reboot)")
    assert "'$(reboot)'" in hostile and "'inferform: TTL of setup x; rm -rf / reached" in hostile


def test_user_data_template_is_strict_about_missing_values() -> None:
    import jinja2

    from inferform.render import template_environment

    with pytest.raises(jinja2.UndefinedError):
        template_environment().get_template("user-data.sh.j2").render(setup="x", minutes=5)


def test_ttl_and_deadline_arithmetic() -> None:
    assert [ttl_seconds(t) for t in ("90m", "3h", "2d")] == [5400, 10800, 172800]
    assert shutdown_minutes(60) == 1 and shutdown_minutes(61) == 2  # rounds up: never ends before its TTL
    start = dt.datetime(2026, 11, 23, 12, 0, 0, 500, tzinfo=dt.UTC)
    assert expires_at(3 * 3600, now=start) == "2026-11-23T15:00:00+00:00"
    with pytest.raises(ValueError):
        shutdown_minutes(0)


@pytest.mark.parametrize("gpu", [True, False])
def test_root_volume_holds_image_engine_and_model(gpu: bool) -> None:
    image_gib, engine_gib = (100, 8) if gpu else (8, 3)  # inferform/data/cloud_images.yaml
    for model_bytes in (0, 1, 805_844_960, 40 * GIB, 40 * GIB + 1, 140 * GIB):
        size = root_volume_gib(model_bytes, gpu=gpu)
        assert size >= image_gib + engine_gib + model_bytes / GIB + 4, (model_bytes, size)
    assert root_volume_gib(40 * GIB + 1, gpu=gpu) > root_volume_gib(40 * GIB, gpu=gpu)  # partial GiB rounds up
    assert root_volume_gib(140 * GIB, gpu=gpu) >= 140 + image_gib + engine_gib + 14  # 10 % headroom


# --- local files ------------------------------------------------------------------------------------------

def test_passphrase_file_is_private_stable_and_not_in_the_environment() -> None:
    env = cloud_files.workspace_env()
    path = Path(env["PULUMI_CONFIG_PASSPHRASE_FILE"])
    passphrase = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(passphrase) >= 32
    assert passphrase not in "".join(env.values()), "the passphrase itself must not travel in the environment"
    assert cloud_files.passphrase_file().read_text().strip() == passphrase  # generated once
    assert env["PULUMI_BACKEND_URL"] == cloud_files.backend_dir().as_uri()
    assert env["PULUMI_BACKEND_URL"].startswith("file://") and cloud_files.backend_dir().is_dir()


def test_ssh_keypair_is_ed25519_private_and_stable() -> None:
    private, public = cloud_files.ssh_keypair("cloud-test")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.startswith("ssh-ed25519 ") and public.endswith(" inferform-cloud-test")
    assert b"BEGIN OPENSSH PRIVATE KEY" in private.read_bytes()
    assert cloud_files.ssh_keypair("cloud-test") == (private, public)
    private.with_suffix(".pub").unlink()
    assert cloud_files.ssh_keypair("cloud-test")[1] == public  # rebuilt from the private half
    keygen = subprocess.run(["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True)
    if keygen.returncode == 0:  # OpenSSH agrees the halves belong together
        assert keygen.stdout.split()[:2] == public.split()[:2]


def test_cloud_state_records_where_and_until_when_but_never_the_api_key() -> None:
    from inferform.apply.cloud.stacks import load_stack

    stack = load_stack("inferform_aws")
    secret = "sk-inferform-do-not-store-me"
    args = stack.InstanceArgs(setup="cloud-test", region="us-east-1", instance_type="g6e.xlarge", market="spot",
                              ttl_seconds=3600, expires_at="2026-11-23T20:00:00+00:00",
                              allowed_cidrs=["203.0.113.7/32"], serve_port=8080,
                              root_volume_gib=root_volume_gib(GIB, gpu=True), ssh_public_key="ssh-ed25519 AAAA x",
                              owner="me@host", api_key=secret, gpu=True, model_bytes=GIB)
    outputs = {"instance_id": "i-0abc", "public_ip": "198.51.100.20", "public_dns": "ec2.example",
               "security_group_id": "sg-1", "endpoint": "http://198.51.100.20:8080/v1",
               "expires_at": args.expires_at}
    fields = cloud._cloud_fields(args, outputs, 1.23)
    state = AppliedState(setup="cloud-test", setup_file="/x/setup.yaml", plan_hash="h",
                         applied_at=dt.datetime.now(dt.UTC), engine="llama.cpp", api_key_file="/x/api-key", **fields)
    path = write_state(state)
    text = path.read_text()
    assert secret not in text
    back = read_state("cloud-test")
    assert back is not None and back.target == "aws" and back.instance_id == "i-0abc"
    assert back.cloud_stack == "cloud-test" and back.region == "us-east-1" and back.market == "spot"
    assert back.public_ip == "198.51.100.20" and back.usd_per_hour == 1.23
    assert back.expires_at == dt.datetime(2026, 11, 23, 20, tzinfo=dt.UTC)
    rebuilt = stack.InstanceArgs(**{**back.cloud_args, "api_key": secret})  # what extend_ttl re-runs up with
    assert rebuilt == args


# --- SSH readiness and TTL extension ----------------------------------------------------------------------

def test_wait_for_ssh_retries_until_the_instance_answers(tmp_path: Path) -> None:
    answers = iter([255, 255, 1, 0])
    calls = []

    def run(argv, **_kwargs):
        calls.append(argv)
        code = next(answers)
        return subprocess.CompletedProcess(argv, code, "", "" if code == 0 else "Connection refused")

    cloud_ssh.wait_for_ssh("198.51.100.20", "ubuntu", tmp_path / "key", tmp_path / "known_hosts", run=run,
                           sleep=lambda _s: None)
    assert len(calls) == 4
    argv = calls[0]
    assert argv[-2] == "ubuntu@198.51.100.20" and "StrictHostKeyChecking=accept-new" in argv
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in argv and "BatchMode=yes" in argv
    assert "cloud-init status --wait" in argv[-1] and "python3" in argv[-1]


def test_wait_for_ssh_gives_up_with_a_failure_naming_the_host(tmp_path: Path) -> None:
    def run(argv, **_kwargs):
        return subprocess.CompletedProcess(argv, 255, "", "ssh: connect to host: Connection timed out")

    with pytest.raises(InferformError, match=r"198\.51\.100\.20 did not become ready") as caught:
        cloud_ssh.wait_for_ssh("198.51.100.20", "ubuntu", tmp_path / "k", tmp_path / "kh", timeout_s=0.01, run=run,
                               sleep=lambda _s: None)
    assert caught.value.exit_code == EXIT_FAILURE


def test_extension_moves_the_deadline_from_the_current_one() -> None:
    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    current = dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.UTC)
    assert cloud_ssh.extended_deadline(current, 3600, now=now) == dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)
    past = dt.datetime(2026, 11, 23, 11, 0, tzinfo=dt.UTC)
    assert cloud_ssh.extended_deadline(past, 600, now=now) == now + dt.timedelta(minutes=10)
    with pytest.raises(InferformError):
        cloud_ssh.extended_deadline(current, 0, now=now)


def test_rearm_replaces_the_pending_shutdown_without_cancelling_first() -> None:
    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    command = cloud_ssh.rearm_command(dt.datetime(2026, 11, 23, 15, 0, 30, tzinfo=dt.UTC), now=now)
    assert command.startswith("sudo shutdown -h +181 ")
    assert "shutdown -c" not in command  # cancelling first would leave a window with no switch
    assert "/etc/inferform/expires-at" in command and "2026-11-23T15:00:30+00:00" in command


def test_extend_ttl_without_a_cloud_apply_is_refused() -> None:
    with pytest.raises(InferformError, match="no cloud instance applied") as caught:
        cloud.extend_ttl("never-applied", 3600)
    assert caught.value.exit_code == EXIT_BAD_INPUT
    write_state(AppliedState(setup="local-one", setup_file="/x", plan_hash="h", applied_at=dt.datetime.now(dt.UTC),
                             endpoint="http://127.0.0.1:8080/v1", engine="llama.cpp"))
    with pytest.raises(InferformError, match="no cloud instance applied"):
        cloud.extend_ttl("local-one", 3600)


def test_cloud_modules_import_no_cloud_sdk_at_start_up() -> None:
    """`inferform plan` must start fast: pulumi (~1 s) and boto3 load only when a cloud action runs."""
    code = ("import sys, inferform.apply.cloud.run, inferform.cloud.instance; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pulumi', 'pulumi_aws', 'boto3', 'botocore'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_apply_cloud_validates_the_stack_inputs_before_creating_anything(
        no_aws, fake_pulumi, monkeypatch: pytest.MonkeyPatch, write) -> None:
    """Preflight passes (stand-in CLI, env credentials, explicit CIDRs); the stack's inputs are then checked —
    here a plan without an instance type — before a key, a passphrase, a backend or a stack exists."""
    from inferform.pipeline import plan_setup as _plan_for

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    path = write("name: cloud-test\nuse_case: chat\ntarget: {kind: aws-spot, region: us-east-1, "
                 "instance_type: g6e.xlarge, ttl: 3h, allowed_cidrs: [203.0.113.7/32]}\n"
                 "model: {id: gemma-3-1b-it, quant: Q4_K_M}\ncontext: 8192\nserve: {host: 0.0.0.0, port: 8080}\n")
    _, plan = _plan_for(path)
    unplaced = plan.model_copy(update={"target": plan.target.model_copy(update={"instance_type": None})})
    with pytest.raises(InferformError, match="no instance type") as caught:
        cloud.apply_cloud(unplaced, path)
    assert caught.value.exit_code == EXIT_BAD_INPUT
    nothing_created()
