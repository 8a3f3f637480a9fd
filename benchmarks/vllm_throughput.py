"""Predicted vs published vLLM aggregate output throughput (inferform/data/vllm_published.yaml).

Each published run is planned as a setup with engine vllm on the run's GPUs, serve.concurrency = the run's
concurrency and a context that holds its longest request; the plan's throughput at that request shape is printed
beside the published figure, with the error. No pass/fail target: the speed factors (data/vllm_speed.yaml) are
provisional, and GPU speed cannot be checked without a GPU.

    python -m benchmarks.vllm_throughput
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def rows() -> list[dict]:
    from inferform.catalog.files import read_data
    from inferform.hardware.detect import detect
    from inferform.hardware.resolve import resolve_hardware
    from inferform.planner.vllm_plan import make_vllm_plan
    from inferform.setup.spec import load_setup_located

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in read_data("vllm_published.yaml")["points"]:
            context = p["prompt_tokens"] + p["output_tokens"] + 1024
            path = Path(tmp) / f"{p['id']}.yaml"
            path.write_text(f"name: {p['id']}\nuse_case: chat\nexperience: throughput\nengine: vllm\n"
                            f"target: {{kind: local, hardware: {{gpus: [{{name: {p['gpu']}, count: {p['gpus']}}}], "
                            f"ram_gib: 512}}}}\nmodel: {{id: {p['model']}}}\ncontext: {context}\n"
                            f"serve: {{concurrency: {p['concurrency']}}}\n")
            spec, located = load_setup_located(str(path))
            hw = resolve_hardware(spec, located, detect)
            plan = make_vllm_plan(spec, hw, str(path), workload=(p["prompt_tokens"], p["output_tokens"]))
            predicted = plan.speed.aggregate_generate_tps or 0.0
            out.append({**p, "predicted": predicted, "error_pct": (predicted / p["output_tps"] - 1) * 100,
                        "layout": f"TP{plan.vllm.tensor_parallel}×DP{plan.vllm.data_parallel}"})
    return out


def main() -> bool:
    print("vLLM aggregate output throughput: predicted vs published (factors provisional; GPU unverified here)")
    results = rows()
    for r in results:
        print(f"  {r['id']:<26} {r['gpus']}× {r['gpu']:<9} {r['layout']:<7} c={r['concurrency']:<4} "
              f"{r['prompt_tokens']}/{r['output_tokens']} tok: predicted {r['predicted']:8.1f}  published "
              f"{r['output_tps']:8.1f} tok/s  ({r['error_pct']:+.0f} %)  {r['source']}")
    errors = [abs(r["error_pct"]) for r in results]
    print(f"  median |error| {statistics.median(errors):.0f} % over {len(errors)} points")
    return True


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
