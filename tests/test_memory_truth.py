"""Planned memory vs what the real llama-server (pinned build, CPU) logs when it loads the planned argv, and the
same for llama-cpp-python's server.

Marked e2e: builds llama-server and the llama-cpp-python venv once (cached by version + backend under
~/.cache/inferform) and starts them.
"""

from __future__ import annotations

import pytest

from benchmarks.memory_truth import CASES, GROWTH_PROMPT_WORDS, PY_CASES, TOLERANCE, compare, compare_py

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server_binary():
    from inferform.engines.scripts import build

    ensure_llama_cpp = build().ensure_llama_cpp

    return ensure_llama_cpp("cpu") / "llama-server"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


@pytest.mark.parametrize("case", [c for c in CASES if c.ci], ids=lambda c: c.label)
def test_planned_memory_matches_llama_server(case, server_binary, workdir):
    rows = compare(case, server_binary, workdir)
    for part, planned, logged in rows:
        assert planned == pytest.approx(logged, rel=TOLERANCE), f"{case.label}: {part} {planned} vs {logged}"


@pytest.fixture(scope="module")
def py_server_python():
    from inferform.engines.scripts import python_venv

    ensure_llama_cpp_python, venv_python = python_venv().ensure_llama_cpp_python, python_venv().venv_python

    return venv_python(ensure_llama_cpp_python(backend="cpu"))


@pytest.mark.parametrize("case", PY_CASES, ids=lambda c: c.label)
def test_planned_memory_matches_llama_cpp_python(case, py_server_python, workdir):
    """Buffers at load within 3 % of what llama.cpp logs inside `python -m llama_cpp.server`; after one prompt
    longer than n_batch, the process really holds the NumPy scores rows and the regrown output buffer the plan
    counts (anonymous RSS growth, bounded above by those plus the compute buffer's first touch)."""
    rows, mem, model, run = compare_py(case, py_server_python, workdir,
                                       prompt_words=GROWTH_PROMPT_WORDS if case.grow else 0)
    for part, planned, logged in rows:
        assert planned == pytest.approx(logged, rel=TOLERANCE), f"{case.label}: {part} {planned} vs {logged}"
    if run.rss_anon_ready and case.grow:  # Linux: /proc/<pid>/status
        python_side = model.n_vocab * 4 * run.prompt_tokens + mem.host.output - mem.host.output_at_load
        first_touch = mem.host.compute_at_load - mem.host.output_at_load
        grew = run.rss_anon_after - run.rss_anon_ready
        assert 0.95 * python_side <= grew <= 1.05 * (python_side + first_touch), (case.label, grew, python_side)
