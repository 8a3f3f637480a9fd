"""The start-up floor of inferform's chosen CLI stack, without inferform: a typer command that validates one
pydantic model and prints a rich table, then ends the way inferform's entry point does. Whatever `inferform plan`
costs beyond this is inferform's own; `benchmarks/startup.py` prints both. It starts the way inferform's entry
point does (collector off, ordinary annotations), so the difference is inferform's code and nothing else."""

import gc
import os
import sys
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command()
def plan(setup: Annotated[str, typer.Argument()], as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    from pydantic import BaseModel

    class Row(BaseModel):
        setup: str
        fits: bool

    row = Row(setup=setup, fits=True)
    if as_json:
        print(row.model_dump_json())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("setup", "fits")
    table.add_row(row.setup, str(row.fits))
    Console().print(table)


@app.command()
def validate(setup: str) -> None:  # a second command, so typer builds a group as it does for inferform
    print(setup)


if __name__ == "__main__":
    gc.disable()
    try:
        app()
    except SystemExit as exc:
        sys.stdout.flush()
        os._exit(exc.code if isinstance(exc.code, int) else 0)
    sys.stdout.flush()
    os._exit(0)
