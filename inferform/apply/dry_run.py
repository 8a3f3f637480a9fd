"""`apply --dry-run`: everything apply would do, shown and checked, with nothing touched on any target."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from inferform.plan import GroupPlan, Plan
from inferform.render import plan_hash
from inferform.render import render as render_files


def show_dry_run(result: Plan, echo: Callable[[str], None]) -> None:
    """Cloud: what the stack would create (no Pulumi, no boto3). Then the rendered files, and for machines that
    exist already, Ansible's check+diff run of the apply playbook."""
    cloud = result.target.is_cloud
    if cloud:
        from inferform.apply.cloud.preview import preview
        from inferform.views.cloud import show_cloud_preview
        from inferform.views.output import console

        show_cloud_preview(preview(result), console())
    with tempfile.TemporaryDirectory() as tmp:
        for path in render_files(result, Path(tmp), "${INFERFORM_MODEL_DIR}"):
            echo(f"--- {path.name}\n{path.read_text()}")
    if not cloud:  # a cloud instance does not exist yet: there is nothing to check against
        _show_check(result, echo)
    echo(f"dry run: nothing applied (plan {plan_hash(result)})")


def show_group_dry_run(group: GroupPlan, echo: Callable[[str], None]) -> None:
    """A group: the router's rendered files (the preset as planned), then Ansible's check+diff run."""
    from inferform.render import render_group

    with tempfile.TemporaryDirectory() as tmp:
        for path in render_group(group, Path(tmp)):
            echo(f"--- {path.name}\n{path.read_text()}")
    _show_check(group, echo)
    echo(f"dry run: nothing applied (plan {plan_hash(group)})")


def _show_check(plan: Plan | GroupPlan, echo: Callable[[str], None]) -> None:
    from inferform.apply.local import check_plan

    clean, changes = check_plan(plan)
    echo(f"--- ansible --check --diff: {len([c for c in changes if c.startswith('~')])} task(s) "
         f"would change{'' if clean else ' (check mode stopped early)'}")
    for line in changes:
        echo(line)
