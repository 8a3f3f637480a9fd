"""Checks a cloud apply makes before it touches anything: each failure is an exit-2 error saying how to fix it.

Order: what the plan itself says first (free, offline), then the tools (Pulumi CLI), then the account (AWS
credentials), then the network (the caller's public IP, only when allowed_cidrs is left out). Nothing here
creates a file or a directory, so a refused apply leaves no trace.
"""

from __future__ import annotations

import getpass
import ipaddress
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from inferform.cloud.instance import ttl_seconds
from inferform.errors import InferformError
from inferform.plan import Plan

PULUMI_HINT = ("install it: curl -fsSL https://get.pulumi.com | sh (then open a new shell so it is on PATH); "
               "docs: https://www.pulumi.com/docs/iac/download-install/")
AWS_HINT = ("set AWS_PROFILE to a profile from ~/.aws/config, or run `aws configure` (or `aws sso login`), or export "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; docs: "
            "https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html")
CHECKIP_URL = "https://checkip.amazonaws.com"
CHECKIP_TIMEOUT_S = 5


@dataclass(frozen=True)
class Preflight:
    """What the checks established; apply uses these values instead of asking again."""

    region: str
    market: str
    ttl_seconds: int
    allowed_cidrs: tuple[str, ...]
    owner: str
    cidrs_defaulted: bool
    max_price: float | None = None


def check_target(plan: Plan) -> None:
    """The plan's own cloud facts: a deadline, a reachable endpoint, nothing open to the world."""
    target = plan.target
    if not target.is_cloud:
        raise InferformError.single(f"target kind {target.kind!r} is not a cloud target",
                                    hint="cloud apply handles aws-spot, aws-on-demand and free-trial")
    if not target.ttl:
        raise InferformError.single("a cloud target needs target.ttl: inferform never starts an instance without a "
                                    "deadline", hint="add e.g. `ttl: 3h` under target (the instance ends itself then)")
    if not plan.serve.api_key_required:
        raise InferformError.single(
            f"serve.host is {plan.serve.host}: the cloud endpoint would be unreachable from outside the instance",
            hint="set serve: {host: 0.0.0.0} — apply generates an API key and the security group admits only "
                 "allowed_cidrs")
    for cidr in target.allowed_cidrs or []:
        if ipaddress.ip_network(cidr, strict=False).prefixlen == 0:
            raise InferformError.single(
                f"allowed_cidrs contains {cidr}, which opens the endpoint and SSH to the whole internet",
                hint="list the addresses that need access, e.g. your public IP as 203.0.113.7/32")


def check_pulumi_cli() -> None:
    """The Pulumi CLI is on PATH and new enough for the Automation API (which shells out to it)."""
    if shutil.which("pulumi") is None:
        raise InferformError.single("the Pulumi CLI is not installed (no `pulumi` on PATH); cloud apply drives it "
                                    "through Pulumi's Automation API", hint=PULUMI_HINT)
    from pulumi.automation import PulumiCommand
    from pulumi.automation.errors import InvalidVersionError

    try:
        PulumiCommand()
    except InvalidVersionError as exc:
        raise InferformError.single(f"the Pulumi CLI is too old for this SDK: {exc}", hint=PULUMI_HINT) from None
    except (OSError, subprocess.CalledProcessError) as exc:
        raise InferformError.single(f"the Pulumi CLI does not run: {exc}", hint=PULUMI_HINT) from None


def check_aws_credentials(region: str | None, *, need_region: bool = True) -> str | None:
    """AWS credentials resolve (env, profile, SSO, instance role); returns the region to use.

    Destroy passes need_region=False: the stack's state already records the region of what it created.
    """
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        session = boto3.Session(region_name=region)
        credentials = session.get_credentials()
    except BotoCoreError as exc:
        raise InferformError.single(f"AWS credentials could not be loaded: {exc}", hint=AWS_HINT) from None
    if credentials is None:
        raise InferformError.single("no AWS credentials found", hint=AWS_HINT)
    chosen = region or session.region_name
    if not chosen and need_region:
        raise InferformError.single("no AWS region: the setup has no target.region and the AWS config sets none",
                                    hint="add e.g. `region: us-east-1` under target")
    return chosen


def fetch_public_ip() -> str:
    """This machine's public address as AWS sees it (one HTTPS GET, 5 s timeout)."""
    from urllib.request import urlopen

    with urlopen(CHECKIP_URL, timeout=CHECKIP_TIMEOUT_S) as response:
        return response.read(64).decode("ascii", "replace").strip()


def default_cidrs(fetch: Callable[[], str] | None = None) -> tuple[str, ...]:
    """The caller's public IP as a single-address block. Failing that, an error — never 0.0.0.0/0."""
    try:
        address = ipaddress.ip_address((fetch or fetch_public_ip)().strip())
    except (OSError, ValueError) as exc:
        raise InferformError.single(
            f"allowed_cidrs is not set and your public IP could not be determined from {CHECKIP_URL} ({exc})",
            hint="set target.allowed_cidrs to the addresses that may reach the endpoint, e.g. [203.0.113.7/32]",
        ) from None
    if not address.is_global:
        raise InferformError.single(f"allowed_cidrs is not set and {CHECKIP_URL} answered {address}, which is "
                                    "not a public address", hint="set target.allowed_cidrs explicitly")
    return (f"{address}/{address.max_prefixlen}",)


def market_of(kind: str) -> str:
    return "spot" if kind == "aws-spot" else "on-demand"


def owner() -> str:
    """Who started the instance, for the inferform:owner tag (local facts only: no network call)."""
    # EC2 tag values allow letters, digits, spaces and _.:/=+-@ only.
    return re.sub(r"[^\w.:/=+\-@ ]", "_", f"{getpass.getuser()}@{socket.gethostname()}")


def preflight(plan: Plan, *, fetch: Callable[[], str] | None = None) -> Preflight:
    """All checks, in order; raises InferformError (exit 2) at the first that fails, having created nothing. The
    instance goes where the plan priced it (its region), or, for a plan without one, the AWS config's region."""
    check_target(plan)
    check_pulumi_cli()
    target = plan.target
    region = check_aws_credentials(target.region) or ""
    cidrs = tuple(target.allowed_cidrs or ()) or default_cidrs(fetch)
    return Preflight(region=region, market=market_of(target.kind), ttl_seconds=ttl_seconds(target.ttl or ""),
                     allowed_cidrs=cidrs, owner=owner(), cidrs_defaulted=not target.allowed_cidrs,
                     max_price=target.max_price_per_hour)
