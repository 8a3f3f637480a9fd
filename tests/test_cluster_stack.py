"""The multi-node AWS stack (stacks/inferform_aws/cluster.py) under Pulumi's mocks: one subnet, one cluster placement
group, a security group that admits its own members, the API port only on the head and only from allowed_cidrs,
the TTL on every node, each worker told its rank and the head's address, and the tags `sweep` looks for. No CLI,
no AWS: what is asserted is what would reach the AWS provider."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pulumi
import pytest
from pulumi.runtime import settings

from inferform.cloud.sweep import TAG_EXPIRES, TAG_SETUP
from inferform.errors import InferformError
from tests.test_stack import GROUP, INSTANCE, Deployment, RecordingMocks, RecordingMonitor, make_args, stack

SUBNET, VPC, AZ = "subnet-0abc", "vpc-0def", "us-east-1a"
PG = "aws:ec2/placementGroup:PlacementGroup"


class ClusterMocks(RecordingMocks):
    """RecordingMocks, plus the default subnet lookup and a private address per instance."""

    def new_resource(self, args):
        rid, state = super().new_resource(args)
        if args.typ == INSTANCE:
            state["privateIp"] = f"10.0.0.{10 + len(self.deployment.of_type(INSTANCE))}"
        if args.typ == PG:
            state["name"] = args.inputs.get("name") or f"{args.name}-generated"
        return rid, state

    def call(self, args):
        if args.token == "aws:ec2/getSubnet:getSubnet":
            self.deployment.invokes.append(args)
            return {"id": SUBNET, "vpcId": VPC, "availabilityZone": args.args["availabilityZone"]}
        return super().call(args)


@pytest.fixture
def deploy_cluster() -> Iterator:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def run(args) -> Deployment:
        deployment = Deployment()
        mocks = ClusterMocks(deployment)
        settings.reset_options()
        pulumi.runtime.set_mocks(mocks, project="inferform", stack=args.node.setup, preview=False,
                                 monitor=RecordingMonitor(mocks))

        @pulumi.runtime.test
        def build():
            cluster = stack.InferformCluster(args.node.setup, args)
            return pulumi.Output.all(cluster.instance_ids, cluster.endpoint, cluster.private_ips)

        build()
        return deployment

    try:
        yield run
    finally:
        settings.reset_options()
        loop.close()
        asyncio.set_event_loop(None)


def cluster_args(nodes: int = 2, **changes) -> object:
    node = make_args(setup="deepseek-2x8", instance_type="p5.48xlarge", market="on-demand", max_price=None,
                     allowed_cidrs=["203.0.113.7/32", "2001:db8::1/128"], serve_port=8000)
    return stack.ClusterArgs(**{"node": node, "nodes": nodes, "availability_zone": AZ, **changes})


def groups_of(deployment: Deployment) -> dict[str, dict]:
    return {r.resource.name: r.resource.inputs for r in deployment.of_type(GROUP)}


def test_nodes_share_one_subnet_and_one_cluster_placement_group(deploy_cluster) -> None:
    deployment = deploy_cluster(cluster_args(3))
    nodes = deployment.of_type(INSTANCE)
    assert len(nodes) == 3
    placement = deployment.one(PG)
    assert placement.resource.inputs["strategy"] == "cluster", placement.urn
    assert {n.resource.inputs["subnetId"] for n in nodes} == {SUBNET}
    assert {n.resource.inputs["placementGroup"] for n in nodes} == {"deepseek-2x8-pg-generated"}
    assert {n.resource.inputs["availabilityZone"] for n in nodes} == {AZ}
    assert {n.resource.inputs["instanceType"] for n in nodes} == {"p5.48xlarge"}, "identical instances"
    lookups = [i for i in deployment.invokes if i.token == "aws:ec2/getSubnet:getSubnet"]
    assert len(lookups) == 1 and lookups[0].args["availabilityZone"] == AZ


def test_members_reach_each_other_and_the_world_reaches_only_the_heads_api_port(deploy_cluster) -> None:
    deployment = deploy_cluster(cluster_args(2))
    groups = groups_of(deployment)
    cluster, head = groups["deepseek-2x8-cluster-sg"], groups["deepseek-2x8-head-sg"]
    assert {g["vpcId"] for g in groups.values()} == {VPC}
    self_rules = [r for r in cluster["ingress"] if r.get("self")]
    assert self_rules and self_rules[0]["protocol"] == "-1" and self_rules[0]["fromPort"] == 0
    assert not self_rules[0].get("cidrBlocks"), "the all-ports rule is for members, not for addresses"
    outside = [r for r in cluster["ingress"] if not r.get("self")]
    assert [(r["fromPort"], r["toPort"]) for r in outside] == [(22, 22)], "members open only SSH to the world"
    assert [(r["fromPort"], r["toPort"], r["protocol"]) for r in head["ingress"]] == [(8000, 8000, "tcp")]
    for rule in [*outside, *head["ingress"]]:
        opened = rule.get("cidrBlocks", []) + rule.get("ipv6CidrBlocks", [])
        assert sorted(opened) == ["2001:db8::1/128", "203.0.113.7/32"], rule
    ranks = {n.resource.inputs["tags"]["inferform:node-rank"]: n.resource.inputs["vpcSecurityGroupIds"]
             for n in deployment.of_type(INSTANCE)}
    assert len(ranks["0"]) == 2 and len(ranks["1"]) == 1, "the head alone carries the API port's group"
    assert ranks["1"][0] in ranks["0"], "every node is in the cluster group"


def test_every_node_carries_the_ttl_and_the_tags_sweep_finds(deploy_cluster) -> None:
    args = cluster_args(3)
    deployment = deploy_cluster(args)
    for n in deployment.of_type(INSTANCE):
        inputs = n.resource.inputs
        commands = [line for line in inputs["userData"].splitlines()[1:]
                    if line and not line.startswith(("#", "set "))]
        assert commands[0].startswith(f"shutdown -h +{args.node.ttl_seconds // 60} "), n.urn
        assert inputs["instanceInitiatedShutdownBehavior"] == "terminate", n.urn
        assert inputs["tags"][TAG_SETUP] == "deepseek-2x8" and inputs["tags"][TAG_EXPIRES] == args.node.expires_at
        assert inputs["rootBlockDevice"]["tags"][TAG_SETUP] == "deepseek-2x8", n.urn
    for r in deployment.resources:
        if r.resource.typ.startswith("aws:") and r.resource.typ != "pulumi:providers:aws":
            assert (r.resource.inputs.get("tags") or {}).get(TAG_SETUP) == "deepseek-2x8", r.urn


def test_each_worker_learns_its_rank_and_the_heads_private_address(deploy_cluster) -> None:
    deployment = deploy_cluster(cluster_args(3))
    nodes = sorted(deployment.of_type(INSTANCE), key=lambda n: n.resource.inputs["tags"]["inferform:node-rank"])
    head_ip = "10.0.0.10"  # the first instance the mocks created
    for rank, n in enumerate(nodes):
        data = n.resource.inputs["userData"]
        assert f"INFERFORM_NODE_RANK={rank}" in data and "INFERFORM_NNODES=3" in data, n.urn
        if rank:
            assert f"INFERFORM_HEAD_ADDR={head_ip}" in data, n.urn


def test_efa_types_get_efa_interfaces_and_the_head_an_elastic_ip(deploy_cluster) -> None:
    deployment = deploy_cluster(cluster_args(2, efa=True))
    enis = deployment.of_type("aws:ec2/networkInterface:NetworkInterface")
    assert [e.resource.inputs["interfaceType"] for e in enis] == ["efa", "efa"]
    assert {e.resource.inputs["subnetId"] for e in enis} == {SUBNET}
    assert len(deployment.of_type("aws:ec2/eip:Eip")) == 1


def test_spot_needs_insisting_and_one_node_is_not_a_cluster() -> None:
    spot = make_args(setup="x", market="spot")
    with pytest.raises(InferformError, match="losing any one node ends the whole deployment"):
        stack.ClusterArgs(node=spot, nodes=2, availability_zone=AZ)
    stack.ClusterArgs(node=spot, nodes=2, availability_zone=AZ, spot_insisted=True)
    with pytest.raises(InferformError, match="at least 2 nodes"):
        cluster_args(1)
    with pytest.raises(InferformError, match="not in region"):
        cluster_args(2, availability_zone="eu-west-1a")
