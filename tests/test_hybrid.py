"""Hybrid recurrent models (Gated DeltaNet: qwen35 / qwen35moe / qwen3next; LFM2; Nemotron-H), issue 15: which
layers hold a KV cache and which a recurrent state, how big the state is, MTP blocks that are in the file but never
loaded, and the catalog's custom-mix files. The figures against a real llama-server are in
benchmarks/memory_truth.py (and tests/test_memory_truth.py): weights, KV, state and compute each within 3 %."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.synthetic import write_synthetic_gguf
from inferform.catalog.models import ModelEntry, find_model
from inferform.engines.llama_log import parse
from inferform.gguf import read_gguf
from inferform.planner.memory import RunConfig, estimate
from inferform.planner.model import from_catalog, from_gguf, gdn_state

TINY = dict(n_layers=8, n_embd=256, n_head=4, n_head_kv=2, head_dim_k=64, head_dim_v=64, n_ff=0, n_vocab=512,
            n_expert=8, n_expert_used=2, n_ff_expert=128, n_expert_shared=1, n_ff_shared=128,
            full_attention_interval=4, ssm_conv_kernel=4, ssm_state_size=32, ssm_group_count=2,
            ssm_time_step_rank=4, ssm_inner_size=128, attn_output_gate=True, nextn_layers=1)


def _entry(**changes) -> ModelEntry:
    return ModelEntry.model_validate(dict(
        id="tiny-hybrid", name="tiny", family="qwen3.5", architecture="qwen35moe", params_b=0.01, active_params_b=0.01,
        license="apache-2.0", use_cases=["chat"], context_trained=8192, shapes={**TINY, **changes}, quants=[],
        source="https://example.org/tiny", read="2026-12-02"))


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_synthetic_gguf(_entry(), "Q8_0", tmp_path_factory.mktemp("hybrid") / "tiny.gguf")


def test_every_fourth_layer_is_attention_and_the_rest_are_recurrent(tiny_gguf: Path) -> None:
    model = from_gguf(read_gguf(tiny_gguf), "Q8_0")
    assert [layer.recurrent for layer in model.layers] == [True, True, True, False] * 2
    assert model.n_recurrent == 6
    assert all(layer.n_embd_k_gqa == 0 for layer in model.layers if layer.recurrent)
    assert model.layers[3].n_embd_k_gqa == 2 * 64
    # conv state: (d_conv - 1) x (inner + 2 x groups x state); state: state x inner (src/llama-hparams.cpp)
    assert model.recurrent == gdn_state(4, 128, 32, 2)
    assert model.recurrent[:2] == ((4 - 1) * (128 + 2 * 2 * 32), 32 * 128)  # llama_hparams::n_embd_r / n_embd_s


def test_mtp_blocks_are_in_the_file_but_not_in_memory(tiny_gguf: Path) -> None:
    info = read_gguf(tiny_gguf)
    assert any(t.layer == 8 for t in info.tensors), "the synthetic file carries the MTP block"
    model = from_gguf(info, "Q8_0")
    assert model.n_layers == 8 and model.n_nextn == 1
    assert all(t.layer is None or t.layer < 8 for t in model.tensors)
    assert model.weight_bytes < info.tensor_bytes


def test_state_grows_with_slots_not_with_context(tiny_gguf: Path) -> None:
    model = from_gguf(read_gguf(tiny_gguf), "Q8_0")
    one = estimate(model, RunConfig(n_ctx=4096, parallel=1)).host
    long = estimate(model, RunConfig(n_ctx=32768, parallel=1)).host
    four = estimate(model, RunConfig(n_ctx=4096, parallel=4)).host
    per_slot = 6 * model.recurrent.row_bytes
    assert one.state == long.state == per_slot
    assert four.state == 4 * per_slot
    # the KV cache is only the two attention layers' and does grow with the context
    assert one.kv == 2 * 4096 * (2 * 64 + 2 * 64) * 2
    assert long.kv == 8 * one.kv
    assert one.total == one.weights + one.kv + one.state + one.checkpoints + one.compute


def test_context_checkpoints_copy_the_slot_state_or_window(tiny_gguf: Path) -> None:
    """llama-server keeps up to --ctx-checkpoints copies per slot of what a model cannot roll back: the recurrent
    state (measured: 12.563 MiB per checkpoint = the slot's RS buffer on Qwen3.5-35B-A3B shapes) or the sliding
    window's cells (40.012 MiB = 1024 of 1536 SWA cells on Gemma-3-4B shapes); plain attention needs none, and
    llama-cpp-python keeps none."""
    model = from_gguf(read_gguf(tiny_gguf), "Q8_0")
    per_slot = 6 * model.recurrent.row_bytes
    two = estimate(model, RunConfig(n_ctx=4096, parallel=2)).host
    assert two.checkpoints == 2 * 32 * per_slot  # llama-server's default, 32 per slot
    assert estimate(model, RunConfig(n_ctx=4096, parallel=2, ctx_checkpoints=4)).host.checkpoints == 2 * 4 * per_slot
    assert estimate(model, RunConfig(n_ctx=4096, parallel=2, ctx_checkpoints=0)).host.checkpoints == 0
    gemma = from_catalog(find_model("gemma-3-4b-it"), "Q4_K_M")
    mem = estimate(gemma, RunConfig(n_ctx=8192, parallel=1))
    swa = next(c for c in mem.host.caches if c.kind == "swa")
    window_cell = swa.bytes // (swa.cells * swa.streams)
    assert swa.cells > gemma.sliding_window  # the cache holds the window + one ubatch, a checkpoint the window
    assert mem.host.checkpoints == 32 * gemma.sliding_window * window_cell
    assert estimate(gemma, RunConfig(n_ctx=8192, swa_full=True)).host.checkpoints == 0
    llama = from_catalog(find_model("llama-3.1-8b-instruct"), "Q4_K_M")
    assert estimate(llama, RunConfig(n_ctx=8192)).host.checkpoints == 0


def test_state_follows_its_layers_to_the_gpu(tiny_gguf: Path) -> None:
    model = from_gguf(read_gguf(tiny_gguf), "Q8_0")
    mem = estimate(model, RunConfig(n_ctx=4096, n_gpus=1, n_gpu_layers=5))  # output + layers 4..7 on the GPU
    assert mem.first_gpu_layer == 4
    assert mem.gpu.state == 3 * model.recurrent.row_bytes and mem.host.state == 3 * model.recurrent.row_bytes
    assert mem.gpu.kv == mem.host.kv  # one attention layer on each side


def test_ngl_counts_the_mtp_block(cli, tmp_path: Path, tiny_gguf: Path) -> None:
    """llama.cpp counts -ngl over every block in the file (MTP included): all trunk layers on the GPU is
    n_layers + 1 (output) + 1 (the MTP block)."""
    setup = tmp_path / "s.yaml"
    setup.write_text(f"name: h\nuse_case: chat\ntarget: {{kind: local, hardware: {{gpus: [{{name: RTX 4090}}], "
                     f"ram_gib: 32, cpu: {{cores: 8}}}}}}\nmodel: {{file: {tiny_gguf}}}\n")
    done = cli("plan", str(setup), "--json")
    assert done.code == 0, done.err
    import json

    plan = json.loads(done.out)
    assert plan["placement"]["n_gpu_layers"] == 9
    argv = plan["engine"]["argv"]
    assert argv[argv.index("-ngl") + 1] == "10"


def test_a_custom_mix_is_planned_from_its_published_size() -> None:
    entry = find_model("qwen3.5-35b-a3b")
    listed = entry.quant("Q4_K_M")
    assert listed.recipe and listed.bytes
    model = from_catalog(entry, "Q4_K_M")
    assert model.weight_bytes == pytest.approx(listed.bytes, rel=0.005)
    assert any("custom mix" in note for note in model.notes)
    standard = from_catalog(entry, "Q8_0")  # llama-quantize's rules: nothing scaled
    assert not any("custom mix" in note for note in standard.notes)


def test_the_rs_buffer_line_is_read() -> None:
    log = ("llama_memory_recurrent:        CPU RS buffer size =    12.56 MiB\n"
           "llama_kv_cache:        CPU KV buffer size =    17.00 MiB\n")
    side = parse(log).side(gpu=False)
    assert side["state"] == round(12.56 * 1024**2) and side["kv"] == round(17.0 * 1024**2)


def test_lfm2_short_conv_layers_keep_their_last_inputs(tmp_path: Path) -> None:
    """LFM2: a layer without KV heads is a short-convolution layer (lfm2.cpp); its state is the last l_cache - 1
    inputs (n_embd each) per slot, and nothing else (n_embd_s = 0)."""
    from benchmarks.memory_truth import bench_shapes
    from benchmarks.synthetic import truncated
    from inferform.catalog.models import param_count

    entry = bench_shapes()["lfm2-1.2b"]
    assert param_count(entry.shapes) + 68_352 == 1_170_340_608  # the card's count; 68,352 are the norms
    small = truncated(entry, 6).model_copy(update={"shapes": truncated(entry, 6).shapes.model_copy(
        update={"n_embd": 256, "n_head": 4, "n_head_kv": 2, "head_dim_k": 64, "head_dim_v": 64, "n_ff": 512,
                "n_vocab": 512})})
    model = from_gguf(read_gguf(write_synthetic_gguf(small, "Q8_0", tmp_path / "lfm2.gguf")), "Q8_0")
    assert [layer.recurrent for layer in model.layers] == [True, True, False, True, True, False]
    assert model.recurrent[:2] == (256 * (3 - 1), 0)
    mem = estimate(model, RunConfig(n_ctx=4096, parallel=2))
    assert mem.host.state == 4 * 2 * 256 * 2 * 4  # 4 conv layers x 2 slots x n_embd x (l_cache - 1) x f32


def test_nemotron_h_mamba2_layers_hold_state_and_size_the_compute_buffer(tmp_path: Path) -> None:
    """Nemotron-H: a layer with neither KV heads nor an FFN is Mamba-2 (nemotron-h.cpp). Its state is the conv
    inputs of x, B and C plus a d_state x d_inner matrix per slot; its scan, not the MLP, sets the compute buffer,
    which also holds one scan state per slot (compute.compute_buffer; measured in benchmarks/memory_truth.py)."""
    from benchmarks.memory_truth import bench_shapes
    from benchmarks.synthetic import truncated

    entry = truncated(bench_shapes()["nemotron-nano-9b-v2"], 16)
    small = entry.model_copy(update={"shapes": entry.shapes.model_copy(update={
        "n_embd": 256, "n_head": 4, "n_head_kv": 2, "head_dim_k": 64, "head_dim_v": 64, "n_ff": 512, "n_vocab": 512,
        "ssm_inner_size": 512, "ssm_time_step_rank": 8, "ssm_state_size": 32, "ssm_group_count": 2})})
    model = from_gguf(read_gguf(write_synthetic_gguf(small, "Q8_0", tmp_path / "nemotron.gguf")), "Q8_0")
    pattern = entry.shapes.layer_pattern[:16]
    assert [layer.recurrent for layer in model.layers] == [c == "M" for c in pattern]
    assert [layer.n_embd_k_gqa > 0 for layer in model.layers] == [c == "*" for c in pattern]
    assert model.recurrent == gdn_state(4, 512, 32, 2)
    one, two = (estimate(model, RunConfig(n_ctx=4096, parallel=n, ubatch=512)) for n in (1, 2))
    assert one.host.state == pattern.count("M") * 4 * (3 * (512 + 2 * 2 * 32) + 32 * 512)
    mask, mlp_rows = 4096 * 512 * 2, 512 * 4 * (3 * 512 + 3 * 256)  # the FA mask; the FFN rule's rows
    assert one.host.compute - mask > 1.5 * mlp_rows  # 5.25 x d_inner per token outweighs the MLP's 3 x n_ff here
    # a second slot adds its scan state (d_state x d_inner f32) and its output row (n_vocab f32), and splits the
    # mask by stream
    assert two.host.compute - one.host.compute == 32 * 512 * 4 + 512 * 4 - (4096 - 2048) * 512 * 2


def test_the_plan_gives_checkpoints_what_the_configuration_leaves_free() -> None:
    """Unpinned, llama-server's 32 checkpoints per slot when host RAM allows, fewer when it does not (never a
    smaller model for them); pinned, exactly what the setup says; always passed as --ctx-checkpoints."""
    from inferform.hardware.profile import CpuInfo, HardwareProfile
    from inferform.planner.compose import make_plan
    from inferform.setup.spec import parse_setup
    from inferform.setup.yamlpos import load_yaml
    from inferform.units import GIB

    def plan(ram_gib: float, extra: str = ""):
        hw = HardwareProfile(os="linux", arch="x86_64", ram_bytes=int(ram_gib * GIB),
                             cpu=CpuInfo(name="t", cores=8, threads=8, flags=["avx2"], memory_bandwidth_gbs=60))
        text = ("name: t\nuse_case: chat\ntarget: {kind: local}\nmodel: {id: gemma-3-4b-it, quant: Q4_K_M}\n"
                f"overrides: {{n_ctx: 8192{extra}}}\n")
        return make_plan(parse_setup(load_yaml(text, "t.yaml")), hw)

    def flag(p) -> int:
        return int(p.engine.argv[p.engine.argv.index("--ctx-checkpoints") + 1])

    roomy, tight, pinned = plan(64), plan(6.8), plan(64, ", ctx_checkpoints: 3")
    assert flag(roomy) == 32 and roomy.memory.host.checkpoint_bytes > 0
    per = roomy.memory.host.checkpoint_bytes // 32
    assert 0 < flag(tight) < 32 and tight.memory.host.checkpoint_bytes == flag(tight) * per
    assert tight.model.id == roomy.model.id and tight.context.n_ctx == roomy.context.n_ctx
    assert tight.memory.host.total_bytes <= tight.memory.host.budget_bytes
    assert flag(pinned) == 3 and pinned.memory.host.checkpoint_bytes == 3 * per
