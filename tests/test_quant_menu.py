"""The quant menu practitioners use: the sub-Q4_K_M rows the catalog lists, their published sizes against the
synthesized tensor tables, gpt-oss's native MXFP4 files, and `quant: MXFP4` meaning MXFP4_MOE in a setup."""

import pytest

from inferform.catalog.models import load_models
from inferform.errors import InferformError
from inferform.planner.tensors import estimated_file_bytes, synthesize_tensors
from inferform.setup.spec import normal_quant, parse_setup
from inferform.setup.yamlpos import load_yaml

MODELS = load_models()

# Models that matter on 8-24 GB cards, and a smaller-than-Q4_K_M quant each one lists (from a named publisher).
SMALLER_THAN_Q4_K_M = {
    "qwen3-8b": "IQ4_XS", "qwen3-14b": "IQ4_XS", "qwen3-32b": "IQ4_XS", "qwen3-30b-a3b": "Q3_K_S",
    "qwen3-coder-30b-a3b": "IQ4_XS", "gemma-3-12b-it": "IQ4_XS", "gemma-3-27b-it": "IQ4_XS",
    "mistral-small-3.2-24b": "IQ4_XS", "qwen2.5-coder-14b-instruct": "IQ4_XS",
    "qwen2.5-coder-32b-instruct": "IQ4_XS", "llama-3.3-70b-instruct": "Q2_K", "phi-4": "Q4_K_S",
}
PUBLISHERS = ("Qwen", "bartowski", "unsloth", "ggml-org", "lmstudio-community", "microsoft", "mradermacher",
              "HuggingFaceTB", "google", "mistralai", "openai")

# bartowski/Qwen_Qwen3-32B-GGUF model card "File Size" column (GB = 1e9 bytes, two decimals).
QWEN3_32B_CARD_GB = {"Q4_K_S": 18.77, "IQ4_XS": 17.69, "Q3_K_L": 17.33, "Q3_K_M": 15.97, "IQ3_XXS": 12.82,
                     "Q2_K": 12.34}


@pytest.mark.parametrize(("model", "quant"), sorted(SMALLER_THAN_Q4_K_M.items()))
def test_small_card_models_list_a_smaller_quant(model: str, quant: str) -> None:
    row = MODELS[model].quant(quant)
    assert row is not None, f"{model} lists no {quant}"
    assert row.file.startswith("hf://") and row.file.split("/")[2] in PUBLISHERS
    assert str(row.read) == "2026-12-01" and row.source.startswith("https://")
    assert estimated_file_bytes(MODELS[model], quant) < estimated_file_bytes(MODELS[model], "Q4_K_M")


def test_file_names_carry_their_quant() -> None:
    for m in MODELS.values():
        for q in m.quants:
            if q.file and q.file.startswith("hf://") and q.quant != "MXFP4_MOE":
                name = q.file.rsplit("/", 1)[1]
                assert q.quant.lower() in name.lower(), f"{m.id}: {q.file} is not a {q.quant} file"


@pytest.mark.parametrize(("model", "quant"), [(m.id, q.quant) for m in MODELS.values() for q in m.quants
                                              if q.bytes and not q.recipe])
def test_published_bytes_match_synthesized_tensors(model: str, quant: str) -> None:
    # phi-4's Microsoft file was made by an older llama-quantize (attn_qkv rule): +0.24 %; so were bartowski's
    # Phi-4-mini files of Feb 2025 (up to 0.3 %; their Q5_K_M, 1.2 % off, is a `recipe` row); Gemma 4's 262k vocabulary
    # makes the header estimate 0.1-0.15 % low; unsloth's Qwen3.5-9B Q4_K_M is 0.9 % above the rules (their
    # imatrix-era mix, within the catalog's 1 % self-check); Qwen's own Qwen3-Next Q4_K_M files are 0.16 % below (an
    # older attn_qkv rule, see qwen3_2507.yaml); the rest are within 0.1 %. Custom mixes (`recipe`)
    # are held to their note in tests/test_catalog.py.
    entry = MODELS[model]
    tolerance = {"phi-4": 0.005, "phi-4-mini-instruct": 0.005, "gemma-3-270m-it": 0.005,
                 "smollm2-135m-instruct": 0.005, "gemma-4-12b-it": 0.002, "qwen3.5-9b": 0.01,
                 "qwen3-next-80b-a3b-instruct": 0.002, "qwen3-next-80b-a3b-thinking": 0.002}.get(model, 0.001)
    assert estimated_file_bytes(entry, quant) == pytest.approx(entry.quant(quant).bytes, rel=tolerance)


@pytest.mark.parametrize(("quant", "gb"), sorted(QWEN3_32B_CARD_GB.items()))
def test_qwen3_32b_bartowski_card_sizes(quant: str, gb: float) -> None:
    assert estimated_file_bytes(MODELS["qwen3-32b"], quant) / 1e9 == pytest.approx(gb, abs=0.01)


def test_new_quants_synthesize_with_smaller_expert_types() -> None:
    types = {t.name: t.type_name for t in synthesize_tensors(MODELS["qwen3-coder-30b-a3b"], "IQ4_XS")}
    assert types["blk.0.ffn_up_exps.weight"] == "IQ4_XS"
    low = {t.name: t.type_name for t in synthesize_tensors(MODELS["llama-3.3-70b-instruct"], "Q2_K")}
    assert low["blk.10.ffn_up.weight"] == "Q2_K"


@pytest.mark.parametrize("model", ["gpt-oss-20b", "gpt-oss-120b"])
def test_gpt_oss_lists_its_native_mxfp4_file(model: str) -> None:
    row = MODELS[model].quant("MXFP4_MOE")
    assert row is not None and "mxfp4" in row.file.lower()
    assert MODELS[model].quants[0].quant == "MXFP4_MOE"


def _setup(model: str, overrides: str = "") -> str:
    return (f"name: q\nuse_case: chat\ntarget: {{kind: local}}\nmodel: {model}\n" + overrides)


@pytest.mark.parametrize("spelling", ["MXFP4", "mxfp4", "Mxfp4", "MXFP4_MOE", "mxfp4_moe"])
def test_mxfp4_means_mxfp4_moe(spelling: str) -> None:
    setup = parse_setup(load_yaml(_setup(f"{{id: gpt-oss-20b, quant: {spelling}}}"), "s.yaml"))
    assert setup.model.quant.upper() == "MXFP4_MOE"
    pinned = parse_setup(load_yaml(_setup("{id: gpt-oss-20b}", f"overrides: {{quant: {spelling}}}\n"), "s.yaml"))
    assert pinned.overrides.quant.upper() == "MXFP4_MOE"


def test_other_quants_are_left_alone() -> None:
    assert normal_quant("q4_k_m") == "q4_k_m" and normal_quant("auto") == "auto" and normal_quant(None) is None
    setup = parse_setup(load_yaml(_setup("{id: qwen3-8b, quant: IQ4_XS}"), "s.yaml"))
    assert setup.model.quant == "IQ4_XS"
    with pytest.raises(InferformError):
        parse_setup(load_yaml(_setup("{id: qwen3-8b, quant: 'MX FP4'}"), "s.yaml"))
