"""vLLM's memory, per GPU, the way vLLM 0.32 allocates it (vllm/v1/worker/gpu_worker.py, v1/core/kv_cache_utils.py).

Why its own model: vLLM does not map a file and size buffers up front like libllama. Each worker
1. loads its shard of the weights (tensor parallel splits every linear layer and the vocabulary; pipeline
   parallel gives each stage a run of layers, vllm.distributed.utils.get_pp_indices; expert parallel gives each
   rank 1/EP of the routed experts; data parallel ranks are whole replicas of what is left);
2. runs one forward pass of max_num_batched_tokens dummy tokens and max_num_seqs sampled rows, whose peak is the
   activation memory;
3. profiles the CUDA graph pool (captured sizes up to its max capture size);
4. gives the KV cache what is left under gpu_memory_utilization × the device's memory — or, with
   --kv-cache-memory-bytes, exactly that many bytes, skipping the sum.
inferform passes --kv-cache-memory-bytes: the KV cache, the token count and the maximum concurrency vLLM logs are
then arithmetic (checked against vLLM's own log by the e2e test), and only steps 1-3 are estimates (they need a GPU
to check: unverified here, and the plan says so). The KV page of a layer holds block_size tokens of K and V for
this rank's KV heads (max(1, n_kv_heads // TP): fewer heads than ranks are replicated); multi-head latent attention
(DeepSeek) keeps one compressed latent (kv_lora_rank + rope dims) per token, K only, on every TP rank.
"""

from math import ceil
from typing import NamedTuple

from inferform.catalog.models import Shapes, param_count

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
KV_DTYPE_BYTES = {"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}  # "auto": the model's dtype


class Layout(NamedTuple):
    """How the model is spread: TP ranks inside a node, PP stages across nodes, DP replicas, EP for experts."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: bool = False
    nnodes: int = 1

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def ep_size(self) -> int:
        return self.tp * self.dp if self.ep else 1


class Weights(NamedTuple):
    """A checkpoint's bytes, split the way the parallel layouts shard them."""

    total: int
    embed: int  # token embedding + lm_head (vocab-sharded across TP; first / last PP stage)
    experts: int  # routed experts (EP splits them; TP shards each)
    layers: int  # everything else in the decoder layers (TP-sharded)


def pp_partition(n_layers: int, pp: int) -> list[int]:
    """Layers per pipeline stage, as vllm.distributed.utils.get_pp_indices splits them (the remainder goes to the
    stages before the last)."""
    parts = [n_layers // pp] * pp
    for i in range(2, n_layers % pp + 2):
        parts[-i] += 1
    return parts


def kv_heads_per_rank(shapes: Shapes, tp: int) -> int:
    return max(1, shapes.n_head_kv // tp)


def kv_bytes_per_token_layer(shapes: Shapes, tp: int, kv_bytes: int) -> int:
    """One layer's KV bytes per token on one rank."""
    if shapes.is_mla:
        return (shapes.kv_lora_rank + shapes.rope_dim) * kv_bytes
    return kv_heads_per_rank(shapes, tp) * (shapes.head_dim_k + shapes.head_dim_v) * kv_bytes


def attention_layers(shapes: Shapes) -> int:
    return sum(not shapes.is_recurrent(il) for il in range(shapes.n_layers))


def kv_bytes_per_token(shapes: Shapes, layout: Layout, kv_bytes: int) -> int:
    """KV bytes one token takes on the fullest rank: its stage's attention layers, its KV heads."""
    stage = max(pp_partition(attention_layers(shapes), layout.pp))
    return stage * kv_bytes_per_token_layer(shapes, layout.tp, kv_bytes)


def kv_capacity(kv_cache_bytes: int, per_token: int, block_size: int, max_model_len: int) -> tuple[int, float]:
    """(tokens, maximum concurrency) exactly as vLLM logs them for a uniform full-attention cache:
    blocks = bytes // (block_size × per-token bytes); a request at max_model_len takes ceil(len / block_size)
    blocks; tokens = int(concurrency × max_model_len) (kv_cache_utils.get_kv_cache_capacity)."""
    if per_token <= 0:
        return 0, 0.0
    blocks = kv_cache_bytes // (block_size * per_token)
    concurrency = blocks / ceil(max_model_len / block_size)
    return int(concurrency * max_model_len), concurrency


def split_weights(shapes: Shapes, total_bytes: int, expert_bytes_per_param: float | None = None) -> Weights:
    """The checkpoint's bytes by part, in proportion to the parameters the shapes give (the experts at their own
    width where a format stores them apart, e.g. MXFP4 experts beside BF16 attention)."""
    params = max(param_count(shapes), 1)
    embed_p = shapes.n_vocab * shapes.n_embd * (1 if shapes.tied_embeddings else 2)
    expert_p = shapes.n_moe_layers * shapes.n_expert * 3 * shapes.n_embd * shapes.n_ff_expert if shapes.is_moe else 0
    if expert_bytes_per_param is not None and expert_p:
        experts = int(expert_p * expert_bytes_per_param)
        rest = max(total_bytes - experts, 0)
        other_p = max(params - expert_p, 1)
        embed = int(rest * embed_p / other_p)
        return Weights(total_bytes, embed, experts, rest - embed)
    per = total_bytes / params
    embed, experts = int(embed_p * per), int(expert_p * per)
    return Weights(total_bytes, embed, experts, total_bytes - embed - experts)


def rank_weights(w: Weights, shapes: Shapes, layout: Layout) -> int:
    """Bytes of weights on the fullest rank. Stage 0 holds the embedding, the last stage the lm_head (both with
    PP 1); a stage's layers are its share of the rest. Experts: 1/EP of them with expert parallel, else each
    expert sharded across TP."""
    parts = pp_partition(shapes.n_layers, layout.pp)
    stage_layers = max(parts)
    share = stage_layers / shapes.n_layers
    embed = w.embed if layout.pp == 1 else w.embed / 2  # embed_tokens on the first stage, lm_head on the last
    return int(embed / layout.tp + w.layers * share / layout.tp) + rank_experts(w, shapes, layout)


def rank_experts(w: Weights, shapes: Shapes, layout: Layout) -> int:
    """The routed-expert bytes on the fullest rank (part of rank_weights)."""
    share = max(pp_partition(shapes.n_layers, layout.pp)) / shapes.n_layers
    return int(w.experts * share / (layout.ep_size if layout.ep else layout.tp))


def activation_bytes(shapes: Shapes, layout: Layout, tokens: int, seqs: int, act_bytes: int) -> int:
    """Peak of vLLM's profile run (estimate): tokens × (the residual stream and attention projections of one layer,
    plus the MLP's gate/up output on this rank — for MoE the routed tokens' expert intermediates) in the activation
    type, plus the sampler's float32 logits and probabilities for max_num_seqs rows of the whole vocabulary."""
    tp = layout.tp
    q_kv = (shapes.n_head + 2 * shapes.n_head_kv) * shapes.head_dim_k / tp
    if shapes.is_moe:
        mlp = shapes.n_expert_used * 2 * shapes.n_ff_expert / (1 if layout.ep else tp)
    else:
        mlp = 2 * shapes.n_ff / tp
    per_token = (4 * shapes.n_embd + q_kv + mlp) * act_bytes
    sampler = seqs * shapes.n_vocab * 4 * 2
    return int(tokens * per_token + sampler)
