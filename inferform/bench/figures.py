"""From timed requests to the figures `inferform bench` reports, each saying where its number came from.

llama-server times its own prompt processing and generation per request (the `timings` object of the final
response), which excludes HTTP, queueing and the client; those are the figures the planner predicts, so they are
preferred. Any other OpenAI-compatible server gets client-side figures from wall-clock times and the `usage` token
counts, labelled as such. Medians, because a shared machine makes single requests noisy.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from pydantic import BaseModel

SERVER = "server timings"  # llama-server's per-response `timings` (prompt_per_second, predicted_per_second)
CLIENT = "client wall clock"  # time to first token / stream end and the usage token counts


@dataclass(frozen=True)
class Sample:
    """One streamed request as the client saw it, with the server's own timings when it sent them."""

    ttft_s: float  # request sent → first content token received
    total_s: float  # request sent → stream ended
    prompt_tokens: int | None  # usage.prompt_tokens
    completion_tokens: int | None  # usage.completion_tokens
    timings: dict | None = None  # llama-server: prompt_n, prompt_per_second, predicted_n, predicted_per_second, ...
    text: str = ""


class Figure(BaseModel):
    name: str  # ttft_s | prompt_tps | generate_tps | aggregate_generate_tps
    label: str
    measured: float
    unit: str
    source: str
    predicted: float | None = None
    ratio: float | None = None  # measured ÷ predicted: above 1 is faster than planned


class Calibration(BaseModel):
    file: str
    backend: str
    factors: dict[str, dict[str, float]]  # factor → {"old": x, "new": y}
    basis: dict[str, float]  # the prediction the new factors were derived from


class BenchReport(BaseModel):
    endpoint: str
    setup: str | None
    model: str
    requests: int
    concurrency: int
    max_tokens: int
    prompt_tokens: int | None
    figures: list[Figure]
    calibration: Calibration | None = None
    notes: list[str] = []

    def figure(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)


def _ratio(measured: float, predicted: float | None) -> float | None:
    return round(measured / predicted, 3) if predicted else None


def _server(samples: list[Sample], key: str) -> list[float] | None:
    """The server's figure from every sample, or None when any sample lacks it (mixing sources would mislead)."""
    values = [s.timings.get(key) for s in samples if s.timings]
    if len(values) != len(samples) or any(not isinstance(v, int | float) or v <= 0 for v in values):
        return None
    return [float(v) for v in values]


def _client_prompt_tps(s: Sample) -> float | None:
    return s.prompt_tokens / s.ttft_s if s.prompt_tokens and s.ttft_s > 0 else None


def _client_generate_tps(s: Sample) -> float | None:
    """Tokens after the first over the time after the first: the first token's time belongs to prefill."""
    if not s.completion_tokens or s.completion_tokens < 2 or s.total_s <= s.ttft_s:
        return None
    return (s.completion_tokens - 1) / (s.total_s - s.ttft_s)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def sequential_figures(samples: list[Sample], predicted_prompt_tps: float | None,
                       predicted_generate_tps: float | None) -> list[Figure]:
    """Time to first token, prompt tok/s and generation tok/s of one sequence at a time (what the plan predicts)."""
    if not samples:
        raise ValueError("no samples")
    figures = [Figure(name="ttft_s", label="time to first token", measured=round(_median([s.ttft_s for s in samples]),
                                                                                   4),
                      unit="s", source=CLIENT)]
    for name, label, key, client, predicted in (
            ("prompt_tps", "prompt processing", "prompt_per_second", _client_prompt_tps, predicted_prompt_tps),
            ("generate_tps", "generation", "predicted_per_second", _client_generate_tps, predicted_generate_tps)):
        server = _server(samples, key)
        value, source = (statistics.median(server), SERVER) if server else (_median([client(s) for s in samples]),
                                                                             CLIENT)
        if value is None:
            continue
        figures.append(Figure(name=name, label=label, measured=round(value, 2), unit="tok/s", source=source,
                              predicted=predicted, ratio=_ratio(value, predicted)))
    return figures


def aggregate_figure(samples: list[Sample], wall_s: float) -> Figure | None:
    """Generated tokens of concurrent requests over the wall time of the whole batch: what a busy server delivers.

    Always client-side: per-request server timings overlap in time and cannot be summed.
    """
    tokens = sum(s.completion_tokens or 0 for s in samples)
    if not tokens or wall_s <= 0:
        return None
    return Figure(name="aggregate_generate_tps", label=f"generation, {len(samples)} concurrent",
                  measured=round(tokens / wall_s, 2), unit="tok/s", source=CLIENT)
