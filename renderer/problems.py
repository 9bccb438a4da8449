"""Problems found in input files, reported all at once as `path:line: field: message`."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

# line breaks (also those str.splitlines() and so the email package take) and other controls:
# what must not get into one line of output, a mail header or a setting
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One problem in one input file; `line` and `field` are given where known."""

    path: str
    line: int | None
    field: str
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        path = _visible(self.path)
        where = path if self.line is None else f"{path}:{self.line}"
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        field = f"{self.field}: " if self.field else ""
        return f"{where}: {prefix}{field}{self.message}"

    def sort_key(self) -> tuple:
        return (self.path, self.line or 0, self.field, self.message)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


def _visible(text: str) -> str:
    """A name with its line breaks and other controls escaped: a problem stays one line."""
    return CONTROL.sub(lambda found: ascii(found[0])[1:-1], text)


class InvalidInput(Exception):
    """Raised with every problem found when input cannot be used; the CLI exits 1."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=Problem.sort_key)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    def __reduce__(self):  # so that it comes back whole from a worker process
        return (InvalidInput, (self.problems,))


def errors_in(problems: list[Problem]) -> list[Problem]:
    return [problem for problem in problems if problem.is_error]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """` (did you mean 'sdet'?)`, naming the known names closest to a mistyped one (at most
    three, closest first), to end a message with; '' when none is close. Every suggestion (a
    record's field, a setting, a slug) is made here, so they all read the same."""
    close = [repr(found) for found in difflib.get_close_matches(name, list(known), n=3)]
    if not close:
        return ""
    listed = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f" (did you mean {listed}?)"


def at_files(problems: list[Problem], files: dict[str, str]) -> list[Problem]:
    """Problems that name a record by its slug (as renders do), named by its file instead."""
    return [replace(problem, path=files.get(problem.path, problem.path)) for problem in problems]
