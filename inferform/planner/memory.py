"""Memory per device, as llama.cpp allocates it: model buffers, KV caches, output and compute buffers.

Ground truth is what llama-server logs at `-lv 4` (model/KV/output/compute buffer sizes); the rules here were
read from its source and checked against those logs (benchmarks/memory_truth.py prints the comparison).

Two engines drive the same libllama differently (RunConfig.engine; each rule below reads the engine's row in
engines/registry.py, not its name):
- "llama.cpp" (llama-server): n_seq_max = -np, outputs capped at one per slot (`n_outputs_max = n_parallel`), so
  the output buffer and the compute buffer's logits rows are n_parallel × n_vocab × 4; SWA cache sized from the
  window unless --swa-full.
- "llama-cpp-python" (its server, 0.3.36): n_seq_max = 1 and kv_unified false (one sequence); it never sets
  `swa_full`, so libllama's default (true) gives sliding-window layers a full n_ctx cache; it never sets
  `n_outputs_max`, so libllama takes n_batch and the compute buffer reserves logits for a whole ubatch
  (ubatch × n_vocab × 4: 512 MiB for a 262k vocabulary). With `logits_all` (its server default, passed explicitly)
  every prompt token asks for logits, so the output buffer, one row at load, grows to min(n_ctx, n_batch) rows on
  the first long prompt, and llama.py copies every row into a NumPy `scores` array of n_ctx × n_vocab float32 in
  host RAM (touched as the conversation grows). Both are counted in the host side's compute (the contract counts
  output buffers inside compute_bytes): Side.output is the grown buffer, Side.scores the NumPy array, and
  Side.compute_at_load what libllama logs when the model loads.
"""

import math
from bisect import bisect_left
from functools import cache
from typing import NamedTuple

from inferform.catalog.quants import load_ggml_types
from inferform.engines.registry import DEFAULT, engine
from inferform.planner.compute import compute_buffer, layer_kinds
from inferform.planner.model import ModelDesc

KV_PAD = 256  # llama.cpp pads KV cell counts to this many cells
ALIGN = 32  # GGUF tensor data alignment


def pad(n: int, multiple: int = KV_PAD) -> int:
    return int(math.ceil(n / multiple) * multiple)


@cache  # kv_caches asks per layer per configuration: tens of thousands of calls in a cloud instance search
def type_bytes(ggml_type: str, n_elements: int) -> int:
    t = load_ggml_types()[ggml_type.upper()]
    return n_elements // t.block_size * t.type_size


class _RunFields(NamedTuple):
    n_ctx: int
    parallel: int = 1
    kv_unified: bool = False
    ubatch: int = 512
    batch: int = 2048
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attn: bool = True
    swa_full: bool = False
    n_gpu_layers: int = 0
    n_cpu_moe: int = 0
    n_gpus: int = 0
    tensor_split: tuple[float, ...] = ()
    repack: frozenset[str] = frozenset()  # ggml types the CPU backend copies into a repacked buffer
    engine: str = DEFAULT
    ctx_checkpoints: int = 32  # llama-server's --ctx-checkpoints default; host RAM per slot, see checkpoint_bytes
    logits_all: bool = True  # llama-cpp-python only: logits (and a NumPy copy) for every token, see module doc


class RunConfig(_RunFields):
    """The engine settings that change memory (all explicit: inferform never lets llama.cpp fit by itself).

    A NamedTuple rather than a frozen dataclass: a dataclass this size execs ~7 M instructions of generated
    code when the module is imported, almost 1 % of the `inferform plan` start-up that is part of the contract."""

    __slots__ = ()

    def __new__(cls, *args, **kwargs) -> "RunConfig":
        """An engine without slots (llama-cpp-python's server) cannot set them or a unified cache, one without
        expert offload cannot keep experts in RAM, and one that keeps libllama's swa_full default cannot turn it
        off: refuse values it cannot run and pin swa_full to what it does."""
        self = super().__new__(cls, *args, **kwargs)
        eng = engine(self.engine)
        if not eng.slots and (self.parallel != 1 or self.kv_unified):
            raise ValueError(f"{eng.name} serves one sequence (n_seq_max 1, no unified cache)")
        if self.n_cpu_moe and not eng.moe_offload:
            raise ValueError(f"{eng.name} has no --n-cpu-moe: MoE experts cannot be kept in RAM")
        if eng.swa_full and not self.swa_full:
            self = _RunFields._replace(self, swa_full=True)  # tuple.__new__: keeps the class, skips this
        return self

    def _replace(self, **changes) -> "RunConfig":
        """A changed copy, checked like a new one (NamedTuple's own _replace skips __new__)."""
        return RunConfig(**{**self._asdict(), **changes})

    def placed(self, n_gpu_layers: int, n_cpu_moe: int) -> "RunConfig":
        """This configuration with another placement. Only n_cpu_moe can break __new__'s rules (llama-cpp-python
        has no expert offload), so the placement search's hundreds of trials skip the full re-check otherwise."""
        if n_cpu_moe and not engine(self.engine).moe_offload:
            return self._replace(n_gpu_layers=n_gpu_layers, n_cpu_moe=n_cpu_moe)
        return _RunFields._replace(self, n_gpu_layers=n_gpu_layers, n_cpu_moe=n_cpu_moe)

    @property
    def n_batch_actual(self) -> int:
        """n_batch after llama.cpp caps it at the context (causal models)."""
        return min(self.batch, self.n_ctx_actual)

    @property
    def n_outputs_reserve(self) -> int:
        """Rows of logits the compute buffer is reserved for: llama-server caps outputs at one per slot;
        llama-cpp-python leaves n_outputs_max at 0, which libllama turns into n_batch (≥ ubatch)."""
        if engine(self.engine).all_logits:
            return min(self.n_ubatch, self.n_batch_actual)
        return min(self.n_ubatch, self.parallel)

    @property
    def n_ctx_seq(self) -> int:
        """Cells per stream: llama.cpp rounds n_ctx up to 256, then each slot's share up to 256 again."""
        total = pad(self.n_ctx)
        return total if self.kv_unified else pad(total // self.parallel)

    @property
    def n_ctx_actual(self) -> int:
        return self.n_ctx_seq if self.kv_unified else self.n_ctx_seq * self.parallel

    @property
    def n_ubatch(self) -> int:
        """The ubatch the scheduler reserves for: capped by batch and context, a multiple of the slot count."""
        ub = min(self.ubatch, self.batch, self.n_ctx_actual)
        return int(math.ceil(ub / self.parallel) * self.parallel)


class KvCache(NamedTuple):
    kind: str  # "full" or "swa"
    cells: int  # per stream
    streams: int
    layers: int
    bytes: int


class Side:
    """One side of the plan's memory table (all GPUs summed, or host RAM), filled in by estimate(). A slotted
    class, not a dataclass (README, "Start-up time")."""

    __slots__ = ("caches", "checkpoints", "compute", "kv", "output", "output_at_load", "repack", "scores", "state",
                 "weights")

    def __init__(self) -> None:
        self.weights = 0
        self.kv = 0
        self.state = 0  # recurrent layers' state (llama.cpp's "RS buffer"): F32, per sequence, any context
        self.checkpoints = 0  # llama-server's context checkpoints (host RAM, filled as conversations grow)
        self.compute = 0  # the scheduler's compute buffer + output buffer (+ llama-cpp-python's NumPy scores)
        self.output = 0  # the output (logits) buffer at its largest
        self.output_at_load = 0  # ... and as it is allocated when the model loads (what the log line says)
        self.scores = 0  # llama-cpp-python: its NumPy copy of the logits (host RAM), see module doc
        self.repack = 0
        self.caches: list[KvCache] = []

    @property
    def total(self) -> int:
        """Everything on this side; the output (logits) buffer is counted inside compute, as the contract says."""
        return self.weights + self.kv + self.state + self.checkpoints + self.compute

    @property
    def compute_at_load(self) -> int:
        """Compute + output as llama.cpp logs them at load: before the output buffer grows, without NumPy."""
        return self.compute - self.scores - self.output + self.output_at_load


class MemoryEstimate(NamedTuple):
    gpu: Side
    host: Side
    per_gpu: list[int]  # total bytes on each GPU, for budgets checked per device
    first_gpu_layer: int  # layers first_gpu_layer .. n_layers-1 are on a GPU (-ngl offloads the last ones)


def kv_caches(model: ModelDesc, cfg: RunConfig, first_gpu_layer: int) -> tuple[list[KvCache], list[KvCache]]:
    """(gpu caches, host caches), with layers first_gpu_layer.. on a GPU. The full cache holds n_ctx_seq cells per
    stream; the SWA cache holds what the window needs: window × sequences per stream + one ubatch, padded, at most
    n_ctx_seq."""
    streams = 1 if cfg.kv_unified else cfg.parallel
    seqs_per_stream = cfg.parallel if cfg.kv_unified else 1
    n_ctx_seq = cfg.n_ctx_seq
    swa_cells = n_ctx_seq if cfg.swa_full else pad(min(n_ctx_seq, model.sliding_window * seqs_per_stream
                                                       + min(cfg.ubatch, cfg.batch)))
    out: dict[tuple[bool, str], list[int]] = {}
    kinds = layer_kinds(model.layers)
    # without flash attention V is stored transposed, every layer's row as wide as the widest layer's
    # (llama_kv_cache: n_embd_v_gqa_max() when v_trans): gemma4's sliding layers take the global width
    v_max = 0 if cfg.flash_attn else max((layer.n_embd_v_gqa for layer, _ in kinds), default=0)
    # layers come in a few kinds (full/SWA, one GQA width): price each kind once, not each of 80 layers per trial
    for layer, idx in kinds:
        if layer.recurrent or not (layer.n_embd_k_gqa or layer.n_embd_v_gqa):  # no KV cache (recurrent: see
            continue  # recurrent_state(); Nemotron-H's FFN-only layers hold nothing)
        kind = "swa" if layer.swa else "full"
        cells = swa_cells if layer.swa else n_ctx_seq
        row = type_bytes(cfg.cache_type_k, layer.n_embd_k_gqa) + type_bytes(cfg.cache_type_v,
                                                                             max(layer.n_embd_v_gqa, v_max))
        on_gpu = len(idx) - bisect_left(idx, first_gpu_layer)
        for is_gpu, count in ((True, on_gpu), (False, len(idx) - on_gpu)):
            if count:
                acc = out.setdefault((is_gpu, kind), [0, 0, cells])
                acc[0] += row * cells * streams * count
                acc[1] += count
    gpu, host = [], []
    for (is_gpu, kind), (size, layers, cells) in sorted(out.items()):
        (gpu if is_gpu else host).append(KvCache(kind, cells, streams, layers, size))
    return gpu, host


def checkpoint_bytes(model: ModelDesc, cfg: RunConfig, caches: list[KvCache], state: int) -> int:
    """Host RAM for llama-server's context checkpoints at their most: slots × --ctx-checkpoints × one checkpoint.

    A model whose memory cannot drop the end of a sequence (recurrent state, or a sliding window that has already
    forgotten what a rewind would need) gets a checkpoint of the part it cannot roll back when a prompt is
    processed (tools/server: create_checkpoint, LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY): the slot's recurrent state,
    or its sliding-window cells (the window, not the window + ubatch the cache holds). Measured on the pinned
    build: 12.563 MiB per checkpoint on Qwen3.5-35B-A3B shapes (8 layers) = the slot's RS buffer, 40.012 MiB on
    Gemma-3-4B shapes (12 layers) = 1024 of the SWA cache's 1536 cells. A full-size SWA cache (swa_full) and
    ordinary attention need none; llama-cpp-python's server keeps none. They fill as conversations grow, in the
    server's heap (host RAM) whatever device holds the cache."""
    if not engine(cfg.engine).ctx_checkpoints or cfg.ctx_checkpoints == 0:
        return 0
    per = state // max(1, cfg.parallel) if model.recurrent is not None else 0
    if not cfg.swa_full:
        window = min(model.sliding_window, cfg.n_ctx_seq)
        per += sum(c.bytes // (c.cells * c.streams) * window for c in caches if c.kind == "swa" and c.cells)
    return cfg.parallel * cfg.ctx_checkpoints * per


def recurrent_state(model: ModelDesc, cfg: RunConfig, first_gpu_layer: int) -> tuple[int, int]:
    """(GPU, host) bytes of the recurrent state: per recurrent layer, n_embd_r + n_embd_s floats for each of
    max(1, n_seq_max) sequences (llama_memory_recurrent: rows = mem_size × (1 + n_rs_seq); inferform never turns
    on MTP drafting, so n_rs_seq is 0). It sits with its layer's device, like the KV cache, and does not depend
    on the context length."""
    if model.recurrent is None:
        return 0, 0
    per_layer = model.recurrent.row_bytes * max(1, cfg.parallel)
    on_gpu = sum(1 for il, layer in enumerate(model.layers) if layer.recurrent and il >= first_gpu_layer)
    return on_gpu * per_layer, (model.n_recurrent - on_gpu) * per_layer


class LayerBytes(NamedTuple):
    """Per-layer weight sums, computed once per model so each placement trial costs O(layers), not O(tensors)."""

    dense: tuple[int, ...]  # non-expert tensors per layer
    expert: tuple[int, ...]
    dense_repack: tuple[int, ...]  # of which in repackable types
    expert_repack: tuple[int, ...]
    embd: int  # token_embd: always in host memory
    head: int  # output + output_norm: the first thing -ngl moves to the GPU
    head_repack: int
    tied: bool  # no output.weight: the output reuses token_embd (a second copy when offloaded)
    repack_types: frozenset[str]


_LAYER_BYTES: dict[tuple[int, frozenset[str]], tuple[list, LayerBytes]] = {}


def layer_bytes(model: ModelDesc, repack: frozenset[str]) -> LayerBytes:
    """Per-layer sums, kept per tensor list: the cloud instance search prices one model on many machines."""
    hit = _LAYER_BYTES.get((id(model.tensors), repack))
    if hit is not None and hit[0] is model.tensors:
        return hit[1]
    lb = _layer_bytes(model, repack)
    _LAYER_BYTES[(id(model.tensors), repack)] = (model.tensors, lb)
    return lb


def _layer_bytes(model: ModelDesc, repack: frozenset[str]) -> LayerBytes:
    n = model.n_layers
    dense, expert, dense_r, expert_r = [0] * n, [0] * n, [0] * n, [0] * n
    embd = head = head_r = 0
    for t in model.tensors:
        rep = t.n_bytes if t.type_name in repack and len(t.shape) >= 2 else 0
        if t.layer is None:
            if t.name.startswith("token_embd"):
                embd += t.n_bytes
            else:
                head += t.n_bytes
                head_r += rep
        elif t.is_expert:
            expert[t.layer] += t.n_bytes
            expert_r[t.layer] += rep
        else:
            dense[t.layer] += t.n_bytes
            dense_r[t.layer] += rep
    tied = not any(t.name == "output.weight" for t in model.tensors)
    return LayerBytes(tuple(dense), tuple(expert), tuple(dense_r), tuple(expert_r), embd, head, head_r, tied,
                      repack)


def _mapped_span(model: ModelDesc, in_map: list[bool]) -> int:
    """Bytes of the file range llama.cpp maps for CPU tensors: from the first to the last tensor it reads through
    the mapping, counting whatever lies between (repacked or offloaded tensors included, 32-byte aligned)."""
    idx = [i for i, used in enumerate(in_map) if used]
    if not idx:
        return 0
    return sum(pad(t.n_bytes, ALIGN) for t in model.tensors[idx[0]: idx[-1] + 1])


_ESTIMATES: dict[tuple[int, RunConfig], tuple[list, MemoryEstimate]] = {}
_ESTIMATES_MAX = 50_000


def estimate(model: ModelDesc, cfg: RunConfig, lb: LayerBytes | None = None, exact: bool = False) -> MemoryEstimate:
    """Memory per side for one configuration. `exact` walks the tensor list for the mapped file range (the final
    plan); otherwise per-layer sums are used (placement search), which differ only at the ends of the file.

    Search estimates are kept per (tensor list, configuration) for the process: memory does not depend on the
    machine, and the cloud chooser's placement searches on many instance types try the same configurations.
    The returned estimate is shared: callers never change it."""
    if exact:
        return _estimate(model, cfg, lb, True)
    key = (id(model.tensors), cfg)
    hit = _ESTIMATES.get(key)
    if hit is not None and hit[0] is model.tensors:
        return hit[1]
    mem = _estimate(model, cfg, lb, False)
    if len(_ESTIMATES) >= _ESTIMATES_MAX:
        _ESTIMATES.clear()
    _ESTIMATES[key] = (model.tensors, mem)
    return mem


def _estimate(model: ModelDesc, cfg: RunConfig, lb: LayerBytes | None, exact: bool) -> MemoryEstimate:
    n = model.n_layers
    ngl = min(cfg.n_gpu_layers, n + 1) if cfg.n_gpus else 0
    repack = cfg.repack if ngl == 0 else frozenset()  # with a GPU backend, host weights are mapped, not repacked
    if lb is None or lb.repack_types != repack:
        lb = layer_bytes(model, repack)
    first = min(max(n + 1 - ngl, 0), n) if ngl > 0 else n  # -ngl N: the output layer, then the last N-1 layers
    gpu, host = Side(), Side()
    host.weights = lb.embd  # token embeddings stay on the CPU (get_rows runs there)
    if ngl >= 1:
        gpu.weights += lb.head + (lb.embd if lb.tied else 0)  # a tied output gets its own copy on the GPU
    else:
        host.weights += lb.head
        host.repack += lb.head_repack
    # slices, not a loop over layers: the placement search prices hundreds of configurations
    gpu.weights += sum(lb.dense[first:])
    host.weights += sum(lb.dense[:first])
    host.repack += sum(lb.dense_repack[:first])
    experts_first = max(first, cfg.n_cpu_moe)  # --n-cpu-moe N keeps the experts of layers 0..N-1 in RAM
    gpu.weights += sum(lb.expert[experts_first:])
    host.weights += sum(lb.expert[:experts_first])
    host.repack += sum(lb.expert_repack[:experts_first])
    if exact:
        in_map = []
        for t in model.tensors:
            if t.layer is None:
                on_host = t.name.startswith("token_embd") or ngl == 0
            else:
                on_host = t.layer < first or (t.is_expert and t.layer < cfg.n_cpu_moe)
            repacked = on_host and t.name != "token_embd.weight" and t.type_name in repack and len(t.shape) >= 2
            in_map.append(on_host and not repacked)
        host.weights = _mapped_span(model, in_map)
    host.weights += host.repack  # repacked copies live beside the mapped file
    gpu.caches, host.caches = kv_caches(model, cfg, first)
    gpu.kv = sum(c.bytes for c in gpu.caches)
    host.kv = sum(c.bytes for c in host.caches)
    gpu.state, host.state = recurrent_state(model, cfg, first)
    host.checkpoints = checkpoint_bytes(model, cfg, gpu.caches + host.caches, gpu.state + host.state)
    host.output, host.output_at_load, host.scores = output_buffers(model, cfg)
    all_caches = gpu.caches + host.caches
    if first < n or ngl >= 1:
        gpu.compute = compute_buffer(model, cfg, all_caches)
        host.compute = compute_buffer(model, cfg, host.caches, with_logits=False) if first > 0 \
            else 2 * cfg.n_ubatch * model.n_embd * 4
    else:
        host.compute = compute_buffer(model, cfg, all_caches)
    host.compute += host.output + host.scores  # the contract counts output buffers inside compute_bytes
    per_gpu = _split(gpu.total, cfg) if cfg.n_gpus else []
    return MemoryEstimate(gpu, host, per_gpu, first)


def output_buffers(model: ModelDesc, cfg: RunConfig) -> tuple[int, int, int]:
    """(output buffer at its largest, output buffer at load, NumPy scores) in host memory, bytes.

    libllama allocates the output buffer for max(n_seq_max, outputs requested) rows of n_vocab floats, in the
    host buffer of the output layer's device, and only ever grows it. llama-server asks for at most one output
    per slot. llama-cpp-python with logits_all asks for every token of a batch (at most min(n_ctx, n_batch)),
    and llama.py keeps `scores = np.ndarray((n_ctx if logits_all else n_batch, n_vocab), float32)`, written row
    by row as tokens are evaluated (without logits_all it is never written, so its pages are never touched)."""
    row = model.n_vocab * 4
    if not engine(cfg.engine).all_logits:
        return row * cfg.parallel, row * cfg.parallel, 0
    if not cfg.logits_all:
        return row, row, 0
    return row * cfg.n_batch_actual, row, row * cfg.n_ctx_actual


def _split(total: int, cfg: RunConfig) -> list[int]:
    shares = list(cfg.tensor_split) or [1.0] * cfg.n_gpus
    norm = sum(shares)
    return [int(total * s / norm) for s in shares]
