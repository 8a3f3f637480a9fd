"""The single output sink: human output through rich on stdout, or JSON for scripts. Errors go to stderr."""

import json
import sys
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel


def to_jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [to_jsonable(d) for d in data]
    if isinstance(data, dict):
        return {k: to_jsonable(v) for k, v in data.items()}
    return data


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, default=str) + "\n")


def console(stderr: bool = False) -> Any:
    """A rich Console, imported on first use so commands that print JSON never pay for rich."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 200  # piped output: don't squeeze tables into 80 columns
    return Console(file=stream, highlight=False, emoji=False, soft_wrap=False, width=width)


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    if as_json:
        print_json(data)
    else:
        human(console())
