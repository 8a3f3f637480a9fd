"""The CPU catalog (data/cpus.yaml): cores, threads and peak memory bandwidth of CPUs people name, matched the
way /proc/cpuinfo, sysctl and users spell them.

Why: host-side decode is memory-bound, and a setup that says `cpu: {name: Ryzen 9 7950X}` (or a detected CPU the
kernel names) should get that CPU's bandwidth rather than the planner's conservative default. Rows whose bandwidth
no source gave leave it out, and then nothing is filled in.
"""

import re
from functools import cache

from pydantic import Field

from inferform.catalog.files import read_data, validated
from inferform.catalog.rows import Row

_NOISE = re.compile(r"\(r\)|\(tm\)|\b(amd|intel|processor|cpu)\b|@.*$|\b\d+-cores?\b|\b\d+-core\b")


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


def normalize_cpu(name: str) -> str:
    """'AMD Ryzen 9 7950X 16-Core Processor' and 'ryzen 9 7950x' both become 'ryzen97950x'."""
    return re.sub(r"[^a-z0-9]", "", _NOISE.sub("", name.lower()))


@cache
def load_cpus() -> dict[str, CpuEntry]:
    """Every accepted spelling (normalised) → its row."""
    def build() -> dict[str, CpuEntry]:
        index: dict[str, CpuEntry] = {}
        for row in read_data("cpus.yaml")["cpus"]:
            entry = CpuEntry.model_validate(row)
            for spelling in (entry.name, *entry.aliases):
                index.setdefault(normalize_cpu(spelling), entry)
        return index

    return validated("cpus", ["cpus.yaml"], build)


def lookup_cpu(name: str | None) -> CpuEntry | None:
    return load_cpus().get(normalize_cpu(name)) if name else None
