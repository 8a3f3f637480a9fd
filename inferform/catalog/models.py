"""The model catalog: shapes the memory model needs, and the GGUF files each model ships as."""

from functools import cache

from pydantic import BaseModel, ConfigDict, Field

from inferform.catalog.files import data_files, read_data, validated
from inferform.catalog.rows import Row
from inferform.errors import InferformError, did_you_mean


class Shapes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    n_layers: int = Field(gt=0)
    n_embd: int = Field(gt=0)
    n_head: int = Field(gt=0)
    n_head_kv: int = Field(gt=0)
    head_dim_k: int = Field(gt=0)
    head_dim_v: int = Field(gt=0)
    n_ff: int = Field(ge=0)
    n_vocab: int = Field(gt=0)
    tied_embeddings: bool = False
    ffn_gated: bool = True
    attn_bias: bool = False
    n_expert: int = Field(0, ge=0)
    n_expert_used: int = Field(0, ge=0)
    n_ff_expert: int = Field(0, ge=0)
    n_expert_shared: int = Field(0, ge=0)
    n_ff_shared: int = Field(0, ge=0)
    first_dense_layers: int = Field(0, ge=0)
    qk_norm: bool | None = None  # per-model q/k norms where the architecture makes them optional (glm4moe)
    # gemma4: global (full-attention) layers have their own head size and KV heads, and with attention_k_eq_v no
    # V projection (V is the normed K, still cached); sliding layers use head_dim_k / n_head_kv
    global_head_dim: int = Field(0, ge=0)
    global_n_head_kv: int = Field(0, ge=0)
    attn_k_eq_v: bool = False
    moe_layer_step: int = Field(0, ge=0)  # llama4 interleave_moe_layer_step: layer i is MoE when (i+1) % step == 0
    sliding_window: int = Field(0, ge=0)
    swa_pattern: int = Field(0, ge=0)
    # Hybrid recurrent (Gated DeltaNet: qwen35 / qwen35moe / qwen3next), named as the GGUF keys they become:
    # every full_attention_interval-th layer is attention, the others are recurrent (0 = no recurrent layers).
    full_attention_interval: int = Field(0, ge=0)
    ssm_conv_kernel: int = Field(0, ge=0)  # linear_conv_kernel_dim
    ssm_state_size: int = Field(0, ge=0)  # linear_key_head_dim
    ssm_group_count: int = Field(0, ge=0)  # linear_num_key_heads
    ssm_time_step_rank: int = Field(0, ge=0)  # linear_num_value_heads
    ssm_inner_size: int = Field(0, ge=0)  # linear_value_head_dim x linear_num_value_heads
    attn_output_gate: bool = False  # q projection carries a per-head output gate (2 x n_head x head_dim rows)
    nextn_layers: int = Field(0, ge=0)  # MTP blocks the converter appends (in the file, skipped at load)
    # LFM2 (lfm2): short-convolution layers everywhere but the attention ones (full_attn_idxs)
    shortconv_l_cache: int = Field(0, ge=0)  # conv_L_cache
    attn_layers: tuple[int, ...] = ()
    # Nemotron-H (nemotron_h): one letter per layer (hybrid_override_pattern): M Mamba-2 (the ssm_* fields above),
    # * attention, - MLP
    layer_pattern: str = ""
    # Multi-head latent attention (deepseek2: DeepSeek-V3/R1, Kimi K2): head_dim_k = qk_nope + qk_rope,
    # head_dim_v = v_head_dim; the cache holds kv_lora_rank + rope_dim per token and layer, K only.
    q_lora_rank: int = Field(0, ge=0)  # 0: a plain q projection (the "lite" models)
    kv_lora_rank: int = Field(0, ge=0)
    rope_dim: int = Field(0, ge=0)  # qk_rope_head_dim

    @property
    def is_moe(self) -> bool:
        return self.n_expert > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def is_hybrid(self) -> bool:
        return self.full_attention_interval > 0 or self.shortconv_l_cache > 0 or bool(self.layer_pattern)

    def is_recurrent(self, il: int) -> bool:
        """Gated DeltaNet: llama.cpp's default rule without a recurrent_layers array, every layer except each
        full_attention_interval-th one (src/models/qwen35.cpp); LFM2: every layer not listed as attention."""
        if il >= self.n_layers:
            return False
        if self.shortconv_l_cache:
            return il not in self.attn_layers
        if self.layer_pattern:
            return self.layer_pattern[il] == "M"
        return self.full_attention_interval > 0 and (il + 1) % self.full_attention_interval != 0

    def is_moe_layer(self, il: int) -> bool:
        if not self.is_moe or il < self.first_dense_layers:
            return False
        return self.moe_layer_step <= 1 or (il + 1) % self.moe_layer_step == 0

    @property
    def n_moe_layers(self) -> int:
        return sum(self.is_moe_layer(il) for il in range(self.n_layers))


class QuantFile(Row):
    quant: str
    file: str | None = Field(None, description="hf://repo/path of the file (the first shard of a split one); "
                             "left out where only the repo page and the size were read: planned, not fetched")
    bytes: int | None = Field(None, gt=0, description="Exact size when read from the source.")
    size_gb: float | None = Field(None, gt=0, description="Size as the source prints it (decimal GB, rounded), "
                                  "when no exact byte count was read.")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    recipe: str | None = Field(None, description="Set when the publisher's mix is not llama-quantize's rules for "
                               "this quant (e.g. unsloth dynamic): names it and how the size shows it.")

    @property
    def file_bytes(self) -> int | None:
        if self.bytes:
            return self.bytes
        return int(self.size_gb * 1e9) if self.size_gb else None


class Checkpoint(Row):
    """A safetensors checkpoint of the model on the Hub, what vLLM serves (beside the GGUF files llama.cpp serves)."""

    repo: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
    format: str = Field(pattern=r"^(BF16|FP8|MXFP4|AWQ|GPTQ|NVFP4)$", description="How the weights are stored.")
    quantization: str | None = Field(None, description="vLLM's --quantization for it; null: unquantized, or vLLM "
                                                       "reads the method from the config's quantization_config.")
    bytes: int | None = Field(None, gt=0, description="Exact size of the safetensors files, when read.")
    expert_bits: float | None = Field(None, gt=0, description="Bits per routed-expert weight where experts are "
                                      "stored apart from the rest (gpt-oss: MXFP4 experts, BF16 attention).")

    def size_bytes(self, params: int) -> int:
        """Its bytes: as read, else from the parameter count at the format's width (estimated)."""
        if self.bytes:
            return self.bytes
        return int(params * FORMAT_BYTES[self.format])


FORMAT_BYTES = {"BF16": 2.0, "FP8": 1.0, "MXFP4": 4.25 / 8, "AWQ": 4.25 / 8, "GPTQ": 4.25 / 8, "NVFP4": 4.5 / 8}


class ModelEntry(Row):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    name: str
    family: str
    architecture: str
    params_b: float = Field(gt=0)
    active_params_b: float = Field(gt=0)
    extra_params_b: float = Field(0.0, ge=0)
    license: str
    use_cases: list[str]
    context_trained: int = Field(gt=0)
    shapes: Shapes
    quants: list[QuantFile]
    checkpoints: list[Checkpoint] = Field([], description="Safetensors checkpoints (engine vllm).")

    def quant(self, name: str) -> QuantFile | None:
        return next((q for q in self.quants if q.quant.upper() == name.upper()), None)


def layer_heads(s: Shapes, swa: bool) -> tuple[int, int, bool]:
    """(head dim, KV heads, has a V projection) of an attention layer: gemma4's global layers differ."""
    if s.global_head_dim and not swa:
        return s.global_head_dim, s.global_n_head_kv or s.n_head_kv, not s.attn_k_eq_v
    return s.head_dim_k, s.n_head_kv, True


def _pattern_params(s: Shapes) -> int:
    """Nemotron-H: each layer is a Mamba-2 mixer, an attention mixer or an (ungated, ReLU²) MLP."""
    e, inner, ng, ds, nh = s.n_embd, s.ssm_inner_size, s.ssm_group_count, s.ssm_state_size, s.ssm_time_step_rank
    mamba = e * (2 * inner + 2 * ng * ds + nh) + inner * e
    attn = e * (s.n_head * s.head_dim_k + 2 * s.n_head_kv * s.head_dim_k) + s.n_head * s.head_dim_k * e
    mlp = 2 * e * s.n_ff
    per = {"M": mamba, "*": attn, "-": mlp}
    return s.n_vocab * e * (1 if s.tied_embeddings else 2) + sum(per[c] for c in s.layer_pattern)


def param_count(s: Shapes) -> int:
    """Parameters implied by the shapes (matrices only; norms and biases are under 0.1 %), trunk layers only
    (MTP blocks are not counted: cards count them apart or not at all)."""
    if s.layer_pattern:
        return _pattern_params(s)
    embed = s.n_vocab * s.n_embd * (1 if s.tied_embeddings else 2)
    q_rows = s.n_head * s.head_dim_k * (2 if s.attn_output_gate else 1)
    attn = s.n_embd * (q_rows + s.n_head_kv * (s.head_dim_k + s.head_dim_v))
    attn += s.n_head * s.head_dim_v * s.n_embd
    if s.is_mla:  # q down/up (or plain q), compressed kv + rope key, its k/v up-projections, output
        nope = s.head_dim_k - s.rope_dim
        q = s.n_embd * s.q_lora_rank + s.q_lora_rank * q_rows if s.q_lora_rank else s.n_embd * q_rows
        attn = (q + s.n_embd * (s.kv_lora_rank + s.rope_dim) + s.kv_lora_rank * s.n_head * (nope + s.head_dim_v)
                + s.n_head * s.head_dim_v * s.n_embd)
    key_dim = s.ssm_state_size * s.ssm_group_count
    # Gated DeltaNet: qkv (2 key + value), z gate, beta and alpha per value head, out projection
    recurrent = s.n_embd * (2 * key_dim + 2 * s.ssm_inner_size + 2 * s.ssm_time_step_rank) \
        + s.ssm_inner_size * s.n_embd
    if s.shortconv_l_cache:  # in_proj (b, c, x), out_proj, the depthwise conv
        recurrent = 4 * s.n_embd * s.n_embd + s.shortconv_l_cache * s.n_embd
    n_recurrent = sum(s.is_recurrent(il) for il in range(s.n_layers))
    if s.global_head_dim:  # gemma4: sliding and global layers differ; every swa_pattern-th layer is global
        n_global = s.n_layers // s.swa_pattern if s.swa_pattern else 0
        hd, kv, has_v = layer_heads(s, swa=False)
        global_attn = s.n_embd * (s.n_head * hd + kv * hd * (2 if has_v else 1)) + s.n_head * hd * s.n_embd
        attn = (attn * (s.n_layers - n_global) + global_attn * n_global) / s.n_layers
    dense_ffn = (3 if s.ffn_gated else 2) * s.n_embd * s.n_ff
    moe_ffn = s.n_expert * 3 * s.n_embd * s.n_ff_expert + s.n_embd * s.n_expert + 3 * s.n_embd * s.n_ff_shared
    n_moe = s.n_moe_layers
    return int(embed + (s.n_layers - n_recurrent) * attn + n_recurrent * recurrent
               + (s.n_layers - n_moe) * dense_ffn + n_moe * moe_ffn)


@cache
def load_models() -> dict[str, ModelEntry]:
    files = [f"models/{path.name}" for path in data_files("models")]
    return validated("models", files, _validate_models)


def _validate_models() -> dict[str, ModelEntry]:
    models: dict[str, ModelEntry] = {}
    for path in data_files("models"):
        for raw in read_data(f"models/{path.name}")["models"]:
            entry = ModelEntry.model_validate(raw)
            if entry.id in models:
                raise ValueError(f"duplicate model id {entry.id!r} in {path.name}")
            models[entry.id] = entry
    return models


def find_model(model_id: str, *, file: str | None = None, line: int | None = None) -> ModelEntry:
    models = load_models()
    if model_id in models:
        return models[model_id]
    hint = did_you_mean(model_id, models) or "run `inferform models` for the catalog, or give model.file"
    raise InferformError.single(f"unknown model id {model_id!r}", file=file, line=line, hint=hint)
