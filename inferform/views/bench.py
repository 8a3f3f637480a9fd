"""Human rendering of a bench report: measured beside predicted, with where each number came from."""

from __future__ import annotations

from typing import Any

from inferform.bench.figures import BenchReport


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value * 1e3:.0f} ms" if unit == "s" else f"{value:,.1f} {unit}"


def show_bench(report: BenchReport, out: Any) -> None:
    from rich.table import Table

    who = f"{report.setup} at " if report.setup else ""
    out.print(f"[bold]bench[/] {who}{report.endpoint}: model {report.model}, {report.requests} request(s) of "
              f"~{report.prompt_tokens or '?'} prompt tokens and up to {report.max_tokens} generated")
    table = Table("figure", "measured", "predicted", "measured / predicted", "source")
    for f in report.figures:
        ratio = f"{f.ratio:.2f}×" if f.ratio is not None else "-"
        table.add_row(f.label, _num(f.measured, f.unit), _num(f.predicted, f.unit), ratio, f.source)
    out.print(table)
    if not report.setup:
        out.print("[dim]no plan to compare with: give --setup SETUP for predictions[/]")
    for note in report.notes:
        out.print(f"[dim]· {note}[/]")
    if report.calibration:
        c = report.calibration
        changed = ", ".join(f"{k} {v['old']:g} → {v['new']:g}" for k, v in c.factors.items())
        out.print(f"calibrated {c.backend}: {changed}\n  written to {c.file}; `inferform plan` reads it from now on")
