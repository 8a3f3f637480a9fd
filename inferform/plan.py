"""The Plan: what `inferform plan --json` prints (the contract in DESIGN.md) and what render/apply consume.

Apply never re-decides anything: everything it needs to run the engine is in here, including the argv.
"""

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GpuRef(_Out):
    name: str
    vram_bytes: int


class TargetOut(_Out):
    kind: str
    instance_type: str | None = None
    region: str | None = None
    market: str | None = Field(None, description="'spot' or 'on-demand' for cloud targets; null for local.")
    gpus: list[GpuRef] = Field([])


class ModelOut(_Out):
    id: str | None
    quant: str
    file: str
    file_bytes: int
    architecture: str
    n_layers: int
    source: str = Field(description="'gguf' when read from the file, 'shapes' when estimated from the catalog.")


class PlacementOut(_Out):
    n_gpu_layers: int
    n_cpu_moe: int = 0
    tensor_overrides: list[str] = Field([])
    tensor_split: list[float] | None = None


class ContextOut(_Out):
    n_ctx: int
    cache_type_k: str
    cache_type_v: str
    flash_attn: bool
    parallel: int
    batch: int
    ubatch: int
    threads: int


class MemorySide(_Out):
    weights_bytes: int = 0
    kv_bytes: int = 0
    compute_bytes: int = 0
    total_bytes: int = 0
    budget_bytes: int = 0


class MemoryOut(_Out):
    gpu: MemorySide
    host: MemorySide


class SpeedOut(_Out):
    prompt_tps: float
    generate_tps: float
    bound: str


class EngineOut(_Out):
    name: str
    argv: list[str]


class RunnerUp(_Out):
    """A fitting instance type the planner did not choose, priced and sped the same way as the chosen one."""

    instance_type: str
    usd_per_hour: float
    generate_tps: float
    usd_per_mtok: float | None
    why_not: str


class CostOut(_Out):
    """What the target costs to run; all null for local targets."""

    usd_per_hour: float | None = None
    usd_per_mtok: float | None = Field(None, description="usd_per_hour / (generate_tps × 3600) × 1e6.")
    price_source: str | None = Field(None, description="'catalog snapshot <date>' or 'live ... <time>'.")
    free_tier: bool = Field(False, description="Free while free-tier hours/credits last; usd_per_hour is the "
                                               "on-demand price once they end.")
    runner_ups: list[RunnerUp] = Field([])


class Knob(_Out):
    """A lever the user can pull, with what it buys and what it costs."""

    goal: str
    change: str
    effect: str


class Plan(_Out):
    setup: str
    fits: bool
    target: TargetOut
    model: ModelOut
    placement: PlacementOut
    context: ContextOut
    memory: MemoryOut
    speed: SpeedOut
    sampling: dict[str, float]
    engine: EngineOut
    cost: CostOut = Field(CostOut())
    explanations: list[str]
    pinned: list[str] = Field([], description="Values taken from overrides, not planned.")
    knobs: list[Knob] = Field([])
    serve: dict[str, str | int] = Field({})
