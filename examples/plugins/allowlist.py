"""An example fetch: is the client certificate's serial on an allow-list file?

C{ssl_c_serial_allowed(FILE)} is true when the serial number of the client's
certificate is one of those listed in C{FILE}, false when it is not, and has
no value when the client sent no certificate::

    global
        plugin-dir ../examples/plugins
    frontend ft
        bind 127.0.0.1:8443 ssl crt ./server.pem ca-file ./ca.pem verify optional
        acl serial_allowed ssl_c_serial_allowed(allowed-serials.txt)
        http-request deny unless { ssl_c_verify 0 } serial_allowed

The fetch says nothing of verification: a certificate that failed it (let in
by C{crt-ignore-err}) whose serial is listed is allowed all the same.  Test
C{ssl_c_verify 0} with it, as above.

C{FILE} (relative to the configuration file) holds one serial a line, in
hexadecimal, as C{openssl x509 -noout -serial -in client.crt} prints it:
upper or lower case, with or without colons between the bytes, with or
without that command's C{serial=} in front.  A C{#} starts a comment; blank
lines are skipped.  A file that is missing, unreadable, or has a line that is
not a serial, is a configuration error.

The file is read again when it changes (its modification time, size, inode
or status change time), which certlb looks at, with one C{stat}, at most once
a second: the change applies to the next request, on open connections too
(the fetch's scope is C{request}).  If the file later disappears, cannot be
read, or has a line that is not a serial, certlb keeps the serials it read
last and logs a warning, once, until the file is good again.
"""

from __future__ import annotations

import os
import string
import time
from collections.abc import Callable
from typing import Any

import attrs
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from certlb.rules.files import config_path
from certlb.rules.interfaces import IFetch, IRequestContext

__all__ = ["AllowList", "SerialAllowList", "allowlist", "read_serials"]

log = Logger()

CHECK_INTERVAL = 1.0
"""The seconds between two looks at the file."""

_HEX = frozenset(string.hexdigits)


def parse_serial(text: str) -> int:
    """The serial number written C{text}: hexadecimal, colons allowed, maybe
    after C{serial=}.

    @raise ValueError: C{text} is not one.
    """
    digits = text.strip()
    if digits[:7].lower() == "serial=":
        digits = digits[7:]
    digits = digits.replace(":", "")
    if not digits or not _HEX.issuperset(digits):
        raise ValueError(
            f"{text.strip()!r} is not a serial number in hexadecimal, as "
            "'openssl x509 -noout -serial -in client.crt' prints it"
        )
    return int(digits, 16)


def read_serials(path: str) -> frozenset[int]:
    """The serial numbers listed in the file C{path}.

    @raise OSError: the file cannot be read.
    @raise ValueError: a line is not a serial number; the message names the
        file and the line.
    """
    serials = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            text = line.partition("#")[0]
            if not text.strip():
                continue
            try:
                serials.add(parse_serial(text))
            except ValueError as e:
                raise ValueError(f"{path}:{number}: {e}") from None
    return frozenset(serials)


def _signature(path: str) -> tuple[int, ...]:
    """What tells a change of the file C{path}: a new version written in
    place (time, size), one renamed over it (inode), new permissions (status
    change time)."""
    found = os.stat(path)
    return (found.st_mtime_ns, found.st_size, found.st_ino, found.st_ctime_ns)


@attrs.define(eq=False)
class AllowList:
    """The serials of one allow-list file, read again when it changes.

    @ivar path: the file's absolute path.
    @ivar clock: the monotonic clock the file is looked at by.
    @ivar interval: the seconds between two looks at the file.
    @ivar serials: the serials read last.
    """

    path: str
    clock: Callable[[], float] = time.monotonic
    interval: float = CHECK_INTERVAL
    serials: frozenset[int] = attrs.field(init=False, factory=frozenset)
    _seen: tuple[int, ...] | None = attrs.field(init=False, default=None)
    _next_look: float = attrs.field(init=False, default=0.0)
    _failing: bool = attrs.field(init=False, default=False)

    def load(self) -> None:
        """Read the file for the first time.

        @raise ValueError: it cannot be read, or a line is not a serial; the
            message names the file.
        """
        try:
            self._seen = _signature(self.path)
            self.serials = read_serials(self.path)
        except OSError as e:
            raise ValueError(
                f"allow-list {self.path!r} cannot be read: {e.strerror or e}"
            ) from None
        self._next_look = self.clock() + self.interval

    def current(self) -> frozenset[int]:
        """The serials allowed now: the file's, read again if it changed."""
        now = self.clock()
        if now >= self._next_look:
            self._next_look = now + self.interval
            self._look()
        return self.serials

    def _look(self) -> None:
        try:
            seen = _signature(self.path)
            if seen == self._seen:
                return
            # Stat before reading: a file still being written is seen to
            # change again, and read again, at the next look.
            self._seen = seen
            serials = read_serials(self.path)
        except (OSError, ValueError) as e:
            problem = e.strerror if isinstance(e, OSError) else str(e)
            if not self._failing:
                self._failing = True
                log.warn(
                    "allow-list {file} cannot be read again ({problem}); "
                    "the {count} serials read before are kept",
                    file=self.path,
                    problem=problem,
                    count=len(self.serials),
                )
            if isinstance(e, OSError):
                self._seen = None  # try again at the next look
            return
        self.serials = serials
        self._failing = False
        log.info(
            "allow-list {file} read again: {count} serials",
            file=self.path,
            count=len(serials),
        )


@implementer(IPlugin, IFetch)
@attrs.frozen
class SerialAllowList:
    """C{ssl_c_serial_allowed(FILE)}: whether the client certificate's serial
    is listed in C{FILE} (see the module's docstring).

    @ivar clock: the monotonic clock the file is looked at by (a test's own).
    """

    name: str = "ssl_c_serial_allowed"
    output: str = "bool"
    multiple: bool = False
    scope: str = "request"
    clock: Callable[[], float] = time.monotonic

    def compile(self, args: tuple[str, ...]) -> Callable[[IRequestContext], Any]:
        if len(args) != 1 or not args[0]:
            raise ValueError(
                f"'{self.name}' takes one argument, the allow-list file, as in "
                f"{self.name}(allowed-serials.txt)"
            )
        allowed = AllowList(config_path(args[0]), self.clock)
        allowed.load()

        def fetch(context: IRequestContext) -> bool | None:
            tls = context.connection.tls
            peer = None if tls is None else tls.peer
            if peer is None:
                return None
            return int.from_bytes(peer.serial, "big") in allowed.current()

        return fetch


allowlist = SerialAllowList()
