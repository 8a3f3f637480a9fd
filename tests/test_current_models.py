"""Issue 15: "which model should I run" is answered from this year's list. On a 16 GB card + 64 GB RAM and on a
24 GB card, `models --fits` offers a current-generation model (Qwen3.5 / 3.6, Qwen3-Coder-Next, DeepSeek-V3,
Llama 4, GLM-4.5) in its top five for coding, chat and agent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CURRENT = ("qwen3.5-", "qwen3.6-", "qwen3-coder-next", "deepseek-v3", "llama-4-", "glm-4.5", "gemma-4-")
CARDS = {"16 GB + 64 GB RAM": "RTX 4060 Ti 16GB", "24 GB": "RTX 4090"}


@pytest.mark.parametrize("use_case", ["coding", "chat", "agent"])
@pytest.mark.parametrize("card", sorted(CARDS))
def test_current_models_lead_the_fits(cli, tmp_path: Path, use_case: str, card: str) -> None:
    setup = tmp_path / "s.yaml"
    setup.write_text(f"name: fits\nuse_case: {use_case}\ntarget:\n  kind: local\n  hardware: {{gpus: [{{name: "
                     f"{CARDS[card]}}}], ram_gib: 64, cpu: {{cores: 16, memory_bandwidth_gbs: 80}}}}\n")
    done = cli("models", "--fits", str(setup), "--json")
    assert done.code == 0, done.err
    rows = json.loads(done.out)
    ids = [row["id"] for row in rows[:5]]
    assert any(model_id.startswith(CURRENT) for model_id in ids), (card, use_case, ids)


def test_the_catalog_lists_the_new_families(cli) -> None:
    done = cli("models", "--json")
    assert done.code == 0, done.err
    models = json.loads(done.out)
    archs = {m["architecture"] for m in models}
    assert {"qwen35", "qwen35moe", "qwen3next", "deepseek2", "llama4", "glm4moe", "gemma4"} <= archs
    assert len(models) >= 48
