"""What a cloud instance needs, decided in plain Python: base image, root volume size, lifetime, boot script.

No Pulumi here: the stack (stacks/inferform_aws) and `apply` both call these, and tests check them without
importing a cloud SDK. The boot script is a template (templates/user-data.sh.j2); its first command arms the
dead man's switch, so an instance whose owner vanished powers off — and, with shutdown behaviour "terminate",
ends — even if every later step of the boot or the apply fails.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from functools import cache
from typing import Literal

from pydantic import Field

from inferform.catalog.files import read_data
from inferform.catalog.rows import Row
from inferform.setup.spec import TTL
from inferform.units import GIB

Arch = Literal["x86_64", "arm64"]
# Graviton families carry a "g" right after the generation digit: t4g, m7g, c7gn, r8gd, g5g (not g5, not gr6).
_GRAVITON = re.compile(r"^[a-z]+\d+g[a-z]*\.")


class CloudImage(Row):
    kind: Literal["gpu", "cpu"]
    name: str
    ssm_parameter: dict[Arch, str]
    os_gib: int = Field(gt=0)
    engine_gib: int = Field(gt=0)
    login_user: str
    source: str
    read: str


@cache
def cloud_image(gpu: bool) -> CloudImage:
    rows = [CloudImage.model_validate(row) for row in read_data("cloud_images.yaml")["images"]]
    return next(row for row in rows if row.kind == ("gpu" if gpu else "cpu"))


def arch_of(instance_type: str) -> Arch:
    return "arm64" if _GRAVITON.match(instance_type) else "x86_64"


def default_ami_parameter(instance_type: str, *, gpu: bool) -> str:
    """The public SSM parameter naming the newest base image for this instance type."""
    return cloud_image(gpu).ssm_parameter[arch_of(instance_type)]


def root_volume_gib(model_bytes: int, *, gpu: bool) -> int:
    """Root volume size: the image itself + the engine build + the model file + headroom.

    The model is downloaded to a temporary name and renamed in place, so it needs its size once, not twice.
    Headroom (10 % of the model, at least 4 GiB) covers logs, the apt cache and a model update that briefly
    keeps the old file while the new one downloads.
    """
    if model_bytes < 0:
        raise ValueError("model_bytes must be >= 0")
    image = cloud_image(gpu)
    model_gib = math.ceil(model_bytes / GIB)
    headroom = max(4, math.ceil(model_gib * 0.10))
    return image.os_gib + image.engine_gib + model_gib + headroom


def ttl_seconds(ttl: str) -> int:
    """'90m' / '3h' / '2d' (the spec's TTL syntax, already validated there) in seconds."""
    match = TTL.match(ttl)
    if not match:
        raise ValueError(f"{ttl!r} is not a duration like '90m', '3h' or '2d'")
    return int(match.group(1)) * {"m": 60, "h": 3600, "d": 86400}[match.group(2)]


def shutdown_minutes(seconds: int) -> int:
    """`shutdown -h +N` counts whole minutes; round up so the instance never ends before its TTL."""
    if seconds <= 0:
        raise ValueError("a TTL must be positive")
    return math.ceil(seconds / 60)


def expires_at(seconds: int, *, now: dt.datetime | None = None) -> str:
    """The moment the dead man's switch fires, as an ISO-8601 UTC timestamp (the `inferform:expires-at` tag)."""
    start = now or dt.datetime.now(dt.UTC)
    return (start + dt.timedelta(minutes=shutdown_minutes(seconds))).replace(microsecond=0).isoformat()


def render_user_data(*, setup: str, ttl_seconds: int, expires_at: str, node: dict | None = None) -> str:
    """The instance's boot script (EC2 user data), rendered from templates/user-data.sh.j2. `node` ({rank, nnodes,
    head}) marks one node of a multi-node group; the dead man's switch stays the first command on every node."""
    from inferform.render import template_environment

    return template_environment().get_template("user-data.sh.j2").render(
        setup=setup, minutes=shutdown_minutes(ttl_seconds), expires_at=expires_at, node=node)
