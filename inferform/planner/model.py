"""What the memory and speed models need to know about a model, from a GGUF file or from catalog shapes.

One description for both paths, so placement and memory code never branch on where the facts came from;
the plan only says which ("gguf" or "shapes").
"""

from functools import cache
from typing import NamedTuple

from inferform.catalog.files import read_data
from inferform.catalog.models import ModelEntry
from inferform.errors import InferformError
from inferform.gguf import GGUFInfo, Tensor


class LayerAttn(NamedTuple):
    """Per-layer facts that size the KV cache or the recurrent state. A recurrent layer (Gated DeltaNet, Mamba,
    short convolution) has no KV row: its widths are 0 and it holds `state` floats per sequence instead."""

    n_embd_k_gqa: int  # key width stored per token (kv heads × key head dim)
    n_embd_v_gqa: int
    swa: bool  # uses the sliding window
    recurrent: bool = False


class Recurrent(NamedTuple):
    """The recurrent state one recurrent layer keeps per sequence (llama_hparams::n_embd_r / n_embd_s, F32):
    the convolution's last d_conv-1 inputs and the state matrix."""

    n_embd_r: int
    n_embd_s: int
    d_inner: int = 0  # the scan's width (ssm.inner_size) and its B and C channels (n_group x d_state): the Mamba-2
    n_bc: int = 0  # compute buffer is sized from them (compute.compute_buffer); 0 where the state is not a scan's

    @property
    def row_bytes(self) -> int:
        return 4 * (self.n_embd_r + self.n_embd_s)


class ModelDesc(NamedTuple):
    """A NamedTuple, not a dataclass: a 19-field dataclass execs ~7 M instructions of generated code when the
    module is imported (README, "Start-up time")."""

    architecture: str
    n_layers: int
    n_embd: int
    n_vocab: int
    n_head: int
    n_ff: int
    layers: list[LayerAttn]
    sliding_window: int
    n_expert: int
    n_expert_used: int
    n_ff_expert: int
    n_ff_shared: int
    head_dim_k: int
    tensors: list[Tensor]
    file_bytes: int
    context_trained: int
    source: str  # "gguf" or "shapes"
    quant: str
    notes: tuple[str, ...] = ()
    recurrent: Recurrent | None = None  # hybrid models: the state per recurrent layer and sequence
    n_nextn: int = 0  # MTP blocks after the trunk: in the file and in -ngl's count, never loaded for serving
    mla_kv_lora: int = 0  # multi-head latent attention: the compressed KV width (0 = ordinary attention)

    @property
    def is_moe(self) -> bool:
        return self.n_expert > 0

    @property
    def n_ff_active(self) -> int:
        """FFN width one token activates: routed experts in use plus any shared expert, or the dense width."""
        if self.is_moe:
            return max(self.n_expert_used * self.n_ff_expert + self.n_ff_shared, 0)
        return self.n_ff

    @property
    def n_recurrent(self) -> int:
        return sum(layer.recurrent for layer in self.layers)

    @property
    def q_dim(self) -> int:
        return self.n_head * self.head_dim_k

    @property
    def weight_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    def layer_tensors(self, layer: int) -> list[Tensor]:
        return [t for t in self.tensors if t.layer == layer]

    @property
    def params_total(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property  # read for every configuration the search prices: memoized per tensor list in _ACTIVE
    def params_active(self) -> int:
        """Parameters read per token: experts count n_expert_used of n_expert."""
        key = (id(self.tensors), self.n_expert_used, self.n_expert)
        hit = _ACTIVE.get(key)
        if hit is not None and hit[0] is self.tensors:  # the cloud search re-describes one model per machine
            return hit[1]
        total = 0
        for t in self.tensors:
            n = t.n_elements
            if t.is_expert and self.n_expert:
                n = n * self.n_expert_used // self.n_expert
            total += n
        _ACTIVE[key] = (self.tensors, total)
        return total


_ACTIVE: dict[tuple[int, int, int], tuple[list[Tensor], int]] = {}


@cache
def _swa_patterns() -> dict[str, int]:
    return {row["name"]: row["swa_pattern"] for row in read_data("architectures.yaml")["architectures"]}


@cache
def _fixed_windows() -> dict[str, int]:
    """Windows llama.cpp hard-codes whatever the GGUF says (llama4's 8192-token attention chunks)."""
    return {row["name"]: row["fixed_window"] for row in read_data("architectures.yaml")["architectures"]
            if row.get("fixed_window")}


def swa_layers(architecture: str, n_layers: int, sliding_window: int) -> list[bool]:
    """Which layers use the sliding window, as llama.cpp's set_swa_pattern decides (last of each group is full)."""
    pattern = _swa_patterns().get(architecture, 0)
    if not sliding_window or pattern < 2:
        return [False] * n_layers
    return [(il % pattern) < pattern - 1 for il in range(n_layers)]


def _per_layer(value: int | list[int] | None, n_layers: int, default: int) -> list[int]:
    if isinstance(value, list):
        return [int(v) for v in value] + [int(value[-1])] * (n_layers - len(value))
    return [int(value if value is not None else default)] * n_layers


# Metadata of mechanisms the memory model does not size yet: a GGUF carrying one is refused, not planned as plain
# attention (names from gguf-py's constants: Keys.SSM, Keys.Attention.KV_LORA_RANK).
_UNMODELLED = (("wkv.head_size", "RWKV's recurrent state"),)


# Multi-head latent attention: the cache holds kv_lora_rank + rope dims per token, K only (src/llama-kv-cache.cpp)
MLA_ARCHITECTURES = frozenset({"deepseek2"})
# LFM2: short-convolution layers keep their last l_cache-1 inputs per slot (llama_hparams::n_embd_r), no S state
SHORTCONV = ("lfm2",)
# Mamba-2 hybrids whose layers are each a mixer or an FFN (nemotron-h.cpp): Mamba layers have no KV heads and no FFN.
# Their state has the Gated DeltaNet layout (gdn_state); the compute buffer peaks in the Mamba-2 scan
# (compute.compute_buffer).
MAMBA2_LAYERED = frozenset({"nemotron_h"})
# Gated DeltaNet hybrids: recurrent layers by full_attention_interval (src/models/qwen35.cpp load_arch_hparams)
GATED_DELTA_NET = frozenset({"qwen35", "qwen35moe", "qwen3next"})


def gdn_state(d_conv: int, d_inner: int, d_state: int, n_group: int) -> Recurrent:
    """llama_hparams::n_embd_r / n_embd_s for a Gated DeltaNet layer (src/llama-hparams.cpp): the conv state of
    the q, k and v channels, and one d_state × head_v_dim matrix per value head. A Mamba-2 layer
    (mamba-base.cpp build_mamba2_layer) keeps the same: the x, B and C channels' conv inputs and d_state × d_inner."""
    return Recurrent((d_conv - 1) * (d_inner + 2 * n_group * d_state), d_state * d_inner, d_inner, n_group * d_state)


def supported_architectures() -> list[str]:
    """The GGUF architectures whose memory rules inferform has (data/architectures.yaml)."""
    return sorted(_swa_patterns())


def check_supported(info: GGUFInfo) -> None:
    """Refuse a GGUF whose architecture, or a mechanism in it, the memory model does not size.

    Planned as a plain transformer, such a file gets exact weights and a wrong KV cache: +89 % for MLA (deepseek2),
    +190-240 % for hybrid recurrent layers counted as attention (qwen35moe), +123 % for llama4's chunked attention,
    +300-1330 % for gemma4's per-layer heads and window (issue 15, measured on the pinned llama-server). A wrong
    plan is worse than none."""
    arch = info.architecture
    supported = supported_architectures()
    if arch not in supported:
        raise InferformError.single(
            f"GGUF architecture {arch!r} is not one inferform sizes yet: its KV cache or recurrent state would be "
            "planned wrong", file=info.path,
            hint=f"supported architectures: {', '.join(supported)}; `inferform models` lists catalog models of them")
    if f"{arch}.ssm.state_size" in info.metadata and arch not in GATED_DELTA_NET | MAMBA2_LAYERED:
        raise InferformError.single(
            f"this {arch} GGUF carries {arch}.ssm.state_size (recurrent state per slot), which inferform does not "
            "size for this architecture yet", file=info.path,
            hint=f"hybrid architectures inferform sizes: {', '.join(sorted(GATED_DELTA_NET | MAMBA2_LAYERED))}")
    if f"{arch}.attention.kv_lora_rank" in info.metadata and arch not in MLA_ARCHITECTURES:
        raise InferformError.single(
            f"this {arch} GGUF carries {arch}.attention.kv_lora_rank (MLA's compressed KV cache), which inferform "
            "does not size for this architecture yet", file=info.path,
            hint=f"MLA architectures inferform sizes: {', '.join(sorted(MLA_ARCHITECTURES))}")
    if arch in MLA_ARCHITECTURES and f"{arch}.attention.key_length_mla" not in info.metadata:
        raise InferformError.single(
            f"this {arch} GGUF predates the split k_b / v_b tensors (no {arch}.attention.key_length_mla): llama.cpp "
            "runs it as full multi-head attention, which inferform does not size", file=info.path,
            hint="a GGUF converted since 2025 (attn_k_b / attn_v_b), or a catalog model from `inferform models`")
    if f"{arch}.shortconv.l_cache" in info.metadata and arch not in SHORTCONV:
        raise InferformError.single(
            f"this {arch} GGUF carries {arch}.shortconv.l_cache (short-convolution state), which inferform does not "
            "size for this architecture yet", file=info.path, hint=f"short-conv architectures: {', '.join(SHORTCONV)}")
    for key, what in _UNMODELLED:
        if f"{arch}.{key}" in info.metadata:
            raise InferformError.single(
                f"this {arch} GGUF carries {arch}.{key} ({what}), which inferform does not size yet", file=info.path,
                hint="a GGUF of this family without it, or a catalog model from `inferform models`")


def _recurrent_layers(info: GGUFInfo, n_layers: int, n_all: int) -> list[bool]:
    """Which trunk layers are recurrent: the GGUF's attention.recurrent_layers array, else every layer but each
    full_attention_interval-th (default 4), as qwen35.cpp's load_arch_hparams decides."""
    if info.architecture in SHORTCONV:  # lfm2.cpp: a layer without KV heads is a short-conv layer
        kv = _per_layer(info.arch_value("attention.head_count_kv"), n_layers, 1)
        return [kv[il] == 0 for il in range(n_layers)]
    if info.architecture in MAMBA2_LAYERED:  # nemotron-h.cpp: no KV heads and no FFN makes a Mamba-2 layer
        kv = _per_layer(info.arch_value("attention.head_count_kv"), n_layers, 1)
        ff = _per_layer(info.arch_value("feed_forward_length"), n_layers, 0)
        return [kv[il] == 0 and ff[il] == 0 for il in range(n_layers)]
    if info.architecture not in GATED_DELTA_NET:
        return [False] * n_layers
    listed = info.arch_value("attention.recurrent_layers")
    if isinstance(listed, list):
        return [bool(v) for v in listed[:n_layers]]
    interval = int(info.arch_value("full_attention_interval", 4) or 4)
    return [(il + 1) % interval != 0 for il in range(n_layers)]


def _shared_ffn(info: GGUFInfo) -> int:
    """The shared expert's width: the GGUF key where the architecture writes one (qwen3.5), else the shared
    down-projection's row length (llama4 and deepseek2 size it from the expert width)."""
    listed = int(info.arch_value("expert_shared_feed_forward_length", 0) or 0)
    if listed:
        return listed
    down = next((t for t in info.tensors if t.name.endswith(".ffn_down_shexp.weight")), None)
    return int(down.shape[0]) if down else 0


def from_gguf(info: GGUFInfo, quant: str) -> ModelDesc:
    check_supported(info)
    arch = info.architecture
    n_all = int(info.arch_value("block_count", 0))
    n_nextn = int(info.arch_value("nextn_predict_layers", 0) or 0)
    n_layers = n_all - n_nextn  # llama.cpp's n_layer(): the trunk; MTP blocks load only for MTP drafting
    n_embd = int(info.arch_value("embedding_length", 0))
    n_head = _per_layer(info.arch_value("attention.head_count"), n_layers, 1)
    n_head_kv = _per_layer(info.arch_value("attention.head_count_kv"), n_layers, n_head[0])
    head_k = int(info.arch_value("attention.key_length", n_embd // max(n_head[0], 1)))
    head_v = int(info.arch_value("attention.value_length", head_k))
    mla = arch in MLA_ARCHITECTURES
    if mla:  # key_length is the cached row (kv_lora + rope) over head_count_kv 1; V is a view of K, not stored
        n_head_kv = [head_k * kv for kv in n_head_kv]
        head_k, head_v = int(info.arch_value("attention.key_length_mla")), 0
    window = int(info.arch_value("attention.sliding_window", 0) or 0)
    pattern = info.arch_value("attention.sliding_window_pattern")
    if arch == "gemma4":  # sliding layers have their own head size (key_length_swa); global ones key_length
        head_k_swa = int(info.arch_value("attention.key_length_swa", head_k))
        head_v_swa = int(info.arch_value("attention.value_length_swa", head_v))
    if arch in _fixed_windows():  # llama4: chunked unless the file says sliding_window 0 (llama4.cpp)
        listed = info.arch_value("attention.sliding_window")
        window = 0 if listed is not None and int(listed) == 0 else _fixed_windows()[arch]
    swa = swa_layers(arch, n_layers, window)
    if isinstance(pattern, list) and window:  # a per-layer bool array (gemma4) says which layers slide
        swa = [bool(v) for v in pattern[:n_layers]]
    recurrent = _recurrent_layers(info, n_layers, n_all)
    layers = [LayerAttn(0, 0, False, True) if recurrent[i] else
              LayerAttn(0, 0, False) if arch in MAMBA2_LAYERED and n_head_kv[i] == 0 else  # an FFN-only layer
              LayerAttn(n_head_kv[i], 0, swa[i]) if mla else
              LayerAttn(n_head_kv[i] * head_k_swa, n_head_kv[i] * head_v_swa, True) if arch == "gemma4" and swa[i] else
              LayerAttn(n_head_kv[i] * head_k, n_head_kv[i] * head_v, swa[i]) for i in range(n_layers)]
    state = None
    if any(recurrent) and arch in SHORTCONV:
        state = Recurrent(n_embd * (int(info.arch_value("shortconv.l_cache")) - 1), 0)
    elif any(recurrent):
        state = gdn_state(*(int(info.arch_value(f"ssm.{key}", 0) or 0)
                            for key in ("conv_kernel", "inner_size", "state_size", "group_count")))
    vocab = info.array_lengths.get("tokenizer.ggml.tokens") or int(info.arch_value("vocab_size", 0))
    ff = info.arch_value("feed_forward_length", 0)
    if info.arch_value("expert_count") and not any(t.name.endswith(".ffn_down.weight") for t in info.tensors):
        ff = 0  # an MoE file without dense FFN layers: feed_forward_length is the checkpoint's unused dense width
    return ModelDesc(
        architecture=arch, n_layers=n_layers, n_embd=n_embd, n_vocab=int(vocab), n_head=n_head[0],
        n_ff=int(max(ff) if isinstance(ff, list) else ff or 0), layers=layers, sliding_window=window,
        n_expert=int(info.arch_value("expert_count", 0) or 0),
        n_expert_used=int(info.arch_value("expert_used_count", 0) or 0),
        n_ff_expert=int(info.arch_value("expert_feed_forward_length", 0) or 0),
        n_ff_shared=_shared_ffn(info), head_dim_k=head_k,
        tensors=[t for t in info.tensors if t.layer is None or t.layer < n_layers],
        file_bytes=info.file_bytes, context_trained=int(info.arch_value("context_length", 0) or 0),
        source="gguf", quant=quant, recurrent=state, n_nextn=n_nextn,
        mla_kv_lora=int(info.arch_value("attention.kv_lora_rank", 0) or 0) if mla else 0)


def _gemma4_layer(s, swa: bool) -> LayerAttn:
    """A gemma4 layer's cache row: K and V of its own head size and KV heads (k_eq_v layers still cache V)."""
    from inferform.catalog.models import layer_heads

    head, kv, _ = layer_heads(s, swa)
    return LayerAttn(head * kv, head * kv, swa)


_DESCS: dict[tuple[str, str], tuple[ModelEntry, ModelDesc]] = {}


def from_catalog(entry: ModelEntry, quant: str) -> ModelDesc:
    """The description of a catalog model at a quant, kept for the process: it does not depend on the hardware,
    and the cloud instance planner searches the same model on many machines (tensor synthesis is ~70% of a
    search). Keyed by id but checked by identity, so an ad-hoc entry reusing a catalog id is never confused."""
    from inferform.planner.tensors import estimated_file_bytes, scaled_to_file, synthesize_tensors

    hit = _DESCS.get((entry.id, quant))
    if hit is not None and hit[0] is entry:
        return hit[1]
    s = entry.shapes
    swa = swa_layers(entry.architecture, s.n_layers, s.sliding_window)
    layers = [LayerAttn(0, 0, False, True) if s.is_recurrent(i) else
              LayerAttn(0, 0, False) if s.layer_pattern and s.layer_pattern[i] != "*" else
              LayerAttn(s.kv_lora_rank + s.rope_dim, 0, swa[i]) if s.is_mla else
              _gemma4_layer(s, swa[i]) if s.global_head_dim else
              LayerAttn(s.n_head_kv * s.head_dim_k, s.n_head_kv * s.head_dim_v, swa[i]) for i in range(s.n_layers)]
    state = Recurrent(s.n_embd * (s.shortconv_l_cache - 1), 0) if s.shortconv_l_cache else \
        gdn_state(s.ssm_conv_kernel, s.ssm_inner_size, s.ssm_state_size, s.ssm_group_count) if s.is_hybrid else None
    listed = entry.quant(quant)
    all_tensors = synthesize_tensors(entry, quant)
    file_bytes = listed.file_bytes if listed and listed.file_bytes else \
        estimated_file_bytes(entry, quant, all_tensors)
    tensors = [t for t in all_tensors if t.layer is None or t.layer < s.n_layers]  # MTP blocks are not loaded
    notes = [f"estimated from the catalog's shapes for {entry.id} at {quant} (no file at hand)"]
    if listed and listed.recipe and listed.file_bytes:
        tensors = scaled_to_file(entry, all_tensors, tensors, listed.file_bytes)
        notes.append(f"{listed.file} is a custom mix ({listed.recipe}): its per-tensor types are not published, so "
                     "the quantized tensors are scaled to the file's published size")
    desc = ModelDesc(
        architecture=entry.architecture, n_layers=s.n_layers, n_embd=s.n_embd, n_vocab=s.n_vocab, n_head=s.n_head,
        n_ff=s.n_ff if s.n_moe_layers < s.n_layers else 0, layers=layers, sliding_window=s.sliding_window,
        n_expert=s.n_expert,
        n_expert_used=s.n_expert_used, n_ff_expert=s.n_ff_expert, n_ff_shared=s.n_ff_shared,
        head_dim_k=s.head_dim_k, tensors=tensors, file_bytes=file_bytes,
        context_trained=entry.context_trained, source="shapes", quant=quant, notes=tuple(notes),
        recurrent=state, n_nextn=s.nextn_layers, mla_kv_lora=s.kv_lora_rank)
    _DESCS[(entry.id, quant)] = (entry, desc)
    return desc
