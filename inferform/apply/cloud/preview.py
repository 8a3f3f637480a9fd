"""`apply --dry-run` for a cloud setup: what the stack would create and which Pulumi calls apply would make.

Built from the plan and the setup alone — no Pulumi, no boto3, no network — so a user can read what a cloud
apply will do (and cost) on a machine with neither installed. The values mirror `cloud._instance_args` and the
stack's resources (stacks/inferform_aws/instance.py); a test keeps the two in step. What only apply can know
(the caller's public IP when allowed_cidrs is left out, the exact expiry) is named as such.
"""

from __future__ import annotations

import shutil
from typing import Any

from inferform.apply.cloud.files import backend_url
from inferform.apply.cloud.preflight import check_target, market_of, owner
from inferform.cloud.instance import default_ami_parameter, expires_at, render_user_data, root_volume_gib, ttl_seconds
from inferform.errors import InferformError
from inferform.plan import Plan

SSH_PORT = 22


def _checks() -> list[str]:
    """What apply's preflight will need, from local facts only (PATH, env, ~/.aws): never a network call."""
    from inferform.cloud.aws import has_credentials

    pulumi = shutil.which("pulumi")
    return [f"Pulumi CLI: {pulumi}" if pulumi else "Pulumi CLI: not on PATH — apply will refuse "
            "(install: curl -fsSL https://get.pulumi.com | sh)",
            "AWS credentials: found" if has_credentials() else "AWS credentials: none found — apply will refuse "
            "(AWS_PROFILE, `aws configure`, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"]


def preview(plan: Plan) -> dict[str, Any]:
    """The stack's resources with the values apply would pass, the boot script, the Pulumi calls, the checks."""
    check_target(plan)  # the refusals that need nothing but the plan: no TTL, loopback host, a /0 CIDR
    instance_type = plan.target.instance_type
    if not instance_type:
        raise InferformError.single("the plan chose no instance type for this cloud target",
                                    hint="set target.instance_type, or see `inferform plan` for why none fits")
    name, target = plan.setup, plan.target
    gpu = bool(plan.target.gpus)
    market = market_of(target.kind)
    region = target.region or "(the AWS config's default region)"
    ttl = ttl_seconds(target.ttl or "")
    ends = expires_at(ttl)
    port = plan.serve.port
    volume = root_volume_gib(plan.model.file_bytes, gpu=gpu)
    max_price = target.max_price_per_hour if market == "spot" else None
    cidrs = list(target.allowed_cidrs or []) or ["<your public IP>/32 (asked of checkip.amazonaws.com at apply)"]
    if market == "spot":
        ceiling = f"${max_price:.4f}/h" if max_price else "the on-demand price"
        how = f"spot (one-time, interruption terminate, max price {ceiling})"
    else:
        how = "on-demand"
    resources = [
        {"resource": f"{name}-aws", "type": "aws:Provider", "what": f"pinned to {region}"},
        {"resource": f"{name}-sg", "type": "aws:ec2/securityGroup:SecurityGroup",
         "what": f"ingress tcp {port} (endpoint) and {SSH_PORT} (SSH) from {', '.join(cidrs)} only; egress all"},
        {"resource": f"{name}-key", "type": "aws:ec2/keyPair:KeyPair",
         "what": "this setup's ed25519 public key (private half 0600 in the state dir)"},
        {"resource": "(lookup)", "type": "aws:ssm/getParameter",
         "what": f"AMI from {default_ami_parameter(instance_type, gpu=gpu)}"},
        {"resource": f"{name}-instance", "type": "aws:ec2/instance:Instance",
         "what": f"{instance_type} {how}; shutdown behaviour terminate; IMDSv2 required; gp3 root volume "
                 f"{volume} GiB, encrypted, deleted on termination; public IP; boot script below"},
    ]
    pulumi_calls = [
        f"backend {backend_url()} (local files, secrets passphrase in a 0600 file: no Pulumi Cloud account)",
        f"create_or_select_stack(stack={name!r}, project='inferform', program=inferform_aws.InferformInstance)",
        "stack.workspace.install_plugin('aws', <the installed pulumi_aws version>)",
        "stack.up(refresh=True): `pulumi up --refresh` — an instance that was interrupted or expired is recreated",
        "then: wait for SSH and cloud-init, run the roles over SSH with the files below, record state",
    ]
    return {
        "setup": name, "instance_type": instance_type, "region": region, "market": market,
        "usd_per_hour": plan.cost.usd_per_hour if plan.cost else None,
        "usd_per_mtok": plan.cost.usd_per_mtok if plan.cost else None,
        "price_source": plan.cost.price_source if plan.cost else None,
        "free_tier": bool(plan.cost and plan.cost.free_tier),
        "runner_ups": [r.model_dump(mode="json") for r in plan.cost.runner_ups] if plan.cost else [],
        "ttl": target.ttl, "expires_at_if_applied_now": ends, "serve_port": port, "root_volume_gib": volume,
        "max_price": max_price, "allowed_cidrs": list(target.allowed_cidrs or []), "owner": owner(),
        "tags": ["inferform:setup", "inferform:expires-at", "inferform:owner", "Name"], "resources": resources,
        "user_data": render_user_data(setup=name, ttl_seconds=ttl, expires_at=ends),
        "pulumi_calls": pulumi_calls, "checks": _checks(),
    }
