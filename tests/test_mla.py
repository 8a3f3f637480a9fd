"""Multi-head latent attention (deepseek2: DeepSeek-V3/R1, Kimi K2), issue 15: the cache is one K row of
kv_lora_rank + rope per token and layer with no V; llama.cpp refuses different K and V types for it; catalog rows
whose file names were not read are planned but not fetched. Figures against llama-server: memory_truth.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.synthetic import write_synthetic_gguf
from inferform.catalog.models import ModelEntry, find_model, param_count
from inferform.gguf import read_gguf
from inferform.planner.memory import RunConfig, estimate
from inferform.planner.model import from_catalog, from_gguf

TINY = dict(n_layers=3, n_embd=256, n_head=4, n_head_kv=4, head_dim_k=48, head_dim_v=32, n_ff=512, n_vocab=512,
            n_expert=4, n_expert_used=2, n_ff_expert=64, n_expert_shared=1, n_ff_shared=64, first_dense_layers=1,
            q_lora_rank=64, kv_lora_rank=64, rope_dim=16)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    entry = ModelEntry.model_validate(dict(
        id="tiny-mla", name="tiny", family="deepseek-v3", architecture="deepseek2", params_b=0.01,
        active_params_b=0.01, license="mit", use_cases=["chat"], context_trained=8192, shapes=TINY, quants=[],
        source="https://example.org/tiny", read="2026-12-02"))
    return write_synthetic_gguf(entry, "Q8_0", tmp_path_factory.mktemp("mla") / "tiny.gguf")


def test_the_cache_is_k_only_of_the_compressed_width(tiny: Path) -> None:
    model = from_gguf(read_gguf(tiny), "Q8_0")
    assert {(layer.n_embd_k_gqa, layer.n_embd_v_gqa) for layer in model.layers} == {(64 + 16, 0)}
    assert model.mla_kv_lora == 64
    mem = estimate(model, RunConfig(n_ctx=4096))
    assert mem.host.kv == 3 * 4096 * (64 + 16) * 2  # f16 K only


def test_catalog_and_file_describe_the_same_model(tiny: Path) -> None:
    real = find_model("deepseek-v3-0324")
    catalog = from_catalog(real, "Q4_K_M")
    assert {(la.n_embd_k_gqa, la.n_embd_v_gqa) for la in catalog.layers} == {(576, 0)}
    assert param_count(real.shapes) == pytest.approx(671.0e9, rel=0.001)


def test_different_k_and_v_types_are_refused(cli, tmp_path: Path, tiny: Path) -> None:
    setup = tmp_path / "s.yaml"
    setup.write_text(f"name: m\nuse_case: chat\ntarget: {{kind: local, hardware: {{gpus: [], ram_gib: 16, "
                     f"cpu: {{cores: 2}}}}}}\nmodel: {{file: {tiny}}}\n"
                     "overrides: {cache_type_k: q8_0, cache_type_v: f16}\n")
    done = cli("plan", str(setup))
    assert done.code == 2 and "keeps V inside K" in done.err and "Traceback" not in done.err, done.err


def test_a_quant_without_a_recorded_file_is_planned_but_not_applied(cli, tmp_path: Path) -> None:
    setup = tmp_path / "ds.yaml"
    setup.write_text("name: ds\nuse_case: chat\ntarget: {kind: local, hardware: {gpus: [], ram_gib: 1024, "
                     "cpu: {cores: 64, memory_bandwidth_gbs: 400}}}\nmodel: {id: deepseek-v3-0324, quant: Q4_K_M}\n")
    planned = cli("plan", str(setup))
    assert planned.code == 0, planned.err
    applied = cli("apply", str(setup), "--dry-run")
    assert applied.code == 2, applied.out + applied.err
    assert "names no file to fetch" in applied.err and "model.file" in applied.err
