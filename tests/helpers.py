"""Shared test fixtures: one throw-away PKI per test run, and config files."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import textwrap

from certlb.pki import PKI, generate

_pki: PKI | None = None
_paths: dict[str, str] | None = None


def pki() -> PKI:
    """The test run's PKI (generated once)."""
    global _pki
    if _pki is None:
        _pki = generate()
    return _pki


def pki_files() -> dict[str, str]:
    """The test run's PKI as files (written once), by file name: C{ca.crt},
    C{ca.pem} (both CAs), C{server.pem}, C{client1.crt}, C{client1.key},
    C{client1.pem}, ... (see L{certlb.pki.PKI.write})."""
    global _paths
    if _paths is None:
        directory = tempfile.mkdtemp(prefix="certlb-test-pki-")
        atexit.register(shutil.rmtree, directory, True)
        _paths = pki().write(directory)
    return _paths


def pki_dir() -> str:
    """The directory holding L{pki_files}."""
    return os.path.dirname(pki_files()["ca.crt"])


def write_config(testcase: object, text: str, name: str = "test.cfg") -> str:
    """Write configuration C{text} (dedented) next to the test PKI's files, so
    that C{./server.pem} and C{./ca.crt} resolve; return its path.  The file
    is removed when C{testcase} ends."""
    path = os.path.join(pki_dir(), f"{os.getpid()}-{id(testcase)}-{name}")
    with open(path, "w", encoding="utf-8") as f:
        f.write(textwrap.dedent(text))
    testcase.addCleanup(os.remove, path)  # type: ignore[attr-defined]
    return path
