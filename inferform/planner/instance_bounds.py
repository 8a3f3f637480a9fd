"""Cheap necessary conditions for "the planner can run this setup on that instance type", checked before a search.

The instance planner walks instance types in price order and would otherwise run the full search on each. These
bounds never reject a machine the search could accept (tests/test_instance_choice.py compares the chooser with a
brute force over the whole catalog); they only skip searches whose answer is already known:

* memory: whatever the placement, every weight and the KV cache of the smallest context the search tries sit in
  GPU or host memory, so weights + KV ≤ usable VRAM + usable RAM;
* speed: a token reads every active weight once; at best the GPUs hold as much of it as their budget allows and
  the rest streams from RAM, each at its full spec bandwidth (the speed model only ever takes a fraction of it).
"""

from typing import NamedTuple

from inferform.gguf import GGUFInfo
from inferform.hardware.profile import HardwareProfile
from inferform.planner import presets
from inferform.planner.model import ModelDesc, from_catalog
from inferform.planner.search import _candidates, _parallel_options, budgets
from inferform.planner.speed_adapter import DEFAULT_CPU_BANDWIDTH_GBS
from inferform.setup.spec import Setup

Q8_0_BYTES = 34 / 32  # the smallest KV element the search tries by itself (block_q8_0)
ANY_KV_BYTES = 0.5  # a pinned cache type may be a 4-bit one: assume the smallest
GPU_BANDWIDTH_DEFAULT = 300.0  # what the speed model assumes for a GPU without a bandwidth (speed_adapter.py)


class Need(NamedTuple):
    """The least any candidate configuration of the setup needs, over every model/quant the search may try."""

    bytes_min: int  # weights + smallest KV
    active_min: int  # weight bytes read per generated token
    min_generate_tps: float
    model_label: str  # the smallest candidate, for messages

    def may_fit(self, hw: HardwareProfile) -> bool:
        caps = budgets(hw)
        return self.bytes_min <= caps.gpu_total + caps.host

    def best_tps(self, hw: HardwareProfile) -> float:
        """An upper bound on generation speed: no placement of the lightest candidate runs faster."""
        caps = budgets(hw)
        on_gpu = min(self.active_min, caps.gpu_total) if hw.gpus else 0
        gpu_bw = max((g.bandwidth_gbs or GPU_BANDWIDTH_DEFAULT for g in hw.gpus), default=GPU_BANDWIDTH_DEFAULT)
        cpu_bw = hw.cpu.memory_bandwidth_gbs or DEFAULT_CPU_BANDWIDTH_GBS
        seconds = on_gpu / (gpu_bw * 1e9) + (self.active_min - on_gpu) / (cpu_bw * 1e9)
        return float("inf") if seconds <= 0 else 1 / seconds

    def may_meet_floor(self, hw: HardwareProfile) -> bool:
        return self.best_tps(hw) >= self.min_generate_tps


def _active_bytes(model: ModelDesc) -> int:
    """Weight bytes one token reads, leaving out the embedding table (one row per token) and unused experts."""
    share = model.n_expert_used / model.n_expert if model.n_expert else 1.0
    total = 0.0
    for t in model.tensors:
        if t.name.startswith("token_embd"):
            continue
        total += t.n_bytes * share if t.is_expert else t.n_bytes
    return int(total)


def _kv_bytes_min(setup: Setup, model: ModelDesc, trained: int) -> int:
    """KV of the smallest context the search tries, counting only full-attention layers (SWA ones may be tiny)."""
    goals = presets.goals(setup.use_case, setup.experience)
    o = setup.overrides
    parallel = min(_parallel_options(setup, goals))  # the fewest slots the search tries
    if o.n_ctx:
        tokens = o.n_ctx
    elif isinstance(setup.context, int):
        tokens = setup.context * parallel
    else:
        tokens = min(goals.min_context, goals.context, trained) * parallel
    pinned = o.cache_type_k or o.cache_type_v or o.flash_attn is False
    per_elem = ANY_KV_BYTES if pinned else Q8_0_BYTES
    widths = sum(layer.n_embd_k_gqa + layer.n_embd_v_gqa for layer in model.layers if not layer.swa)
    return int(tokens * widths * per_elem)


def need_of(setup: Setup, gguf: GGUFInfo | None = None) -> Need:
    """The bounds for a setup: the minimum over every (model, quant) the search would consider."""
    from inferform.planner.engine_choice import concrete

    setup = concrete(setup)
    goals = presets.goals(setup.use_case, setup.experience)
    best: tuple[int, str] | None = None
    active_min: int | None = None
    for desc, entry, quant, _file in _candidates(setup, gguf):
        model = desc or from_catalog(entry, quant)
        trained = model.context_trained or (entry.context_trained if entry else 4096)
        total = model.weight_bytes + _kv_bytes_min(setup, model, trained)
        label = f"{entry.id if entry else model.architecture} {quant}"
        if best is None or total < best[0]:
            best = (total, label)
        active = _active_bytes(model)
        active_min = active if active_min is None else min(active_min, active)
    if best is None or active_min is None:
        return Need(0, 0, goals.min_generate_tps, "?")
    return Need(best[0], active_min, goals.min_generate_tps, best[1])
