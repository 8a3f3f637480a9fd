"""Terraform-style diff between the applied plan and a new one: what would change, field by field."""

from __future__ import annotations

from typing import Any

IGNORED = {"explanations", "knobs", "alternatives"}


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


def _flags(argv: list[str]) -> dict[str, str | None]:
    """An engine command line as flag → value (None for a bare switch), the program itself under ""."""
    out: dict[str, str | None] = {"": argv[0] if argv else None}
    i = 1
    while i < len(argv):
        flag = argv[i]
        value = argv[i + 1] if i + 1 < len(argv) else None
        takes = value is not None and not (value.startswith("-") and not value.lstrip("-").replace(".", "").isdigit())
        out[flag] = value if takes else None
        i += 2 if takes else 1
    return out


def _argv_lines(key: str, old: list[str], new: list[str]) -> list[str]:
    """A changed command line as the flags that changed, as terraform shows changed attributes of a resource."""
    before, after = _flags(old), _flags(new)
    lines = []
    for flag in [*before, *(f for f in after if f not in before)]:
        name = f"{key} {flag}".rstrip()
        if flag not in after:
            lines.append(f"- {name}" + (f" {before[flag]}" if before[flag] is not None else ""))
        elif flag not in before:
            lines.append(f"+ {name}" + (f" {after[flag]}" if after[flag] is not None else ""))
        elif before[flag] != after[flag]:
            lines.append(f"~ {name}: {before[flag]} → {after[flag]}")
    return lines


def diff_lines(old: dict | None, new: dict) -> list[str]:
    """'+ key: value' for a first apply; '~ key: old → new' per changed leaf; 'no changes' when equal. A command
    line (a list of strings under `argv`) is diffed flag by flag."""
    if old is None:
        return [f"+ {new['setup']}: new ({new['model']['id'] or new['model']['file']} {new['model']['quant']}, "
                f"{new['engine']['name']})"]
    before, after = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) == after.get(key):
            continue
        if key.endswith("argv") and isinstance(before.get(key), list) and isinstance(after.get(key), list):
            lines.extend(_argv_lines(key, before[key], after[key]))
        else:
            lines.append(f"~ {key}: {before.get(key)!r} → {after.get(key)!r}")
    return lines or ["no changes"]


def group_diff_lines(old: dict | None, new: Any) -> list[str]:
    """A group's diff, member by member, saying what restarts: a member whose preset section changed restarts
    (the router reloads the preset); a changed router argv or address restarts the router and every member."""
    members = {m.name: m.preset for m in new.members}
    if old is None or old.get("kind") != "group":
        return [f"+ group {new.setup}: members {', '.join(members)}; router --models-max "
                f"{new.residency.max_loaded}"]
    before = {m["name"]: m.get("preset", {}) for m in old.get("members", [])}
    lines = []
    if old.get("engine", {}).get("argv") != new.engine.argv or old.get("serve") != new.serve.model_dump(mode="json"):
        lines += _argv_lines("router", old.get("engine", {}).get("argv", []), new.engine.argv)
        lines.append("  the router restarts, and with it every member")
    for name, section in members.items():
        if name not in before:
            lines.append(f"+ member {name} (loads on its first request)")
        elif before[name] != section:
            changed = sorted(k for k in set(section) | set(before[name]) if section.get(k) != before[name].get(k))
            lines.append(f"~ member {name} restarts: " + ", ".join(
                f"{k} {before[name].get(k, '-')} -> {section.get(k, '-')}" for k in changed))
    for name in before:
        if name not in members:
            lines.append(f"- member {name} (stopped and removed)")
    return lines or [f"no changes in group {new.setup}"]
