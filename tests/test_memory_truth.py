"""Planned memory vs what the real llama-server (pinned build, CPU) logs when it loads the planned argv.

Marked e2e: builds llama-server once (cached by version + backend under ~/.cache/inferform) and starts it.
"""

from __future__ import annotations

import pytest

from benchmarks.memory_truth import CASES, TOLERANCE, Case, compare

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server_binary():
    from inferform.engines.build import ensure_llama_cpp

    return ensure_llama_cpp("cpu") / "llama-server"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


def quantized_kv(case: Case) -> bool:
    return "q8_0" in case.overrides or "q4_0" in case.overrides


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_planned_memory_matches_llama_server(case, server_binary, workdir):
    rows = compare(case, server_binary, workdir)
    for part, planned, logged in rows:
        if part == "compute" and quantized_kv(case):
            continue  # checked separately below: a known gap
        assert planned == pytest.approx(logged, rel=TOLERANCE), f"{case.label}: {part} {planned} vs {logged}"


@pytest.mark.xfail(strict=True, reason="a quantized KV cache adds Hadamard-rotation temporaries to the attention "
                                       "phase (llama-graph.cpp llama_mul_mat_hadamard) that the compute model "
                                       "does not include yet: about ±1 MiB, over 3 % on a 135M model")
def test_quantized_kv_compute_buffer(server_binary, workdir):
    case = next(c for c in CASES if quantized_kv(c))
    planned, logged = next((p, m) for part, p, m in compare(case, server_binary, workdir) if part == "compute")
    assert planned == pytest.approx(logged, rel=TOLERANCE)
