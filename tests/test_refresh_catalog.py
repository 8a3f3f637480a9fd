"""scripts/refresh_catalog.py against recorded Hub responses (tests/data/hub/README.md says where each came from):
the shapes it maps from config.json are the catalog's own for the same model, files get their bytes (shards
summed), the rewritten file still loads, other rows and the header stay, and --dry-run writes nothing."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import refresh_catalog

from inferform.catalog.models import ModelEntry, find_model

HUB = Path(__file__).parent / "data" / "hub"
MODELS = Path(__file__).resolve().parent.parent / "inferform" / "data" / "models"


class RecordedHub:
    def config(self, repo: str) -> dict:
        return json.loads((HUB / f"{repo.replace('/', '--')}.config.json").read_text())

    def files(self, repo: str) -> list[tuple[str, int, str | None]]:
        return [tuple(row) for row in json.loads((HUB / f"{repo.replace('/', '--')}.files.json").read_text())]


SPEC = {"id": "qwen3.5-35b-a3b", "file": "qwen3_5.yaml", "config_repo": "Qwen/Qwen3.5-35B-A3B",
        "gguf": [{"repo": "unsloth/Qwen3.5-35B-A3B-GGUF", "quants": ["Q4_K_M", "Q8_0", "Q6_K"]}]}


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    shutil.copy(MODELS / "qwen3_5.yaml", tmp_path / "qwen3_5.yaml")
    return tmp_path


def test_config_maps_to_the_catalogs_shapes() -> None:
    arch, shapes = refresh_catalog.shapes_from_config(RecordedHub().config("Qwen/Qwen3.5-35B-A3B"))
    entry = find_model("qwen3.5-35b-a3b")
    assert arch == entry.architecture == "qwen35moe"
    assert ModelEntry.model_fields["shapes"].annotation.model_validate(shapes) == entry.shapes


def test_an_unmapped_model_type_is_reported_not_guessed() -> None:
    with pytest.raises(KeyError, match="no mapping for config model_type 'mamba'"):
        refresh_catalog.shapes_from_config({"model_type": "mamba"})


def test_rows_are_rewritten_with_sizes_and_the_file_still_loads(models_dir: Path) -> None:
    before = (models_dir / "qwen3_5.yaml").read_text()
    problems = refresh_catalog.refresh(RecordedHub(), [SPEC], models_dir)
    assert problems == ["qwen3.5-35b-a3b: no file for unsloth/Qwen3.5-35B-A3B-GGUF: Q6_K"]
    after = (models_dir / "qwen3_5.yaml").read_text()
    assert after.startswith(before.split("models:")[0])  # the header comment survives
    rows = {row["id"]: row for row in yaml.safe_load(after)["models"]}
    old = {row["id"]: row for row in yaml.safe_load(before)["models"]}
    assert rows["qwen3.5-9b"] == old["qwen3.5-9b"]  # other rows untouched
    row = ModelEntry.model_validate(rows["qwen3.5-35b-a3b"])
    assert [(q.quant, q.bytes) for q in row.quants] == [("Q4_K_M", 22016023168), ("Q8_0", 36903139968)]
    assert row.quant("Q4_K_M").recipe, "the custom-mix note is kept"
    assert row.quant("Q8_0").file == "hf://unsloth/Qwen3.5-35B-A3B-GGUF/Qwen3.5-35B-A3B-Q8_0.gguf"
    assert row.source == "https://huggingface.co/Qwen/Qwen3.5-35B-A3B/blob/main/config.json"


def test_shards_are_summed_and_named_by_the_first() -> None:
    rows, missing = refresh_catalog.quant_files(RecordedHub(), "example/Split-GGUF", ["Q8_0", "Q4_K_M"])
    assert missing == []
    q8, q4 = rows
    assert q8["file"] == "hf://example/Split-GGUF/Q8_0/Example-Q8_0-00001-of-00002.gguf" and q8["bytes"] == 1500
    assert "sha256" not in q8 and "all 2 shards" in q8["source"]
    assert q4["bytes"] == 700 and q4["sha256"].startswith("bb")  # IQ4_K_M is not Q4_K_M


def test_dry_run_prints_a_diff_and_writes_nothing(models_dir: Path) -> None:
    before = (models_dir / "qwen3_5.yaml").read_text()
    out = io.StringIO()
    only_q8 = {**SPEC, "gguf": [{"repo": "unsloth/Qwen3.5-35B-A3B-GGUF", "quants": ["Q8_0"]}]}
    refresh_catalog.refresh(RecordedHub(), [only_q8], models_dir, dry_run=True, out=out)
    assert (models_dir / "qwen3_5.yaml").read_text() == before
    assert "--- a/qwen3_5.yaml" in out.getvalue() and "-  - quant: Q4_K_M" in out.getvalue()


def test_the_repo_list_names_catalog_models_and_files() -> None:
    """Each entry refreshes a catalog row, or carries what a new row needs beyond the Hub's (name, params, licence,
    use cases): the models whose architecture inferform sizes but whose files were not read yet."""
    from inferform.catalog.models import load_models

    specs = yaml.safe_load((Path(refresh_catalog.__file__).parent / "catalog_repos.yaml").read_text())["models"]
    for spec in specs:
        assert (MODELS / spec["file"]).is_file()
        if spec["id"] not in load_models():
            assert {"name", "family", "params_b", "active_params_b", "license", "use_cases"} <= set(spec), spec["id"]


@pytest.mark.parametrize(("repo", "model_id"), [("deepseek-ai/DeepSeek-V3-0324", "deepseek-v3-0324"),
                                                ("zai-org/GLM-4.5-Air", "glm-4.5-air")])
def test_mla_and_glm_configs_map_to_the_catalogs_shapes(repo: str, model_id: str) -> None:
    arch, shapes = refresh_catalog.shapes_from_config(RecordedHub().config(repo))
    entry = find_model(model_id)
    assert arch == entry.architecture
    assert ModelEntry.model_fields["shapes"].annotation.model_validate(shapes) == entry.shapes
