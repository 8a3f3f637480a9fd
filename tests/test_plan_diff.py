"""The plan diff names exactly what changed."""

from __future__ import annotations

import json

from inferform.views.plan_diff import diff_lines
from tests.conftest import ROOT


def plan_of(cli, text: str, tmp_path, name: str):
    path = tmp_path / name
    path.write_text(text)
    result = cli("plan", str(path), "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_diff(cli, tmp_path):
    demo = (ROOT / "setups" / "demo.yaml").read_text()
    a = plan_of(cli, demo, tmp_path, "a.yaml")
    b = plan_of(cli, demo.replace("context: auto", "context: 4096"), tmp_path, "b.yaml")
    assert diff_lines(None, a)[0].startswith("+ demo: new")
    assert diff_lines(a, a) == ["no changes"]
    changed = diff_lines(a, b)
    assert any(line.startswith("~ context.n_ctx: 8192 → 4096") for line in changed), changed
    assert not any("explanations" in line for line in changed)
