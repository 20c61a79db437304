"""Reading the files a configuration names, once.

Every file certlb reads because a configuration names it (the
configuration itself, certificates, keys, CAs, CRLs, maps, answer files)
is read with L{read_bytes}.  The master of workers reads them all while
it checks the configuration, as root if twistd starts so, and gives
their contents to its workers (L{recording}, L{use_snapshot}): a worker
runs with what the master checked, whatever its privileges, and a file
changed since does not change a new worker.  Plugins read their own
files as they wish.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = ["read_bytes", "recording", "use_snapshot"]

_snapshot: dict[str, bytes] = {}
_recorded: list[dict[str, bytes]] = []


def read_bytes(path: str) -> bytes:
    """The content of the file C{path}: from the snapshot a worker was given
    if it has it, else from the disk.

    @raise OSError: as C{open} does.
    """
    # The path as given, made absolute without resolving '..' or links: a
    # worker runs in the master's directory and is given the same names.
    key = os.path.join(os.getcwd(), path)
    data = _snapshot.get(key)
    if data is None and _recorded:
        # A file read twice while recording is the same both times: what
        # the master checks is what its workers are given.
        data = _recorded[0].get(key)
    if data is None:
        with open(path, "rb") as f:
            data = f.read()
    for files in _recorded:
        files.setdefault(key, data)
    return data


@contextmanager
def recording() -> Iterator[dict[str, bytes]]:
    """Within the block, every file read is kept in the dict it gives, by
    absolute path."""
    files: dict[str, bytes] = {}
    _recorded.append(files)
    try:
        yield files
    finally:
        _recorded.remove(files)


def use_snapshot(files: Mapping[str, bytes] | None) -> None:
    """From now on, read these files' contents rather than the disk's (by
    the names L{recording} gave them); C{None}: the disk's again."""
    _snapshot.clear()
    _snapshot.update(files or {})
