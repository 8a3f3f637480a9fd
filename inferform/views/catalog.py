"""Human renderings (rich) of the objects the CLI prints; --json output never comes through here."""

from typing import Any

from inferform.catalog.models import ModelEntry, param_count
from inferform.hardware.profile import HardwareProfile
from inferform.units import GIB


def gib(n: int | float | None) -> str:
    return "?" if n is None else f"{n / GIB:.1f} GiB"


def show_hardware(profile: HardwareProfile, out: Any) -> None:
    from rich.table import Table

    cpu = profile.cpu
    flags = ", ".join(cpu.flags) or "none detected"
    bw = f", memory {cpu.memory_bandwidth_gbs:g} GB/s" if cpu.memory_bandwidth_gbs else ""
    out.print(f"[bold]CPU[/]  {cpu.name} — {cpu.cores} cores / {cpu.threads} threads ({flags}){bw}")
    avail = f" ({gib(profile.ram_available_bytes)} available)" if profile.ram_available_bytes else ""
    out.print(f"[bold]RAM[/]  {gib(profile.ram_bytes)}{avail}   [dim]{profile.os}/{profile.arch}[/]")
    if not profile.gpus:
        out.print("[bold]GPU[/]  none — inference runs on the CPU")
    else:
        table = Table("#", "GPU", "VRAM", "free", "bandwidth", "FP16", "backend", "driver / CC", "from")
        for g in profile.gpus:
            table.add_row(str(g.index), g.name, gib(g.vram_bytes), gib(g.free_vram_bytes),
                          f"{g.bandwidth_gbs:g} GB/s" if g.bandwidth_gbs else "?",
                          f"{g.fp16_tflops:g} TFLOPS" if g.fp16_tflops else "?", g.backend,
                          " / ".join(x for x in (g.driver, g.compute_capability) if x) or "-", g.origin)
        out.print(table)
    for note in profile.notes:
        out.print(f"[dim]· {note}[/]")


def model_row(entry: ModelEntry) -> dict[str, Any]:
    """The JSON shape of one catalog model for `models --json`."""
    data = entry.model_dump(mode="json")
    data["params_from_shapes"] = param_count(entry.shapes)
    return data


def show_models(entries: list[ModelEntry], out: Any) -> None:
    from rich.table import Table

    table = Table("id", "arch", "params", "ctx", "licence", "use cases", "quants (file size)")
    for e in entries:
        params = f"{e.params_b:g}B" if e.active_params_b == e.params_b else f"{e.params_b:g}B/{e.active_params_b:g}B"
        quants = ", ".join(f"{q.quant} {q.bytes / 1e9:.1f}G" if q.bytes else q.quant for q in e.quants)
        table.add_row(e.id, e.architecture, params, f"{e.context_trained // 1024}k", e.license,
                      ", ".join(e.use_cases), quants)
    out.print(table)
    out.print(f"[dim]{len(entries)} models; params total/active for MoE; sizes in GB as published[/]")


def show_fits(rows: list[dict[str, Any]], out: Any) -> None:
    from rich.table import Table

    if not rows:
        out.print("nothing in the catalog fits this target")
        return
    table = Table("#", "model", "quant", "context", "placement", "GPU GiB", "RAM GiB", "gen tok/s", "aggregate",
                  "prompt tok/s", "quality", "objective")
    for i, r in enumerate(rows, 1):
        quality = "?" if r["quality"] is None else f"{r['quality']:.1f}"
        objective = f"{r['objective']:g}" + ("" if r["above_floor"] else " (below floor)")
        table.add_row(str(i), r["id"], r["quant"], f"{r['context']:,} × {r['parallel']}", r["where"],
                      f"{r['gpu_bytes'] / GIB:.1f}", f"{r['host_bytes'] / GIB:.1f}", f"{r['generate_tps']:.1f}",
                      f"{r['aggregate_generate_tps']:.1f}", f"{r['prompt_tps']:.0f}", quality, objective)
    out.print(table)
