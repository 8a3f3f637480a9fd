"""How a re-apply replaces a serving configuration: beside it, or after it (decided from the two plans).

The front (roles/inferform_service/files/front.py) can start the new engine beside the old one and switch when
it is healthy: no request fails. That needs memory for both at once, on every device. The plans say how much
each takes; weights that both map from the same file (host memory only: llama.cpp mmaps the GGUF, and the page
cache holds one copy) count once. When they do not fit together, the old engine gets a short grace for its
requests and stops first; requests wait in the front for the new one's load (the gap), and none is refused.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from inferform.plan import Plan
from inferform.units import GIB

GRACE_S = 5  # not side by side: what the serving engine gets to finish its requests before it is stopped


class Swap(NamedTuple):
    side_by_side: bool
    why: str


def _side(plan: dict[str, Any], name: str) -> dict[str, int]:
    return {k: int(v or 0) for k, v in ((plan.get("memory") or {}).get(name) or {}).items()}


def decide(old: dict[str, Any], new: Plan) -> Swap:
    """Whether the old plan's engine and the new one fit in memory together (then the switch is side by side)."""
    fresh = new.model_dump(mode="json")
    if new.vllm is not None and new.vllm.device == "cuda":
        return Swap(False, "vLLM checks at start that its --gpu-memory-utilization share of each GPU is free, so "
                           "a second vLLM cannot start beside the serving one: the serving engine gets "
                           f"{GRACE_S} s for its requests and stops, then the new one loads while requests wait "
                           "in the front")
    same_file = (old.get("model") or {}).get("file") == fresh["model"]["file"]
    for name in ("gpu", "host"):
        a, b = _side(old, name), _side(fresh, name)
        need = a.get("total_bytes", 0) + b.get("total_bytes", 0)
        if name == "host" and same_file:
            need -= min(a.get("weights_bytes", 0), b.get("weights_bytes", 0))
        budget = b.get("budget_bytes", 0)
        if b.get("total_bytes", 0) and need > budget:
            return Swap(False, f"old and new need {need / GIB:.1f} GiB of {name.upper() if name == 'gpu' else 'RAM'} "
                               f"together, over the {budget / GIB:.1f} GiB budget: the serving engine gets "
                               f"{GRACE_S} s for its requests and stops, then the new one loads while requests "
                               "wait in the front (the gap is the new model's load time)")
    return Swap(True, "old and new fit in memory together: the new engine starts beside the serving one, which "
                      "keeps answering until the new one is healthy (no request waits or fails)")
