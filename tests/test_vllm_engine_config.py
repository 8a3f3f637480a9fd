"""vLLM's own argument parser and engine-config code accept the planned argv for big models (shipped config.json
files, no GPU, no weights), and vLLM's per-GPU KV bytes per token equal the plan's. Needs the vLLM venv (installed
once and cached, ~2.5 min): marked e2e."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REAL_CACHE

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = Path(__file__).parent / "data" / "vllm_configs"
pytestmark = pytest.mark.e2e

# (config folder, catalog model, GPUs, GPU, experience, expected layout (tp, pp, dp)): TP 4 and 8 for the 70B, the
# 235B MoE on one 8-GPU node, DeepSeek's MLA MoE data + expert parallel, gpt-oss-120b on one GPU and on two
CASES = [
    ("llama-3.3-70b", "llama-3.3-70b-instruct", 4, "H100 SXM", "throughput", (4, 1, 1)),
    ("llama-3.3-70b", "llama-3.3-70b-instruct", 8, "H100 SXM", "latency", (8, 1, 1)),
    ("qwen3-235b-a22b", "qwen3-235b-a22b", 8, "H200", "throughput", None),
    ("deepseek-v3", "deepseek-v3-0324", 8, "H200", "throughput", (1, 1, 8)),
    ("gpt-oss-120b", "gpt-oss-120b", 1, "H100 SXM", "throughput", (1, 1, 1)),
    ("gpt-oss-120b", "gpt-oss-120b", 2, "H100 SXM", "latency", (2, 1, 1)),
]


def vllm_python() -> Path:
    """The vLLM venv's python, installed into the real cache once (roles/inferform_engine/files/vllm_venv.py)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(REAL_CACHE.parent)}
    script = ROOT / "roles" / "inferform_engine" / "files" / "vllm_venv.py"
    done = subprocess.run([sys.executable, str(script), "--backend", "cpu"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip()) / "bin" / "python"


def engine_args(argv: list[str], config_dir: Path) -> list[str]:
    """The plan's argv after the module, with --model at the config folder and --host/--port dropped."""
    args = argv[3:]
    out, skip = [], False
    for word in args:
        if skip:
            skip = False
            continue
        if word in ("--host", "--port", "--model"):
            skip = True
            if word == "--model":
                out += ["--model", str(config_dir)]
            continue
        out.append(word)
    return out


def test_vllm_accepts_the_planned_argv_and_its_kv_per_token_is_the_plans(cli, write, tmp_path) -> None:
    cases, plans = [], {}
    for i, (folder, model, gpus, gpu, experience, _) in enumerate(CASES):
        config_dir = tmp_path / f"cfg{i}"
        config_dir.mkdir()
        (config_dir / "config.json").write_text((CONFIGS / folder / "config.json").read_text())
        path = write(f"""
name: big{i}
use_case: chat
experience: {experience}
engine: vllm
target:
  kind: local
  hardware: {{gpus: [{{name: {gpu}, count: {gpus}}}], ram_gib: 1024}}
model: {{id: {model}}}
""", f"s{i}.yaml")
        done = cli("plan", path, "--json")
        assert done.code == 0, done.err
        plans[f"c{i}"] = json.loads(done.out)
        cases.append({"name": f"c{i}", "config_dir": str(config_dir),
                      "args": engine_args(plans[f"c{i}"]["engine"]["argv"], config_dir)})
    cases.append({"name": "bad-tp", "config_dir": cases[0]["config_dir"],
                  "args": [*cases[0]["args"], "--tensor-parallel-size", "3"]})
    done = subprocess.run([str(vllm_python()), str(ROOT / "tests" / "fixtures" / "vllm_engine_config.py")],
                          input=json.dumps(cases), capture_output=True, text=True, timeout=600,
                          env={**os.environ, "VLLM_TARGET_DEVICE": "cpu"})
    lines = [line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("INFERFORM-ANSWER ")]
    answers = {a["name"]: a for a in map(json.loads, lines)}
    assert len(answers) == len(cases), done.stderr[-3000:]
    for i, (folder, *_, layout) in enumerate(CASES):
        got, v = answers[f"c{i}"], plans[f"c{i}"]["vllm"]
        assert got["accepted"], (folder, got.get("error"))
        assert got["kv_bytes_per_token"] == v["kv_bytes_per_token"], (folder, got, v["kv_bytes_per_token"])
        assert (got["tp"], got["pp"], got["dp"]) == (v["tensor_parallel"], v["pipeline_parallel"],
                                                    v["data_parallel"])
        assert got["max_model_len"] == v["max_model_len"] and got["max_num_seqs"] == v["max_num_seqs"]
        if layout is not None:
            assert (v["tensor_parallel"], v["pipeline_parallel"], v["data_parallel"]) == layout, folder
    assert not answers["bad-tp"]["accepted"] and "divisible" in answers["bad-tp"]["error"]
