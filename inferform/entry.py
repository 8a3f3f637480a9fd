"""The `inferform` process's entry point: start-up settings that belong to the command-line process and not
to code that imports inferform (tests, notebooks).

Starting a command allocates a few hundred thousand objects (typer's and pydantic's modules, inferform's
classes and schemas), nearly all of which live until exit. The cyclic garbage collector walking them again
and again is ~3.5 % of the instructions of `inferform plan`, a command whose start-up time is part of the
contract. So collection starts disabled; the root callback in cli.py turns it back on for every command that
is not one of the quick read commands, before that command does any work.
"""

from __future__ import annotations

import gc


def run() -> None:
    gc.disable()
    from inferform.cli import run as cli_run

    cli_run()
