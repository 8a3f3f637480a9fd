"""Engine llama-cpp-python without starting it: argv from the plan, what the planner refuses to plan for it, how
its memory differs from llama-server's, and the venv builder's guards. (The server itself: test_memory_truth.)"""

from __future__ import annotations

import json

import pytest

from inferform.catalog.models import find_model
from inferform.engines import scripts
from inferform.engines.llama_cpp_python import PyServerArgs, argv, ggml_type_id, launch_env
from inferform.errors import InferformError
from inferform.planner.compose import make_plan
from inferform.planner.memory import RunConfig, compute_buffer, estimate, kv_caches
from inferform.planner.model import from_catalog
from inferform.units import GIB
from tests.test_planner import base, machine, setup_from

python_venv = scripts.python_venv()

# `--<field>` options of llama_cpp/server/settings.py (0.3.36) the builder may use
SERVER_FLAGS = {"--model", "--model_alias", "--n_ctx", "--n_batch", "--n_ubatch", "--n_gpu_layers", "--tensor_split",
                "--flash_attn", "--type_k", "--type_v", "--offload_kqv", "--n_threads", "--n_threads_batch",
                "--logits_all", "--embedding", "--cache", "--use_mmap", "--use_mlock", "--verbose", "--host", "--port"}
NEVER = {"--n-cpu-moe", "--n_cpu_moe", "-ot", "--override-tensor", "--kv_overrides", "--api_key", "--cpu-moe"}


def py(extra: str = "", model: str = "smollm2-135m-instruct", use_case: str = "chat", experience: str = "latency"):
    return setup_from(base(model, use_case, experience, "engine: llama-cpp-python\n" + extra))


def flag(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def flags(words: list[str]) -> set[str]:
    assert words[:3] == ["python", "-m", "llama_cpp.server"]
    return {w for w in words[3:] if w.startswith("-")}


def test_argv_carries_every_planned_value():
    plan = make_plan(py("serve: {host: 127.0.0.1, port: 8123}\n"), machine(None, ram_gib=16, cores=4))
    words = plan.engine.argv
    assert plan.engine.name == "llama-cpp-python"
    assert words[:3] == ["python", "-m", "llama_cpp.server"]
    ctx = plan.context
    assert flag(words, "--n_ctx") == str(ctx.n_ctx) and flag(words, "--n_batch") == str(ctx.batch)
    assert flag(words, "--n_ubatch") == str(ctx.ubatch)
    assert flag(words, "--n_gpu_layers") == str(plan.placement.n_gpu_layers)
    assert flag(words, "--n_threads") == flag(words, "--n_threads_batch") == str(ctx.threads)
    assert flag(words, "--flash_attn") == ("true" if ctx.flash_attn else "false")
    assert flag(words, "--type_k") == str(ggml_type_id(ctx.cache_type_k))
    assert flag(words, "--type_v") == str(ggml_type_id(ctx.cache_type_v))
    # the engine listens where the front says; the front owns serve.host:serve.port
    assert flag(words, "--host") == "${INFERFORM_ENGINE_HOST}" and flag(words, "--port") == "${INFERFORM_ENGINE_PORT}"
    assert (plan.serve.host, plan.serve.port, plan.serve.api_key_required) == ("127.0.0.1", 8123, False)
    assert flag(words, "--model").endswith(".gguf") and flag(words, "--model_alias") == "t"
    # memory-relevant server defaults are pinned, not inherited
    assert flag(words, "--logits_all") == "true" and flag(words, "--cache") == "false"
    assert flag(words, "--use_mlock") == "false" and flag(words, "--verbose") == "true"
    assert flags(words) <= SERVER_FLAGS and ctx.parallel == 1
    assert any("llama-cpp-python" in e for e in plan.explanations)


def test_argv_types_and_pins():
    words = argv(PyServerArgs(model_path="m.gguf", n_ctx=4096, n_gpu_layers=10, threads=8, batch=512, ubatch=256,
                              flash_attn=False, cache_type_k="q8_0", cache_type_v="f16", host="0.0.0.0", port=9000,
                              tensor_split=(3.0, 1.0)))
    assert flag(words, "--type_k") == "8" and flag(words, "--type_v") == "1" and flag(words, "--flash_attn") == "false"
    i = words.index("--tensor_split")
    assert words[i + 1: i + 3] == ["3", "1"]
    assert {ggml_type_id(t) for t in ("f32", "f16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0")} == {0, 1, 2, 3, 6, 7, 8}
    with pytest.raises(ValueError):
        ggml_type_id("q3_z")


@pytest.mark.parametrize("text, hw", [
    (base("gpt-oss-120b", "agent", "accuracy", "context: 8192\n"), machine(8, ram_gib=96, bandwidth=272)),
    (base("qwen3-30b-a3b", "chat"), machine(12, ram_gib=64)),
    (base("llama-3.1-8b-instruct", extra="overrides: {quant: Q8_0}\n"), machine(6)),
    (base("gemma-3-4b-it"), machine(None)),
])
def test_no_expert_offload_or_tensor_overrides_ever(text, hw):
    plan = make_plan(setup_from(text + "engine: llama-cpp-python\nserve: {host: 0.0.0.0, port: 8080}\n"), hw)
    assert plan.placement.n_cpu_moe == 0 and plan.placement.tensor_overrides == []
    assert not flags(plan.engine.argv) & NEVER and flags(plan.engine.argv) <= SERVER_FLAGS
    assert "INFERFORM_API_KEY_FILE" not in json.dumps(plan.engine.argv)  # the key goes in through API_KEY


def test_moe_on_a_small_gpu_plans_fewer_layers_not_expert_offload():
    text = base("gpt-oss-120b", "agent", "accuracy", "context: 8192\n")
    hw = machine(8, ram_gib=96, bandwidth=272)
    cpp = make_plan(setup_from(text), hw)
    pyp = make_plan(setup_from(text + "engine: llama-cpp-python\n"), hw)
    assert cpp.placement.n_cpu_moe > 0 and cpp.placement.n_gpu_layers == 37  # llama.cpp: experts to RAM
    assert pyp.placement.n_cpu_moe == 0 and pyp.placement.n_gpu_layers < 37  # llama-cpp-python: whole layers
    assert flag(pyp.engine.argv, "--n_gpu_layers") == str(pyp.placement.n_gpu_layers)
    assert pyp.memory.gpu.total_bytes <= pyp.memory.gpu.budget_bytes


def test_pinning_what_it_cannot_run_is_refused():
    with pytest.raises(InferformError, match="one conversation"):
        make_plan(py("overrides: {parallel: 4}\n"), machine(None))
    with pytest.raises(InferformError, match="MoE experts"):
        make_plan(py("overrides: {n_cpu_moe: 4}\n", model="qwen3-30b-a3b"), machine(12))
    with pytest.raises(ValueError):
        RunConfig(n_ctx=4096, parallel=2, engine="llama-cpp-python")
    with pytest.raises(ValueError):
        RunConfig(n_ctx=4096, n_cpu_moe=3, engine="llama-cpp-python")
    with pytest.raises(ValueError):
        RunConfig(n_ctx=4096, engine="sglang")


def test_throughput_setup_still_one_slot():
    plan = make_plan(py(model="qwen2.5-7b-instruct", use_case="extraction", experience="throughput"), machine(24))
    assert plan.context.parallel == 1 and "-np" not in plan.engine.argv
    assert plan.context.batch == plan.context.ubatch  # output buffer grows to n_batch rows: kept to a ubatch


@pytest.fixture(scope="module")
def gemma():
    return from_catalog(find_model("gemma-3-4b-it"), "Q4_K_M")


def test_memory_differs_from_llama_server_as_documented(gemma):
    m = gemma
    row = m.n_vocab * 4
    cpp_cfg = RunConfig(n_ctx=8192, batch=512, ubatch=512)
    py_cfg = RunConfig(n_ctx=8192, batch=512, ubatch=512, engine="llama-cpp-python")
    cpp, pyv = estimate(m, cpp_cfg), estimate(m, py_cfg)
    assert pyv.host.weights == cpp.host.weights
    # SWA layers: full-size cache (libllama's swa_full default) = llama-server with --swa-full
    assert py_cfg.swa_full and pyv.host.kv > cpp.host.kv
    assert pyv.host.kv == estimate(m, cpp_cfg._replace(swa_full=True)).host.kv
    plan = make_plan(py(model="gemma-3-4b-it"), machine(None))
    assert not any("sliding-window layers keep only" in e for e in plan.explanations)
    assert any("full-context cache" in e for e in plan.explanations)
    assert {c.cells for c in kv_caches(m, py_cfg, m.n_layers)[1]} == {8192}
    # compute: logits reserved for a whole ubatch, not one row per slot
    assert py_cfg.n_outputs_reserve == 512 and cpp_cfg.n_outputs_reserve == 1
    reserve = compute_buffer(m, py_cfg, pyv.host.caches)
    assert reserve >= 512 * row
    assert pyv.host.compute_at_load == reserve + row  # + the output buffer's single row at load
    # later: output buffer grows to n_batch rows, NumPy scores hold n_ctx rows; both counted in host compute
    assert (pyv.host.output_at_load, pyv.host.output, pyv.host.scores) == (row, 512 * row, 8192 * row)
    assert pyv.host.compute == reserve + 512 * row + 8192 * row
    assert pyv.host.total == pyv.host.weights + pyv.host.kv + pyv.host.compute
    # llama-server: nothing of that
    assert (cpp.host.output_at_load, cpp.host.output, cpp.host.scores) == (row, row, 0)
    assert cpp.host.compute_at_load == cpp.host.compute


def test_without_logits_all_nothing_grows(gemma):
    cfg = RunConfig(n_ctx=8192, batch=512, ubatch=512, engine="llama-cpp-python", logits_all=False)
    mem = estimate(gemma, cfg)
    assert mem.host.scores == 0 and mem.host.output == mem.host.output_at_load == gemma.n_vocab * 4
    assert mem.host.compute == mem.host.compute_at_load


def test_gpu_output_layer_reserves_ubatch_logits_on_the_gpu(gemma):
    n = gemma.n_layers
    cfg = RunConfig(n_ctx=4096, batch=512, ubatch=512, n_gpus=1, n_gpu_layers=n + 1, engine="llama-cpp-python")
    cpp = estimate(gemma, cfg._replace(engine="llama.cpp", swa_full=True))
    pyv = estimate(gemma, cfg)
    assert pyv.gpu.weights == cpp.gpu.weights and pyv.gpu.kv == cpp.gpu.kv
    assert pyv.gpu.compute >= 512 * gemma.n_vocab * 4 > cpp.gpu.compute
    assert pyv.host.scores == 4096 * gemma.n_vocab * 4  # NumPy stays in host RAM


def test_long_context_big_vocabulary_can_not_fit_because_of_the_scores_array():
    """gpt-oss-120b at 32k: llama-server fits in 64 GiB with experts in RAM; llama-cpp-python's NumPy scores
    (32768 × 201k vocabulary × 4 B = 25 GiB) do not, and the error says how much is missing."""
    text = base("gpt-oss-120b", "agent", "accuracy", "context: 32768\n")
    hw = machine(8, ram_gib=64, bandwidth=272)
    make_plan(setup_from(text), hw)
    with pytest.raises(InferformError, match="nothing fits"):
        make_plan(setup_from(text + "engine: llama-cpp-python\n"), hw)


def test_context_shrinks_for_the_scores_array():
    """A big vocabulary at long context: the NumPy scores array alone can exceed RAM, so the plan gives less."""
    hw = machine(None, ram_gib=8)
    cpp = make_plan(setup_from(base("gemma-3-270m-it")), hw)
    pyp = make_plan(py(model="gemma-3-270m-it"), hw)
    assert pyp.context.n_ctx < cpp.context.n_ctx
    assert pyp.memory.host.total_bytes <= pyp.memory.host.budget_bytes < 8 * GIB


def test_launch_env_keeps_secrets_out_of_argv_and_drops_host_port(tmp_path):
    key = tmp_path / "key"
    key.write_text("s3cret\n")
    env = launch_env({"HOST": "0.0.0.0", "PORT": "1", "api_key": "old", "PATH": "/bin"}, key)
    assert env == {"PATH": "/bin", "API_KEY": "s3cret"}
    assert "API_KEY" not in launch_env({"API_KEY": "x"})
    key.write_text("")
    with pytest.raises(ValueError):
        launch_env({}, key)


def test_venv_builder_is_idempotent_and_names_missing_tools(tmp_path, monkeypatch):
    home = python_venv.venv_dir("0.3.36", "cpu")
    assert str(home).startswith(str(tmp_path))  # under the isolated XDG_CACHE_HOME
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "python").write_text("")
    (home / python_venv.MARKER).write_text(json.dumps(
        {"package": "llama-cpp-python", "version": "0.3.36", "backend": "cpu", "cmake_args": "",
         "cflags": python_venv.host_cflags()}))

    def no_build(*a, **k):
        raise AssertionError("built again")

    monkeypatch.setattr(python_venv.subprocess, "run", no_build)
    assert python_venv.ensure_llama_cpp_python("0.3.36", "cpu") == home
    monkeypatch.setattr(python_venv.shutil, "which", lambda name: None)
    with pytest.raises(python_venv.PythonEngineError, match="cmake"):
        python_venv.ensure_llama_cpp_python("0.3.36", "cuda")
    monkeypatch.setattr(python_venv.shutil, "which", lambda name: None if name == "nvcc" else f"/usr/bin/{name}")
    with pytest.raises(python_venv.PythonEngineError, match="nvcc"):
        python_venv.ensure_llama_cpp_python("0.3.36", "cuda")
    with pytest.raises(python_venv.PythonEngineError, match="unknown backend"):
        python_venv.ensure_llama_cpp_python("0.3.36", "tpu")


def test_logits_all_off_frees_the_scores_array():
    from inferform.hardware.profile import CpuInfo, HardwareProfile
    from inferform.planner.compose import make_plan
    from inferform.setup.spec import parse_setup
    from inferform.setup.yamlpos import load_yaml
    from inferform.units import GIB

    hw = HardwareProfile(os="linux", arch="x86_64", ram_bytes=64 * GIB,
                         cpu=CpuInfo(name="t", cores=8, threads=8, flags=["avx2"], memory_bandwidth_gbs=60))
    text = ("name: t\nuse_case: chat\nengine: llama-cpp-python\ntarget: {kind: local}\n"
            "model: {id: gemma-3-4b-it, quant: Q4_K_M}\noverrides: {n_ctx: 8192%s}\n")
    on = make_plan(parse_setup(load_yaml(text % "", "t.yaml")), hw)
    off = make_plan(parse_setup(load_yaml(text % ", logits_all: false", "t.yaml")), hw)
    vocab = 262144
    assert on.memory.host.compute_bytes - off.memory.host.compute_bytes >= 8192 * vocab * 4 * 0.9
    assert "--logits_all" in on.engine.argv
    assert off.engine.argv[off.engine.argv.index("--logits_all") + 1] == "false"


def test_native_x86_builds_leave_out_ggml_amx(monkeypatch):
    """Both engines build natively, but without ggml's AMX kernels: their extra weight buffer is not in the memory
    model, and they crashed at the first decode on a sandboxed Xeon (build_llama_cpp.py, NO_AMX). Other machines get
    no flag (GCC on ARM rejects -mno-amx-*)."""
    build = scripts.build()

    monkeypatch.setattr(build.platform, "machine", lambda: "x86_64")
    assert build.arch_flags() == ("-DCMAKE_C_FLAGS=" + build.NO_AMX, "-DCMAKE_CXX_FLAGS=" + build.NO_AMX)
    assert python_venv.host_cflags() == build.NO_AMX == "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    monkeypatch.setattr(build.platform, "machine", lambda: "aarch64")
    assert build.arch_flags() == () and python_venv.host_cflags() == ""
