"""certlb's configuration: HAProxy-style text in, a frozen L{Config} out.

This package is pure Python: it reads files, but opens no socket and never
touches the reactor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import attrs

from certlb.config.checker import check
from certlb.config.errors import ERROR, ConfigError, Location, Problem
from certlb.config.model import Config
from certlb.config.parser import parse
from certlb.config.sources import read_bytes

__all__ = [
    "Config",
    "ConfigError",
    "Problem",
    "check_config",
    "load_config",
    "parse_config",
]


def parse_config(
    text: str, filename: str = "<string>", environ: Mapping[str, str] | None = None
) -> tuple[Config, list[Problem]]:
    """Parse and check configuration C{text}; return it with every problem."""
    return _load([(filename, text)], [], environ)


def check_config(
    paths: Sequence[str], environ: Mapping[str, str] | None = None
) -> tuple[Config, list[Problem]]:
    """Read the files C{paths}, in order, as one configuration, and check it.

    @return: the configuration, and every problem found (errors and warnings),
        ordered by file and line.  With any error the configuration must not run.
    """
    sources: list[tuple[str, str]] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            text = read_bytes(path).decode("utf-8")
            # Line ends as Python's text files read them ("universal newlines").
            sources.append((path, text.replace("\r\n", "\n").replace("\r", "\n")))
        except UnicodeDecodeError as e:
            problems.append(
                Problem(Location(path, 0), f"configuration file is not UTF-8 text: {e}")
            )
        except OSError as e:
            problems.append(
                Problem(
                    Location(path, 0),
                    f"cannot read configuration file: {e.strerror}",
                )
            )
    return _load(sources, problems, environ)


def _load(
    sources: list[tuple[str, str]],
    problems: list[Problem],
    environ: Mapping[str, str] | None,
) -> tuple[Config, list[Problem]]:
    config, found, incomplete = parse(
        sources, os.environ if environ is None else environ
    )
    problems.extend(found)
    problems.extend(check(config, incomplete))
    unique = sorted(set(problems), key=lambda p: (p.location, p.message))
    warnings = tuple(p for p in unique if p.severity != ERROR)
    return attrs.evolve(config, warnings=warnings), unique


def load_config(*paths: str, environ: Mapping[str, str] | None = None) -> Config:
    """Load the configuration files C{paths}, read in order as HAProxy does.

    @return: the configuration; its C{warnings} lists what deserves a look.
    @raise ConfigError: with every problem, when any of them is an error.
    """
    config, problems = check_config(paths, environ)
    if any(p.severity == ERROR for p in problems):
        raise ConfigError(problems)
    return config
