"""Instance-type facts from EC2's DescribeInstanceTypes, in the catalog's row shape (catalog/instances.py).

The catalog ships a dated copy of these facts; this module reads them from the source, so the catalog can be
checked against AWS and so a type the catalog lacks can still be described. GPU memory is what the API
reports (an A10G is 22,888 MiB, not the nominal 24 GiB the catalog keeps to match gpus.yaml).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from inferform.catalog.instances import InstanceType
from inferform.catalog.names import canonical_gpu
from inferform.cloud.aws import DEFAULT_REGION, client

MIB_PER_GIB = 1024
API_BATCH = 100  # DescribeInstanceTypes takes at most 100 names per call


def gpu_name(api_name: str, mib: int) -> str:
    """The catalog's name for an API GPU name: 'A100' with 40,960 MiB is 'A100 40GB', 'H100' is 'H100 SXM'."""
    sized = canonical_gpu(f"{api_name} {round(mib / MIB_PER_GIB)}GB")
    return sized or canonical_gpu(api_name) or api_name


def row_from_api(info: dict[str, Any], region: str, today: dt.date) -> InstanceType:
    """One DescribeInstanceTypes entry as a catalog row (no prices: those come from prices.py or the catalog)."""
    itype = info["InstanceType"]
    gpus = info.get("GpuInfo", {}).get("Gpus", [])
    gpu = gpus[0] if gpus else None
    mib = int(gpu["MemoryInfo"]["SizeInMiB"]) if gpu else 0
    return InstanceType(
        type=itype, family=itype.split(".", 1)[0],
        gpu=gpu_name(gpu["Name"], mib) if gpu else None,
        gpu_count=sum(int(g.get("Count", 0)) for g in gpus),
        gpu_memory_gib=round(mib / MIB_PER_GIB, 3),
        vcpus=int(info["VCpuInfo"]["DefaultVCpus"]),
        threads_per_core=int(info["VCpuInfo"].get("DefaultThreadsPerCore", 1)),  # EC2 always reports it
        ram_gib=round(int(info["MemoryInfo"]["SizeInMiB"]) / MIB_PER_GIB, 3),
        free_tier=bool(info.get("FreeTierEligible", False)),
        source=f"ec2:DescribeInstanceTypes ({region})", read=today)


def instance_facts(types: Iterable[str] | None = None, *, region: str | None = None,
                   endpoint_url: str | None = None) -> dict[str, InstanceType]:
    """Facts for the named types (every type the region offers when None), keyed by type."""
    ec2 = client("ec2", region, endpoint_url=endpoint_url)
    wanted = sorted(set(types)) if types is not None else None
    today = dt.datetime.now(dt.UTC).date()
    out: dict[str, InstanceType] = {}
    paginator = ec2.get_paginator("describe_instance_types")
    batches = [wanted[i:i + API_BATCH] for i in range(0, len(wanted), API_BATCH)] if wanted else [None]
    for batch in batches:
        for page in paginator.paginate(**({"InstanceTypes": batch} if batch else {})):
            for info in page.get("InstanceTypes", []):
                row = row_from_api(info, region or DEFAULT_REGION, today)
                out[row.type] = row
    return out
