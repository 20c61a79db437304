"""Printing configuration problems for people, and the exit status they mean."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from certlb.config.errors import ERROR, Problem


def print_problems(
    problems: Sequence[Problem], files: Sequence[str], out: TextIO
) -> int:
    """Print every problem, then a summary line; return the exit status.

    @return: 1 when any problem is an error, else 0.
    """
    for problem in problems:
        print(problem, file=out)
    errors = sum(1 for p in problems if p.severity == ERROR)
    warnings = len(problems) - errors
    names = ", ".join(files)
    if errors:
        print(
            f"{names}: {_count(errors, 'error')}, {_count(warnings, 'warning')}; "
            "certlb will not run this configuration",
            file=out,
        )
        return 1
    print(f"{names}: configuration is valid ({_count(warnings, 'warning')})", file=out)
    return 0


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"
