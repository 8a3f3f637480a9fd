"""AWS instance types with their GPUs and a dated price snapshot, and the PriceBook the instance planner reads.

Live prices (cloud/prices.py, boto3) are another PriceBook; the planner is handed one and imports no cloud SDK.
"""

import datetime as dt
from collections.abc import Iterable
from functools import cache
from typing import Protocol

from pydantic import Field

from inferform.catalog.files import read_data, validated
from inferform.catalog.rows import Row


class InstanceType(Row):
    type: str
    family: str
    gpu: str | None = None
    gpu_count: int = Field(0, ge=0)
    gpu_memory_gib: float = Field(0, ge=0)
    vcpus: int = Field(gt=0)
    threads_per_core: int = Field(gt=0, description="EC2 DefaultThreadsPerCore: 2 on SMT x86, 1 on Graviton.")
    ram_gib: float = Field(gt=0)
    free_tier: bool = False
    on_demand_usd: dict[str, float] = Field({})
    spot_usd: dict[str, float] = Field({})

    @property
    def physical_cores(self) -> int:
        """Physical cores (vCPUs / threads per core): what llama.cpp's -t should be on this type."""
        return max(self.vcpus // self.threads_per_core, 1)


@cache
def load_instance_types() -> dict[str, InstanceType]:
    return validated("instance_types", ["instance_types.yaml"], lambda: {
        row["type"]: InstanceType.model_validate(row) for row in read_data("instance_types.yaml")["instance_types"]})


def snapshot_date() -> dt.date:
    value = read_data("instance_types.yaml")["snapshot_date"]
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


class PriceBook(Protocol):
    """What the instance planner needs: $/h per type for a region and market, and where the numbers came from."""

    source: str

    def prices(self, rows: Iterable[InstanceType], region: str, market: str) -> dict[str, float]: ...


class CatalogPrices:
    """The snapshot in inferform/data/instance_types.yaml: no network, same answer every time."""

    def __init__(self, note: str | None = None) -> None:
        self.source = f"catalog snapshot {snapshot_date().isoformat()}" + (f" ({note})" if note else "")

    def prices(self, rows: Iterable[InstanceType], region: str, market: str) -> dict[str, float]:
        out = {}
        for row in rows:
            table = row.spot_usd if market == "spot" else row.on_demand_usd
            if region in table:
                out[row.type] = table[region]
        return out
