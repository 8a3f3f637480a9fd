"""The GPU catalog: VRAM, bandwidth and throughput by name, matched the way nvidia-smi and users spell them."""

from functools import cache
from typing import Literal

from pydantic import Field

from inferform.catalog.files import read_data, validated
from inferform.catalog.names import canonical_gpu
from inferform.catalog.rows import Row
from inferform.errors import InferformError, did_you_mean


class GpuEntry(Row):
    name: str
    aliases: list[str] = Field([])
    vendor: Literal["nvidia", "amd", "apple", "intel"]
    vram_gib: float = Field(gt=0)
    bandwidth_gbs: float = Field(gt=0)
    fp16_tflops: float | None = Field(None, gt=0)
    backend: Literal["cuda", "rocm", "metal", "vulkan", "sycl"]
    compute_capability: str | None = None
    unified_memory: bool = False
    vram_options_gib: list[float] | None = None


@cache
def load_gpus() -> dict[str, GpuEntry]:
    return validated("gpus", ["gpus.yaml"],
                     lambda: {row["name"]: GpuEntry.model_validate(row) for row in read_data("gpus.yaml")["gpus"]})


def lookup_gpu(name: str) -> GpuEntry | None:
    canonical = canonical_gpu(name)
    return load_gpus()[canonical] if canonical else None


def find_gpu(name: str, *, file: str | None = None, line: int | None = None) -> GpuEntry:
    found = lookup_gpu(name)
    if found:
        return found
    hint = did_you_mean(name, load_gpus())
    hint = (hint + " Or " if hint else "") + "give vram_gib and bandwidth_gbs for a GPU the catalog lacks"
    raise InferformError.single(f"unknown GPU {name!r}", file=file, line=line, hint=hint)
