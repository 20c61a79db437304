"""Files named in a configuration: relative names are the configuration's.

A fetch, a converter or an action that reads a file (a map, an allow-list)
is compiled within L{relative_to} the configuration file that names it, so
that L{config_path} resolves a relative name as a user expects: against the
directory of that file, wherever certlb was started from.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["config_path", "relative_to"]

_directory: ContextVar[str | None] = ContextVar("certlb_config_directory", default=None)


@contextmanager
def relative_to(config_file: str) -> Iterator[None]:
    """Within the block, a relative file name is resolved against the
    directory of C{config_file} (the configuration file that names it);
    outside, against the current directory."""
    token = _directory.set(os.path.dirname(os.path.abspath(config_file)))
    try:
        yield
    finally:
        _directory.reset(token)


def config_path(name: str) -> str:
    """The absolute path of the file written C{name} in the configuration."""
    directory = _directory.get()
    if directory is None:
        return os.path.abspath(name)
    return os.path.normpath(os.path.join(directory, name))
