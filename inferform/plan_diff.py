"""Terraform-style diff between the applied plan and a new one: what would change, field by field."""

from __future__ import annotations

from typing import Any

IGNORED = {"explanations", "knobs", "_render_dir"}


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in IGNORED:
                continue
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        out = {}
        for i, value in enumerate(data):
            out.update(_flatten(value, f"{prefix}[{i}]"))
        return out
    return {prefix: data}


def diff_lines(old: dict | None, new: dict) -> list[str]:
    """'+ key: value' for a first apply; '~ key: old → new' per changed leaf; 'no changes' when equal."""
    if old is None:
        return [f"+ {new['setup']}: new ({new['model']['id'] or new['model']['file']} {new['model']['quant']}, "
                f"{new['engine']['name']})"]
    before, after = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            lines.append(f"~ {key}: {before.get(key)!r} → {after.get(key)!r}")
    return lines or ["no changes"]
