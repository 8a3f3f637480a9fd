"""apply --dry-run shows the diff and the rendered files and touches nothing; status/destroy with nothing applied."""

from __future__ import annotations

from inferform.apply.state import state_root
from tests.conftest import ROOT


def test_dry_run_touches_nothing(cli):
    result = cli("apply", str(ROOT / "setups" / "demo.yaml"), "--dry-run")
    assert result.code == 0, result.err
    assert "+ demo: new" in result.out and "--- run.sh" in result.out and "llama-server" in result.out
    assert "dry run: nothing applied" in result.out
    assert not state_root().exists() or not any(state_root().iterdir())


def test_status_and_destroy_with_nothing_applied(cli):
    assert cli("status", "--json").out.strip() == "[]"
    result = cli("destroy", str(ROOT / "setups" / "demo.yaml"))
    assert result.code == 0 and "nothing applied for demo" in result.out
