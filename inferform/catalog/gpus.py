"""The GPU catalog: VRAM, bandwidth and throughput by name, matched the way nvidia-smi and users spell them."""

from __future__ import annotations

import re
from functools import cache
from typing import Literal

from pydantic import Field

from inferform.catalog.files import read_data
from inferform.catalog.rows import Row
from inferform.errors import InferformError, did_you_mean


class GpuEntry(Row):
    name: str
    aliases: list[str] = Field(default_factory=list)
    vendor: Literal["nvidia", "amd", "apple", "intel"]
    vram_gib: float = Field(gt=0)
    bandwidth_gbs: float = Field(gt=0)
    fp16_tflops: float | None = Field(None, gt=0)
    backend: Literal["cuda", "rocm", "metal", "vulkan", "sycl"]
    compute_capability: str | None = None
    unified_memory: bool = False
    vram_options_gib: list[float] | None = None


_NOISE = re.compile(r"\b(nvidia|geforce|tesla|amd|radeon|apple|graphics)\b")


def normalize(name: str) -> str:
    """'NVIDIA GeForce RTX 4080 SUPER' and 'rtx4080 super' both become 'rtx4080super'."""
    return re.sub(r"[^a-z0-9]", "", _NOISE.sub("", name.lower()))


@cache
def load_gpus() -> dict[str, GpuEntry]:
    return {row["name"]: GpuEntry.model_validate(row) for row in read_data("gpus.yaml")["gpus"]}


@cache
def _index() -> dict[str, GpuEntry]:
    index: dict[str, GpuEntry] = {}
    for entry in load_gpus().values():
        for spelling in (entry.name, *entry.aliases):
            index.setdefault(normalize(spelling), entry)
    return index


def lookup_gpu(name: str) -> GpuEntry | None:
    return _index().get(normalize(name))


def find_gpu(name: str, *, file: str | None = None, line: int | None = None) -> GpuEntry:
    found = lookup_gpu(name)
    if found:
        return found
    hint = did_you_mean(name, load_gpus())
    hint = (hint + " Or " if hint else "") + "give vram_gib and bandwidth_gbs for a GPU the catalog lacks"
    raise InferformError.single(f"unknown GPU {name!r}", file=file, line=line, hint=hint)
