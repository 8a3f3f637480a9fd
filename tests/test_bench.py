"""`inferform bench`: the figures math, the calibration round trip through `inferform plan`, bad input, and (e2e)
a real applied demo copy measured through the openai client, calibrated, and asked a question the way `make demo`
does.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import yaml

from inferform.bench.calibrate import backend_of, check_basis, decode_scale, write_calibration
from inferform.bench.client import Target, bench_prompt
from inferform.bench.figures import CLIENT, SERVER, BenchReport, Figure, Sample, aggregate_figure, sequential_figures
from inferform.errors import InferformError
from inferform.planner.speed import default_calibration_path, load_efficiency
from inferform.planner.speed_adapter import reload_efficiency
from tests.conftest import ROOT

DEMO = str(ROOT / "setups" / "demo.yaml")
# Read before conftest's autouse fixture points XDG_CACHE_HOME at a temporary directory (see test_roles.py).
REAL_CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def timed(ttft: float, total: float, prompt: int, completion: int, pp: float | None = None,
          tg: float | None = None) -> Sample:
    timings = None if pp is None else {"prompt_n": prompt, "prompt_per_second": pp, "predicted_n": completion,
                                       "predicted_per_second": tg}
    return Sample(ttft_s=ttft, total_s=total, prompt_tokens=prompt, completion_tokens=completion, timings=timings)


def by_name(figures: list[Figure]) -> dict[str, Figure]:
    return {f.name: f for f in figures}


# ------------------------------------------------------------------------------------------------ figures math


def test_server_timings_are_preferred_and_medians_taken():
    samples = [timed(0.5, 2.0, 300, 64, pp=600.0, tg=40.0), timed(0.9, 3.0, 300, 64, pp=400.0, tg=30.0),
               timed(0.6, 2.5, 300, 64, pp=500.0, tg=50.0)]
    f = by_name(sequential_figures(samples, predicted_prompt_tps=1000.0, predicted_generate_tps=80.0))
    assert (f["prompt_tps"].measured, f["prompt_tps"].source, f["prompt_tps"].ratio) == (500.0, SERVER, 0.5)
    assert (f["generate_tps"].measured, f["generate_tps"].source, f["generate_tps"].ratio) == (40.0, SERVER, 0.5)
    assert (f["ttft_s"].measured, f["ttft_s"].source, f["ttft_s"].predicted) == (0.6, CLIENT, None)


def test_client_figures_when_any_sample_lacks_server_timings():
    """A server without `timings` (vLLM, OpenAI): prefill = prompt tokens ÷ TTFT, generation = tokens after the
    first ÷ time after the first; one sample without timings switches the whole figure, never a mix."""
    samples = [timed(0.5, 3.0, 300, 51, pp=999.0, tg=999.0), timed(0.5, 3.0, 300, 51)]
    f = by_name(sequential_figures(samples, None, None))
    assert f["prompt_tps"].source == f["generate_tps"].source == CLIENT
    assert f["prompt_tps"].measured == pytest.approx(600.0)  # 300 / 0.5
    assert f["generate_tps"].measured == pytest.approx(20.0)  # 50 / 2.5
    assert f["generate_tps"].ratio is None


def test_no_usage_no_client_figure():
    f = by_name(sequential_figures([Sample(ttft_s=0.4, total_s=1.0, prompt_tokens=None, completion_tokens=None)],
                                   None, None))
    assert set(f) == {"ttft_s"}


def test_aggregate_is_all_tokens_over_the_batch_wall_time():
    batch = [timed(1.0, 4.0, 300, 100), timed(1.0, 5.0, 300, 60)]
    agg = aggregate_figure(batch, wall_s=5.0)
    assert agg and agg.measured == pytest.approx(32.0) and agg.source == CLIENT and "2 concurrent" in agg.label
    assert aggregate_figure([timed(1.0, 1.0, 300, 0)], 1.0) is None


def test_bench_prompt_defeats_the_prompt_cache_and_has_the_asked_size():
    a, b = bench_prompt(320), bench_prompt(320)
    assert a != b and a.split(".", 1)[1] == b.split(".", 1)[1]  # only the first line differs
    assert 200 <= len(a.split()) <= 260  # ~0.75 words per token
    assert len(bench_prompt(100).split()) < len(a.split())


def test_the_api_key_is_not_in_the_target_repr():
    target = Target(endpoint="http://127.0.0.1:1/v1", api_key="sk-inferform-secret", setup="x")
    assert "sk-inferform-secret" not in repr(target)


# ------------------------------------------------------------------------------------------------ calibration


def test_decode_scale_inverts_the_time_model():
    assert decode_scale(100.0, 50.0, 0.0) == pytest.approx(0.5)
    r = decode_scale(100.0, 50.0, 2.0)  # 10 ms predicted = 8 memory + 2 fixed; measured 20 ms = 18 + 2
    assert r == pytest.approx(8 / 18)
    assert 8 / r + 2.0 == pytest.approx(1e3 / 50.0)  # the scaled model predicts exactly what was measured
    assert decode_scale(1000.0, 2000.0, 1.0) == pytest.approx(2.0)  # overhead alone exceeds it: plain ratio


@pytest.fixture
def fresh_planner():
    """The planner caches its speed factors per process: start from the files of this test, leave none behind."""
    reload_efficiency()
    yield
    reload_efficiency()


def report_for(plan: dict, prompt_factor: float, generate_factor: float) -> BenchReport:
    speed = plan["speed"]
    figures = [Figure(name="prompt_tps", label="prompt processing", unit="tok/s", source=SERVER,
                      measured=speed["prompt_tps"] * prompt_factor),
               Figure(name="generate_tps", label="generation", unit="tok/s", source=SERVER,
                      measured=speed["generate_tps"] * generate_factor)]
    return BenchReport(endpoint="http://127.0.0.1:8088/v1", setup=plan["setup"], model="demo", requests=3,
                       concurrency=1, max_tokens=64, prompt_tokens=300, figures=figures)


def plan_json(cli, setup: str = DEMO) -> dict:
    done = cli("plan", setup, "--json")
    assert done.code == 0, done.err
    return json.loads(done.out)


@pytest.fixture
def pinned_demo(tmp_path) -> str:
    """The demo setup with its configuration pinned: a slower calibrated machine may rightly move the planner to
    another context or KV type (the objective trades speed), and this test is about the predictions."""
    text = Path(DEMO).read_text(encoding="utf-8") + "overrides: {n_ctx: 8192, cache_type_k: f16, cache_type_v: f16}\n"
    path = tmp_path / "demo.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_calibration_round_trip_moves_the_plan_to_the_measurement(cli, fresh_planner, pinned_demo):
    before = plan_json(cli, pinned_demo)
    path = default_calibration_path()  # under conftest's temporary XDG_CONFIG_HOME
    assert not path.exists()
    assert any(e.startswith("speed factors for cpu: packaged speed.yaml") for e in before["explanations"])

    result = write_calibration(report_for(before, prompt_factor=2.0, generate_factor=0.5), before)
    assert result.file == str(path) and result.backend == "cpu"
    assert result.factors["bw_eff"]["new"] < result.factors["bw_eff"]["old"]  # slower than predicted
    assert result.factors["gflops_per_thread"]["new"] > result.factors["gflops_per_thread"]["old"]

    after = plan_json(cli, pinned_demo)
    assert after["speed"]["generate_tps"] == pytest.approx(before["speed"]["generate_tps"] * 0.5, rel=0.01)
    assert after["speed"]["prompt_tps"] == pytest.approx(before["speed"]["prompt_tps"] * 2.0, rel=0.01)
    assert f"speed factors for cpu: calibration {path}" in after["explanations"]
    assert after["engine"]["argv"] == before["engine"]["argv"]  # calibration changes predictions, not the server

    # calibrating again on the calibrated plan with the same measurement changes nothing: the factor is derived
    # from the one the prediction used, not stacked on the packaged one
    again = write_calibration(report_for(before, prompt_factor=2.0, generate_factor=0.5), after)
    for key, change in again.factors.items():
        assert change["new"] == pytest.approx(result.factors[key]["new"], rel=0.01), key


def test_calibration_keeps_other_backends_and_reads_back(fresh_planner):
    path = default_calibration_path()
    path.parent.mkdir(parents=True)
    path.write_text("factors:\n  cuda: {bw_eff: 0.7}\n")
    plan = {"setup": "demo", "target": {"gpus": []}, "speed": {"prompt_tps": 500.0, "generate_tps": 60.0}}
    write_calibration(report_for(plan, 1.0, 1.1), plan)
    data = yaml.safe_load(path.read_text())
    assert data["factors"]["cuda"] == {"bw_eff": 0.7}
    assert set(data["factors"]["cpu"]) == {"bw_eff", "gbs_per_thread", "gflops_per_thread"}
    assert data["measured"]["cpu"]["sources"] == {"prompt_tps": SERVER, "generate_tps": SERVER}
    eff = load_efficiency()
    assert eff.for_backend("cpu").gflops_per_thread == pytest.approx(load_efficiency(
        use_calibration=False).for_backend("cpu").gflops_per_thread)  # prompt measured exactly as predicted
    assert "calibration" in eff.source_of("cpu") and "calibration" in eff.source_of("cuda")


def test_gpu_placements_and_changed_setups_are_refused():
    with pytest.raises(InferformError, match="GPU placement"):
        backend_of({"target": {"gpus": [{"name": "RTX 4080", "vram_bytes": 1}]}})
    with pytest.raises(InferformError, match="different server"):
        check_basis({"engine": {"argv": ["llama-server", "-c", "4096"]}, "target": {"gpus": []}},
                    {"engine": {"argv": ["llama-server", "-c", "8192"]}, "target": {"gpus": []}})


# ------------------------------------------------------------------------------------------------ bad input


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_setup_that_is_not_applied_says_how_to_apply_it(cli):
    done = cli("bench", DEMO)
    assert done.code == 2 and "not applied" in done.err and f"inferform apply {DEMO}" in done.err
    assert "Traceback" not in done.err
    assert cli("bench", "no-such-setup").code == 2


def test_an_endpoint_that_is_down_is_a_failure_naming_the_url(cli):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    done = cli("bench", url)
    assert done.code == 1 and f"cannot reach {url}" in done.err and "Traceback" not in done.err


def test_the_demo_script_says_how_to_apply_first(capsys):
    from inferform.bench.demo import main as demo

    assert demo([DEMO]) == 2
    assert f"To fix: inferform apply {DEMO}" in capsys.readouterr().err


def test_calibrate_needs_a_plan_and_setup_goes_with_a_url(cli):
    done = cli("bench", f"http://127.0.0.1:{_closed_port()}", "--calibrate")
    assert done.code == 2 and "--calibrate needs the setup" in done.err
    assert cli("bench", DEMO, "--setup", DEMO).code == 2


# ------------------------------------------------------------------------------------------------ e2e


@pytest.fixture
def applied_demo(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch, fresh_planner):
    """A copy of the demo setup under its own name and a free port, applied through the CLI (the llama.cpp build
    and model caches are the real ones, state and config are the test's), destroyed whatever happens."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(REAL_CACHE_HOME))
    setup = yaml.safe_load(Path(DEMO).read_text())
    setup["name"] = "bench-e2e"
    setup["serve"]["port"] = _closed_port()
    # pinned: once calibrated to a slower machine the planner may rightly pick another context or KV type
    setup["overrides"] = {"n_ctx": 8192, "cache_type_k": "f16", "cache_type_v": "f16"}
    path = tmp_path / "bench-e2e.yaml"
    path.write_text(yaml.safe_dump(setup))
    done = cli("apply", str(path))
    try:
        assert done.code == 0, done.err + done.out
        yield str(path), setup["serve"]["port"]
    finally:
        destroyed = cli("destroy", str(path))
        assert destroyed.code == 0, destroyed.err


@pytest.mark.e2e
def test_bench_calibrate_and_the_demo_script_against_a_served_copy(applied_demo, cli, capsys):
    setup, port = applied_demo
    done = cli("bench", setup, "--json", "--calibrate", "-n", "2", "--max-tokens", "24", "--concurrency", "2")
    assert done.code == 0, done.err
    report = json.loads(done.out)
    assert report["endpoint"] == f"http://127.0.0.1:{port}/v1" and report["prompt_tokens"] > 100
    figures = {f["name"]: f for f in report["figures"]}
    assert figures["ttft_s"]["measured"] > 0
    for name in ("prompt_tps", "generate_tps"):
        assert figures[name]["source"] == SERVER, figures[name]
        assert figures[name]["measured"] > 0 and figures[name]["predicted"] > 0 and figures[name]["ratio"] > 0
    assert figures["aggregate_generate_tps"]["measured"] > 0

    calibrated = plan_json(cli, setup)  # the planner now predicts what was measured on this machine
    # the plan prints tok/s to one decimal: on a busy 2-core box generation can be under 1 tok/s, where that
    # rounding alone is several per cent
    assert calibrated["speed"]["generate_tps"] == pytest.approx(figures["generate_tps"]["measured"], rel=0.02,
                                                                abs=0.05)
    assert f"speed factors for cpu: calibration {default_calibration_path()}" in calibrated["explanations"]

    from inferform.bench.demo import run as demo

    capsys.readouterr()
    assert demo(setup, "Say hello in five words.", answer_tokens=24, requests=1, max_tokens=16) == 0
    out = capsys.readouterr().out
    answer = out.split("Say hello in five words.", 1)[1].split("tokens in", 1)[0]
    assert answer.strip(" \n(0123456789?"), out  # the model answered something
    assert "server timings" in out and "generation" in out
    assert out.rstrip().endswith(f"the server is still running: stop it with  inferform destroy {setup}")
