"""`inferform apply` / `destroy` of a group: one router, one model per member, under the service role.

The same discipline as one setup (apply/local.py): files rendered into a directory named by the plan's hash, the
playbook run under the group's lock, state written only after a healthy run, a failed first apply cleaned up and a
failed re-apply rolled back to the previous rendered configuration. What differs is what a change restarts: the
router's own configuration (its argv, address and key) names the service's generation, so a change to members
alone keeps the router and reloads its preset, which restarts only the members whose sections changed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from inferform.apply.connection import LOCAL, Connection, from_plan, from_state, state_fields
from inferform.apply.local import _failure, cache_dir, endpoint, inventory, model_dir
from inferform.apply.lock import run_record, setup_lock
from inferform.engines.registry import PINNED
from inferform.errors import EXIT_FAILURE, InferformError
from inferform.plan import GroupPlan
from inferform.render import plan_hash, render_group, router_generation
from inferform.setup.sources import fetchable, model_filename
from inferform.state import AppliedState, api_key_file, read_state, refuse_elsewhere, setup_dir, write_state

PLAYBOOK = "apply_group"


def is_group_state(state: AppliedState) -> bool:
    return state.plan.get("kind") == "group"


def members_models(group: GroupPlan) -> list[dict]:
    """The model role's variables for every member (the playbook loops the role over them)."""
    out = []
    for m in group.members:
        source, sha256 = m.plan.model.file or "", m.plan.model.sha256
        if not fetchable(source):
            raise InferformError.single(f"member {m.name!r}: the plan's model file {source!r} names no file to "
                                        "fetch", file=group.setup,
                                        hint="give the member's model.file (hf://..., a local GGUF or pypi://)")
        out.append({"name": m.name, "source": source, "filename": model_filename(source, sha256),
                    "sha256": sha256 or "", "bytes": 0, "space_bytes": m.plan.model.file_bytes or 0})
    return out


def group_extravars(group: GroupPlan, render_dir: Path, *, state: str = "started",
                    connection: Connection = LOCAL) -> dict:
    """Playbook variables for a group. No model-role variable is an extra var: extra vars outrank the playbook's
    per-member `vars`, so each member's come from inferform_group_models."""
    if connection.is_ssh:
        cache, models, state_dir = connection.cache_dir(), connection.model_dir(), connection.state_dir(group.setup)
    else:
        cache, models, state_dir = str(cache_dir()), str(model_dir()), str(setup_dir(group.setup))
    return {
        "inferform_engine_kind": "llama.cpp",
        "inferform_engine_backend": "cpu" if not group.target.gpus else "cuda",
        "inferform_engine_version": PINNED,
        "inferform_engine_cache_dir": cache,
        "inferform_model_dir": models,
        "inferform_model_cache_dir": cache,
        "inferform_group_models": members_models(group),
        "inferform_service_name": group.setup,
        "inferform_service_render_dir": str(render_dir),
        "inferform_service_state_dir": state_dir,
        "inferform_service_model_dir": models,
        "inferform_service_host": group.serve.host,
        "inferform_service_port": group.serve.port,
        "inferform_service_state": state,
        "inferform_service_router": True,
        "inferform_service_preload": list(group.preload),
        "inferform_service_health_path": "/health",
        "inferform_service_generation": router_generation(group),
        # two routers side by side would hold every loaded member twice: a new router replaces the old one
        "inferform_service_side_by_side": False,
    }


def _render_dir(group: GroupPlan) -> Path:
    return setup_dir(group.setup) / f"render-{plan_hash(group)}"


def _rendered(group: GroupPlan, connection: Connection) -> Path:
    out = _render_dir(group)
    if not out.is_dir():
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        render_group(group, tmp, None if connection.is_ssh else str(model_dir()))
        os.replace(tmp, out)
    return out


def _run(group: GroupPlan, out: Path, key_file: Path | None, connection: Connection,
         on_event: Callable[[dict], None] | None):
    from inferform.apply.runner import playbook_path, run_playbook

    variables = group_extravars(group, out, connection=connection)
    if key_file:
        variables["inferform_service_api_key_file"] = str(key_file)
    hosts = inventory(group.setup, connection)
    return variables, hosts, run_playbook(playbook_path(PLAYBOOK), variables, hosts, on_event=on_event,
                                          run_record=run_record(group.setup))


def apply_group(group: GroupPlan, setup_file: str, *, on_event: Callable[[dict], None] | None = None,
                connection: Connection | None = None) -> tuple[AppliedState, int]:
    """Apply under the group's lock; returns the new state and how many tasks changed something."""
    from inferform.apply.local import _clean_up

    connection = connection or from_plan(group)
    with setup_lock(group.setup):
        previous = read_state(group.setup)
        if previous is not None:
            before = from_state(previous)
            if before.where() != connection.where():
                refuse_elsewhere(group.setup, before.where(), connection.where())
        out = _rendered(group, connection)
        key_file = api_key_file(group.setup) if group.serve.api_key_required else None
        variables, hosts, result = _run(group, out, key_file, connection, on_event)
        if result.rc != 0:
            why = _failure(result, "apply")
            if previous is None:
                why += _clean_up(variables, hosts, on_event)
            elif previous.plan_hash != plan_hash(group) and is_group_state(previous) and previous.render_dir \
                    and Path(previous.render_dir).is_dir():
                old = GroupPlan.model_validate(previous.plan)
                _, _, back = _run(old, Path(previous.render_dir), key_file, connection, on_event)
                why += ("\nthe previous configuration was brought back" if back.rc == 0
                        else "\nbringing back the previous configuration failed too: " + _failure(back, "roll-back"))
            if previous is None or previous.render_dir != str(out):
                shutil.rmtree(out, ignore_errors=True)
            raise InferformError.single(why, exit_code=EXIT_FAILURE)
        pid = str(result.artifacts.get("inferform_service_pid") or "")
        state = AppliedState(
            setup=group.setup, setup_file=str(Path(setup_file).resolve()), plan_hash=plan_hash(group),
            applied_at=dt.datetime.now(dt.UTC), endpoint=endpoint(group, connection),
            engine="llama.cpp", pid=int(pid) if pid.isdigit() else None,
            api_key_file=str(key_file) if key_file else None, **state_fields(connection),
            plan=group.model_dump(mode="json"), render_dir=str(out))
        write_state(state)
        return state, result.changed


def destroy_group(state: AppliedState, on_event: Callable[[dict], None] | None = None, *, purge: bool = False,
                  kept_for: list[str] | None = None) -> None:
    """Stop the router (its children stop with it) and remove what the service role placed. The members' model
    files are caches and stay; with `purge` each goes too unless another applied setup or group reads it (their
    names are appended to `kept_for`)."""
    from inferform.apply.local import shared_with
    from inferform.apply.runner import playbook_path, run_playbook

    group = GroupPlan.model_validate(state.plan)
    connection = from_state(state)
    render_dir = Path(state.render_dir) if state.render_dir else setup_dir(state.setup)
    variables = group_extravars(group, render_dir, state="absent", connection=connection)
    if purge:
        files = []
        for filename in sorted({m["filename"] for m in variables["inferform_group_models"]}):
            users = shared_with(state, filename)
            if kept_for is not None:
                kept_for.extend(u for u in users if u not in kept_for)
            if not users:
                files.append(f"{variables['inferform_model_dir']}/{filename}")
        variables["inferform_destroy_model_files"] = files
    result = run_playbook(playbook_path("destroy"), variables, inventory(state.setup, connection), on_event=on_event,
                          run_record=run_record(state.setup))
    if result.rc != 0:
        raise InferformError.single(_failure(result, "destroy"), exit_code=EXIT_FAILURE)
