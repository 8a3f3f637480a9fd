"""The CPU catalog (data/cpus.yaml): cores, threads and peak memory bandwidth of CPUs people name, matched the
way /proc/cpuinfo, sysctl and users spell them.

Why: host-side decode is memory-bound, and a setup that says `cpu: {name: Ryzen 9 7950X}` (or a detected CPU the
kernel names) should get that CPU's bandwidth rather than the planner's conservative default. Rows whose bandwidth
no source gave leave it out, and then nothing is filled in.
"""

from functools import cache

from pydantic import Field

from inferform.catalog.files import read_data, validated
from inferform.catalog.names import canonical_cpu
from inferform.catalog.rows import Row


class CpuEntry(Row):
    name: str
    aliases: list[str] = Field([])
    vendor: str
    arch: str
    cores: int | None = Field(None, gt=0)
    threads: int | None = Field(None, gt=0)
    memory_type: str | None = None
    memory_channels: int | None = Field(None, gt=0)
    max_memory_bandwidth_gbs: float | None = Field(None, gt=0)
    avx2: bool | None = None
    avx512: bool | None = None


@cache
def load_cpus() -> dict[str, CpuEntry]:
    return validated("cpus", ["cpus.yaml"],
                     lambda: {row["name"]: CpuEntry.model_validate(row) for row in read_data("cpus.yaml")["cpus"]})


def lookup_cpu(name: str | None) -> CpuEntry | None:
    """The row for a CPU as the setup, /proc/cpuinfo or sysctl spells it (catalog/names.py matches spellings)."""
    canonical = canonical_cpu(name) if name else None
    return load_cpus()[canonical] if canonical else None
