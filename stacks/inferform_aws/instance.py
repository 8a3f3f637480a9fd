"""One inferform endpoint on AWS EC2: a security group, a key pair and an instance that ends itself.

Policy lives here, where `pulumi up` cannot skip it, and tests/test_stack.py checks each rule with Pulumi's
mocks: nothing is reachable from the whole internet unless the caller says so explicitly, only the serving port
and SSH are open, the instance terminates (not stops) when it halts or is interrupted, the boot script's first
command arms a shutdown at the TTL, IMDSv2 is required, and every resource carries the tags a sweep needs to find
what was left behind.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from inferform.cloud.instance import default_ami_parameter, render_user_data, root_volume_gib
from inferform.errors import InferformError

SSH_PORT = 22
TAG_SETUP = "inferform:setup"
TAG_EXPIRES = "inferform:expires-at"
TAG_OWNER = "inferform:owner"
# Changing a security group's description replaces it, so it is a constant, not a sentence about the setup.
# EC2 allows only a-zA-Z0-9, spaces and ._-:/()#,@[]+=&;{}!$* in group and rule descriptions (no apostrophe).
SG_DESCRIPTION = "inferform endpoint: serving port and SSH from allowed_cidrs only"


@dataclass(frozen=True)
class InstanceArgs:
    """Everything the stack creates is decided here; the planner and apply compute it, the stack only builds it."""

    setup: str
    region: str
    instance_type: str
    market: Literal["spot", "on-demand"]
    ttl_seconds: int
    expires_at: str
    allowed_cidrs: Sequence[str]
    serve_port: int
    root_volume_gib: int
    ssh_public_key: str
    owner: str
    api_key: str
    gpu: bool = False
    model_bytes: int = 0
    ami_parameter: str | None = None
    max_price: float | None = None
    allow_world: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.market not in ("spot", "on-demand"):
            problems.append(f"market {self.market!r} is not 'spot' or 'on-demand'")
        if self.ttl_seconds <= 0:
            problems.append("the TTL must be positive: an instance without a deadline is never created")
        if not self.allowed_cidrs:
            problems.append("allowed_cidrs is empty: nobody could reach the endpoint")
        for cidr in self.allowed_cidrs:
            try:
                network = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                problems.append(f"{cidr!r} is not a CIDR block like '203.0.113.7/32'")
                continue
            if network.prefixlen == 0 and not self.allow_world:
                problems.append(f"{cidr} opens the endpoint and SSH to the whole internet; list the addresses that "
                                "need access, or set allow_world explicitly")
        if not 1 <= self.serve_port <= 65535 or self.serve_port == SSH_PORT:
            problems.append(f"serve port {self.serve_port} must be 1-65535 and not {SSH_PORT} (SSH)")
        needed = root_volume_gib(self.model_bytes, gpu=self.gpu)
        if self.root_volume_gib < needed:
            problems.append(f"a {self.root_volume_gib} GiB root volume cannot hold the image, engine build and a "
                            f"{self.model_bytes / 2**30:.1f} GiB model; it needs at least {needed} GiB")
        if self.max_price is not None and self.max_price <= 0:
            problems.append("max_price must be positive")
        if problems:
            raise InferformError.single("; ".join(problems), hint="fix the setup's target section")

    @property
    def tags(self) -> dict[str, str]:
        return {TAG_SETUP: self.setup, TAG_EXPIRES: self.expires_at, TAG_OWNER: self.owner,
                "Name": f"inferform-{self.setup}"}


class InferformInstance(pulumi.ComponentResource):
    """The AWS resources of one setup, as children of one component (one URN to find them all under)."""

    instance_id: pulumi.Output[str]
    public_ip: pulumi.Output[str]
    public_dns: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    expires_at: pulumi.Output[str]
    api_key: pulumi.Output[str]

    def __init__(self, name: str, args: InstanceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("inferform:aws:Instance", name, None, opts)
        tags = args.tags
        # An explicit provider pins the region to the setup's, whatever the ambient AWS config says.
        provider = aws.Provider(f"{name}-aws", region=args.region, opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, provider=provider)

        group = aws.ec2.SecurityGroup(
            f"{name}-sg", description=SG_DESCRIPTION, ingress=_ingress(args), tags=tags,
            egress=[aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"],
                                                    ipv6_cidr_blocks=["::/0"], description="all outbound")],
            opts=child)
        key = aws.ec2.KeyPair(f"{name}-key", public_key=args.ssh_public_key, tags=tags, opts=child)
        parameter = args.ami_parameter or default_ami_parameter(args.instance_type, gpu=args.gpu)
        # insecure_value: an AMI ID is public; `value` is flagged sensitive and would hide the image from diffs.
        lookup = pulumi.InvokeOutputOptions(parent=self, provider=provider)
        ami = aws.ssm.get_parameter_output(name=parameter, opts=lookup).insecure_value

        instance = aws.ec2.Instance(
            f"{name}-instance",
            ami=ami,
            instance_type=args.instance_type,
            key_name=key.key_name,
            vpc_security_group_ids=[group.id],
            associate_public_ip_address=True,
            user_data=render_user_data(setup=args.setup, ttl_seconds=args.ttl_seconds, expires_at=args.expires_at),
            instance_initiated_shutdown_behavior="terminate",
            instance_market_options=market_options(args),
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(http_endpoint="enabled", http_tokens="required"),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                volume_type="gp3", volume_size=args.root_volume_gib, delete_on_termination=True, encrypted=True,
                tags=tags),
            tags=tags,
            # A later `up` (extending the TTL retags) must never replace a running instance: the SSM parameter
            # moves to each newly patched AMI, and the user data carries the launch-time TTL.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["ami", "userData"])))

        self.instance_id = instance.id
        self.public_ip = instance.public_ip
        self.public_dns = instance.public_dns
        self.security_group_id = group.id
        self.endpoint = instance.public_ip.apply(lambda ip: f"http://{ip}:{args.serve_port}/v1")
        self.expires_at = pulumi.Output.from_input(args.expires_at)
        self.api_key = pulumi.Output.secret(args.api_key)
        self.register_outputs({
            "instance_id": self.instance_id, "public_ip": self.public_ip, "public_dns": self.public_dns,
            "security_group_id": self.security_group_id, "endpoint": self.endpoint, "expires_at": self.expires_at,
            "api_key": self.api_key,
        })


def _ingress(args: InstanceArgs) -> list[aws.ec2.SecurityGroupIngressArgs]:
    """The serving port and SSH, from allowed_cidrs only (IPv4 and IPv6 blocks go in their own fields)."""
    v4 = [c for c in args.allowed_cidrs if ipaddress.ip_network(c, strict=False).version == 4]
    v6 = [c for c in args.allowed_cidrs if ipaddress.ip_network(c, strict=False).version == 6]
    return [aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=port, to_port=port, cidr_blocks=v4,
                                             ipv6_cidr_blocks=v6, description=what)
            for port, what in ((args.serve_port, "inferform endpoint"), (SSH_PORT, "SSH for apply"))]


def market_options(args: InstanceArgs) -> aws.ec2.InstanceInstanceMarketOptionsArgs | None:
    """Spot: a one-time request that terminates on interruption (a stopped spot instance would still bill EBS)."""
    if args.market != "spot":
        return None
    return aws.ec2.InstanceInstanceMarketOptionsArgs(
        market_type="spot",
        spot_options=aws.ec2.InstanceInstanceMarketOptionsSpotOptionsArgs(
            instance_interruption_behavior="terminate", spot_instance_type="one-time",
            max_price=None if args.max_price is None else f"{args.max_price:.4f}"))
