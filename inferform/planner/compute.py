"""The compute buffer: the scheduler's reserve for the worst-case ubatch graph on one device (llama.cpp's
"compute buffer size" log line), per architecture family; memory.estimate() places it beside the weights, KV
cache and state. Kept apart from memory.py because its rules are fitted measurements, each with its own note."""

from typing import TYPE_CHECKING

from inferform.planner.model import GATED_DELTA_NET, MAMBA2_LAYERED, LayerAttn, ModelDesc

if TYPE_CHECKING:
    from inferform.planner.memory import KvCache, RunConfig

LayerKinds = tuple[tuple[LayerAttn, tuple[int, ...]], ...]
_KINDS: dict[int, tuple[list[LayerAttn], LayerKinds]] = {}


def layer_kinds(layers: list[LayerAttn]) -> LayerKinds:
    """The layers grouped by their attention facts (full or SWA, K/V widths): ((facts, layer indices), ...).
    Kept per layers list, checked by identity: the search prices hundreds of configurations of one model."""
    hit = _KINDS.get(id(layers))
    if hit is not None and hit[0] is layers:
        return hit[1]
    groups: dict[LayerAttn, list[int]] = {}
    for il, layer in enumerate(layers):
        groups.setdefault(layer, []).append(il)
    kinds = tuple((layer, tuple(idx)) for layer, idx in groups.items())
    _KINDS[id(layers)] = (layers, kinds)
    return kinds


FUSED_QKV = frozenset({"phi3"})
"""Architectures whose attention input is one fused q|k|v projection (planner/tensor_names.py: fused_qkv)."""


def compute_buffer(model: ModelDesc, cfg: "RunConfig", caches: "list[KvCache]", with_logits: bool = True) -> int:
    """The scheduler's reserve for the worst-case ubatch graph on one device: the peak of live tensors.

    FFN phase: ub × (3·n_ff + 3·n_embd + n_head·head_dim) f32 activations, plus the attention masks (one per
    distinct cache, n_kv × ub, f16 with flash attention, f32 without). Without flash attention the KQ score
    matrix of one layer (n_ctx_seq × ub × n_head, f32) sits above the layer's attention tensors (see below).
    The logits phase (one row per slot) only matters for tiny models. A quantized V cache drops the attention
    output row from the peak. Measured within ±0.1 MiB on the pinned build (CPU).
    """
    ub = cfg.n_ubatch
    if model.recurrent is not None:
        # Gated DeltaNet hybrids peak in the FFN, not at attention (no q row). Dense: 3·n_ff + 3·n_embd, as for
        # any dense model (Qwen3.5-9B / 27B shapes within 1 %); MoE: 2.25 per used expert's FFN row and 1.25 per
        # used expert's n_embd output, fitted on Qwen3.5-35B-A3B, 122B-A10B and Qwen3-Coder-Next shapes (within
        # 1.5 %; benchmarks/memory_truth.py), where the non-hybrid 1.5 / 1.5 was 12-14 % high.
        if model.is_moe:
            used = model.n_expert_used
            per_token = (2.25 * used * model.n_ff_expert + 1.25 * used * model.n_embd + 3 * model.n_ff_shared
                         + 3 * model.n_embd)
        else:
            per_token = 3 * model.n_ff + 3 * model.n_embd
    elif model.is_moe:
        # routed experts: gate/up/activation rows per used expert, and each used expert's n_embd output before the
        # weighted sum; 1.5 each fits qwen3moe and gpt-oss logs (benchmarks/memory_truth.py) within 3 %
        used = model.n_expert_used
        # a shared expert adds 1.8 rows of its width (fitted on Llama-4-Scout shapes, top-1 + shared, 4k-32k: within
        # 1 %; the
        # other MoE fits have none)
        # The attention row's share is capped at 2 x n_embd: GLM-4.5-Air's q (3 x n_embd) counted whole was 7 %
        # high, the fits above have q <= 2 x n_embd (GLM-4.5-Air shapes, 4k-16k: within 2 %).
        per_token = (1.5 * used * model.n_ff_expert + 1.5 * used * model.n_embd + 1.8 * model.n_ff_shared
                     + 3 * model.n_embd + min(model.q_dim, 2 * model.n_embd))
        # dense layers beside the MoE ones (deepseek2's first three, llama4 Maverick's every other)
        per_token = max(per_token, 3 * model.n_ff + 3 * model.n_embd + model.q_dim)
    else:
        per_token = 3 * model.n_ff + 3 * model.n_embd + model.q_dim
    if cfg.flash_attn and cfg.cache_type_v not in ("f16", "f32", "bf16") and model.recurrent is None:
        # a quantized V cache moves the peak by one attention-output row (n_head × head_dim_v f32) per token, in a
        # direction set by how that row compares with the residual width. Measured on the pinned build (CPU, q8_0
        # K and V against f16, ub 256/512/1024, contexts 4k-32k; the shift does not depend on the context):
        # q_dim = n_embd (SmolLM2, Qwen2.5-7B): exactly ub × q_dim × 4 bytes less; q_dim > n_embd (Gemma-3-270M,
        # Qwen3-30B-A3B): no row (+0.56 MB and +0.08 MB, constant); q_dim < n_embd (Gemma-3-4B): ub × q_dim × 4
        # bytes more (+0.56 MB constant).
        if model.q_dim == model.n_embd:
            per_token -= model.q_dim
        elif model.q_dim < model.n_embd:
            per_token += model.q_dim
    if model.mla_kv_lora:
        # multi-head latent attention peaks in attention, not in the FFN: q absorbed into the latent space
        # (n_head × kv_lora), q with its rope part (n_head × (kv_lora + rope)) and the attention output before the
        # v_b up-projection (n_head × kv_lora) are live together, beside the residual (src/models/deepseek2.cpp
        # graph). Measured on DeepSeek-V3 shapes (4 of 61 layers, 4k-16k, ub 256-1024, FA on and off): +1.3 %.
        rope = model.layers[0].n_embd_k_gqa - model.mla_kv_lora if model.layers else 0
        per_token = max(per_token, model.n_head * (3 * model.mla_kv_lora + rope) + model.n_embd)
    scan_states = 0
    if model.architecture in MAMBA2_LAYERED and model.recurrent is not None:
        # A Mamba-2 layer peaks in its scan (mamba-base.cpp build_mamba2_layer): the in-projection (z, x, B, C,
        # dt), the conv input and output over x, B and C, and the scan's output beside the gated, normed y rows
        # are live together, about 3·n_embd + 5.25·d_inner + 5.5·(n_group·d_state) f32 per token, and the scan
        # writes one d_state × d_inner state per sequence beside its output. Fitted on the pinned build (CPU, FA
        # on, ub 256-1024, 1-4 slots, 4+ Mamba layers) on Nemotron-Nano-9B-v2 shapes with d_inner, d_state,
        # n_group and n_embd varied one at a time: -4.5 % to +5 % (ggml-alloc reuses freed rows differently per
        # ubatch size: with 1-2 Mamba layers the same graph is 4 % smaller at ub 512, not at 1024); the real
        # shapes at 8k / ub 512 and 32k / ub 1024 / 2 slots: -2.3 % (benchmarks/memory_truth.py). The FFN-only
        # rule was 20 % low.
        rec = model.recurrent
        per_token = max(per_token, 3 * model.n_embd + 5.25 * rec.d_inner + 5.5 * rec.n_bc)
        scan_states = cfg.parallel * rec.n_embd_s * 4
    rest_ffn = int(ub * per_token * 4) + scan_states
    out_phase = (cfg.n_outputs_reserve * model.n_vocab * 4 if with_logits else 0) + 2 * ub * model.n_embd * 4
    kinds = {c.kind: c.cells for c in caches}
    mask_cells = sum(kinds.values())
    if cfg.flash_attn:
        return max(mask_cells * ub * 2 + rest_ffn, out_phase)
    masks = mask_cells * ub * 4
    kq = max(kinds.values(), default=0) * ub * model.n_head * 4
    # Without flash attention the KQ matrix (n_kv × ub × n_head f32) is allocated above what the layer's
    # attention tensors occupy when it is made: the residual, its norm and the attention input (3·n_embd), q and
    # k before and after rope (2·q_dim + k) and v, per token, f32; with a fused QKV projection (phi3) the norm
    # output and the fused q|k|v rows (2·n_embd + q_dim + k + v). Measured on the pinned build (CPU, 4k, ub
    # 256-1024, 4 layers) to the float on Llama-3.1-8B, Qwen3-8B, Qwen2.5-7B, Phi-4 and Mistral-Small-24B shapes,
    # and flat in n_ff (Mistral-Small with n_ff 16384-32768); the earlier rule, max(n_ff, n_embd + 2·q_dim) plus
    # twice K and V, matched Qwen2.5-7B and Phi-4 only because their n_ff equals this sum, and was 7 % high on
    # Mistral-Small (n_ff 32768) and 3-4 % low on Llama-3.1-8B / Qwen3-8B. The context term (kq, masks) is exact.
    kv_width = max((layer.n_embd_k_gqa + layer.n_embd_v_gqa for layer, _ in layer_kinds(model.layers)), default=0)
    q_rows = model.q_dim * (2 if model.architecture in GATED_DELTA_NET else 1)  # Qwen3.5's q carries its gate
    if model.architecture in FUSED_QKV:
        widest = 2 * model.n_embd + q_rows + kv_width
    else:  # Nemotron-H's attention has no rope: q and k once (within 0.1 % on its shapes, 2.7 % high with rope)
        widest = 3 * model.n_embd + (1 if model.architecture in MAMBA2_LAYERED else 2) * q_rows + kv_width
    attn_peak = masks + kq + (rest_ffn if model.mla_kv_lora else ub * widest * 4)
    return max(attn_peak, masks + rest_ffn, out_phase)
