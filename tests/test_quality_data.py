"""inferform/data/quality.yaml: every score is sourced, in range, keyed by catalog ids and use cases, and the
orderings the planner relies on come out of the numbers themselves."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

import inferform
from inferform.catalog.models import load_models

QUALITY = Path(inferform.__file__).parent / "data" / "quality.yaml"
USE_CASES = {"chat", "coding", "autocomplete", "writing", "extraction", "agent", "rag"}
ENTRY_KEYS = {"score", "basis", "source", "read"}


@pytest.fixture(scope="module")
def data() -> dict:
    return yaml.safe_load(QUALITY.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def by_id(data) -> dict[str, dict]:
    return {m["id"]: m for m in data["models"]}


def entries(data):
    """(where, entry) for every general and per-use-case score."""
    for m in data["models"]:
        if "general" in m:
            yield f"{m['id']}.general", m["general"]
        for uc, entry in (m.get("scores") or {}).items():
            yield f"{m['id']}.{uc}", entry


def general(by_id, model_id: str) -> float:
    return by_id[model_id]["general"]["score"]


def score(by_id, model_id: str, use_case: str) -> float:
    return by_id[model_id]["scores"][use_case]["score"]


def test_top_level_shape(data):
    assert set(data) == {"scale", "use_cases", "models", "reasoning_always"}
    reasoning = data["reasoning_always"]
    assert reasoning["models"] and set(reasoning["models"]) <= set(load_models())
    assert reasoning["source"].startswith("https://") and reasoning["basis"] and reasoning["read"]
    for extra in reasoning.get("also", []):  # further models named by their own cards
        assert extra["source"].startswith("https://") and extra["basis"] and extra["read"]
    assert isinstance(data["scale"], str) and data["scale"].strip()
    assert set(data["use_cases"]) == USE_CASES
    for uc, spec in data["use_cases"].items():
        assert spec["benchmarks"] and all(isinstance(b, str) and b for b in spec["benchmarks"]), uc
        assert isinstance(spec["why"], str) and spec["why"].strip(), uc


def test_ids_are_catalog_models_and_unique(data):
    catalog = load_models()
    ids = [m["id"] for m in data["models"]]
    assert len(ids) == len(set(ids)), "duplicate model ids"
    unknown = sorted(set(ids) - set(catalog))
    assert not unknown, f"not in the model catalog: {unknown}"


def test_every_model_has_some_score(data):
    for m in data["models"]:
        assert set(m) <= {"id", "general", "scores"}, m["id"]
        assert "general" in m or m.get("scores"), f"{m['id']} has no score at all: leave it out instead"


def test_use_case_keys(data):
    for m in data["models"]:
        bad = set(m.get("scores") or {}) - USE_CASES
        assert not bad, f"{m['id']}: unknown use cases {sorted(bad)}"


def test_every_entry_is_sourced_and_in_range(data):
    seen = 0
    for where, entry in entries(data):
        seen += 1
        assert set(entry) == ENTRY_KEYS, where
        assert isinstance(entry["score"], float), f"{where}: score must be a float"
        assert 0.0 <= entry["score"] <= 100.0, where
        assert isinstance(entry["basis"], str) and len(entry["basis"]) > 10, where
        assert entry["source"].startswith(("https://", "http://")), where
        read = entry["read"]
        if isinstance(read, str):
            read = datetime.date.fromisoformat(read)
        assert isinstance(read, datetime.date) and read <= datetime.date.today(), where
    assert seen > 50


def test_basis_quotes_the_score(data):
    # Every basis starts with the benchmark name and the number as read; the stored score must be that number.
    for where, entry in entries(data):
        s = entry["score"]
        assert f"{s:g}" in entry["basis"] or f"{s:.1f}" in entry["basis"], where


def test_big_models_above_small_on_general(by_id):
    assert general(by_id, "llama-3.3-70b-instruct") > general(by_id, "llama-3.2-1b-instruct") + 20
    assert general(by_id, "gpt-oss-120b") > general(by_id, "gemma-3-1b-it") + 20
    assert general(by_id, "gpt-oss-120b") > general(by_id, "gpt-oss-20b")


def test_tiny_models_below_mid_size_models(by_id):
    tiny = ["llama-3.2-1b-instruct", "llama-3.2-3b-instruct", "gemma-3-1b-it", "gemma-3-270m-it",
            "smollm2-1.7b-instruct"]
    mid = ["qwen2.5-7b-instruct", "llama-3.1-8b-instruct", "qwen3-8b", "mistral-nemo-12b-instruct", "phi-4",
           "qwen3-14b", "gemma-3-27b-it", "qwen3-30b-a3b", "qwen3-32b"]
    assert max(general(by_id, m) for m in tiny) < min(general(by_id, m) for m in mid)
    # instruction following (extraction) says the same for the <=2B models (Llama-3.2-3B's 77.4, an average of
    # four IFEval metrics, is above Phi-4's strict-prompt 62.1, so it is left out of this check)
    tiny_ex = [score(by_id, m, "extraction") for m in tiny if m != "llama-3.2-3b-instruct"]
    mid_ex = [score(by_id, m, "extraction") for m in mid if "extraction" in by_id[m].get("scores", {})]
    assert len(mid_ex) >= 6 and max(tiny_ex) < min(mid_ex)


def test_agent_orderings_from_bfcl(by_id):
    # one leaderboard snapshot, one harness
    assert score(by_id, "qwen3-32b", "agent") > score(by_id, "qwen3-30b-a3b", "agent")
    assert score(by_id, "qwen3-30b-a3b", "agent") > score(by_id, "gemma-3-27b-it", "agent")
    assert score(by_id, "llama-3.1-8b-instruct", "agent") > score(by_id, "llama-3.2-1b-instruct", "agent") + 20
    assert score(by_id, "gpt-oss-120b", "agent") > score(by_id, "gpt-oss-20b", "agent")


def test_coding_orderings_from_one_table(by_id):
    # LiveCodeBench v5, all from the Qwen3 report's tables
    assert score(by_id, "qwen3-32b", "coding") > score(by_id, "qwen3-30b-a3b", "coding")
    assert score(by_id, "qwen3-30b-a3b", "coding") > score(by_id, "qwen3-8b", "coding")
    assert score(by_id, "qwen3-8b", "coding") > score(by_id, "llama-3.1-8b-instruct", "coding")
    assert score(by_id, "gemma-3-27b-it", "coding") > score(by_id, "gemma-3-1b-it", "coding") + 20
    assert score(by_id, "qwen2.5-coder-32b-instruct", "coding") > score(by_id, "qwen2.5-coder-7b-instruct", "coding")


def test_chat_and_writing_orderings(by_id):
    assert score(by_id, "qwen3-32b", "chat") > score(by_id, "qwen3-4b", "chat") > score(by_id, "gemma-3-1b-it", "chat")
    assert score(by_id, "gemma-3-27b-it", "writing") > score(by_id, "phi-4", "writing")


def test_no_score_invented_for_models_without_sources(by_id):
    # the header lists these as "no published score found"; they must not sneak in
    for model_id in ("smollm2-135m-instruct", "qwen2.5-coder-14b-instruct"):
        assert model_id not in by_id
    text = QUALITY.read_text(encoding="utf-8")
    header = text.split("\nscale:", 1)[0]
    assert "smollm2-135m-instruct" in header and "qwen2.5-coder-14b-instruct" in header
    # nobody has an autocomplete score: no FIM results were found
    assert not any("autocomplete" in (m.get("scores") or {}) for m in by_id.values())
