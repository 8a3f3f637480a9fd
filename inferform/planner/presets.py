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
    min_generate_tps: float  # the cloud chooser's floor for a type to count as usable
    objective: str  # "interactive" (floor, then quality traded against speed) or "aggregate" (most tok/s)
    speed_metric: str  # "generate", or "completion" (autocomplete: prompt + a short suggestion, see speed_of)
    floor_tps: float  # below this a configuration ranks after every one above it
    fast_tps: float  # past this, more speed earns nothing
    points_per_doubling: float  # the exchange rate: quality points one doubling of speed is worth
    context_points: float  # points lost per halving of context below `context`
    parallel_options: tuple[int, ...] = (1,)
    quality_floor_fraction: float = 0.0  # aggregate objective: share of the use case's best score required
    min_retention: float = 0.0  # aggregate objective: share of the model's own score its quant must keep
    skip_always_reasoning: bool = False  # latency: leave out models that reason before every answer
    prompt_tokens: int = 0  # completion metric: the typical request
    completion_tokens: int = 0
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
    metric = uc.get("speed_metric", "generate")
    base = uc["prompt_tokens"] / uc["latency_s"] if metric == "completion" else uc["interactive_tps"]
    floor = base * ex["floor_scale"]
    return Goals(context=uc["context"], min_context=uc["min_context"], parallel=ex["parallel"], batch=ex["batch"],
                 ubatch=ex["ubatch"], min_generate_tps=ex["min_generate_tps"], objective=ex["objective"],
                 speed_metric=metric, floor_tps=floor, fast_tps=floor * ex["fast_scale"],
                 points_per_doubling=ex["points_per_doubling"], context_points=_data()["context_points_per_halving"],
                 parallel_options=tuple(ex.get("parallel_options", [ex["parallel"]])),
                 quality_floor_fraction=ex.get("quality_floor_fraction", 0.0),
                 min_retention=ex.get("min_retention", 0.0),
                 skip_always_reasoning=ex.get("skip_always_reasoning", False), prompt_tokens=uc.get("prompt_tokens", 0),
                 completion_tokens=uc.get("completion_tokens", 0), sampling=sampling)


def reserve() -> Reserve:
    r = _data()["reserve"]
    return Reserve(r["gpu_bytes"], r["gpu_fraction"], r["unified_fraction"], r["host_bytes"], r["host_fraction"])


def kv_quant_avoid() -> list[dict[str, str]]:
    """Placements where a quantized KV cache is known to hurt (presets.yaml kv_quant_avoid, each with a source)."""
    return _data().get("kv_quant_avoid", [])
