"""What "best" means for each experience: one scalar key per configuration, so the search, the brute force that
checks it and the alternatives shown in a plan all rank the same way.

The rules and every number come from data/presets.yaml (experiences), where each number says why:
- interactive (latency, accuracy, creativity): a configuration below the use case's speed floor (generation tok/s;
  autocomplete: how fast a whole suggestion arrives) ranks after every
  one above it (then by speed). Above the floor it is worth its quality points plus `points_per_doubling` for each
  doubling of speed over the floor, up to `fast_tps`; each halving of context below the use case's goal costs
  `context_points`. Latency weighs speed heavily, accuracy lightly: a several-times-slower configuration must buy
  several points.
- aggregate (throughput): among configurations above the quality floor (a share of the use case's best score, and
  a quant that keeps most of the model's own), the most tokens/s over all slots; each stream must still reach the
  (scaled) floor.
A configuration whose quality is unknown (no published score for the model, or no divergence for the quant) ranks
after every scored one: the planner does not pick what it cannot justify unless the setup pins it.
"""

import math
from typing import NamedTuple

from inferform.planner.presets import Goals


class Scored(NamedTuple):
    """The figures a configuration is judged on."""

    quality: float | None  # benchmark points after quantization (None: unknown)
    generate_tps: float  # one stream
    prompt_tps: float
    aggregate_tps: float  # all slots busy
    concurrency: int  # slots
    context_per_slot: int
    retention: float = 1.0  # the share of the model's score its quant and KV type keep


class Value(NamedTuple):
    """A configuration's rank key (compare as a tuple, higher is better) and its objective value for display."""

    key: tuple[float, ...]
    value: float  # points (interactive) or aggregate tok/s (aggregate)
    above_floor: bool
    quality_ok: bool


def speed_of(s: Scored, goals: Goals) -> float:
    """The speed the floor is about: generation tok/s, or for autocomplete the typical request's tokens over the
    time to its whole suggestion (prompt read + suggestion generated), so a doubling means twice as fast."""
    if goals.speed_metric != "completion":
        return s.generate_tps
    seconds = goals.prompt_tokens / max(s.prompt_tps, 1e-9) + goals.completion_tokens / max(s.generate_tps, 1e-9)
    return goals.prompt_tokens / seconds


def context_penalty(context: int, goals: Goals) -> float:
    if context >= goals.context or context <= 0:
        return 0.0
    return goals.context_points * math.log2(goals.context / context)


def evaluate(s: Scored, goals: Goals, best_score: float | None) -> Value:
    """The key for one configuration. best_score is the use case's best full-precision score in the catalog (the
    throughput quality floor is a share of it)."""
    known = s.quality is not None
    quality = s.quality if known else 0.0
    speed = speed_of(s, goals)
    if goals.objective == "aggregate" and goals.speed_metric == "generate":
        speed = s.aggregate_tps / max(s.concurrency, 1)  # what each stream gets with every slot busy
    above = speed >= goals.floor_tps
    if goals.objective == "aggregate":
        floor = goals.quality_floor_fraction * best_score if best_score else 0.0
        ok = known and quality >= floor and s.retention >= goals.min_retention
        value = s.aggregate_tps
        return Value((float(known), float(ok), float(above), round(value, 3), quality - context_penalty(
            s.context_per_slot, goals)), value, above, ok)
    gain = goals.points_per_doubling * math.log2(max(min(speed, goals.fast_tps), 1e-9) / goals.floor_tps)
    points = quality + gain - context_penalty(s.context_per_slot, goals)
    if not above:
        return Value((float(known), 0.0, round(speed, 3), points), points, False, known)
    return Value((float(known), 1.0, round(points, 6), speed), points, True, known)


def exchange_rate(goals: Goals) -> str:
    """The objective in one line, for the plan's explanation."""
    unit = "tok/s"
    if goals.speed_metric == "completion":
        unit = (f"request tok/s ({goals.prompt_tokens:,}-token prompt + {goals.completion_tokens}-token suggestion; "
                f"the floor is one suggestion in {goals.prompt_tokens / goals.floor_tps:g} s)")
    if goals.objective == "aggregate":
        return (f"the most aggregate tok/s over all slots, at quality ≥ {goals.quality_floor_fraction:.0%} of the "
                f"use case's best score and ≥ {goals.floor_tps:g} {unit} per stream")
    return (f"speed floor {goals.floor_tps:g} {unit}; above it quality points + {goals.points_per_doubling:g} per "
            f"doubling of speed up to {goals.fast_tps:g} {unit}, − {goals.context_points:g} per halving of context "
            f"below {goals.context:,}")
