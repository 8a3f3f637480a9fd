"""One error type for everything a user can fix, so the CLI translates failures in one place.

A user error carries where it happened (file, line, column) and how to fix it; the CLI prints it without a
traceback and exits 2 (bad input / impossible setup) or 1 (failure while acting).
"""

import difflib
from collections.abc import Iterable
from typing import NamedTuple

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class Problem(NamedTuple):
    """One thing wrong with the input, located as precisely as we know. (No dataclasses on the plan path: their
    generated methods are exec'd at import; README, "Start-up time".)"""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    hint: str | None = None

    def render(self) -> str:
        where = self.file or ""
        if self.file and self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f"\n  To fix: {self.hint}"
        return text


class InferformError(Exception):
    """An error the user can act on. Several problems may be reported at once (all schema errors of a file)."""

    def __init__(self, problems: list[Problem] | None = None, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(problems, exit_code)
        self.problems: list[Problem] = problems if problems is not None else []
        self.exit_code = exit_code

    def __repr__(self) -> str:
        return f"InferformError(problems={self.problems!r}, exit_code={self.exit_code})"

    @classmethod
    def single(cls, message: str, *, file: str | None = None, line: int | None = None,
               column: int | None = None, hint: str | None = None,
               exit_code: int = EXIT_BAD_INPUT) -> "InferformError":
        return cls([Problem(message, file, line, column, hint)], exit_code)

    def __str__(self) -> str:
        return "\n".join(p.render() for p in self.problems)


def did_you_mean(word: str, choices: Iterable[str], *, n: int = 3) -> str | None:
    """A hint naming the closest valid choices, or None when nothing is close."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.6)
    if not close:
        return None
    names = ", ".join(repr(lowered[c]) for c in close)
    return f"did you mean {names}?"
