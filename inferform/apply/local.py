"""`inferform apply` for local (and SSH) targets: render the plan, run the roles, record what runs.

Order matters for honesty: files are rendered into a directory named by the plan's hash, the playbook runs, and
only a successful, healthy run is written to state. A failed run of a changed plan re-applies the previous
rendered configuration, so the old server is serving again, and the error carries the engine's log tail.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from inferform.apply.connection import LOCAL, Connection, from_plan, from_state, state_fields
from inferform.apply.lock import run_record, setup_lock
from inferform.apply.support import vllm_gpus
from inferform.apply.swap import GRACE_S, Swap, decide
from inferform.dirs import cache_dir as user_cache_dir
from inferform.engines.registry import PINNED, engine
from inferform.engines.vllm import PINNED as VLLM_PINNED
from inferform.errors import EXIT_FAILURE, InferformError
from inferform.plan import GroupPlan, Plan
from inferform.render import plan_hash, render
from inferform.setup.sources import fetchable, model_filename
from inferform.state import AppliedState, api_key_file, read_state, refuse_elsewhere, setup_dir, write_state

LOG_TAIL = 20
STILL_SERVES = "The previous configuration still serves"  # the service role's words when a switch failed


def cache_dir() -> Path:
    return user_cache_dir()


def model_dir() -> Path:
    return cache_dir() / "models"


def extravars(plan: Plan, render_dir: Path, *, file_bytes: int | None = None, state: str = "started",
              connection: Connection = LOCAL) -> dict:
    """Playbook variables: everything the roles need, all decided by the plan (the roles decide nothing).

    Paths are the target's: this machine's XDG dirs locally, the remote user's over SSH. The render dir alone is
    on the controller; the service role copies its files to the target.
    """
    source, sha256 = plan.model.file or "", plan.model.sha256
    if not fetchable(source):
        raise InferformError.single(
            f"the plan's model file {source!r} names no file to fetch: the catalog records this quant's size "
            "(the planner sized it from the shapes) but not its file name", file=plan.setup,
            hint="give model.file (hf://<repo>/<path of the first shard>, or a local GGUF) next to model.id")
    backend = "cpu" if not plan.target.gpus else "cuda"
    health = engine(plan.engine.name).health_path
    if connection.is_ssh:
        cache, models, state_dir = connection.cache_dir(), connection.model_dir(), connection.state_dir(plan.setup)
    else:
        cache, models, state_dir = str(cache_dir()), str(model_dir()), str(setup_dir(plan.setup))
    checkpoint = plan.vllm is not None
    if checkpoint and not file_bytes and plan.model.source == "config":
        file_bytes = plan.model.file_bytes  # a local folder's safetensors bytes, read by the planner: checked
    return {
        "inferform_engine_kind": plan.engine.name,
        "inferform_engine_backend": backend,
        "inferform_engine_version": PINNED,
        "inferform_engine_vllm_version": VLLM_PINNED,
        "inferform_engine_vllm_gpus": vllm_gpus(plan),
        "inferform_engine_cache_dir": cache,
        "inferform_model_checkpoint": checkpoint,
        "inferform_model_source": plan.model.file,
        "inferform_model_dir": models,
        "inferform_model_filename": model_filename(plan.model.file, sha256),
        "inferform_model_sha256": sha256 or "",
        "inferform_model_bytes": file_bytes or 0,
        "inferform_model_space_bytes": plan.model.file_bytes or 0,
        "inferform_model_cache_dir": cache,
        "inferform_service_name": plan.setup,
        "inferform_service_render_dir": str(render_dir),
        "inferform_service_state_dir": state_dir,
        "inferform_service_model_dir": models,
        "inferform_service_host": plan.serve.host,
        "inferform_service_port": plan.serve.port,
        "inferform_service_state": state,
        "inferform_service_health_path": health,
        "inferform_service_generation": plan_hash(plan),
    }


def local_inventory() -> str:
    return LOCAL.inventory()


def inventory(name: str, connection: Connection) -> str:
    """The inventory for a setup's target; SSH pins the host key in the setup's own known_hosts file."""
    return connection.inventory(known_hosts=setup_dir(name) / "known_hosts" if connection.is_ssh else None)


def endpoint(plan: Plan | GroupPlan, connection: Connection) -> str:
    """The URL clients use: a server bound to every address of a remote host is reached by that host's name."""
    host = plan.serve.host
    if connection.is_ssh and host in ("0.0.0.0", "::"):
        host = connection.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{plan.serve.port}/v1"


def _check_connection(connection: Connection, previous: AppliedState | None, name: str) -> None:
    """Refuse, before anything runs, an apply that cannot connect or would strand a server on another host."""
    if connection.key_file is not None and not connection.key_file.is_file():
        raise InferformError.single(f"ssh key file {connection.key_file} does not exist",
                                    hint="set target.ssh.key_file to your private key, or leave it out to use "
                                         "ssh's own keys and agent")
    if previous is None:
        return
    before = from_state(previous)
    if (before.kind, before.host, before.port, before.user, before.remote_base) != \
            (connection.kind, connection.host, connection.port, connection.user, connection.remote_base):
        refuse_elsewhere(name, before.where(), connection.where())


def _render_dir(plan: Plan) -> Path:
    return setup_dir(plan.setup) / f"render-{plan_hash(plan)}"


def _failure(result, what: str) -> str:
    messages = "\n".join(result.messages[-3:]) if result.messages else "(no message)"
    return f"{what} failed: {messages}"


def _clean_up(variables: dict, hosts: str, on_event: Callable[[dict], None] | None) -> str:
    """After a failed first apply: remove what the service role placed, so nothing half-installed stays behind.

    The service role already stopped a server that did not become healthy; this also removes its unit (systemd
    would restart it) and placed files. The port is not checked afterwards: it may belong to the very program
    that made the apply fail. Caches (engine build, model) stay, as destroy keeps them."""
    from inferform.apply.runner import playbook_path, run_playbook

    cleanup = {**variables, "inferform_service_state": "absent", "inferform_service_port_check": False}
    done = run_playbook(playbook_path("destroy"), cleanup, hosts, on_event=on_event,
                        run_record=run_record(variables["inferform_service_name"]))
    if done.rc != 0:
        return "\nremoving what this apply placed failed too: " + _failure(done, "clean-up")
    return "\nnothing was left running; what this apply placed was removed"


def _roll_back(previous: AppliedState, hosts: str, on_event: Callable[[dict], None] | None,
               connection: Connection) -> str:
    """After a failed apply of a changed plan: apply the previous rendered configuration again, so the server
    that served before serves again (the service role stopped the new one if it started but never got healthy)."""
    from inferform.apply.runner import playbook_path, run_playbook

    back = Path(previous.render_dir) if previous.render_dir else None
    if back is None or not back.is_dir():
        return (f"\nthe previous configuration ({previous.plan_hash}) could not be brought back: its rendered "
                f"files are gone; apply its setup file ({previous.setup_file}) again")
    old = previous.applied_plan()
    old_vars = extravars(old, back, connection=connection)
    if previous.api_key_file:
        old_vars["inferform_service_api_key_file"] = previous.api_key_file
    done = run_playbook(playbook_path("apply"), old_vars, hosts, on_event=on_event, run_record=run_record(old.setup))
    pid = str(done.artifacts.get("inferform_service_pid") or "")
    if done.rc == 0 and pid.isdigit() and int(pid) != previous.pid:
        write_state(previous.model_copy(update={"pid": int(pid)}))  # the restarted server, so status tells true
    if done.rc != 0:
        return (f"\nbringing back the previous configuration ({previous.plan_hash}) failed too: "
                + _failure(done, "roll-back"))
    return f"\nthe previous configuration ({previous.plan_hash}) was brought back and is serving {previous.endpoint}"


def _serving_as_recorded(previous: AppliedState, plan: Plan, connection: Connection) -> bool:
    """terraform's "no changes" without running a playbook: the same plan is applied, and a cheap refresh finds it
    served as recorded (the front alive with this port on its command line and serving this plan's generation, its
    engine alive, /health answering 200 through the front, the model file and the placed files in place). Anything
    else runs the roles, which repair what drifted. Local only: on an SSH target the refresh would cost what the
    playbook costs."""
    from inferform.apply.guard import alive
    from inferform.apply.status import describe, serving

    if connection.is_ssh or previous.plan_hash != plan_hash(plan):
        return False
    placed = setup_dir(plan.setup)
    record = serving(plan.setup)
    if record is None or record.get("generation") != plan_hash(plan) or not alive(record["pid"]):
        return False
    try:
        with open(f"/proc/{record['front_pid']}/cmdline", "rb") as handle:
            args = handle.read().split(b"\0")
    except OSError:
        return False
    port = str(plan.serve.port).encode()
    if not any(a == b"--port" and b == port for a, b in itertools.pairwise(args)):
        return False
    generation = placed / "gen" / plan_hash(plan)
    needed = [Path(previous.render_dir or ""), generation / "run.sh", generation / "engine.env",
              generation / "service.env", placed / "front.sh", model_dir() / stored_model(previous)]
    if previous.api_key_file:
        needed.append(Path(previous.api_key_file))
    return describe(previous)["health"] == "ok" and all(p.exists() for p in needed)


def _note_serving_pid(previous: AppliedState, connection: Connection) -> None:
    """The front restarted the previous engine after a failed replace: record its new pid (local targets)."""
    from inferform.apply.status import serving

    record = None if connection.is_ssh else serving(previous.setup)
    if record is not None and record["pid"] != previous.pid:
        write_state(previous.model_copy(update={"pid": record["pid"]}))


def apply_plan(plan: Plan, setup_file: str, *, on_event: Callable[[dict], None] | None = None,
               connection: Connection | None = None,
               on_swap: Callable[[Swap], None] | None = None) -> tuple[AppliedState, int]:
    """Apply under the setup's lock; returns the new state and how many tasks changed something. `on_swap` hears,
    before anything runs, how a serving configuration will be replaced (beside it, or after it)."""
    from inferform.apply.runner import playbook_path, run_playbook

    connection = connection or from_plan(plan)
    with setup_lock(plan.setup):
        previous = read_state(plan.setup)
        _check_connection(connection, previous, plan.setup)
        if previous is not None and _serving_as_recorded(previous, plan, connection):
            return previous, 0
        out = _render_dir(plan)
        if not out.is_dir():
            tmp = out.with_name(out.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            # engine.env names the model dir for reading; service.env on the target sets the one actually used
            render(plan, tmp, connection.shown(connection.model_dir()) if connection.is_ssh else str(model_dir()))
            os.replace(tmp, out)
        key_file = api_key_file(plan.setup) if plan.serve.api_key_required else None
        variables = extravars(plan, out, connection=connection)
        if key_file:
            variables["inferform_service_api_key_file"] = str(key_file)
        if previous is not None:
            swap = decide(previous.plan, plan)
            variables["inferform_service_side_by_side"] = swap.side_by_side
            variables["inferform_service_grace"] = GRACE_S
            if on_swap is not None and previous.plan_hash != plan_hash(plan):
                on_swap(swap)
        hosts = inventory(plan.setup, connection)
        result = run_playbook(playbook_path("apply"), variables, hosts, on_event=on_event,
                              run_record=run_record(plan.setup))
        if result.rc != 0:
            why = _failure(result, "apply")
            # the service role quoted the server's log: there is more of it (unless a roll-back restarted the old
            # server, whose log then replaces it)
            server_said = "--- last" in why and (previous is None or previous.plan_hash == plan_hash(plan))
            if previous is None:
                why += _clean_up(variables, hosts, on_event)
                if key_file is not None:
                    key_file.unlink(missing_ok=True)
            elif STILL_SERVES in why:  # the front kept (or restarted) the previous engine: nothing to bring back
                _note_serving_pid(previous, connection)
            elif previous.plan_hash != plan_hash(plan):
                why += _roll_back(previous, hosts, on_event, connection)
            if previous is None or previous.render_dir != str(out):
                shutil.rmtree(out, ignore_errors=True)  # the files of a plan that never served
            raise InferformError.single(why, hint=f"the whole log: `inferform logs {setup_file}`" if server_said
                                        else None, exit_code=EXIT_FAILURE)
        pid = str(result.artifacts.get("inferform_service_pid") or "")  # reported by the service role
        state = AppliedState(
            setup=plan.setup, setup_file=str(Path(setup_file).resolve()), plan_hash=plan_hash(plan),
            applied_at=dt.datetime.now(dt.UTC), endpoint=endpoint(plan, connection),
            engine=plan.engine.name, pid=int(pid) if pid.isdigit() else None,
            api_key_file=str(key_file) if key_file else None, **state_fields(connection),
            plan=plan.model_dump(mode="json"), render_dir=str(out))
        write_state(state)
        return state, result.changed


def check_plan(plan: Plan | GroupPlan, *, connection: Connection | None = None) -> tuple[bool, list[str]]:
    """`apply --dry-run`: the apply playbook in Ansible's check+diff mode against files rendered into a temporary
    directory. Nothing on the target changes; returns (whether check mode ran cleanly, what it says would change)."""
    import tempfile

    from inferform.apply.runner import playbook_path, run_playbook

    connection = connection or from_plan(plan)
    changes: list[str] = []

    def collect(event: dict) -> None:
        data = event.get("event_data", {})
        res = data.get("res") or {}
        if event.get("event") == "runner_on_ok" and res.get("changed"):
            changes.append(f"~ {data.get('task', '?')}")
            for d in res.get("diff") or []:
                before, after = d.get("before_header") or d.get("before"), d.get("after_header") or d.get("after")
                if isinstance(before, str) and isinstance(after, str) and "\n" not in before + after:
                    changes.append(f"    {before} -> {after}")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "render"
        if isinstance(plan, Plan):
            render(plan, out, connection.shown(connection.model_dir()) if connection.is_ssh else str(model_dir()))
            variables, playbook = extravars(plan, out, connection=connection), "apply"
        else:  # a group: the router's files and one model per member
            from inferform.apply.group import PLAYBOOK, group_extravars
            from inferform.render import render_group

            render_group(plan, out, None if connection.is_ssh else str(model_dir()))
            variables, playbook = group_extravars(plan, out, connection=connection), PLAYBOOK
        result = run_playbook(playbook_path(playbook), variables, inventory(plan.setup, connection), check=True,
                              diff=True, on_event=collect)
    if result.rc != 0:
        return False, [*changes, *(f"! {m}" for m in result.messages[-2:])]
    return True, changes


def stored_model(state: AppliedState) -> str:
    """The model file name an applied setup's server reads (model_filename of its plan's source)."""
    model = state.plan.get("model", {})
    return model_filename(str(model.get("file", "")), model.get("sha256"))


def stored_models(state: AppliedState) -> set[str]:
    """Every model file name an applied setup reads: one, or each member's for a group."""
    if state.plan.get("kind") == "group":
        return {model_filename(str(m["plan"]["model"].get("file", "")), m["plan"]["model"].get("sha256"))
                for m in state.plan.get("members", [])}
    return {stored_model(state)}


def shared_with(state: AppliedState, filename: str) -> list[str]:
    """The other applied setups (and groups) on the same host whose server reads the same stored model file: a
    purge leaves the file to them."""
    from inferform.state import all_states

    here = from_state(state).where()
    return [other.setup for other in all_states()
            if other.setup != state.setup and other.target != "aws" and from_state(other).where() == here
            and filename in stored_models(other)]


def _destroy_one(state: AppliedState, on_event: Callable[[dict], None] | None, purge: bool,
                 kept_for: list[str] | None) -> None:
    from inferform.apply.runner import playbook_path, run_playbook

    name, connection = state.setup, from_state(state)
    render_dir = Path(state.render_dir) if state.render_dir else setup_dir(name)
    variables = extravars(state.applied_plan(), render_dir, state="absent", connection=connection)
    users = shared_with(state, variables["inferform_model_filename"]) if purge else []
    if kept_for is not None:
        kept_for.extend(users)
    if purge and not users:
        variables["inferform_destroy_model_file"] = f"{variables['inferform_model_dir']}/" \
                                                    f"{variables['inferform_model_filename']}"
    result = run_playbook(playbook_path("destroy"), variables, inventory(name, connection), on_event=on_event,
                          run_record=run_record(name))
    if result.rc != 0:
        raise InferformError.single(_failure(result, "destroy"), exit_code=EXIT_FAILURE)


def destroy_setup(name: str, *, on_event: Callable[[dict], None] | None = None, purge: bool = False,
                  kept_for: list[str] | None = None) -> bool:
    """Stop and remove what apply created, on the host apply used; False when nothing was applied.

    With `purge`, the model file goes too unless another applied setup reads it; their names are appended to
    `kept_for`, so the caller can say why the file stayed."""
    with setup_lock(name):
        state = read_state(name)
        if state is None:
            return False
        if state.plan.get("kind") == "group":  # a router: its members' models are caches and stay
            from inferform.apply.group import destroy_group

            destroy_group(state, on_event, purge=purge, kept_for=kept_for)
        else:
            _destroy_one(state, on_event, purge, kept_for)
        keep = {"api-key", "known_hosts"} if not purge else set()
        for child in setup_dir(name).iterdir():
            if child.name not in keep and child.name != ".lock":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        return True
