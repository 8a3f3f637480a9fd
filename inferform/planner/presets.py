"""Use case × experience → the goals the planner sizes for (context, slots, batches, sampling, reserves).

The numbers live in data/presets.yaml; this module only combines them.
"""

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Any, NamedTuple

from inferform.catalog.files import read_data


class Goals(NamedTuple):
    context: int
    min_context: int
    parallel: int
    batch: int
    ubatch: int
    min_generate_tps: float
    prefer: str  # "speed" or "quality"
    sampling: Mapping[str, float] = MappingProxyType({})


class Reserve(NamedTuple):
    gpu_bytes: int
    gpu_fraction: float
    unified_fraction: float
    host_bytes: int
    host_fraction: float

    def gpu_budget(self, vram_bytes: int, unified: bool) -> int:
        if unified:
            return int(vram_bytes * (1 - self.unified_fraction))
        return max(int(vram_bytes * (1 - self.gpu_fraction)) - self.gpu_bytes, 0)

    def host_budget(self, ram_bytes: int) -> int:
        return max(int(ram_bytes * (1 - self.host_fraction)) - self.host_bytes, int(ram_bytes * 0.5))


@cache
def _data() -> dict[str, Any]:
    return read_data("presets.yaml")


def goals(use_case: str, experience: str) -> Goals:
    uc = _data()["use_cases"][use_case]
    ex = _data()["experiences"][experience]
    sampling = dict(uc["sampling"])
    sampling.update(ex.get("sampling", {}))
    sampling["temperature"] = round(min(sampling["temperature"] * ex["temperature_scale"], 2.0), 2)
    return Goals(context=uc["context"], min_context=uc["min_context"], parallel=ex["parallel"], batch=ex["batch"],
                 ubatch=ex["ubatch"], min_generate_tps=ex["min_generate_tps"], prefer=ex["prefer"],
                 sampling=sampling)


def reserve() -> Reserve:
    r = _data()["reserve"]
    return Reserve(r["gpu_bytes"], r["gpu_fraction"], r["unified_fraction"], r["host_bytes"], r["host_fraction"])
