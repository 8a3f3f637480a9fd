"""apply --dry-run: the plan diff, the rendered files and Ansible's check+diff run, touching nothing; status
and destroy with nothing applied."""

from __future__ import annotations

import os
from pathlib import Path

from inferform.state import state_root
from tests.conftest import ROOT


def test_dry_run_touches_nothing(cli):
    result = cli("apply", str(ROOT / "setups" / "demo.yaml"), "--dry-run")
    assert result.code == 0, result.err
    assert "+ demo: new" in result.out and "--- run.sh" in result.out and "llama-server" in result.out
    assert "dry run: nothing applied" in result.out
    # Ansible ran in check+diff mode: it names what a real apply would do here, and did none of it
    assert "--- ansible --check --diff:" in result.out and "check mode stopped early" not in result.out
    assert "~ Build llama-server on the target, or reuse the cached build" in result.out, result.out  # empty cache
    assert "~ Create the model directory" in result.out, result.out
    assert not state_root().exists() or not any(state_root().iterdir())
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "inferform"
    assert not (cache / "llama.cpp").exists() and not (cache / "models").exists(), "check mode built or fetched"


def test_status_and_destroy_with_nothing_applied(cli):
    assert cli("status", "--json").out.strip() == "[]"
    result = cli("destroy", str(ROOT / "setups" / "demo.yaml"))
    assert result.code == 0 and "nothing applied for demo" in result.out


def test_a_groups_dry_run_touches_nothing(cli):
    result = cli("apply", str(ROOT / "setups" / "two-small.yaml"), "--dry-run")
    assert result.code == 0, result.err
    assert "+ group two-small: members smol, gemma" in result.out and "--- models.ini" in result.out
    assert "--- ansible --check --diff:" in result.out and "check mode stopped early" not in result.out
    assert "~ Build llama-server on the target, or reuse the cached build" in result.out, result.out
    assert "~ Create the model directory" in result.out and "dry run: nothing applied" in result.out
    assert not state_root().exists() or not any(state_root().iterdir())
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "inferform"
    assert not (cache / "llama.cpp").exists() and not (cache / "models").exists(), "check mode built or fetched"
