"""Measure an OpenAI-compatible endpoint with the official openai client: streamed chat requests, timed.

Streaming is what gives a time to first token; `stream_options.include_usage` makes the last chunk carry the
token counts, and llama-server adds its own `timings` to that same last chunk. Each request starts with a
different line so llama-server's prompt cache cannot skip the prefill being measured. Retries are off: a retried
request would hide a failure and add its back-off to the figures.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from inferform.bench.figures import BenchReport, Sample, aggregate_figure, sequential_figures
from inferform.errors import EXIT_FAILURE, InferformError

# A few hundred tokens of plain prose: long enough that prefill, not the request overhead, dominates the prompt time.
NOTES = ("The lighthouse keeper wrote down the weather every morning: the direction of the wind, the height of the "
         "swell, the colour of the sky over the harbour and the number of fishing boats that went out before dawn. "
         "In winter the entries grew short, because the lamp needed tending through the long nights and the stairs "
         "were cold. In summer they grew long, with notes about visitors, the gulls nesting on the rocks below the "
         "tower, and the supply boat that came every second Thursday with oil, bread, letters and newspapers. ")
WORDS_PER_TOKEN = 0.75  # English prose in the tokenizers of the catalog's models: about 4 tokens per 3 words
PROMPT_TOKENS = 320
REQUEST_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Target:
    """Where to send requests, and the plan to hold the figures against (None for a bare URL)."""

    endpoint: str  # base URL ending in /v1
    api_key: str = field(repr=False)  # never printed: kept out of repr, reports and errors
    setup: str | None = None
    plan: dict | None = None
    setup_file: str | None = None  # where the setup can be planned again (for --calibrate)
    model: str | None = None  # a group's member: the request's `model` (else the first model the server lists)

    @property
    def predicted(self) -> dict[str, float]:
        return (self.plan or {}).get("speed", {})

    @property
    def parallel(self) -> int:
        return int((self.plan or {}).get("context", {}).get("parallel", 1))


def bench_prompt(tokens: int = PROMPT_TOKENS) -> str:
    """A prompt of about `tokens` tokens whose first line is new every call (defeats the server's prompt cache)."""
    words = max(int(tokens * WORDS_PER_TOKEN) - 20, 10)
    body = " ".join((NOTES * (words // len(NOTES.split()) + 1)).split()[:words])
    return (f"Request {secrets.token_hex(4)}. Here are a keeper's notes:\n\n{body}\n\n"
            "Continue the notes for the next week, one paragraph per day.")


@contextmanager
def translated_errors(endpoint: str) -> Iterator[None]:
    """openai's exceptions as InferformErrors that name the endpoint (exit 1: the failure happened while acting)."""
    import openai

    try:
        yield
    except openai.APITimeoutError:
        raise InferformError.single(f"{endpoint} did not answer within {REQUEST_TIMEOUT_S:g} s",
                                    hint="check `inferform status` and `inferform logs SETUP`",
                                    exit_code=EXIT_FAILURE) from None
    except openai.APIConnectionError as exc:
        raise InferformError.single(f"cannot reach {endpoint}: {exc.__cause__ or exc}",
                                    hint="is the server running? `inferform status` shows what runs",
                                    exit_code=EXIT_FAILURE) from None
    except openai.AuthenticationError:
        raise InferformError.single(f"{endpoint} rejected the API key",
                                    hint="the key is read from the setup's api-key file (or OPENAI_API_KEY for "
                                         "a bare URL)", exit_code=EXIT_FAILURE) from None
    except openai.APIStatusError as exc:
        raise InferformError.single(f"{endpoint} answered HTTP {exc.status_code}: {exc.message}",
                                    exit_code=EXIT_FAILURE) from None


def connect(target: Target) -> tuple[Any, str]:
    """An openai client for the endpoint and the id of the model it serves (also proves the endpoint is up)."""
    from openai import OpenAI

    client = OpenAI(base_url=target.endpoint, api_key=target.api_key, max_retries=0, timeout=REQUEST_TIMEOUT_S)
    with translated_errors(target.endpoint):
        served = client.models.list().data
    if target.model is not None:
        return client, target.model
    return client, served[0].id if served else (target.setup or "default")


def stream_chat(client: Any, model: str, prompt: str, max_tokens: int,
                on_text: Callable[[str], None] | None = None) -> Sample:
    """One streamed chat request, timed from the moment it is sent."""
    started = time.perf_counter()
    first: float | None = None
    usage, timings, parts = None, None, []
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                            max_tokens=max_tokens, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        for choice in chunk.choices:
            text = choice.delta.content if choice.delta else None
            if text:
                if first is None:
                    first = time.perf_counter()
                parts.append(text)
                if on_text:
                    on_text(text)
        usage = chunk.usage or usage
        timings = (chunk.model_extra or {}).get("timings") or timings  # llama-server: final chunk only
    ended = time.perf_counter()
    return Sample(ttft_s=(first or ended) - started, total_s=ended - started,
                  prompt_tokens=usage.prompt_tokens if usage else None,
                  completion_tokens=usage.completion_tokens if usage else None,
                  timings=timings if isinstance(timings, dict) else None, text="".join(parts))


def ask(target: Target, question: str, max_tokens: int = 128,
        on_text: Callable[[str], None] | None = None) -> Sample:
    """A single chat answer, streamed to `on_text` as it arrives."""
    client, model = connect(target)
    with translated_errors(target.endpoint):
        return stream_chat(client, model, question, max_tokens, on_text)


def _prompt_tokens(target: Target, max_tokens: int) -> int:
    """The bench prompt's size: PROMPT_TOKENS, or less where one slot's context would not hold it and the answer."""
    ctx = (target.plan or {}).get("context", {})
    if not ctx.get("n_ctx"):
        return PROMPT_TOKENS
    per_slot = int(ctx["n_ctx"]) // max(target.parallel, 1)
    return max(min(PROMPT_TOKENS, per_slot - max_tokens - 64), 32)


def measure(target: Target, *, requests: int = 3, concurrency: int | None = None,
            max_tokens: int = 128) -> BenchReport:
    """Sequential requests for the single-sequence figures the plan predicts, then a concurrent batch when asked
    (default: the plan's parallel slots) for the aggregate rate. One short request first warms the server up
    (page-faults the weights in), and is not counted."""
    if requests < 1 or max_tokens < 2 or (concurrency is not None and concurrency < 1):
        raise InferformError.single("-n must be ≥ 1, --max-tokens ≥ 2 and --concurrency ≥ 1",
                                    hint="e.g. inferform bench SETUP -n 3 --max-tokens 128")
    client, model = connect(target)
    size = _prompt_tokens(target, max_tokens)
    concurrency = target.parallel if concurrency is None else concurrency
    with translated_errors(target.endpoint):
        stream_chat(client, model, "Say hello.", 2)
        samples = [stream_chat(client, model, bench_prompt(size), max_tokens) for _ in range(requests)]
        figures = sequential_figures(samples, target.predicted.get("prompt_tps"), target.predicted.get("generate_tps"))
        notes = []
        if concurrency > 1:
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                batch = list(pool.map(lambda _: stream_chat(client, model, bench_prompt(size), max_tokens),
                                      range(concurrency)))
            aggregate = aggregate_figure(batch, time.perf_counter() - started)
            if aggregate:
                figures.append(aggregate)
            notes.append(f"{concurrency} requests at once against {target.parallel} planned slot(s); the plan "
                         "predicts one sequence, so the aggregate has no prediction beside it")
    prompt_counts = [s.prompt_tokens for s in samples if s.prompt_tokens]
    return BenchReport(endpoint=target.endpoint, setup=target.setup, model=model, requests=requests,
                       concurrency=concurrency, max_tokens=max_tokens,
                       prompt_tokens=max(prompt_counts) if prompt_counts else None, figures=figures, notes=notes)
