"""N identical EC2 instances for one multi-node vLLM setup: one subnet, one cluster placement group, one TTL.

Why a component of its own: a model sharded across nodes (vLLM's --nnodes, tensor parallel inside a node,
pipeline across) needs the nodes close together and talking freely, while the world still reaches only the API:
- one subnet and a cluster placement group (the low-latency, high-bandwidth network collectives need), EFA
  interfaces where the type has them;
- a cluster security group on every node that admits its own members on all ports (NCCL, vLLM's own ports) and
  SSH from allowed_cidrs (apply reaches each node), and a head group with the API port from allowed_cidrs only,
  on the head only;
- one expiry for the whole group: every node's boot script arms the same shutdown first and every node terminates
  on halt; each carries the sweep's tags plus its rank;
- each worker's boot script gets its rank and the head's private address (vLLM's --node-rank / --master-addr).
Spot is refused unless the caller insists: losing one node ends the whole deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from inferform.cloud.instance import default_ami_parameter, render_user_data
from inferform.errors import InferformError

from .instance import SSH_PORT, InstanceArgs, market_options

TAG_RANK = "inferform:node-rank"
TAG_NODES = "inferform:nnodes"
CLUSTER_SG_DESCRIPTION = "inferform cluster: all traffic between members, SSH from allowed_cidrs"
HEAD_SG_DESCRIPTION = "inferform cluster head: the API port from allowed_cidrs only"


@dataclass(frozen=True)
class ClusterArgs:
    """One node's InstanceArgs (type, market, TTL, addresses, key), how many nodes, and where."""

    node: InstanceArgs
    nodes: int
    availability_zone: str
    efa: bool = False
    spot_insisted: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.nodes < 2:
            problems.append(f"a cluster has at least 2 nodes, not {self.nodes} (one node is InferformInstance)")
        if self.node.market == "spot" and not self.spot_insisted:
            problems.append("spot for a multi-node group: losing any one node ends the whole deployment; use "
                            "on-demand, or insist on spot")
        if not self.availability_zone.startswith(self.node.region):
            problems.append(f"availability zone {self.availability_zone} is not in region {self.node.region}")
        if problems:
            raise InferformError.single("; ".join(problems), hint="fix the setup's target section")


class InferformCluster(pulumi.ComponentResource):
    """The AWS resources of one multi-node setup, children of one component."""

    head_public_ip: pulumi.Output[str]
    private_ips: pulumi.Output[list[str]]
    instance_ids: pulumi.Output[list[str]]
    endpoint: pulumi.Output[str]
    expires_at: pulumi.Output[str]
    api_key: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("inferform:aws:Cluster", name, None, opts)
        node = args.node
        tags = {**node.tags, TAG_NODES: str(args.nodes)}
        provider = aws.Provider(f"{name}-aws", region=node.region, opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        lookup = pulumi.InvokeOutputOptions(parent=self, provider=provider)

        subnet = aws.ec2.get_subnet_output(availability_zone=args.availability_zone,
                                           default_for_az=True, opts=lookup)
        placement = aws.ec2.PlacementGroup(f"{name}-pg", strategy="cluster", tags=tags, opts=child)
        cluster_sg = aws.ec2.SecurityGroup(
            f"{name}-cluster-sg", description=CLUSTER_SG_DESCRIPTION, vpc_id=subnet.vpc_id, tags=tags,
            ingress=[aws.ec2.SecurityGroupIngressArgs(protocol="-1", from_port=0, to_port=0, self=True,
                                                      description="all traffic between the group's members"),
                     *_from_allowed(node, SSH_PORT, "SSH for apply")],
            egress=[aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"],
                                                    ipv6_cidr_blocks=["::/0"], description="all outbound"),
                    aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0, self=True,
                                                    description="all traffic between members (EFA needs it)")],
            opts=child)
        head_sg = aws.ec2.SecurityGroup(
            f"{name}-head-sg", description=HEAD_SG_DESCRIPTION, vpc_id=subnet.vpc_id, tags=tags,
            ingress=_from_allowed(node, node.serve_port, "inferform endpoint"), opts=child)
        key = aws.ec2.KeyPair(f"{name}-key", public_key=node.ssh_public_key, tags=tags, opts=child)
        ami = aws.ssm.get_parameter_output(name=node.ami_parameter or default_ami_parameter(node.instance_type,
                                                                                            gpu=node.gpu),
                                           opts=lookup).insecure_value

        instances: list[aws.ec2.Instance] = []
        for rank in range(args.nodes):
            groups = [cluster_sg.id, head_sg.id] if rank == 0 else [cluster_sg.id]
            head_ip = pulumi.Output.from_input("self") if rank == 0 else instances[0].private_ip
            user_data = head_ip.apply(lambda ip, r=rank: render_user_data(
                setup=node.setup, ttl_seconds=node.ttl_seconds, expires_at=node.expires_at,
                node={"rank": r, "nnodes": args.nodes, "head": ip}))
            network = {}
            if args.efa:
                eni = aws.ec2.NetworkInterface(f"{name}-efa-{rank}", subnet_id=subnet.id, interface_type="efa",
                                               security_groups=groups, tags={**tags, TAG_RANK: str(rank)},
                                               opts=child)
                network["network_interfaces"] = [aws.ec2.InstanceNetworkInterfaceArgs(
                    network_interface_id=eni.id, device_index=0)]
            else:
                network.update(subnet_id=subnet.id, vpc_security_group_ids=groups, associate_public_ip_address=True)
            instances.append(aws.ec2.Instance(
                f"{name}-node-{rank}", ami=ami, instance_type=node.instance_type, key_name=key.key_name,
                placement_group=placement.name, availability_zone=args.availability_zone, user_data=user_data,
                instance_initiated_shutdown_behavior="terminate", instance_market_options=market_options(node),
                metadata_options=aws.ec2.InstanceMetadataOptionsArgs(http_endpoint="enabled", http_tokens="required"),
                root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                    volume_type="gp3", volume_size=node.root_volume_gib, delete_on_termination=True, encrypted=True,
                    tags=tags),
                tags={**tags, TAG_RANK: str(rank), "Name": f"inferform-{node.setup}-{rank}"}, **network,
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["ami", "userData"]))))
        head_public = instances[0].public_ip
        if args.efa:  # an EFA interface gets no public address by itself: the head gets an Elastic IP
            eip = aws.ec2.Eip(f"{name}-head-eip", domain="vpc", instance=instances[0].id, tags=tags, opts=child)
            head_public = eip.public_ip
        self.head_public_ip = head_public
        self.private_ips = pulumi.Output.all(*[i.private_ip for i in instances])
        self.instance_ids = pulumi.Output.all(*[i.id for i in instances])
        self.endpoint = head_public.apply(lambda ip: f"http://{ip}:{node.serve_port}/v1")
        self.expires_at = pulumi.Output.from_input(node.expires_at)
        self.api_key = pulumi.Output.secret(node.api_key)
        self.register_outputs({"head_public_ip": self.head_public_ip, "private_ips": self.private_ips,
                               "instance_ids": self.instance_ids, "endpoint": self.endpoint,
                               "expires_at": self.expires_at, "api_key": self.api_key})


def _from_allowed(node: InstanceArgs, port: int, what: str) -> list[aws.ec2.SecurityGroupIngressArgs]:
    import ipaddress

    v4 = [c for c in node.allowed_cidrs if ipaddress.ip_network(c, strict=False).version == 4]
    v6 = [c for c in node.allowed_cidrs if ipaddress.ip_network(c, strict=False).version == 6]
    return [aws.ec2.SecurityGroupIngressArgs(protocol="tcp", from_port=port, to_port=port, cidr_blocks=v4,
                                             ipv6_cidr_blocks=v6, description=what)]
