"""The hardware profile the planner consumes. Detection, setups and the catalog all produce one of these."""

from typing import Literal

from pydantic import BaseModel, Field

Origin = Literal["detected", "setup", "catalog", "default"]


class GpuInfo(BaseModel):
    """One physical GPU (a setup's `count: 2` becomes two of these)."""

    index: int
    name: str
    vendor: str = "nvidia"
    backend: str = "cuda"
    vram_bytes: int = Field(gt=0)
    free_vram_bytes: int | None = None
    bandwidth_gbs: float | None = None
    fp16_tflops: float | None = None
    compute_capability: str | None = None
    driver: str | None = None
    unified_memory: bool = False
    working_set_bytes: int | None = None  # Apple: a raised Metal working-set limit (iogpu.wired_limit_mb)
    origin: Origin = "detected"


class CpuInfo(BaseModel):
    name: str = "unknown CPU"
    cores: int = Field(1, ge=1)
    threads: int = Field(1, ge=1)
    flags: list[str] = Field([], description="Kernel-relevant features: avx2, avx512f, neon, ...")
    memory_bandwidth_gbs: float | None = None
    origin: Origin = "detected"


class HardwareProfile(BaseModel):
    os: str
    arch: str
    cpu: CpuInfo
    ram_bytes: int = Field(gt=0)
    ram_available_bytes: int | None = None
    gpus: list[GpuInfo] = Field([])
    notes: list[str] = Field([], description="Where numbers came from, and what is missing.")

    @property
    def vram_bytes(self) -> int:
        return sum(g.vram_bytes for g in self.gpus)

    @property
    def backend(self) -> str:
        return self.gpus[0].backend if self.gpus else "cpu"
