"""Apply state: atomic, locked per setup, secrets kept out."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import stat

import pytest

from inferform.apply.lock import setup_lock
from inferform.errors import InferformError
from inferform.state import (
    AppliedState,
    all_states,
    api_key_file,
    read_state,
    remove_state,
    setup_dir,
    write_state,
)


def sample(name: str = "demo") -> AppliedState:
    return AppliedState(setup=name, setup_file="setups/demo.yaml", plan_hash="abc", applied_at=dt.datetime.now(dt.UTC),
                        endpoint="http://127.0.0.1:8088/v1", engine="llama.cpp", pid=123)


def test_round_trip_and_listing():
    write_state(sample("a"))
    write_state(sample("b"))
    assert read_state("a").pid == 123
    assert [s.setup for s in all_states()] == ["a", "b"]
    remove_state("a")
    assert read_state("a") is None


def test_write_is_atomic_no_temp_files_left():
    write_state(sample())
    assert [p.name for p in setup_dir("demo").iterdir()] == ["state.json"]


def test_corrupt_state_is_a_clear_error():
    write_state(sample())
    (setup_dir("demo") / "state.json").write_text("{not json")
    with pytest.raises(InferformError, match="unreadable"):
        read_state("demo")


def _try_lock(name: str, queue) -> None:
    try:
        with setup_lock(name):
            queue.put("got it")
    except InferformError as exc:
        queue.put(str(exc))


def test_second_apply_of_same_setup_is_refused():
    queue = multiprocessing.get_context("fork").Queue()
    with setup_lock("demo"):
        proc = multiprocessing.get_context("fork").Process(target=_try_lock, args=("demo", queue))
        proc.start()
        proc.join(10)
        assert "another inferform apply" in queue.get(timeout=5)
        other = multiprocessing.get_context("fork").Process(target=_try_lock, args=("other", queue))
        other.start()
        other.join(10)
        assert queue.get(timeout=5) == "got it"


def test_api_key_file_is_private_and_stable():
    path = api_key_file("demo")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600
    key = path.read_text()
    assert key.startswith("sk-inferform-") and len(key) > 40
    assert api_key_file("demo").read_text() == key
    write_state(sample().model_copy(update={"api_key_file": str(path)}))
    assert key.strip() not in (setup_dir("demo") / "state.json").read_text()


def test_state_written_before_render_dir_had_a_field_is_read_as_the_plan_alone(cli):
    """Older state kept the render dir and the model's sha256 inside the plan dict; read now, they are typed fields
    (the sha256 where the plan carries it) and the plan is plan --json again, which destroy and a roll-back validate."""
    import json

    from inferform.setup.sources import model_filename
    from inferform.state import setup_dir
    from tests.conftest import ROOT

    plan = json.loads(cli("plan", str(ROOT / "setups" / "demo.yaml"), "--json").out)
    plan["model"].pop("sha256")  # fields an older plan did not have
    plan["serve"].pop("api_key_required")
    old = sample().model_dump(mode="json")
    old["plan"] = {**plan, "_render_dir": "/state/demo/render-abc", "_sha256": "a" * 64}
    path = setup_dir("demo") / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(old))
    state = read_state("demo")
    assert state.render_dir == "/state/demo/render-abc" and not any(k.startswith("_") for k in state.plan)
    restored = state.applied_plan()
    assert restored.model.sha256 == "a" * 64 and restored.serve.api_key_required is False
    from inferform.apply.local import stored_model

    assert stored_model(state) == model_filename(restored.model.file, "a" * 64), "the same stored file as before"
