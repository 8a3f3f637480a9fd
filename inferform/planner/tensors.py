"""The tensor table of a GGUF we have no file for, rebuilt from catalog shapes and a quantization name.

The planner places tensors on devices, so it needs each tensor's exact size, and sizes depend on which ggml
type llama-quantize picks per tensor. This module reproduces the two steps that decide it:

1. what `convert_hf_to_gguf.py` writes: llama.cpp's tensor names and ggml shapes per architecture (ne0 first,
   the matmul input dimension; planner/tensor_names.py), with norms, biases, the MoE router and 1-D tensors stored
   as F32;
2. what `llama-quantize` then picks: `llama_tensor_get_type` (the mix rules, `use_more_bits`, the MoE8
   overrides, the tied-embedding output rule and the row-size fallback).

The spec is /work/notes/quantize-rules.md; the code follows llama.cpp's src/llama-quant.cpp as vendored in
llama-cpp-python 0.3.36 where the two disagree (that copy turns a 32-block type whose rows still do not divide
into F16 instead of aborting). Tensor order is the one llama-quantize writes: its `weights_map` comparator puts
tensors without a layer first, then blk.0, blk.1, ..., each group sorted by name.
"""

from collections.abc import Callable
from typing import NamedTuple

from inferform.catalog.models import ModelEntry, Shapes
from inferform.catalog.quants import load_ggml_types, load_quant_types
from inferform.errors import InferformError, did_you_mean
from inferform.gguf import Tensor
from inferform.planner.tensor_names import ArchLayout, layout_for, tensor_list

FLOAT_TYPES = frozenset({"F32", "F16", "BF16"})


# llama.cpp sets LLM_TYPE_70B (attn_v Q3_K/Q4_K -> Q5_K) for these archs at 80 layers (llama: GQA only).
TYPE_70B_ARCHS = frozenset({"llama", "qwen2", "deci", "olmo"})


def _pad(n: int, align: int = 32) -> int:
    return (n + align - 1) // align * align


_SHAPES: dict[tuple[str, str, Shapes], list[tuple[Tensor, str | None, str]]] = {}


def _shape_table(entry: ModelEntry) -> list[tuple[Tensor, str | None, str]]:
    """Each tensor (no type yet) with the type the converter forces and its quantization category: the parts
    that do not depend on the quant, worked out once per model since `quant: auto` tries several quants.
    Every layer repeats a few tensor names, so what a name decides (forced type, category, expert, elements)
    is worked out once per (name in the layer, shape), not once per tensor."""
    key = (entry.architecture, entry.family, entry.shapes)  # what tensor_list reads
    table = _SHAPES.get(key)
    if table is None:
        layout = layout_for(entry.architecture)
        facts: dict[tuple[str, tuple[int, ...]], tuple[str | None, str, bool, int]] = {}
        table = []
        for name, shape, layer, local in tensor_list(entry):
            fact = facts.get((local, shape))
            if fact is None:
                n = 1
                for dim in shape:
                    n *= dim
                fact = facts[(local, shape)] = (_converter_type(name, shape, layout), _category(name),
                                                "_exps." in name, n)
            forced, category, expert, n = fact
            table.append((Tensor(name, shape, "", 0, layer, expert, n), forced, category))
        _SHAPES[key] = table
    return table


# ---------------------------------------------------------------------------------------------- tensor types


class _Ctx(NamedTuple):
    """What llama_tensor_get_type_impl reads from the model: layer index i of n, GQA ratio, expert count."""

    ftype: str
    base: str
    i: int
    n: int
    n_gqa: int
    n_expert: int
    is_70b: bool
    imatrix: bool


def use_more_bits(i: int, n: int) -> bool:
    """The first and last eighth of the layers, and every third layer between (half of them in all)."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


_Rule = Callable[[_Ctx], "str | None"]


def _more_bits(new: str) -> _Rule:
    return lambda c: new if use_more_bits(c.i, c.n) else None


def _first_eighth(new: str, *, imatrix: bool | None = None) -> _Rule:
    return lambda c: new if c.i < c.n // 8 and imatrix in (None, c.imatrix) else None


# ftype -> rule; a rule returning None keeps the ftype's default type. Transcribed from llama-quant.cpp.
ATTN_V_RULES: dict[str, _Rule] = {
    "Q2_K": lambda c: "Q4_K" if c.n_gqa >= 4 else "Q3_K",
    "Q3_K_M": lambda c: "Q5_K" if c.i < 2 else "Q4_K",
    "Q3_K_L": lambda c: "Q5_K",
    "IQ4_NL": lambda c: "Q5_K" if c.n_gqa >= 4 else None,
    "IQ4_XS": lambda c: "Q5_K" if c.n_gqa >= 4 else None,
    "Q4_K_M": _more_bits("Q6_K"),
    "Q5_K_M": _more_bits("Q6_K"),
    "Q4_K_S": lambda c: "Q5_K" if c.i < 4 else None,
}
FFN_DOWN_RULES: dict[str, _Rule] = {
    "Q2_K": lambda c: "Q3_K",
    "Q3_K_M": lambda c: "Q5_K" if c.i < c.n // 16 else "Q4_K",
    "Q3_K_L": lambda c: "Q5_K",
    "Q4_K_M": _more_bits("Q6_K"),
    "Q5_K_M": _more_bits("Q6_K"),
    "IQ4_NL": _first_eighth("Q5_K", imatrix=False),
    "IQ4_XS": _first_eighth("Q5_K", imatrix=False),
    "Q4_K_S": _first_eighth("Q5_K"),
    "Q4_0": _first_eighth("Q4_1", imatrix=True),
    "Q5_0": _first_eighth("Q5_1", imatrix=True),
}
ATTN_OUTPUT_TYPES = {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K"}
ATTN_OUTPUT_Q5K_MOE8 = frozenset({"Q2_K", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ4_XS"})
MIXED_FTYPES = frozenset({*ATTN_V_RULES, *FFN_DOWN_RULES, "Q8_0", "Q6_K", "Q5_K_S", "Q5_1", "Q3_K_S", "MXFP4_MOE"})
OUTPUT_Q5K_FTYPES = frozenset({"IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"})
TOKEN_EMBD_TYPES = {"IQ2_XXS": "Q2_K", "IQ2_XS": "Q2_K", "IQ1_S": "Q2_K", "IQ1_M": "Q2_K", "IQ2_S": "IQ3_S",
                    "IQ2_M": "IQ3_S", "IQ3_XXS": "IQ3_S", "TQ1_0": "Q4_K", "TQ2_0": "Q4_K", "Q2_0": "Q4_K"}
# tensor_type_fallback: a type whose block does not divide ne0 -> a 32-block type (F16 if that fails too)
FALLBACK = {"IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL", "IQ2_S": "IQ4_NL",
            "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ4_XS": "IQ4_NL", "Q2_0": "Q4_0", "Q2_K": "Q4_0",
            "Q3_K": "Q4_0", "TQ1_0": "Q4_0", "TQ2_0": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
# the categories whose rules read the layer index (ATTN_V_RULES, FFN_DOWN_RULES); the rest depend on shape only
LAYER_RULED = frozenset({"attn_v", "ffn_down"})
CATEGORIES = (("attn_qkv.weight", "attn_v"), ("attn_kv_b.weight", "attn_v"), ("attn_v.weight", "attn_v"),
              ("attn_k.weight", "attn_k"), ("attn_q.weight", "attn_q"), ("attn_output.weight", "attn_output"),
              ("ffn_up", "ffn_up"), ("ffn_gate", "ffn_gate"), ("ffn_down", "ffn_down"))


def _category(name: str) -> str:
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    return next((cat for fragment, cat in CATEGORIES if fragment in name), "other")


def _converter_type(name: str, shape: tuple[int, ...], layout: ArchLayout) -> str | None:
    """The type convert_hf_to_gguf forces, or None when the tensor gets the outtype (and is quantizable)."""
    if len(shape) <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight") or "ffn_gate_inp" in name \
            or "ssm_conv1d" in name or "shortconv.conv" in name:
        return "F32"
    if layout.mxfp4_experts and "_exps." in name:
        return "MXFP4"
    return None


def _mix(cat: str, shape: tuple[int, ...], c: _Ctx, tied: bool) -> str:
    """llama_tensor_get_type_impl for a quantizable tensor of category `cat` (before the shape fallback)."""
    d, q = c.base, c.ftype
    if cat == "output" or (tied and cat == "token_embd"):
        if q == "MXFP4_MOE" or shape[0] % load_ggml_types()[d].block_size:
            return "Q8_0"
        return "Q5_K" if q in OUTPUT_Q5K_FTYPES else d if d == "Q8_0" else "Q6_K"
    if q == "MXFP4_MOE":
        return "MXFP4" if len(shape) > 2 and shape[2] > 1 else "Q8_0"
    if cat == "token_embd":
        return TOKEN_EMBD_TYPES.get(q, d)
    moe8 = c.n_expert == 8
    if cat == "attn_v":
        new = (ATTN_V_RULES[q](c) if q in ATTN_V_RULES else None) or d
        if c.is_70b and new in ("Q3_K", "Q4_K"):
            new = "Q5_K"
        return "Q8_0" if moe8 else new
    if cat == "attn_k":
        return "Q8_0" if moe8 else d
    if cat == "ffn_down":
        return (FFN_DOWN_RULES[q](c) if q in FFN_DOWN_RULES else None) or d
    if cat == "attn_output":
        if moe8:
            return "Q5_K" if q in ATTN_OUTPUT_Q5K_MOE8 else d
        return ATTN_OUTPUT_TYPES.get(q, d)
    return d


def _fallback(type_name: str, ncols: int) -> str:
    """tensor_type_fallback: only ne0 (the row length) has to divide by the block size."""
    types = load_ggml_types()
    if ncols % types[type_name].block_size == 0:
        return type_name
    new = FALLBACK.get(type_name, type_name)
    return new if ncols % types[new].block_size == 0 else "F16"


def synthesize_tensors(entry: ModelEntry, quant: str, *, imatrix: bool | None = None) -> list[Tensor]:
    """The tensors of `entry`'s GGUF at `quant` (an ftype name: Q4_K_M, Q8_0, MXFP4_MOE, ...), in file order.

    llama.cpp's full rules for F32, F16, BF16, Q8_0, Q6_K, Q5_K_M, Q5_K_S, Q4_K_M, Q4_K_S, Q5_0, Q5_1, Q4_0,
    Q4_1, Q3_K_M, Q3_K_S, Q3_K_L, Q2_K, IQ4_XS, IQ4_NL and MXFP4_MOE (checked tensor by tensor against real
    Q4_1 and Q4_K_M files, and in total against quantize.cpp's size notes and published file sizes).
    Any other ftype (IQ3_*, IQ2_*, IQ1_*, Q2_K_S, TQ*, ...) is APPROXIMATE: its default type everywhere, with
    only the output / token_embd rules and the shape fallback applied, not its per-tensor mix rules.

    `imatrix` changes a few rules (Q4_0/Q5_0/IQ4 ffn_down); by default an importance matrix is assumed for
    i-quants only, as published files are made. gpt-oss experts stay MXFP4 at every ftype: the checkpoint
    ships them in MXFP4 and llama-quantize refuses to requantize them, so published files keep them.
    """
    quants = load_quant_types()
    ftype = next((name for name in quants if name.upper() == quant.upper()), None)
    if ftype is None:
        raise InferformError.single(f"unknown quantization {quant!r}", hint=did_you_mean(quant, quants))
    base = quants[ftype].base_type
    s = entry.shapes
    table = _shape_table(entry)
    tied = not any(t.name == "output.weight" for t, _, _ in table)
    is_70b = (entry.architecture in TYPE_70B_ARCHS and s.n_layers == 80
              and (entry.architecture != "llama" or s.n_head != s.n_head_kv))
    imatrix = ftype.startswith("IQ") if imatrix is None else imatrix
    mixed = ftype in MIXED_FTYPES
    n_all = s.n_layers + s.nextn_layers  # llama-quantize loads MTP blocks too and counts them in n
    ctxs = [_Ctx(ftype, base, i, n_all, s.n_head // s.n_head_kv, s.n_expert, is_70b, imatrix)
            for i in range(n_all)]
    types = load_ggml_types()
    # A layer's tensors repeat in every layer and only the attn_v / ffn_down rules read the layer index, so the
    # decision is worked out once per (type forced, category, shape[, layer]): ~10x fewer rule evaluations.
    # llama-quantize indexes the attn_v rules by the tensor's place among attn_v-category tensors
    # (qs.i_attention_wv of n_attention_wv), which is the layer only while every layer has exactly one: gemma4's
    # k_eq_v global layers have none
    v_count = sum(1 for _, forced, cat in table if cat == "attn_v" and forced is None)
    v_ctxs = iter([_Ctx(ftype, base, i, v_count, s.n_head // s.n_head_kv, s.n_expert, is_70b, imatrix)
                   for i in range(v_count)]) if v_count != n_all else None
    # with n_expert <= 1 its ffn_down rules take the running count of ffn_down tensors (out of n_layer_all): the
    # layer only while every layer has one (Nemotron-H's MLPs are 25 of 56 layers)
    down_count = sum(1 for _, forced, cat in table if cat == "ffn_down" and forced is None)
    down_i = iter(range(down_count)) if s.n_expert <= 1 and down_count != n_all else None
    decided: dict[tuple, tuple[str, int, int]] = {}
    out = []
    for t, forced, cat in table:
        ctx = ctxs[t.layer or 0]
        if v_ctxs is not None and cat == "attn_v" and forced is None:
            ctx = next(v_ctxs)
        elif down_i is not None and cat == "ffn_down" and forced is None:
            ctx = ctxs[next(down_i)]
        key = (forced, cat, t.shape, ctx.i if cat in LAYER_RULED else None)
        hit = decided.get(key)
        if hit is None:
            new = forced
            if new is None and base in FLOAT_TYPES:
                new = base
            elif new is None:
                mixes = mixed or cat in ("output", "token_embd")
                new = _fallback(_mix(cat, t.shape, ctx, tied) if mixes else base, t.shape[0])
            ggml = types[new]
            hit = decided[key] = (new, ggml.block_size, ggml.type_size)
        new, block, size = hit
        out.append(Tensor(t.name, t.shape, new, t.n_elements // block * size, t.layer, t.is_expert, t.n_elements))
    return out


# ---------------------------------------------------------------------------------------------- file size

METADATA_BYTES = 8 * 1024  # general.*, hyperparameters and a chat template (SmolLM2: 1.7 KB, gpt-oss: ~15 KB)
TOKEN_BYTES = 8 + 8 + 4  # string length + ~8 UTF-8 bytes (SmolLM2 7.5, Gemma 3 8.8) + int32 token_type
SCORE_BYTES = 4  # sentencepiece vocabularies store a float32 score per token
MERGE_BYTES = 17  # BPE vocabularies store about one merge per token at 8 + ~9 bytes (SmolLM2: 48,900 x 16.5 B)


def header_bytes(entry: ModelEntry, tensors: list[Tensor]) -> int:
    """Estimated bytes before the tensor data: metadata, tokenizer arrays and the tensor table.

    The tokenizer dominates and is estimated from n_vocab: BPE (gpt2) vocabularies carry tokens, token types
    and merges (~37 B per token), sentencepiece ones tokens, scores and types (~24 B). Calibrated on SmolLM2
    (BPE, 49,152 tokens: 1.77 MB real, 1.82 MB here) and Gemma 3 (SPM, 262,144 tokens: 6.51 MB vs 6.29 MB).
    Llama 3's 280k merges for 128k tokens make it ~3 MB low there: under 0.1 % of an 8B file.
    The tensor table is exact: name, n_dims, dims, type and offset per tensor.
    """
    per_token = TOKEN_BYTES + (SCORE_BYTES if layout_for(entry.architecture).spm_vocab else MERGE_BYTES)
    table = sum(8 + len(t.name) + 4 + 8 * len(t.shape) + 4 + 8 for t in tensors)
    return _pad(24 + METADATA_BYTES + entry.shapes.n_vocab * per_token + table)


def estimated_file_bytes(entry: ModelEntry, quant: str, tensors: list[Tensor] | None = None) -> int:
    """Size of the GGUF file: the header estimate plus every tensor's bytes, each padded to 32-byte alignment."""
    tensors = tensors if tensors is not None else synthesize_tensors(entry, quant)
    return header_bytes(entry, tensors) + sum(_pad(t.n_bytes) for t in tensors)


def scaled_to_file(entry: ModelEntry, all_tensors: list[Tensor], tensors: list[Tensor],
                   file_bytes: int) -> list[Tensor]:
    """A custom mix (a publisher's own per-tensor types, e.g. unsloth's dynamic quants) planned from its file
    size: the quantized tensors are scaled by one factor so that the file adds up to `file_bytes`; float tensors
    (norms, routers, conv kernels) keep their size. `tensors` is the loaded subset of `all_tensors`."""
    fixed = header_bytes(entry, all_tensors) + sum(_pad(t.n_bytes) for t in all_tensors if t.type_name in FLOAT_TYPES)
    quantized = sum(_pad(t.n_bytes) for t in all_tensors if t.type_name not in FLOAT_TYPES)
    if quantized <= 0:
        return tensors
    ratio = (file_bytes - fixed) / quantized
    return [t if t.type_name in FLOAT_TYPES else t._replace(n_bytes=int(t.n_bytes * ratio)) for t in tensors]
