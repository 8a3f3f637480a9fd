"""How good a model is for a use case, and how much of that a quantization keeps (data/quality.yaml and
data/quant_quality.yaml, each number with its source).

The planner compares configurations in benchmark points: a model's score for the use case (0-100, from published
results) times the fraction its weight quant and KV cache type keep. A use case without its own score falls back to
the model's general score and the plan says so; a model or quant without any published figure gets None, and the
planner then does not choose it unless the setup pins it.
"""

import math
from functools import cache
from typing import Any, NamedTuple

from inferform.catalog.files import read_data


class Score(NamedTuple):
    """A model's full-precision score for one use case, and where it came from."""

    score: float
    basis: str
    source: str
    substituted: bool  # the model's general score, for a use case it has no score of its own for


class Retention(NamedTuple):
    """The fraction of the score a quant and KV type keep, and why."""

    factor: float
    basis: str


@cache
def _scores() -> dict[str, dict[str, Any]]:
    try:
        rows = read_data("quality.yaml").get("models") or []
    except FileNotFoundError:
        return {}
    return {row["id"]: row for row in rows}


@cache
def _quant_data() -> dict[str, Any]:
    return read_data("quant_quality.yaml")


def model_score(model_id: str | None, use_case: str) -> Score | None:
    """The model's score for the use case, its general score in place of a missing one, or None."""
    row = _scores().get(model_id or "")
    if row is None:
        return None
    own = (row.get("scores") or {}).get(use_case)
    if own is not None:
        return Score(float(own["score"]), own["basis"], own["source"], False)
    general = row.get("general")
    if general is None:
        return None
    ratio = _ratio(use_case)
    return Score(float(general["score"]) * ratio,
                 f"no {use_case} score published: general {general['basis']} × {ratio:.2f} (the median "
                 f"{use_case}/general ratio of the models that publish both)", general["source"], True)


@cache
def _ratio(use_case: str) -> float:
    """Broad-knowledge scores (MMLU family, 60-90) sit far above most use-case benchmarks (LiveCodeBench 10-30):
    a general score stands in for a missing one only after scaling by the median ratio of the models that have
    both, so a model without a coding score does not outrank every measured coder. 1.0 when no model has both."""
    ratios = sorted(float(r["scores"][use_case]["score"]) / float(r["general"]["score"])
                    for r in _scores().values()
                    if r.get("general") and use_case in (r.get("scores") or {}) and float(r["general"]["score"]) > 0)
    if not ratios:
        return 1.0
    mid = len(ratios) // 2
    return ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2


def _bits(quant: str) -> float:
    from inferform.catalog.quants import load_quant_types

    q = load_quant_types().get(quant.upper())
    return q.bits_per_weight if q else 0.0


def retention(model_id: str | None, quant: str, cache_type_k: str, cache_type_v: str) -> Retention | None:
    """The fraction of the full-precision score kept; None when the quant has no published divergence."""
    data = _quant_data()
    scale = float(data["kld_scale"])
    quant = quant.upper()
    native = data["native"]["models"].get(model_id or "")
    if native is not None and _bits(quant) >= _bits(native):
        kld, basis = 0.0, f"{quant} holds the weights as released ({native})"
    elif quant in data["weights"]:
        kld = float(data["weights"][quant])
        basis = f"{quant} mean KLD {kld:.4f} (Llama-3-8B scoreboard)"
    else:
        return None
    for kind, ctype in (("K", cache_type_k), ("V", cache_type_v)):
        added = data["kv"].get(ctype)
        if added is None:
            return None
        if added:
            kld += float(added) / 2  # the published figure is for K and V quantized together
            basis += f" + {kind} cache {ctype}"
    return Retention(math.exp(-kld / scale), basis)


def kld_scale() -> float:
    return float(_quant_data()["kld_scale"])


@cache
def always_reasoning() -> frozenset[str]:
    """Models that write a reasoning chain before every answer (quality.yaml reasoning_always)."""
    try:
        section = read_data("quality.yaml").get("reasoning_always") or {}
    except FileNotFoundError:
        return frozenset()
    return frozenset(section.get("models") or [])
