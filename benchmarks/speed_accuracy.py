"""How well the speed model predicts published llama-bench figures, on the rows it was fitted to and on held-out ones.

The rows live in inferform/data/speed.yaml (`points:`, written by `python scripts/fit_speed.py` from
shared/data/llama-bench-published.csv), already turned into the per-device work the planner would pass to
`predict`, so this runs anywhere and always scores the current speed.py against the packaged factors. The
held-out rows are whole hardware configurations the fit never saw: their error is the honest one.
Target: held-out prompt-speed median |error| at most PP_TARGET_PCT (the run fails above it); generation is printed
and guarded by tests/test_speed.py. Rows measured on pre-2025 builds are scored with the fitted
pre2025_prefill_factor of their backend (llama.cpp's prefill has sped up since; the planner predicts the current
build).
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inferform.catalog.files import read_data  # noqa: E402
from inferform.planner.speed import SPEED_DATA, DeviceWork, Efficiency, load_efficiency, predict  # noqa: E402

PP_TARGET_PCT = 15.0


@dataclass
class SpeedPoint:
    """One measured llama-bench figure and the work the planner would describe for it."""

    row: int  # 1-based data row of the CSV
    group: str  # hardware configuration + backend: the unit of the fit/held-out split
    backend: str
    phase: str  # "tg" (generation) | "pp" (prompt processing)
    hardware: str
    model: str
    test: str
    measured_tps: float
    devices: list[DeviceWork]
    split: str = "fit"  # "fit" | "held_out"
    old_build: bool = False  # measured on a pre-2025 llama.cpp build


def packaged_points() -> list[SpeedPoint]:
    """The points stored in speed.yaml."""
    out = []
    for p in read_data(SPEED_DATA.name)["points"]:
        devices = [DeviceWork(name=p["group"].split("|")[0], kind=kind, backend=backend, bandwidth_gbs=bw,
                              fp16_tflops=tflops, bytes_per_token=gb * 1e9, flops_per_token=gflop * 1e9,
                              threads=threads, moe=moe, arch=arch, ubatch=ubatch)
                   for kind, backend, bw, tflops, gb, gflop, threads, moe, arch, ubatch in p["dev"]]
        out.append(SpeedPoint(p["row"], p["group"], devices[0].backend, p["phase"], p["hardware"], p["model"],
                              p["test"], p["tps"], devices, p["set"], bool(p.get("old"))))
    return out


def predicted_tps(p: SpeedPoint, eff: Efficiency) -> float:
    devices = p.devices
    if p.phase == "pp" and p.old_build:
        # an old build's prefill kernels ran at a fitted fraction of today's: as if each token cost more FLOPs
        slow = eff.for_backend(p.backend).pre2025_prefill_factor or 1.0
        devices = [d._replace(flops_per_token=d.flops_per_token / slow) for d in devices]
    pred = predict(devices, eff)
    return pred.generate_tps if p.phase == "tg" else pred.prompt_tps


def error_pct(p: SpeedPoint, eff: Efficiency) -> float:
    """Signed error: + means the model promises more speed than was measured."""
    return (predicted_tps(p, eff) / p.measured_tps - 1) * 100


def summarize(points: list[SpeedPoint], eff: Efficiency) -> dict[str, dict[str, float | int]]:
    """Count, median and mean absolute % error per split ("fit", "held_out") and phase ("tg", "pp")."""
    out: dict[str, dict[str, float | int]] = {}
    for split in ("fit", "held_out"):
        for phase in ("tg", "pp"):
            errs = [abs(error_pct(p, eff)) for p in points if p.split == split and p.phase == phase]
            out[f"{split}_{phase}"] = {"n": len(errs), "median_abs_pct": round(statistics.median(errs), 1),
                                       "mean_abs_pct": round(statistics.fmean(errs), 1)} if errs else {"n": 0}
    return out


def main() -> bool:
    eff = load_efficiency(use_calibration=False)
    points = packaged_points()
    held = sorted((p for p in points if p.split == "held_out"), key=lambda p: (p.phase, p.group, p.row))
    print("\nSpeed model vs published llama-bench figures: held-out hardware (never seen by the fit)")
    print(f"{'hardware':44} {'model':28} {'test':7} {'measured':>9} {'predicted':>9} {'error':>7}")
    for p in held:
        print(f"{p.hardware[:44]:44} {p.model[:28]:28} {p.test:7} {p.measured_tps:9.1f} "
              f"{predicted_tps(p, eff):9.1f} {error_pct(p, eff):+6.1f}%")
    print(f"\n{'set':10} {'phase':12} {'rows':>5} {'median |err|':>13} {'mean |err|':>11}")
    for key, s in summarize(points, eff).items():
        split, phase = key.rsplit("_", 1)
        label = "generation" if phase == "tg" else "prompt"
        if s["n"]:
            print(f"{split:10} {label:12} {s['n']:5} {s['median_abs_pct']:12.1f}% {s['mean_abs_pct']:10.1f}%")
    held_pp = summarize(points, eff)["held_out_pp"]["median_abs_pct"]
    ok = held_pp <= PP_TARGET_PCT
    print(f"prompt speed, held-out median |error| {held_pp:.1f}% (target <= {PP_TARGET_PCT:g}%): "
          f"{'ok' if ok else 'MISSED'}")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
