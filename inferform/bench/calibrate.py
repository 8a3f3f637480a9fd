"""`inferform bench --calibrate`: turn measured speed into the local calibration file the planner reads.

The planner's speed model (planner/speed.py) predicts time per generated token as bytes ÷ effective bandwidth plus
a fixed per-token cost, and prompt speed as threads × GFLOPS per thread. Scaling the factor that sets the rate by
how far the measurement fell from the prediction makes the same plan predict the measured figure; the per-token
overhead is held fixed, so the bandwidth part absorbs the difference. The file keeps the packaged format
(`factors: {backend: {...}}`) and records what was measured under `measured:` for whoever reads it later.

Only single-backend placements can be calibrated: a split placement's time is a sum over devices, and one
measurement cannot say which device was off. Here that means CPU-only plans.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from inferform.bench.figures import BenchReport, Calibration
from inferform.errors import InferformError

HEADER = ("# Local speed calibration, written by `inferform bench --calibrate`; read by `inferform plan` on this\n"
          "# machine. `factors` override the packaged inferform/data/speed.yaml per backend (same keys);\n"
          "# `measured` says what each backend's factors were derived from.\n")


def decode_scale(predicted_tps: float, measured_tps: float, overhead_ms: float) -> float:
    """How much faster (>1) or slower the effective decode bandwidth is than the model assumed.

    time per token = memory time + overhead, and memory time ∝ 1 / bandwidth; when either side leaves no memory
    time (the fixed cost alone exceeds it) the plain rate ratio is the only thing left to go on.
    """
    if predicted_tps <= 0 or measured_tps <= 0:
        raise ValueError("speeds must be positive")
    predicted_mem = 1e3 / predicted_tps - overhead_ms
    measured_mem = 1e3 / measured_tps - overhead_ms
    if predicted_mem <= 0 or measured_mem <= 0:
        return measured_tps / predicted_tps
    return predicted_mem / measured_mem


def new_factors(backend_factors: Any, predicted: dict[str, float], measured: dict[str, float]) -> dict[str, tuple]:
    """factor → (old, new) for a CPU placement.

    Decode: effective bandwidth is min(spec × bw_eff, threads × gbs_per_thread), so both scale together and the
    minimum scales by exactly the measured ratio. Prompt: the rate is threads × gflops_per_thread.
    """
    f = backend_factors
    out: dict[str, tuple] = {}
    if measured.get("generate_tps") and predicted.get("generate_tps"):
        r = decode_scale(predicted["generate_tps"], measured["generate_tps"], f.token_overhead_ms or 0.0)
        for key in ("bw_eff", "gbs_per_thread"):
            old = getattr(f, key)
            if old:
                out[key] = (old, round(old * r, 4))
    if measured.get("prompt_tps") and predicted.get("prompt_tps") and f.gflops_per_thread:
        old = f.gflops_per_thread
        out["gflops_per_thread"] = (old, round(old * measured["prompt_tps"] / predicted["prompt_tps"], 4))
    return out


def backend_of(plan: dict) -> str:
    if plan.get("target", {}).get("gpus"):
        raise InferformError.single("calibrating a GPU placement is not supported yet: its time splits between the "
                                    "GPU and the CPU, and one measurement cannot say which one was off",
                                    hint="run bench without --calibrate; CPU-only setups can be calibrated")
    return "cpu"


def _read(path: Path) -> dict:
    import yaml

    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise InferformError.single("calibration file is not a mapping", file=str(path),
                                    hint="remove it; bench --calibrate writes a fresh one")
    return data


def check_basis(applied: dict, basis: dict) -> str:
    """The backend to calibrate; refuses when the setup now plans a different server than the one measured."""
    if applied.get("engine", {}).get("argv") != basis.get("engine", {}).get("argv"):
        raise InferformError.single("the setup plans a different server than the one running (its command "
                                    "changed since apply), so the measurement says nothing about the new plan",
                                    hint="apply the setup again, then bench --calibrate")
    return backend_of(basis)


def write_calibration(report: BenchReport, basis: dict, path: Path | None = None) -> Calibration:
    """Derive the factors from the report against `basis` (the setup planned now, with the factors in force now)
    and write them; returns what changed. The planner in this process reads the new file from its next plan on."""
    import yaml

    from inferform.planner.speed import default_calibration_path, load_efficiency
    from inferform.planner.speed_adapter import reload_efficiency

    path = path or default_calibration_path()
    backend = backend_of(basis)
    predicted = {k: float(basis["speed"][k]) for k in ("prompt_tps", "generate_tps")}
    measured = {f.name: f.measured for f in report.figures if f.name in predicted}
    changes = new_factors(load_efficiency().for_backend(backend), predicted, measured)
    if not changes:
        raise InferformError.single("nothing to calibrate: the bench measured neither prompt nor generation speed")
    data = _read(path)
    data.setdefault("factors", {}).setdefault(backend, {}).update({k: new for k, (_, new) in changes.items()})
    data.setdefault("measured", {})[backend] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "setup": report.setup, "model": report.model,
        "endpoint": report.endpoint, "measured": measured, "predicted": predicted,
        "sources": {f.name: f.source for f in report.figures if f.name in predicted}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(HEADER + yaml.safe_dump(data, sort_keys=False))
    try:
        load_efficiency(tmp)  # what we write must read back: a bad file would break every later plan
    except InferformError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    reload_efficiency()
    return Calibration(file=str(path), backend=backend, basis=predicted,
                       factors={k: {"old": old, "new": new} for k, (old, new) in changes.items()})
