"""The tensors `convert_hf_to_gguf.py` writes for an architecture, from catalog shapes: llama.cpp's names and ggml
shapes (ne0 first, the matmul input dimension), read from each src/models/<arch>.cpp load_arch_tensors. Which type
llama-quantize then gives each one is planner/tensors.py's part."""

from collections.abc import Iterator
from typing import NamedTuple

from inferform.catalog.models import ModelEntry, Shapes, layer_heads
from inferform.errors import InferformError, did_you_mean


class ArchLayout(NamedTuple):
    """Per-architecture tensor set, read from llama.cpp's src/models/<arch>.cpp load_arch_tensors."""

    qk_norm: bool = False  # attn_q_norm / attn_k_norm over one head (qwen3, gemma3)
    post_norms: bool = False  # gemma: post_attention_norm and post_ffw_norm around the blocks
    fused_qkv: bool = False  # phi3: one attn_qkv [n_embd, q+k+v]
    fused_up: bool = False  # phi3: ffn_up [n_embd, 2*n_ff] holds gate and up, no ffn_gate
    attn_out_bias: bool = False  # gpt-oss: attn_output.bias as well as q/k/v biases
    sinks: bool = False  # gpt-oss: attn_sinks [n_head]
    ffn_norm: str = "ffn_norm"  # gpt-oss calls its pre-FFN norm post_attention_norm
    moe_biases: bool = False  # gpt-oss: router bias and per-expert biases
    mxfp4_experts: bool = False  # the checkpoint ships MXFP4 experts; the converter copies them as is
    spm_vocab: bool = False  # sentencepiece tokenizer: scores, no merges (header estimate only)
    shexp_gate: bool = False  # qwen35moe / qwen3next: a 1-D ffn_gate_inp_shexp scales the shared expert
    split_beta_alpha: bool = True  # qwen35: ssm_beta + ssm_alpha; qwen3next: one fused ssm_ba
    expert_bias: bool = False  # deepseek2 / glm4moe: exp_probs_b.bias [n_expert] (the router's selection bias)
    nextn_heads: bool = False  # glm4moe: the MTP block ships its own embed_tokens and shared_head_head
    layer_scale: bool = False  # gemma4: layer_output_scale.weight [1] per layer


ARCHITECTURES: dict[str, ArchLayout] = {
    "llama": ArchLayout(),
    "mistral3": ArchLayout(),
    "qwen2": ArchLayout(),
    "qwen3": ArchLayout(qk_norm=True),
    "qwen3moe": ArchLayout(qk_norm=True),
    "gemma3": ArchLayout(qk_norm=True, post_norms=True, spm_vocab=True),
    "phi3": ArchLayout(fused_qkv=True, fused_up=True),
    "gpt-oss": ArchLayout(attn_out_bias=True, sinks=True, ffn_norm="post_attention_norm", moe_biases=True,
                          mxfp4_experts=True),
    # Gated DeltaNet hybrids (src/models/qwen35.cpp, qwen35moe.cpp, qwen3next.cpp load_arch_tensors)
    "qwen35": ArchLayout(qk_norm=True, ffn_norm="post_attention_norm"),
    "qwen35moe": ArchLayout(qk_norm=True, ffn_norm="post_attention_norm", shexp_gate=True),
    "qwen3next": ArchLayout(qk_norm=True, ffn_norm="post_attention_norm", shexp_gate=True, split_beta_alpha=False),
    # multi-head latent attention (src/models/deepseek2.cpp load_arch_tensors): kv_b split into k_b / v_b
    "deepseek2": ArchLayout(expert_bias=True),
    # chunked attention (8192, hard-coded) in 3 of every 4 layers, interleaved MoE with a shared expert
    # (src/models/llama4.cpp): the tensor set is llama's
    "llama4": ArchLayout(),
    # GLM-4.5 family (src/models/glm4-moe.cpp): q/k/v biases, post_attention_norm before the FFN, the router's
    # selection bias, a shared expert; q/k norms only where the checkpoint has them (Shapes.qk_norm)
    "glm4moe": ArchLayout(ffn_norm="post_attention_norm", expert_bias=True, nextn_heads=True),
    # gemma4 (src/models/gemma4.cpp): gemma3's norms, per-layer head geometry (Shapes.global_*), no attn_v on
    # k_eq_v global layers, one rope_freqs for the global layers' proportional rope
    "gemma4": ArchLayout(qk_norm=True, post_norms=True, spm_vocab=True, layer_scale=True),
    # LFM2 (src/models/lfm2.cpp): short-conv or GQA token mixer, q/k norms; the final norm is token_embd_norm
    "lfm2": ArchLayout(qk_norm=True),
    # Nemotron-H (src/models/nemotron-h.cpp): a layer is Mamba-2, attention (no rope, no norms) or a ReLU² MLP
    "nemotron_h": ArchLayout(),
}

# Llama 3.1+ configs use rope_scaling "llama3"; the converter then writes rope_freqs.weight [head_dim/2] (F32).
ROPE_FREQS_FAMILIES = ("llama-3.1", "llama-3.2", "llama-3.3")
# ---------------------------------------------------------------------------------------------- tensor names


def _recurrent(s: Shapes, a: ArchLayout) -> Iterator[tuple[str, tuple[int, ...]]]:
    """A Gated DeltaNet layer's token mixer: qkv into a short convolution, z gate, per-value-head beta / alpha,
    decay (ssm_a), dt bias, the gated norm over one value head and the out projection; or LFM2's short
    convolution (in_proj to b, c, x; a depthwise conv of l_cache taps; out_proj)."""
    if s.shortconv_l_cache:
        yield "shortconv.conv.weight", (s.shortconv_l_cache, s.n_embd)
        yield "shortconv.in_proj.weight", (s.n_embd, 3 * s.n_embd)
        yield "shortconv.out_proj.weight", (s.n_embd, s.n_embd)
        return
    e, key_dim, value_dim, heads = s.n_embd, s.ssm_state_size * s.ssm_group_count, s.ssm_inner_size, \
        s.ssm_time_step_rank
    conv_dim = 2 * key_dim + value_dim
    yield "attn_qkv.weight", (e, conv_dim)
    yield "attn_gate.weight", (e, value_dim)
    yield "ssm_conv1d.weight", (s.ssm_conv_kernel, conv_dim)
    yield "ssm_dt.bias", (heads,)
    yield "ssm_a", (heads,)
    if a.split_beta_alpha:
        yield "ssm_beta.weight", (e, heads)
        yield "ssm_alpha.weight", (e, heads)
    else:
        yield "ssm_ba.weight", (e, 2 * heads)
    yield "ssm_norm.weight", (s.ssm_state_size,)
    yield "ssm_out.weight", (value_dim, e)


def _mla(s: Shapes) -> Iterator[tuple[str, tuple[int, ...]]]:
    """Multi-head latent attention as the converter writes it (conversion/deepseek.py): q through a low-rank
    q_a / q_b pair, one compressed kv_a_mqa row (kv_lora_rank + the rope key), and kv_b split per head into
    k_b [nope, kv_lora, n_head] and v_b [kv_lora, v_head_dim, n_head]."""
    e, h, kv = s.n_embd, s.n_head, s.kv_lora_rank
    nope = s.head_dim_k - s.rope_dim
    if s.q_lora_rank:
        yield "attn_q_a_norm.weight", (s.q_lora_rank,)
        yield "attn_q_a.weight", (e, s.q_lora_rank)
        yield "attn_q_b.weight", (s.q_lora_rank, h * s.head_dim_k)
    else:
        yield "attn_q.weight", (e, h * s.head_dim_k)
    yield "attn_kv_a_norm.weight", (kv,)
    yield "attn_kv_a_mqa.weight", (e, kv + s.rope_dim)
    yield "attn_k_b.weight", (nope, kv, h)
    yield "attn_v_b.weight", (kv, s.head_dim_v, h)
    yield "attn_output.weight", (h * s.head_dim_v, e)


def _pattern_layer(s: Shapes, il: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    """A Nemotron-H layer by its letter: Mamba-2 (ssm_in to z, xBC, dt; conv with bias; A, D, grouped norm; out),
    attention, or an ungated MLP."""
    e, kind = s.n_embd, s.layer_pattern[il]
    yield "attn_norm.weight", (e,)
    if kind == "M":
        inner, ng, ds, nh = s.ssm_inner_size, s.ssm_group_count, s.ssm_state_size, s.ssm_time_step_rank
        conv = inner + 2 * ng * ds
        yield "ssm_in.weight", (e, 2 * inner + 2 * ng * ds + nh)
        yield "ssm_conv1d.weight", (s.ssm_conv_kernel, conv)
        yield "ssm_conv1d.bias", (conv,)
        yield "ssm_dt.bias", (nh,)
        yield "ssm_a", (1, nh)
        yield "ssm_d", (1, nh)
        yield "ssm_norm.weight", (inner // ng, ng)
        yield "ssm_out.weight", (inner, e)
    elif kind == "*":
        q, kv = s.n_head * s.head_dim_k, s.n_head_kv * s.head_dim_k
        yield "attn_q.weight", (e, q)
        yield "attn_k.weight", (e, kv)
        yield "attn_v.weight", (e, kv)
        yield "attn_output.weight", (q, e)
    else:
        yield "ffn_up.weight", (e, s.n_ff)
        yield "ffn_down.weight", (s.n_ff, e)


def _layer(s: Shapes, a: ArchLayout, il: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    if s.layer_pattern:
        yield from _pattern_layer(s, il)
        return
    e, q = s.n_embd, s.n_head * s.head_dim_k
    k, v = s.n_head_kv * s.head_dim_k, s.n_head_kv * s.head_dim_v
    yield "attn_norm.weight", (e,)
    if il >= s.n_layers:  # an MTP block (conversion/qwen.py _QwenMtpMixin): attention + the trunk's FFN + these
        yield "nextn.eh_proj.weight", (2 * e, e)
        for norm in ("enorm", "hnorm", "shared_head_norm"):
            yield f"nextn.{norm}.weight", (e,)
        if a.nextn_heads:
            yield "nextn.embed_tokens.weight", (e, s.n_vocab)
            yield "nextn.shared_head_head.weight", (e, s.n_vocab)
    if s.is_recurrent(il):
        yield from _recurrent(s, a)
        yield from _ffn(s, a, il)
        return
    if s.is_mla:
        yield from _mla(s)
        yield from _ffn(s, a, il)
        return
    head = s.head_dim_k
    has_v = True
    if s.global_head_dim:  # gemma4: every swa_pattern-th layer is global, with its own geometry
        head, kv_heads, has_v = layer_heads(s, swa=(il + 1) % max(s.swa_pattern, 1) != 0)
        q, k, v = s.n_head * head, kv_heads * head, kv_heads * head
    q_rows = 2 * q if s.attn_output_gate else q
    projections = [("qkv", q + k + v)] if a.fused_qkv else [("q", q_rows), ("k", k)] + ([("v", v)] if has_v else [])
    for part, width in projections:
        yield f"attn_{part}.weight", (e, width)
        if s.attn_bias:
            yield f"attn_{part}.bias", (width,)
    yield "attn_output.weight", (s.n_head * (head if s.global_head_dim else s.head_dim_v), e)
    if a.attn_out_bias:
        yield "attn_output.bias", (e,)
    if a.qk_norm if s.qk_norm is None else s.qk_norm:
        yield "attn_q_norm.weight", (head,)
        yield "attn_k_norm.weight", (head,)
    if a.sinks:
        yield "attn_sinks.weight", (s.n_head,)
    if a.post_norms:
        yield "post_attention_norm.weight", (e,)
        yield "post_ffw_norm.weight", (e,)
    if a.layer_scale:
        yield "layer_output_scale.weight", (1,)
    yield from _ffn(s, a, il)


def _ffn(s: Shapes, a: ArchLayout, il: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    e = s.n_embd
    yield f"{a.ffn_norm}.weight", (e,)
    if not s.is_moe_layer(il):
        ff = s.n_ff
        if a.fused_up:
            yield "ffn_up.weight", (e, 2 * ff)
        else:
            if s.ffn_gated:
                yield "ffn_gate.weight", (e, ff)
            yield "ffn_up.weight", (e, ff)
        yield "ffn_down.weight", (ff, e)
        return
    x, f = s.n_expert, s.n_ff_expert
    yield "ffn_gate_inp.weight", (e, x)
    if a.expert_bias:
        yield "exp_probs_b.bias", (x,)
    if a.moe_biases:
        yield "ffn_gate_inp.bias", (x,)
    for part in ("gate", "up") if s.ffn_gated else ("up",):
        yield f"ffn_{part}_exps.weight", (e, f, x)
        if a.moe_biases:
            yield f"ffn_{part}_exps.bias", (f, x)
    yield "ffn_down_exps.weight", (f, e, x)
    if a.moe_biases:
        yield "ffn_down_exps.bias", (e, x)
    if s.n_expert_shared and s.n_ff_shared:
        if a.shexp_gate:
            yield "ffn_gate_inp_shexp.weight", (e,)
        yield "ffn_gate_shexp.weight", (e, s.n_ff_shared)
        yield "ffn_up_shexp.weight", (e, s.n_ff_shared)
        yield "ffn_down_shexp.weight", (s.n_ff_shared, e)


def tensor_list(entry: ModelEntry) -> list[tuple[str, tuple[int, ...], int | None, str]]:
    """(name, shape, layer, name within the layer) in llama_model_loader::weight_name_comparer's order: layer
    number (-1 without one), then the name. A layer's names share their "blk.N." prefix, so each layer is sorted
    on its own and the layers follow each other in number order."""
    layout = layout_for(entry.architecture)
    s = entry.shapes
    final_norm = "token_embd_norm.weight" if entry.architecture == "lfm2" else "output_norm.weight"
    top: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (s.n_embd, s.n_vocab)), (final_norm, (s.n_embd,))]
    if not s.tied_embeddings:
        top.append(("output.weight", (s.n_embd, s.n_vocab)))
    if entry.architecture == "llama" and entry.family.startswith(ROPE_FREQS_FAMILIES):
        top.append(("rope_freqs.weight", (s.head_dim_k // 2,)))
    if entry.architecture == "gemma4":  # the global layers' proportional rope (conversion/gemma.py)
        top.append(("rope_freqs.weight", (s.global_head_dim // 2,)))
    out = [(name, shape, None, name) for name, shape in sorted(top)]
    for il in range(s.n_layers + s.nextn_layers):
        out.extend((f"blk.{il}.{name}", shape, il, name) for name, shape in sorted(_layer(s, layout, il)))
    return out


def layout_for(architecture: str) -> ArchLayout:
    if architecture not in ARCHITECTURES:
        raise InferformError.single(
            f"no tensor layout for GGUF architecture {architecture!r}",
            hint=did_you_mean(architecture, ARCHITECTURES) or f"known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[architecture]
