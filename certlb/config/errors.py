"""Problems found in a configuration, and the error that carries them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import attrs

ERROR = "error"
WARNING = "warning"


@attrs.frozen(order=True)
class Location:
    """Where a word stands: file, line and column (both 1-based)."""

    file: str
    line: int
    column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@attrs.frozen
class Problem:
    """One thing wrong with a configuration, said so that a user can act on it.

    @ivar location: where the problem is.
    @ivar message: what is wrong and what to write instead.
    @ivar severity: L{ERROR} (the configuration cannot run) or L{WARNING}.
    """

    location: Location
    message: str
    severity: str = attrs.field(
        default=ERROR, validator=attrs.validators.in_((ERROR, WARNING))
    )

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}: {self.message}"


class ConfigError(Exception):
    """The configuration has errors; C{problems} lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: p.location)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice that C{name} is most likely a misspelling of, if any."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def suggest(name: str, choices: Iterable[str]) -> str:
    """A C{"; did you mean 'X'?"} hint for a misspelt C{name}, or C{""}."""
    close = closest(name, choices)
    return f"; did you mean '{close}'?" if close else ""


class RuleError(Exception):
    """A rule cannot be compiled; names the place and what to write instead."""

    def __init__(self, location: Location, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message
