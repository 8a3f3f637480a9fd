"""Aggregate decode of N sequences: equals the single stream at N = 1, rises with N but less than N-fold, and never
passes the compute bound; the planner fills it for the placement's slots."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferform.planner.concurrency import SeqShare, aggregate_tps, compute_bound_tps, expert_bytes
from inferform.planner.speed import DeviceWork, load_efficiency, predict

NS = [1, 2, 3, 4, 8, 16, 64, 256, 1024]


def device(kind: str, nbytes: float, bw: float, flops: float, backend: str = "cuda", moe: bool = False) -> DeviceWork:
    return DeviceWork(name=kind, kind=kind, backend="cpu" if kind == "cpu" else backend, bandwidth_gbs=bw,
                      fp16_tflops=None, bytes_per_token=nbytes, flops_per_token=flops, threads=2 if kind == "cpu"
                      else None, moe=moe, arch="cuda-8.9" if kind == "gpu" and backend == "cuda" else None)


def curve(work: list[DeviceWork], shares: list[SeqShare]) -> list[float]:
    timings = predict(work, load_efficiency(use_calibration=False)).devices
    return [aggregate_tps(work, timings, shares, n)[0] for n in NS]


placements = st.tuples(
    st.sampled_from(["gpu", "cpu", "split"]),
    st.floats(5e7, 8e10),  # weight bytes per token
    st.floats(0.0, 0.5),  # KV share of those bytes
    st.floats(20, 4000),  # bandwidth
    st.floats(0.5, 4.0),  # FLOPs per byte read (2 x params / bytes: Q4 ~ 3.5, F16 ~ 1)
)


def build(kind: str, nbytes: float, kv_share: float, bw: float, fpb: float):
    kv = nbytes * kv_share
    flops = (nbytes - kv) * fpb
    if kind == "split":
        work = [device("gpu", nbytes / 2, bw, flops / 2), device("cpu", nbytes / 2, min(bw, 200), flops / 2)]
        return work, [SeqShare(kv_bytes=kv / 2), SeqShare(kv_bytes=kv / 2)]
    return [device(kind, nbytes, min(bw, 400) if kind == "cpu" else bw, flops)], [SeqShare(kv_bytes=kv)]


@settings(max_examples=150, deadline=None)
@given(placements)
def test_one_sequence_is_the_single_stream(p):
    work, shares = build(*p)
    pred = predict(work, load_efficiency(use_calibration=False))
    assert aggregate_tps(work, pred.devices, shares, 1)[0] == pytest.approx(pred.generate_tps, rel=1e-12)


@settings(max_examples=150, deadline=None)
@given(placements)
def test_aggregate_rises_with_n_but_sub_linearly_and_under_the_compute_bound(p):
    work, shares = build(*p)
    agg = curve(work, shares)
    timings = predict(work, load_efficiency(use_calibration=False)).devices
    bound = compute_bound_tps(work, timings)
    for (n0, a0), (n1, a1) in zip(zip(NS, agg, strict=True), zip(NS[1:], agg[1:], strict=True), strict=False):
        assert a1 >= a0 * (1 - 1e-12)  # more sequences never lower the total
        assert a1 <= a0 * n1 / n0 * (1 + 1e-12)  # but never more than in proportion
    assert all(a <= bound * (1 + 1e-9) for a in agg)
    assert agg[-1] >= agg[0]


def test_memory_bound_decode_gains_a_lot_then_levels_off_at_compute():
    """An 8B Q4 on a 4090: memory bound alone, so 8 sequences give far more; 1024 sit at the compute bound."""
    work = [device("gpu", 4.6e9, 1008, 15e9)]
    shares = [SeqShare(kv_bytes=1e6)]  # short sequences: at 1024 of them the KV reads still do not dominate
    agg = dict(zip(NS, curve(work, shares), strict=True))
    timings = predict(work, load_efficiency(use_calibration=False)).devices
    assert agg[8] > 4 * agg[1]
    assert agg[1024] == pytest.approx(compute_bound_tps(work, timings), rel=0.02)
    assert aggregate_tps(work, timings, shares, 1024)[1] == "gpu-compute"


def test_kv_growth_makes_it_strictly_sub_linear():
    work = [device("gpu", 2e9, 1000, 3e9)]
    lean, heavy = curve(work, [SeqShare(kv_bytes=0.0)]), curve(work, [SeqShare(kv_bytes=1.5e9)])
    assert heavy[3] < lean[3] and heavy[3] < 4 * heavy[0]


def test_more_sequences_touch_more_experts():
    s = SeqShare(expert_active_bytes=1e9, expert_total_bytes=32e9, expert_share=1 / 32)
    assert expert_bytes(s, 1) == pytest.approx(1e9)
    touched = [expert_bytes(s, n) for n in (1, 2, 8, 64, 512)]
    assert touched == sorted(touched) and touched[-1] <= 32e9 and touched[1] < 2e9 + 1e-3
    work = [device("gpu", 3e9, 1000, 5e9, moe=True)]
    moe = curve(work, [SeqShare(kv_bytes=0.1e9, expert_active_bytes=1e9, expert_total_bytes=32e9,
                                expert_share=1 / 32)])
    dense = curve(work, [SeqShare(kv_bytes=0.1e9)])
    assert moe[0] == pytest.approx(dense[0]) and moe[3] < dense[3]


def test_bad_input_is_refused():
    work = [device("gpu", 2e9, 1000, 3e9)]
    timings = predict(work, load_efficiency(use_calibration=False)).devices
    with pytest.raises(ValueError):
        aggregate_tps(work, timings, [SeqShare()], 0)
    with pytest.raises(ValueError):
        aggregate_tps(work, timings, [], 2)


def _placed(parallel: int):
    from inferform.hardware.profile import GpuInfo
    from inferform.planner.memory import layer_bytes
    from inferform.planner.search import repack_types, search
    from inferform.setup.spec import parse_setup
    from inferform.setup.yamlpos import load_yaml
    text = ("name: conc\nuse_case: chat\ntarget:\n  kind: local\n  hardware:\n    gpus: [{name: RTX 4090}]\n"
            "    ram_gib: 64\n    cpu: {cores: 8, memory_bandwidth_gbs: 80}\n"
            "model: {id: llama-3.1-8b-instruct, quant: Q4_K_M}\ncontext: 8192\n"
            f"overrides: {{parallel: {parallel}}}\n")
    located = load_yaml(text, "conc.yaml")
    setup = parse_setup(located)
    from inferform.hardware.detect import detect
    from inferform.hardware.resolve import resolve_hardware

    hw = resolve_hardware(setup, located, lambda: detect().model_copy(update={"gpus": []}))
    assert hw.gpus and isinstance(hw.gpus[0], GpuInfo)
    choice, _ = search(setup, hw)
    return choice, hw, layer_bytes(choice.model, repack_types(hw))


def test_planner_fills_aggregate_for_its_slots():
    from inferform.planner.speed_adapter import aggregate_generate_tps, predict_speed

    one, hw, lb = _placed(1)
    speed1 = predict_speed(one.model, one.placement, hw, lb)
    assert speed1.concurrency == 1 and speed1.aggregate_generate_tps == speed1.generate_tps
    four, hw, lb = _placed(4)
    speed4 = predict_speed(four.model, four.placement, hw, lb)
    assert speed4.concurrency == four.placement.cfg.parallel == 4
    assert speed4.generate_tps < speed4.aggregate_generate_tps < 4 * speed4.generate_tps
    assert aggregate_generate_tps(four.model, four.placement, hw, lb, 4) == pytest.approx(
        speed4.aggregate_generate_tps)
    assert aggregate_generate_tps(four.model, four.placement, hw, lb, 1) == pytest.approx(speed4.generate_tps)
