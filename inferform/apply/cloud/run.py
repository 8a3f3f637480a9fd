"""Cloud apply, destroy and TTL extension: Pulumi (Automation API, inline program) for the instance, then the same
Ansible roles as a local apply, over SSH.

Order matters for money and honesty. Every check runs before anything is created (`preflight`, then the stack's
own argument validation); state is written as soon as `pulumi up` has succeeded, because from then on an
instance exists and costs money, so `destroy_cloud` and status must know about it even if configuring it fails.
`destroy_cloud` works from the Pulumi stack alone, so a half-created stack (up failed midway) is removable too.

Pulumi's state lives in a local file backend (`cloud_files`), its secrets (the API key output) encrypted with a
passphrase kept in a 0600 file. Pulumi and boto3 are imported inside functions: the CLI must start fast.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from inferform.apply.cloud.files import data_root, ssh_key_file, ssh_keypair, workspace_env
from inferform.apply.cloud.preflight import Preflight, check_aws_credentials, check_pulumi_cli
from inferform.apply.cloud.preflight import preflight as _preflight
from inferform.apply.cloud.ssh import extended_deadline, known_hosts, rearm_command, ssh_argv, wait_for_ssh
from inferform.apply.lock import setup_lock
from inferform.cloud.instance import cloud_image, expires_at, root_volume_gib
from inferform.errors import EXIT_BAD_INPUT, EXIT_FAILURE, InferformError
from inferform.plan import Plan
from inferform.render import plan_hash
from inferform.state import AppliedState, api_key_file, read_state, refuse_elsewhere, setup_dir, write_state

PROJECT = "inferform"
OUTPUTS = ("instance_id", "public_ip", "public_dns", "security_group_id", "endpoint", "expires_at", "api_key")
EventHandler = Callable[[dict], None]


def preflight(plan: Plan) -> Preflight:
    """Refuse (InferformError, exit 2) before touching anything: no TTL, loopback serve host, a /0 CIDR, no Pulumi
    CLI, no AWS credentials or region, or no allowed_cidrs and no way to learn the caller's public IP."""
    return _preflight(plan)


def _step(on_event: EventHandler | None, text: str) -> None:
    """Report a step in ansible-runner's event shape, so one progress display serves Pulumi and Ansible alike."""
    if on_event is not None:
        on_event({"event": "playbook_on_task_start", "event_data": {"task": text}})


def _engine_events(on_event: EventHandler | None):
    """Pulumi engine events → steps ("create aws:ec2/instance:Instance"), for the same progress display."""
    if on_event is None:
        return None

    def handle(event) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and pre.metadata.op.value not in ("same", "read"):
            _step(on_event, f"pulumi: {pre.metadata.op.value} {pre.metadata.type}")

    return handle


def _workspace_options():
    from pulumi import automation as auto

    work_dir = data_root() / "pulumi-project"  # Pulumi.yaml + Pulumi.<stack>.yaml (encryption salt) persist here
    work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return auto.LocalWorkspaceOptions(
        work_dir=str(work_dir), env_vars=workspace_env(), secrets_provider="passphrase",
        project_settings=auto.ProjectSettings(name=PROJECT, runtime="python"))


def _install_aws_plugin(stack) -> None:
    """The provider plugin matching the installed pulumi_aws (the engine would fetch it too, less visibly)."""
    from importlib.metadata import version

    stack.workspace.install_plugin("aws", f"v{version('pulumi_aws')}")


def _program(stack_module, args) -> Callable[[], None]:
    def program() -> None:
        import pulumi

        instance = stack_module.InferformInstance(args.setup, args)
        for key in OUTPUTS:
            pulumi.export(key, getattr(instance, key))

    return program


def _pulumi_failure(what: str, exc: Exception, hint: str) -> InferformError:
    text = str(getattr(exc, "stderr", "") or exc).strip().splitlines()
    return InferformError.single(f"{what} failed: " + "\n".join(text[-8:]), hint=hint, exit_code=EXIT_FAILURE)


def _instance_args(stack_module, plan: Plan, checked: Preflight, **secrets_and_key):
    """The stack's inputs, all decided by the plan and the preflight (apply re-decides nothing)."""
    instance_type = plan.target.instance_type
    if not instance_type:
        raise InferformError.single("the plan chose no instance type for this cloud target",
                                    hint="set target.instance_type, or see `inferform plan` for why none fits")
    gpu = bool(plan.target.gpus)
    return stack_module.InstanceArgs(
        setup=plan.setup, region=checked.region, instance_type=instance_type, market=checked.market,
        ttl_seconds=checked.ttl_seconds, expires_at=expires_at(checked.ttl_seconds),
        allowed_cidrs=list(checked.allowed_cidrs), serve_port=plan.serve.port,
        root_volume_gib=root_volume_gib(plan.model.file_bytes, gpu=gpu), owner=checked.owner, gpu=gpu,
        model_bytes=plan.model.file_bytes, max_price=checked.max_price if checked.market == "spot" else None,
        **secrets_and_key)


def _cloud_fields(args, outputs: dict, usd_per_hour: float | None) -> dict:
    saved = {k: v for k, v in dataclasses.asdict(args).items() if k != "api_key"}
    return {"target": "aws", "host": outputs["public_ip"], "endpoint": outputs["endpoint"],
            "cloud_stack": args.setup, "instance_id": outputs["instance_id"], "region": args.region,
            "public_ip": outputs["public_ip"], "expires_at": dt.datetime.fromisoformat(args.expires_at),
            "market": args.market, "usd_per_hour": usd_per_hour, "cloud_args": saved}


def _keep_deadline(args, previous: AppliedState | None):
    """A re-apply while the instance still runs keeps its deadline.

    The instance's shutdown was armed at its first boot and the stack ignores user-data changes, so a fresh
    `now + ttl` would only move the tags and the state, not the real end: status would promise hours the
    instance does not have. `inferform ttl extend` is what moves a running instance's deadline. When the
    instance is gone (or cannot be seen), the new one gets a full TTL.
    """
    from inferform.apply.cloud.status import live_instance_state

    now = dt.datetime.now(dt.UTC)
    if previous is None or not previous.instance_id or not previous.expires_at or previous.expires_at <= now:
        return args
    alive, _detail = live_instance_state(previous.instance_id, previous.region)
    if alive not in ("pending", "running", "stopping", "stopped"):
        return args
    left = max(60, int((previous.expires_at - now).total_seconds()))
    return dataclasses.replace(args, ttl_seconds=left, expires_at=previous.expires_at.isoformat())


def apply_cloud(plan: Plan, setup_file: str, on_event: EventHandler | None = None,
                checked: Preflight | None = None) -> AppliedState:
    """Create the instance (pulumi up), wait for SSH, then run the roles there through `apply_plan`.

    `up` refreshes first (`pulumi up --refresh`): Pulumi's state would otherwise still list an instance that a spot
    interruption or the dead man's switch has terminated, and the up would change nothing. The refresh drops it
    from state, so the up creates a new one — that is how `apply` brings a preempted setup back. `checked` is
    the caller's preflight result (the CLI runs it before showing progress); without it, preflight runs here.
    """
    checked = checked or preflight(plan)
    earlier = read_state(plan.setup)
    if earlier is not None and earlier.target != "aws":
        refuse_elsewhere(plan.setup, f"{earlier.host} ({earlier.target})", plan.target.kind)
    from inferform.apply.cloud.stacks import load_stack

    stack_module = load_stack("inferform_aws")
    draft = _instance_args(stack_module, plan, checked, ssh_public_key="pending", api_key="pending")  # validates
    from pulumi.automation import create_or_select_stack
    from pulumi.automation.errors import CommandError

    with setup_lock(plan.setup):
        key_file, public_key = ssh_keypair(plan.setup)
        key_path = api_key_file(plan.setup)
        previous = read_state(plan.setup)
        args = dataclasses.replace(_keep_deadline(draft, previous), ssh_public_key=public_key,
                                   api_key=key_path.read_text().strip())
        _step(on_event, f"Create {args.instance_type} ({args.market}) in {args.region} with Pulumi")
        try:
            stack = create_or_select_stack(stack_name=plan.setup, project_name=PROJECT,
                                           program=_program(stack_module, args), opts=_workspace_options())
            _install_aws_plugin(stack)
            result = stack.up(color="never", on_event=_engine_events(on_event), show_secrets=False,
                              suppress_outputs=True, refresh=True)
        except CommandError as exc:
            hint = (f"resources created so far stay until `inferform destroy` (stack {plan.setup!r}); "
                    "an instance, if one started, still ends itself at its TTL")
            raise _pulumi_failure("pulumi up", exc, hint) from None
        outputs = {key: result.outputs[key].value for key in OUTPUTS if key != "api_key"}
        # cost so far counts from the instance's creation: a re-apply that kept the instance keeps its start
        kept = previous is not None and previous.instance_id == outputs["instance_id"]
        cloud = {**_cloud_fields(args, outputs, plan.cost.usd_per_hour),
                 "applied_at": previous.applied_at if kept else dt.datetime.now(dt.UTC)}
        from inferform.apply.connection import Connection, state_fields

        # recorded with the SSH details, so the roles' apply below (which refuses to strand a server on another
        # host) sees the instance it is about to configure as where this setup is applied
        connection = Connection(kind="ssh", host=outputs["public_ip"], user=cloud_image(args.gpu).login_user,
                                key_file=key_file)
        write_state(AppliedState(
            setup=plan.setup, setup_file=str(Path(setup_file).resolve()), plan_hash=plan_hash(plan),
            engine=plan.engine.name, api_key_file=str(key_path), plan=plan.model_dump(mode="json"),
            **{**state_fields(connection), **cloud}))

    _step(on_event, f"Wait for SSH and first boot on {outputs['public_ip']}")
    wait_for_ssh(outputs["public_ip"], connection.user, key_file, known_hosts(plan.setup))
    from inferform.apply.local import apply_plan

    applied, _changed = apply_plan(plan, setup_file, on_event=on_event, connection=connection)
    final = applied.model_copy(update=cloud)
    write_state(final)
    return final


def _select_stack(name: str):
    """The setup's stack, or None when the backend has none (nothing to destroy). Creates nothing."""
    from pulumi.automation import select_stack
    from pulumi.automation.errors import StackNotFoundError

    try:
        return select_stack(stack_name=name, project_name=PROJECT, program=lambda: None, opts=_workspace_options())
    except StackNotFoundError:
        return None


def destroy_cloud(name: str, on_event: EventHandler | None = None) -> bool:
    """Terminate everything the setup's stack holds, remove the stack and the setup's SSH files; False when there
    was no stack. Works without a state file (a failed `up` leaves a stack but no state)."""
    state = read_state(name)
    check_pulumi_cli()
    check_aws_credentials(state.region if state else None, need_region=False)
    from pulumi.automation.errors import CommandError

    with setup_lock(name):
        stack = _select_stack(name)
        if stack is None:
            return False
        _step(on_event, f"Destroy stack {name!r} with Pulumi")
        try:
            _install_aws_plugin(stack)
            stack.destroy(color="never", on_event=_engine_events(on_event), show_secrets=False)
            stack.workspace.remove_stack(name)
        except CommandError as exc:
            raise _pulumi_failure("pulumi destroy", exc, "run it again; check the AWS console for resources "
                                                         f"tagged inferform:setup={name}") from None
        folder = setup_dir(name)
        for child in folder.iterdir() if folder.is_dir() else []:
            if child.name not in ("api-key", ".lock"):  # the API key stays, as with a local destroy
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        return True


def extend_ttl(name: str, seconds: int) -> AppliedState:
    """Move the dead man's switch `seconds` past the current deadline.

    First on the instance over SSH (`shutdown -h +N` replaces the pending shutdown: that is what actually ends
    it), then the `inferform:expires-at` tags through `pulumi up` with the new expires_at — the stack ignores
    changes to AMI and user data, so the up only retags. State is updated last.
    """
    state = read_state(name)
    if state is None or state.target != "aws" or not state.cloud_args:
        raise InferformError.single(f"{name!r} has no cloud instance applied", exit_code=EXIT_BAD_INPUT,
                                    hint="extend applies to cloud setups after `inferform apply`")
    deadline = extended_deadline(state.expires_at, seconds)
    check_pulumi_cli()
    check_aws_credentials(state.region)
    from pulumi.automation.errors import CommandError

    from inferform.apply.cloud.stacks import load_stack

    with setup_lock(name):
        user = cloud_image(bool(state.cloud_args.get("gpu"))).login_user
        argv = ssh_argv(state.public_ip or state.host, user, ssh_key_file(name), known_hosts(name),
                        rearm_command(deadline))
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise InferformError.single(f"could not re-arm the shutdown on {state.public_ip}: "
                                        f"{(done.stderr or done.stdout).strip()[-300:]}",
                                        hint=f"the instance still ends at {state.expires_at}",
                                        exit_code=EXIT_FAILURE)
        stack_module = load_stack("inferform_aws")
        args = stack_module.InstanceArgs(**{**state.cloud_args, "expires_at": deadline.isoformat(),
                                            "api_key": Path(state.api_key_file or api_key_file(name)).read_text()
                                            .strip()})
        try:
            stack = _select_stack(name)
            if stack is None:
                raise InferformError.single(f"the Pulumi stack {name!r} is missing", exit_code=EXIT_FAILURE)
            _install_aws_plugin(stack)
            stack.up(color="never", program=_program(stack_module, args), show_secrets=False, suppress_outputs=True)
        except CommandError as exc:
            raise _pulumi_failure("pulumi up (retag)", exc, f"the instance was re-armed and now ends at {deadline}; "
                                                            "only its inferform:expires-at tag is stale") from None
        updated = state.model_copy(update={"expires_at": deadline,
                                           "cloud_args": {**state.cloud_args, "expires_at": deadline.isoformat()}})
        write_state(updated)
        return updated
