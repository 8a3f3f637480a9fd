"""Random YAML and random setups never crash the loader: they validate or fail with a clean InferformError."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferform.errors import InferformError
from inferform.setup.references import find_problems
from inferform.setup.spec import parse_setup
from inferform.setup.yamlpos import load_yaml

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
json_like = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.text(max_size=10), inner, max_size=5)),
                         max_leaves=20)

KEYS = ["name", "use_case", "experience", "target", "model", "context", "engine", "serve", "overrides"]
setup_like = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.from_regex(r"[a-z0-9][a-z0-9-]{0,70}", fullmatch=True), st.text(max_size=10)),
    "use_case": st.sampled_from(["chat", "coding", "rag", "nope", 3]),
    "experience": st.sampled_from(["latency", "throughput", "accuracy", "creativity", None]),
    "target": st.fixed_dictionaries({"kind": st.sampled_from(["local", "aws-spot", "free-trial", "x"])}, optional={
        "hardware": st.fixed_dictionaries({}, optional={
            "gpus": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["RTX 4090", "RTX 3060 12GB", "zz"])},
                                                   optional={"vram_gib": st.floats(-1, 2000),
                                                             "count": st.integers(-1, 20)}), max_size=3),
            "ram_gib": st.one_of(st.floats(-10, 10**6), st.text(max_size=4))}),
        "region": st.sampled_from(["us-east-1", "moon"]), "ttl": st.sampled_from(["3h", "0m", "x", "40d"]),
        "instance_type": st.sampled_from(["auto", "g5.xlarge", "nope.big", "?"])}),
    "model": st.fixed_dictionaries({}, optional={"id": st.sampled_from(["phi-4", "gpt-oss-20b", "nope"]),
                                                 "quant": st.sampled_from(["auto", "Q4_K_M", "Q9"]),
                                                 "file": st.sampled_from(["x.gguf", "hf://a/b/c.gguf", "ftp://x"])}),
    "context": st.one_of(st.integers(-10, 2 * 10**7), st.just("auto"), st.text(max_size=5)),
    "overrides": st.dictionaries(st.sampled_from(["n_gpu_layers", "n_ctx", "flash_attn", "nope"]), json_like,
                                 max_size=3),
    "extra": json_like,
})


def load_and_check(text: str) -> None:
    try:
        located = load_yaml(text, "fuzz.yaml")
        setup = parse_setup(located)
        find_problems(setup, located)
    except InferformError as exc:
        assert exc.exit_code == 2
        assert str(exc)  # every error says something


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text_never_crashes(text):
    load_and_check(text)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_like)
def test_random_documents_never_crash(doc):
    load_and_check(yaml.safe_dump(doc))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(setup_like)
def test_random_setups_never_crash(doc):
    load_and_check(yaml.safe_dump(doc, allow_unicode=True))
