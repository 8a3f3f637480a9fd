"""Where the model lives: the most layers (dense) or the most expert tensors (MoE) that fit each device.

Memory grows monotonically with n_gpu_layers and shrinks with n_cpu_moe, so both are found by bisection over
per-layer aggregates: a placement trial costs O(layers).
"""

from typing import NamedTuple

from inferform.planner.memory import LayerBytes, MemoryEstimate, RunConfig, estimate


class Budgets(NamedTuple):
    gpu: list[int]  # per GPU, after the reserve
    host: int
    unified: bool = False  # Apple: GPU and host draw from the same RAM

    @property
    def gpu_total(self) -> int:
        return sum(self.gpu)


class Placement(NamedTuple):
    cfg: RunConfig
    mem: MemoryEstimate
    fits: bool
    all_on_gpu: bool
    why: str


def fits(mem: MemoryEstimate, budgets: Budgets) -> bool:
    if budgets.unified:
        return mem.gpu.total <= budgets.gpu[0] and mem.gpu.total + mem.host.total <= budgets.host
    if any(used > cap for used, cap in zip(mem.per_gpu, budgets.gpu, strict=False)):
        return False
    return mem.host.total <= budgets.host


def gpu_fits(mem: MemoryEstimate, budgets: Budgets) -> bool:
    """The GPU side alone: monotone in the placement (more layers or experts on the GPU, more GPU memory), where
    the whole check is not (RAM fills the other way)."""
    if budgets.unified:
        return mem.gpu.total <= budgets.gpu[0]
    return not any(used > cap for used, cap in zip(mem.per_gpu, budgets.gpu, strict=False))


def _held(mem: MemoryEstimate) -> int:
    return mem.gpu.weights + mem.host.weights + mem.gpu.kv + mem.host.kv


def _room(budgets: Budgets) -> int:
    return budgets.host if budgets.unified else budgets.gpu_total + budgets.host


def _bisect(lo: int, hi: int, ok) -> int | None:
    """Largest x in [lo, hi] with ok(x) true, assuming ok is monotone decreasing in x; None if ok(lo) is false."""
    if not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _smallest(lo: int, hi: int, ok) -> int | None:
    """Smallest x in [lo, hi] with ok(x) true, assuming ok is monotone increasing in x; None if ok(hi) is false."""
    if not ok(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def place(model, cfg: RunConfig, budgets: Budgets, lb: LayerBytes, *, allow_moe_offload: bool,
          pinned_ngl: int | None = None, pinned_cpu_moe: int | None = None) -> Placement:
    n = model.n_layers
    if not budgets.gpu:
        mem = estimate(model, cfg._replace(n_gpu_layers=0, n_gpus=0), lb)
        return Placement(cfg._replace(n_gpu_layers=0, n_gpus=0), mem, fits(mem, budgets), False, "no GPU: CPU only")
    cfg = cfg._replace(n_gpus=len(budgets.gpu))

    def trial(ngl: int, cpu_moe: int) -> tuple[RunConfig, MemoryEstimate]:
        c = cfg.placed(ngl, cpu_moe)
        return c, estimate(model, c, lb)

    if pinned_ngl is not None or pinned_cpu_moe is not None:
        c, mem = trial(pinned_ngl if pinned_ngl is not None else n + 1, pinned_cpu_moe or 0)
        return Placement(c, mem, fits(mem, budgets), c.n_gpu_layers > n and not c.n_cpu_moe, "pinned by overrides")
    c, mem = trial(n + 1, 0)
    if fits(mem, budgets):
        return Placement(c, mem, True, True, "everything fits on the GPU")
    if _held(mem) > _room(budgets) and _held(trial(0, 0)[1]) > _room(budgets):
        # weights and KV cache must sit somewhere: more than GPUs and RAM hold together at both extremes of the
        # placement, so no split in between holds them (a bisection would only confirm it, at ~7 estimates)
        return Placement(c, mem, False, False, "weights and KV exceed GPU and host memory together")
    # The GPU side fits from some point on and RAM up to some point: the fastest placement is the one with the
    # most on the GPU that the GPU holds, and if RAM does not hold that one it holds none (RAM only fills as
    # layers or experts leave the GPU). So bisect on the GPU side alone, then check the whole.
    if model.is_moe and allow_moe_offload:
        # experts of the first k layers go to RAM; attention and shared tensors stay on the GPU
        k = _smallest(0, n, lambda k: gpu_fits(trial(n + 1, k)[1], budgets))
        if k is not None:
            c, mem = trial(n + 1, k)
            if fits(mem, budgets):
                return Placement(c, mem, True, False, f"expert tensors of {k} of {n} layers in RAM")
    ngl = _bisect(0, n + 1, lambda g: gpu_fits(trial(g, 0)[1], budgets))
    if ngl is not None:
        c, mem = trial(ngl, 0)
        if fits(mem, budgets):
            return Placement(c, mem, True, ngl > n, f"{min(ngl, n)} of {n} layers on the GPU")
    c, mem = trial(0, 0)
    return Placement(c, mem, False, False, "does not fit: the GPU holds too little of it and RAM the rest")
