"""The AWS stack's policy, checked with Pulumi's own unit-test path (pulumi.runtime.set_mocks; no CLI, no AWS).

Each test builds the real `InferformInstance` against a recording mock engine and asserts on what the engine
was asked to create (the resource inputs, as they would reach the AWS provider) and on what the component
registered as outputs (in wire form, where a secret is visibly wrapped). A failure names the resource's URN.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pulumi
import pytest
from pulumi.runtime import rpc, settings
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

from inferform.apply.cloud.stacks import load_stack
from inferform.cloud.instance import root_volume_gib, shutdown_minutes
from inferform.errors import InferformError
from inferform.units import GIB

stack = load_stack("inferform_aws")
AMI = "ami-0123456789abcdef0"
PUBLIC_IP = "198.51.100.20"
API_KEY = "sk-inferform-test-key-not-real"
INSTANCE = "aws:ec2/instance:Instance"
GROUP = "aws:ec2/securityGroup:SecurityGroup"
MODEL_BYTES = 40 * GIB


@dataclass
class Recorded:
    resource: MockResourceArgs
    urn: str
    ignore_changes: list[str]


@dataclass
class Deployment:
    resources: list[Recorded] = field(default_factory=list)
    invokes: list[MockCallArgs] = field(default_factory=list)
    outputs: dict[str, dict] = field(default_factory=dict)  # component URN -> registered outputs (wire form)

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.resource.typ == typ]

    def one(self, typ: str) -> Recorded:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, got {[r.urn for r in found]}"
        return found[0]


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers like AWS would, enough for the component to wire its children, and records every request."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def new_resource(self, args: MockResourceArgs):
        state = dict(args.inputs)
        if args.typ == INSTANCE:
            state.update(publicIp=PUBLIC_IP, publicDns="ec2-198-51-100-20.compute-1.amazonaws.com")
        if args.typ == "aws:ec2/keyPair:KeyPair":
            state["keyName"] = f"{args.name}-generated"
        return f"{args.name}-id", state

    def call(self, args: MockCallArgs):
        self.deployment.invokes.append(args)
        if args.token == "aws:ssm/getParameter:getParameter":
            return {"name": args.args["name"], "type": "String", "value": AMI, "insecureValue": AMI}
        raise AssertionError(f"the stack made an unexpected provider call: {args.token}")


class RecordingMonitor(MockMonitor):
    """The stock mock monitor, also keeping each resource's URN and each component's registered outputs."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.deployment = mocks.deployment

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object)
            self.deployment.resources.append(Recorded(
                MockResourceArgs(typ=request.type, name=request.name, inputs=inputs, custom=request.custom),
                response.urn, list(request.ignoreChanges)))
        return response

    def RegisterResourceOutputs(self, request):
        self.deployment.outputs[request.urn] = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)


@pytest.fixture
def deploy() -> Iterator:
    """Build the component under fresh mocks on a private event loop; restore both afterwards (no leaks)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def run(args, program=None) -> Deployment:
        deployment = Deployment()
        mocks = RecordingMocks(deployment)
        settings.reset_options()
        pulumi.runtime.set_mocks(mocks, project="inferform", stack=args.setup, preview=False,
                                 monitor=RecordingMonitor(mocks))

        @pulumi.runtime.test
        def build():
            if program is not None:
                return program()
            component = stack.InferformInstance(args.setup, args)
            return pulumi.Output.all(component.instance_id, component.endpoint)

        build()
        return deployment

    try:
        yield run
    finally:
        settings.reset_options()
        loop.close()
        asyncio.set_event_loop(None)  # the state pytest started in: later tests make their own loops


def make_args(**changes) -> object:
    base = dict(setup="llama70b-spot", region="us-east-1", instance_type="g6e.xlarge", market="spot",
                ttl_seconds=3 * 3600, expires_at="2026-11-23T20:00:00+00:00", allowed_cidrs=["203.0.113.7/32"],
                serve_port=8080, root_volume_gib=root_volume_gib(MODEL_BYTES, gpu=True),
                ssh_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly inferform",
                owner="tester@example", api_key=API_KEY, gpu=True, model_bytes=MODEL_BYTES, max_price=6.0)
    base.update(changes)
    return stack.InstanceArgs(**base)


def test_spot_instance_is_a_one_time_request_that_terminates_on_interruption(deploy) -> None:
    instance = deploy(make_args()).one(INSTANCE)
    market = instance.resource.inputs.get("instanceMarketOptions")
    assert market, f"{instance.urn}: a spot setup launched without spot market options"
    assert market["marketType"] == "spot", instance.urn
    spot = market["spotOptions"]
    assert spot["instanceInterruptionBehavior"] == "terminate", f"{instance.urn}: interrupted spot must terminate"
    assert spot["spotInstanceType"] == "one-time", f"{instance.urn}: a persistent request would relaunch after TTL"
    assert float(spot["maxPrice"]) == 6.0, f"{instance.urn}: max_price from the setup was dropped"


def test_on_demand_instance_has_no_market_options(deploy) -> None:
    instance = deploy(make_args(market="on-demand", max_price=None)).one(INSTANCE)
    assert "instanceMarketOptions" not in instance.resource.inputs, f"{instance.urn}: on-demand got market options"


def test_instance_terminates_when_it_halts_and_requires_imdsv2(deploy) -> None:
    inputs = (instance := deploy(make_args()).one(INSTANCE)).resource.inputs
    assert inputs["instanceInitiatedShutdownBehavior"] == "terminate", \
        f"{instance.urn}: a halted instance would only stop and keep billing for its volume"
    assert inputs["metadataOptions"]["httpTokens"] == "required", f"{instance.urn}: IMDSv1 left enabled"


@pytest.mark.parametrize("ttl_seconds", [3 * 3600, 90 * 60 + 1, 7 * 86400])
def test_user_data_first_command_arms_the_dead_mans_switch(deploy, ttl_seconds: int) -> None:
    instance = deploy(make_args(ttl_seconds=ttl_seconds)).one(INSTANCE)
    lines = [line.strip() for line in instance.resource.inputs["userData"].splitlines()]
    assert lines[0].startswith("#!"), f"{instance.urn}: user data is not a script"
    commands = [line for line in lines[1:] if line and not line.startswith("#") and not line.startswith("set ")]
    minutes = -(-ttl_seconds // 60)
    assert commands[0].startswith(f"shutdown -h +{minutes} "), \
        f"{instance.urn}: first command is {commands[0]!r}, not the shutdown at {minutes} minutes"
    assert shutdown_minutes(ttl_seconds) == minutes


def test_ingress_is_only_the_serving_port_and_ssh_from_allowed_cidrs(deploy) -> None:
    cidrs = ["203.0.113.7/32", "2001:db8::1/128"]
    group = deploy(make_args(allowed_cidrs=cidrs, serve_port=9000)).one(GROUP)
    ingress = group.resource.inputs["ingress"]
    assert sorted((r["fromPort"], r["toPort"]) for r in ingress) == [(22, 22), (9000, 9000)], group.urn
    for rule in ingress:
        opened = rule.get("cidrBlocks", []) + rule.get("ipv6CidrBlocks", [])
        assert sorted(opened) == sorted(cidrs), f"{group.urn}: port {rule['fromPort']} open to {opened}"
        assert "0.0.0.0/0" not in opened and "::/0" not in opened, group.urn
        assert rule["protocol"] == "tcp", group.urn
    allowed = re.compile(r"^[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*$")  # EC2's character set for descriptions
    for text in [group.resource.inputs["description"], *(r["description"] for r in ingress)]:
        assert allowed.match(text), f"{group.urn}: EC2 would reject the description {text!r}"
    egress = group.resource.inputs["egress"]
    assert egress and egress[0]["protocol"] == "-1", f"{group.urn}: the instance could not download its model"


@pytest.mark.parametrize("world", ["0.0.0.0/0", "::/0"])
def test_world_open_cidr_is_refused_unless_allow_world(deploy, world: str) -> None:
    with pytest.raises(InferformError, match="whole internet"):
        make_args(allowed_cidrs=["203.0.113.7/32", world])
    group = deploy(make_args(allowed_cidrs=[world], allow_world=True)).one(GROUP)
    opened = [c for rule in group.resource.inputs["ingress"]
              for c in rule.get("cidrBlocks", []) + rule.get("ipv6CidrBlocks", [])]
    assert world in opened, f"{group.urn}: allow_world=True should let {world} through"


def test_every_aws_resource_carries_the_inferform_tags(deploy) -> None:
    args = make_args()
    deployment = deploy(args)
    aws_resources = [r for r in deployment.resources
                     if r.resource.typ.startswith("aws:") and r.resource.typ != "pulumi:providers:aws"]
    assert {r.resource.typ for r in aws_resources} == {INSTANCE, GROUP, "aws:ec2/keyPair:KeyPair"}
    for recorded in aws_resources:
        tags = recorded.resource.inputs.get("tags") or {}
        for key, value in (("inferform:setup", args.setup), ("inferform:expires-at", args.expires_at),
                           ("inferform:owner", args.owner), ("Name", "inferform-llama70b-spot")):
            assert tags.get(key) == value, f"{recorded.urn}: tag {key} is {tags.get(key)!r}, expected {value!r}"
    root_tags = deployment.one(INSTANCE).resource.inputs["rootBlockDevice"].get("tags") or {}
    assert root_tags.get("inferform:setup") == args.setup, "the root volume is untagged"


def test_every_resource_is_a_child_of_the_component(deploy) -> None:
    deployment = deploy(make_args())
    component = next(r for r in deployment.resources if r.resource.typ == "inferform:aws:Instance")
    for recorded in deployment.resources:
        if recorded is not component:
            assert recorded.urn.split("::")[2].startswith("inferform:aws:Instance$"), \
                f"{recorded.urn} is not parented to the component"


def test_root_volume_holds_image_engine_and_model(deploy) -> None:
    instance = deploy(make_args()).one(INSTANCE)
    root = instance.resource.inputs["rootBlockDevice"]
    image_gib, engine_gib = 100, 8  # inferform/data/cloud_images.yaml, gpu row
    assert root["volumeSize"] >= image_gib + engine_gib + MODEL_BYTES / GIB, instance.urn
    assert root["volumeType"] == "gp3" and root["deleteOnTermination"] is True, instance.urn
    with pytest.raises(InferformError, match="root volume cannot hold"):
        make_args(root_volume_gib=root["volumeSize"] - 1)


def test_ami_comes_from_the_public_ssm_parameter_for_the_instance_kind(deploy) -> None:
    gpu = deploy(make_args())
    assert [c.args["name"] for c in gpu.invokes] == [
        "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"]
    assert gpu.one(INSTANCE).resource.inputs["ami"] == AMI
    cpu = deploy(make_args(instance_type="t4g.small", gpu=False, model_bytes=GIB,
                           root_volume_gib=root_volume_gib(GIB, gpu=False)))
    assert [c.args["name"] for c in cpu.invokes] == [
        "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id"]


def test_outputs_are_registered_and_the_api_key_is_secret(deploy) -> None:
    deployment = deploy(make_args())
    (urn, outputs), = ((u, o) for u, o in deployment.outputs.items()
                       if u.split("::")[2].split("$")[-1] == "inferform:aws:Instance")
    assert set(outputs) == {"instance_id", "public_ip", "public_dns", "security_group_id", "endpoint",
                            "expires_at", "api_key"}, urn
    assert rpc.is_rpc_secret(outputs["api_key"]), f"{urn}: the API key would be stored in plain text"
    assert rpc.unwrap_rpc_secret(outputs["api_key"]) == API_KEY
    assert outputs["endpoint"] == f"http://{PUBLIC_IP}:8080/v1"
    assert outputs["public_ip"] == PUBLIC_IP and outputs["instance_id"] == "llama70b-spot-instance-id"
    assert not any(rpc.is_rpc_secret(v) for k, v in outputs.items() if k != "api_key"), \
        "a non-secret output was marked secret (it would be hidden from `inferform status`)"


def test_a_later_up_never_replaces_the_instance_for_a_new_ami_or_ttl(deploy) -> None:
    """extend_ttl re-runs `up` with a new expires_at, and the SSM parameter moves to each new AMI: the running
    instance must be retagged then, never replaced (which would drop the model and the server)."""
    instance = deploy(make_args()).one(INSTANCE)
    assert {"ami", "userData"} <= set(instance.ignore_changes), \
        f"{instance.urn}: a new AMI or TTL would replace the running instance"


def test_the_inline_program_exports_every_output_apply_reads(deploy) -> None:
    """apply_cloud reads the stack outputs by these names; the program it hands the Automation API exports them."""
    from inferform.apply.cloud import run as cloud

    exported: dict = {}

    def program_then_capture():
        cloud._program(stack, make_args())()
        exported.update(settings.get_root_resource().outputs)

    deploy(make_args(), program=program_then_capture)
    assert set(exported) == set(cloud.OUTPUTS)
    assert asyncio.get_event_loop().run_until_complete(exported["api_key"].is_secret())
