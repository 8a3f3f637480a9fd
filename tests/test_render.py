"""render writes the files the service needs, with the planned argv shell-quoted; models --fits ranks models."""

from __future__ import annotations

import json
import shlex

from tests.conftest import ROOT


def test_render_writes_quoted_launch_script_and_plan(cli, tmp_path):
    out = tmp_path / "out"
    result = cli("render", str(ROOT / "setups" / "coder-4080.yaml"), "-o", str(out), "--model-dir", "/srv/my models")
    assert result.code == 0, result.err
    plan = json.loads((out / "plan.json").read_text())
    script = (out / "run.sh").read_text()
    exec_line = next(line for line in script.splitlines() if line.startswith("exec "))
    words = shlex.split(exec_line.replace('"${INFERFORM_MODEL_DIR}"', "MODELDIR"))[1:]
    expected = [w.replace("${INFERFORM_MODEL_DIR}", "MODELDIR") for w in plan["engine"]["argv"]]
    assert words == expected
    env = (out / "engine.env").read_text()
    assert "INFERFORM_MODEL_DIR='/srv/my models'" in env
    unit = (out / "inferform-engine.service").read_text()
    assert f"ExecStart={out / 'run.sh'}" in unit and "{{" not in unit
    assert (out / "run.sh").stat().st_mode & 0o111


def test_models_fits_lists_best_first(cli):
    result = cli("models", "--fits", str(ROOT / "setups" / "rtx3060-chat.yaml"), "--json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert len(rows) > 5 and len({r["id"] for r in rows}) == len(rows)
    budget = 12 * 1024**3
    assert all(r["gpu_bytes"] < budget for r in rows)
    assert all(r["generate_tps"] > 0 for r in rows)


def test_whether_a_key_is_asked_for_is_decided_once_in_the_plan(write):
    """All of 127.0.0.0/8 is loopback (the planner asks no key there, so neither may apply nor run.sh); 0.0.0.0 is
    not. The plan says which; the argv, the rendered environment and apply's key file all follow it."""
    import yaml

    from inferform.apply.local import extravars
    from inferform.pipeline import plan_setup
    from inferform.render import _launch_env

    demo = yaml.safe_load((ROOT / "setups" / "demo.yaml").read_text())
    for host, key in (("127.0.0.2", False), ("::1", False), ("0.0.0.0", True)):
        for engine in ("llama.cpp", "llama-cpp-python"):
            path = write(yaml.safe_dump({**demo, "engine": engine, "serve": {"host": host, "port": 8123}}))
            _, plan = plan_setup(path)
            assert plan.serve.api_key_required is key, (host, engine)
            assert ("--api-key-file" in plan.engine.argv) is (key and engine == "llama.cpp")
            assert (_launch_env(plan)[1] is not None) is (key and engine == "llama-cpp-python")
            assert extravars(plan, ROOT)["inferform_service_host"] == host
