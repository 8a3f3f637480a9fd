"""The inferform command line: parse, call, print. Logic lives in the modules it calls.

Heavy imports (pulumi, ansible, boto3, rich tables) happen inside the commands that need them, so
`inferform --help` and `inferform validate` start fast.
"""

import gc
import os
import sys
from typing import Annotated

# pydantic looks for plugins on first use: its loader imports importlib.metadata (email, zipfile, csv: ~20 ms)
# and scans every installed distribution (~30 ms more with pulumi and ansible installed). inferform uses no
# pydantic plugins and start-up time is part of the contract, so plugins are off and the loader is one that
# finds none. Harmless if pydantic moves its loader: the entry below is then never imported.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
if os.environ["PYDANTIC_DISABLE_PLUGINS"] == "__all__" and "pydantic.plugin._loader" not in sys.modules:
    import types

    _no_plugins = types.ModuleType("pydantic.plugin._loader", "inferform: pydantic plugins are disabled")
    _no_plugins.get_plugins = tuple  # type: ignore[attr-defined]  # get_plugins() -> () : no plugins
    sys.modules["pydantic.plugin._loader"] = _no_plugins

import typer

from inferform.errors import EXIT_BAD_INPUT, EXIT_FAILURE, InferformError

app = typer.Typer(
    help="Infrastructure-as-code for LLM inference: validate → plan → apply → destroy.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
SetupArg = Annotated[str, typer.Argument(help="Path to a setup.yaml.", show_default=False)]


def _version(value: bool) -> None:
    if value:
        from inferform import __version__

        typer.echo(f"inferform {__version__}")
        raise typer.Exit()


# Commands that read, compute and print in well under a second: they run with the garbage collector left off
# by inferform.entry (see there). Every other command may run for minutes and gets it back.
QUICK_COMMANDS = frozenset({"plan", "validate", "schema", "hardware", "models", "render"})


@app.callback()
def _root(ctx: typer.Context,
          version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version.")] = False) -> None:
    """inferform: say what you want to run and where; get a sized, explained plan; apply it."""
    if ctx.invoked_subcommand not in QUICK_COMMANDS:
        gc.enable()


@app.command()
def validate(setup: SetupArg, as_json: JsonOpt = False) -> None:
    """Check a setup against the schema and the catalogs; print "ok" or exactly what is wrong."""
    from inferform.pipeline import checked
    from inferform.setup.kind import is_group

    if is_group(setup):
        from inferform.setup.group import load_group

        loaded = load_group(setup)
        names = [m.name for m in loaded.members]
        if as_json:
            from inferform.views.output import print_json

            print_json({"setup": loaded.group.name, "file": setup, "valid": True, "members": names})
        else:
            typer.echo(f"ok: {setup} (group {loaded.group.name}: {', '.join(names)} on {loaded.group.target.kind})")
        return
    spec, _ = checked(setup)
    if as_json:
        from inferform.views.output import print_json

        print_json({"setup": spec.name, "file": setup, "valid": True})
    else:
        typer.echo(f"ok: {setup} ({spec.name}: {spec.use_case}/{spec.experience} on {spec.target.kind})")


@app.command()
def schema(group: Annotated[bool, typer.Option("--group", help="The schema of a group file instead.")] = False,
           ) -> None:
    """Print the JSON Schema of setup.yaml (for editors: # yaml-language-server: $schema=...)."""
    from inferform.views.output import print_json

    if group:
        from inferform.setup.group import json_schema as group_schema

        print_json(group_schema())
        return
    from inferform.setup.spec import json_schema

    print_json(json_schema())


@app.command()
def hardware(setup: Annotated[str | None, typer.Argument(help="Resolve this setup's hardware instead.")] = None,
             as_json: JsonOpt = False) -> None:
    """Describe this machine (or a setup's target) as the hardware profile the planner uses."""
    from inferform.hardware.detect import detect
    from inferform.views.catalog import show_hardware
    from inferform.views.output import emit

    if setup is None:
        profile = detect()
    else:
        from inferform.pipeline import hardware as setup_hardware

        profile = setup_hardware(setup, choose=False)[1]
        if profile is None:
            raise InferformError.single("the instance type is 'auto': the planner chooses it",
                                        file=setup, hint="run `inferform plan` to see the chosen instance")
    emit(profile, as_json, lambda out: show_hardware(profile, out))


@app.command()
def models(as_json: JsonOpt = False,
           use_case: Annotated[str | None, typer.Option(help="Only models suited to this use case.")] = None,
           fits: Annotated[str | None, typer.Option("--fits", help="Only what fits this setup's target, best first.")]
           = None) -> None:
    """List the model catalog, or (--fits SETUP) the models and quants that fit a setup with predicted speed."""
    from inferform.views.output import emit

    if fits:
        from inferform.pipeline import fitting
        from inferform.views.catalog import show_fits

        rows = fitting(fits)
        emit(rows, as_json, lambda out: show_fits(rows, out))
        return
    from inferform.catalog.models import load_models
    from inferform.views.catalog import model_row, show_models

    entries = [m for m in load_models().values() if use_case is None or use_case in m.use_cases]
    emit([model_row(m) for m in entries], as_json, lambda out: show_models(entries, out))


@app.command()
def plan(setup: SetupArg, as_json: JsonOpt = False,
         offline: Annotated[bool, typer.Option("--offline", help="Cloud prices from the catalog snapshot only "
                                                                 "(also INFERFORM_OFFLINE=1).")] = False,
         member: Annotated[str | None, typer.Option("--member", help="A group's member: its whole plan.")] = None,
         ) -> None:
    """Plan a setup: model file and quant, placement, context, KV cache, batches, memory and speed, and why."""
    from inferform.pipeline import plan_setup
    from inferform.setup.kind import is_group
    from inferform.views.output import emit

    if is_group(setup):
        from inferform.pipeline import plan_group_setup
        from inferform.views.group import show_group_plan

        _, group = plan_group_setup(setup)
        if member is None:
            emit(group, as_json, lambda out: show_group_plan(group, out))
            return
        from inferform.views.plan import show_plan

        found = group.member(member)
        if found is None:
            raise InferformError.single(f"{group.setup} has no member named {member!r}", file=setup,
                                        hint=f"--member one of: {', '.join(m.name for m in group.members)}")
        emit(found, as_json, lambda out: show_plan(found, out))
        return
    if member is not None:
        raise InferformError.single("--member goes with a group file", file=setup, hint=f"inferform plan {setup}")
    from inferform.views.plan import show_plan

    _, result = plan_setup(setup, offline=offline)
    emit(result, as_json, lambda out: show_plan(result, out))


@app.command()
def render(setup: SetupArg,
           out: Annotated[str, typer.Option("-o", "--out", help="Directory to write the files into.")],
           model_dir: Annotated[str, typer.Option(help="Where the model file will be.")] = "models") -> None:
    """Write the llama-server launch script, env file, systemd unit and plan.json for a setup."""
    from pathlib import Path

    from inferform.setup.kind import is_group

    if is_group(setup):
        from inferform.pipeline import plan_group_setup
        from inferform.render import render_group

        written = render_group(plan_group_setup(setup)[1], Path(out), model_dir)
    else:
        from inferform.pipeline import plan_setup
        from inferform.render import render as render_files

        written = render_files(plan_setup(setup)[1], Path(out), model_dir)
    for path in written:
        typer.echo(f"wrote {path}")


def _progress(local_backend: str | None = None):
    """The progress line; `local_backend`: the target is this machine, so that backend's build log is watched."""
    from inferform.views.progress import PlaybookProgress

    watch = {}
    if local_backend:
        from inferform.dirs import engine_home, engine_venv
        from inferform.engines.registry import PINNED

        watch = {"Build llama-server": engine_home(PINNED, local_backend) / "build.log",
                 "Build the llama-cpp-python venv": engine_venv(PINNED, local_backend) / "install.log"}
    shown = PlaybookProgress(watch)
    return shown, shown.on_event


@app.command()
def apply(setup: SetupArg,
          dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan diff and rendered files; "
                                                                  "change nothing.")] = False) -> None:
    """Make a setup real: build the engine, fetch the model, run the server, wait until it is healthy."""
    from inferform.pipeline import plan_setup
    from inferform.setup.kind import is_group
    from inferform.state import check_kind, check_owner, read_state, refuse_elsewhere
    from inferform.views.plan_diff import diff_lines

    if is_group(setup):
        _apply_group(setup, dry_run)
        return
    spec, result = plan_setup(setup)
    from inferform.apply.support import check_appliable

    check_appliable(result, setup)
    previous = read_state(spec.name)
    check_owner(previous, setup)
    check_kind(previous, group=False)
    lines = diff_lines(previous.plan if previous else None, result.model_dump(mode="json"))
    for line in lines:
        typer.echo(line)
    if previous is not None and (previous.target == "aws") != spec.target.is_cloud:
        refuse_elsewhere(spec.name, f"{previous.host} ({previous.target})", spec.target.kind)
    if dry_run:
        from inferform.apply.dry_run import show_dry_run

        show_dry_run(result, typer.echo)
        return
    if spec.target.is_cloud:
        _apply_cloud(result, setup)
        return
    from inferform.apply.connection import from_plan
    from inferform.apply.local import apply_plan

    connection = from_plan(result)
    progress, on_event = _progress(None if connection.is_ssh else "cuda" if result.target.gpus else "cpu")
    with progress:
        state, changed = apply_plan(result, setup, on_event=on_event, connection=connection,
                                    on_swap=lambda swap: typer.echo(f"swap: {swap.why}"))
    if previous is not None and state.applied_at == previous.applied_at:
        typer.echo(f"no changes: {spec.name} serves {state.endpoint} (pid {state.pid}) as applied at "
                   f"{state.applied_at:%Y-%m-%d %H:%M:%S} UTC")
    else:
        typer.echo(f"applied {spec.name} on {connection.where()}: {changed} changed; serving {state.endpoint} "
                   f"(pid {state.pid})")
    typer.echo(f"stop it with: inferform destroy {setup}")


def _apply_group(setup: str, dry_run: bool) -> None:
    """A group: the member diff (which members restart), then the router under the service role."""
    from inferform.apply.group import apply_group
    from inferform.pipeline import plan_group_setup
    from inferform.state import check_kind, check_owner, read_state
    from inferform.views.plan_diff import group_diff_lines

    _, group = plan_group_setup(setup)
    previous = read_state(group.setup)
    check_owner(previous, setup)
    check_kind(previous, group=True)
    for line in group_diff_lines(previous.plan if previous else None, group):
        typer.echo(line)
    if dry_run:
        from inferform.apply.dry_run import show_group_dry_run

        show_group_dry_run(group, typer.echo)
        return
    progress, on_event = _progress(None if group.target.ssh else "cuda" if group.target.gpus else "cpu")
    with progress:
        state, changed = apply_group(group, setup, on_event=on_event)
    typer.echo(f"applied {group.setup}: {changed} changed; serving {state.endpoint} (router pid {state.pid}; "
               f"members {', '.join(m.name for m in group.members)})")
    typer.echo(f"stop it with: inferform destroy {setup}")


def _apply_cloud(result, setup: str) -> None:
    """Preflight first (exit 2, nothing created), then Pulumi and the roles over SSH under one progress display."""
    from inferform.apply.cloud.run import apply_cloud, preflight
    from inferform.apply.cloud.status import describe_cloud
    from inferform.views.cloud import show_cloud_applied
    from inferform.views.output import console

    checked = preflight(result)
    progress, on_event = _progress()
    with progress:
        state = apply_cloud(result, setup, on_event=on_event, checked=checked)
    show_cloud_applied(describe_cloud(state, live=False), console())


@app.command()
def destroy(setup: SetupArg,
            purge: Annotated[bool, typer.Option(help="Also delete the downloaded model file.")] = False) -> None:
    """Stop what apply started and remove what it created (shared caches stay unless --purge)."""
    from inferform.setup.kind import is_group
    from inferform.state import check_owner, read_state

    group = is_group(setup)
    if group:  # a router and its members, on a local or ssh target
        from inferform.setup.group import load_group

        name, cloud = load_group(setup).group.name, False
        state = read_state(name)
    else:
        from inferform.setup.spec import load_setup

        spec = load_setup(setup)
        name, state = spec.name, read_state(spec.name)
        # what was applied decides; with no state (a failed `pulumi up` leaves a stack), the setup file does
        cloud = (state.target == "aws") if state else spec.target.is_cloud
    check_owner(state, setup)
    if cloud:
        from inferform.apply.cloud.run import destroy_cloud

        progress, on_event = _progress()
        with progress:
            done = destroy_cloud(name, on_event=on_event)
        typer.echo(f"destroyed {name}: the instance and its stack are gone" if done else
                   f"nothing applied for {name} (no Pulumi stack)")
        return
    from inferform.apply.local import destroy_setup

    progress, on_event = _progress()
    kept_for: list[str] = []
    with progress:
        done = destroy_setup(name, on_event=on_event, purge=purge, kept_for=kept_for)
    gone, kept = (": the router and its members are gone", "model files were kept") if group else \
        ("", "the model file was kept")
    typer.echo(f"destroyed {name}{gone}" if done else f"nothing applied for {name}")
    if kept_for:
        typer.echo(f"{kept}: {', '.join(kept_for)} serve{'s' if len(kept_for) == 1 else ''} "
                   f"{'them' if group else 'it'}")


@app.command()
def status(setup: Annotated[str | None, typer.Argument(help="Only this setup (path).")] = None,
           as_json: JsonOpt = False) -> None:
    """What inferform runs: endpoint, health, since when, memory in use vs planned; for cloud setups the instance,
    its live state (with AWS credentials), time left before the dead man's switch, and cost so far."""
    from inferform.apply.status import describe
    from inferform.state import all_states, read_state
    from inferform.views.output import emit

    if setup:
        from inferform.pipeline import deployment_name

        found = read_state(deployment_name(setup))
        states = [found] if found else []
    else:
        states = all_states()
    from inferform.apply.cloud.status import describe_cloud  # light: boto3 only once a cloud row asks EC2
    from inferform.views.status import show_status

    rows = [describe_cloud(s) if s.target == "aws" else describe(s) for s in states]
    emit(rows, as_json, lambda out: show_status(rows, out))


@app.command()
def logs(setup: SetupArg, follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing.")] = False,
         lines: Annotated[int, typer.Option("-n", help="Lines from the end.")] = 50) -> None:
    """Print the engine's log (the server's own output)."""
    import subprocess

    from inferform.pipeline import deployment_name
    from inferform.state import read_state, setup_dir

    name = deployment_name(setup)
    state = read_state(name)
    if state is not None and state.target in ("ssh", "aws"):
        from inferform.apply.status import log_location

        raise InferformError.single(f"{name} runs on {state.host}: its log is {log_location(state)}",
                                    hint="read it there, e.g. ssh HOST tail -n 50 <that path>")
    path = setup_dir(name) / "server.log"
    if not path.exists():
        raise InferformError.single(f"no log at {path}", hint="apply the setup first")
    subprocess.run(["tail", "-n", str(lines), *(["-F"] if follow else []), str(path)], check=False)


@app.command()
def bench(target: Annotated[str, typer.Argument(help="An applied setup (path or name), or an OpenAI-compatible "
                                                     "base URL.", show_default=False)],
          setup: Annotated[str | None, typer.Option("--setup", help="With a URL: compare with this setup's plan.")]
          = None,
          calibrate: Annotated[bool, typer.Option("--calibrate", help="Write the measured efficiency to the local "
                                                                      "calibration file that plan reads.")] = False,
          as_json: JsonOpt = False,
          requests: Annotated[int, typer.Option("-n", help="Requests measured one after another.")] = 3,
          concurrency: Annotated[int | None, typer.Option(help="Requests at once for the aggregate rate "
                                                               "(default: the plan's parallel slots).")] = None,
          max_tokens: Annotated[int, typer.Option(help="Tokens generated per request.")] = 128,
          member: Annotated[str | None, typer.Option("--member", help="A group's member (the request's `model`).")]
          = None) -> None:
    """Measure a served endpoint (time to first token, prompt and generation tok/s) beside the plan's prediction."""
    from inferform.bench.client import measure
    from inferform.bench.target import from_setup, from_url, is_url, member_target
    from inferform.pipeline import plan_setup
    from inferform.views.bench import show_bench
    from inferform.views.output import emit

    if is_url(target):
        tgt = from_url(target, setup)
    elif setup:
        raise InferformError.single("--setup goes with a URL", hint=f"inferform bench {target}")
    else:
        tgt = from_setup(target)
    if member is not None or (tgt.plan or {}).get("kind") == "group":
        tgt = member_target(tgt, member)
    basis = None
    if calibrate:
        from inferform.bench.calibrate import check_basis

        if tgt.plan is None or tgt.setup_file is None:
            raise InferformError.single("--calibrate needs the setup whose plan the measurement corrects",
                                        hint="inferform bench SETUP --calibrate (or URL --setup SETUP)")
        if tgt.model is not None:  # a group's member: its plan, planned again with the group
            from inferform.pipeline import plan_group_setup

            again = plan_group_setup(tgt.setup_file)[1].member(tgt.model)
            basis = again.model_dump(mode="json") if again else {}
        else:
            basis = plan_setup(tgt.setup_file)[1].model_dump(mode="json")
        check_basis(tgt.plan, basis)
    report = measure(tgt, requests=requests, concurrency=concurrency, max_tokens=max_tokens)
    if basis is not None:
        from inferform.bench.calibrate import write_calibration

        report.calibration = write_calibration(report, basis)
    emit(report, as_json, lambda out: show_bench(report, out))


ttl_app = typer.Typer(help="The dead man's switch of a cloud setup.", no_args_is_help=True)
app.add_typer(ttl_app, name="ttl")


@ttl_app.command("extend")
def ttl_extend(setup: SetupArg, duration: Annotated[str, typer.Argument(help="How much longer: 90m, 2h, 1d.",
                                                                         show_default=False)]) -> None:
    """Push a cloud setup's shutdown DURATION past its current deadline: on the instance, then its tags."""
    from inferform.cloud.instance import ttl_seconds
    from inferform.setup.spec import load_setup

    try:
        seconds = ttl_seconds(duration.strip())
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise InferformError.single(f"{duration!r} is not a duration like '90m', '2h' or '1d'",
                                    hint=f"inferform ttl extend {setup} 2h")
    from inferform.apply.cloud.run import extend_ttl
    from inferform.apply.cloud.status import describe_cloud

    row = describe_cloud(extend_ttl(load_setup(setup).name, seconds), live=False)
    typer.echo(f"extended {row['setup']}: the instance now ends itself at {row['expires_at']} ({row['time_left']})")


@app.command()
def sweep(region: Annotated[list[str] | None, typer.Option(
              "--region", metavar="REGION", help="Only this region (repeatable); default: the catalog's regions and "
                                                 "those in local state.")] = None,
          yes: Annotated[bool, typer.Option("--yes", help="Terminate what is left over (otherwise: list only).")]
          = False, as_json: JsonOpt = False) -> None:
    """Find EC2 instances inferform started that nobody keeps (expired, or their state is gone); --yes ends them."""
    from inferform.cloud.sweep import find, report, terminate
    from inferform.views.cloud import show_sweep
    from inferform.views.output import emit

    found = find(region)
    ended = terminate([f for f in found if f.leftover]) if yes else []
    result = report(found, ended, yes)
    emit(result, as_json, lambda out: show_sweep(result, out))


def main() -> None:
    """Console-script entry: user errors print cleanly (exit 2, or 1 while acting); tracebacks only on debug."""
    debug = os.environ.get("INFERFORM_DEBUG") == "1"
    try:
        app()
    except InferformError as exc:
        if debug:
            raise
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # a bug: say so briefly unless debugging
        if debug:
            raise
        sys.stderr.write(f"internal error: {type(exc).__name__}: {exc}\n"
                         "  (set INFERFORM_DEBUG=1 for the traceback, and please report it)\n")
        sys.exit(EXIT_FAILURE)


def run() -> None:
    """Console-script entry: main(), then end the process without interpreter teardown.

    Tearing down the modules typer and pydantic import costs ~100 ms on every command, a third of the start-up
    budget. By the time main() returns every command has finished its work and closed its files; output
    streams are flushed here before the exit.
    """
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


__all__ = ["EXIT_BAD_INPUT", "app", "main", "run"]
