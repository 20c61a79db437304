"""The request and connection objects rules see."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from certlb.rules.interfaces import IConnectionInfo, IRequestContext
from certlb.rules.record import RequestRecord
from certlb.tls.state import ClientCertState


@implementer(IConnectionInfo)
class ConnectionInfo:
    """A client connection; its TLS state is read once, when first needed."""

    __slots__ = ("_tls", "_tls_source", "cache", "destination", "frontend", "source")

    def __init__(
        self,
        source: tuple[str, int],
        destination: tuple[str, int],
        frontend: str,
        tls_source: Callable[[], ClientCertState | None] = lambda: None,
    ) -> None:
        self.source = source
        self.destination = destination
        self.frontend = frontend
        self._tls_source: Callable[[], ClientCertState | None] | None = tls_source
        self._tls: ClientCertState | None = None
        self.cache: dict[object, object] = {}

    @property
    def tls(self) -> ClientCertState | None:
        if self._tls_source is not None:
            self._tls = self._tls_source()
            self._tls_source = None
        return self._tls


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def header_present(headers: list[tuple[str, str]], name: str) -> bool:
    """Whether C{headers} hold one called C{name}, as L{RequestContext}'s
    C{remove_headers} would find it (any case, '_' for '-')."""
    wanted = _normal(name)
    return any(_normal(n) == wanted for n, _ in headers)


@implementer(IRequestContext)
class RequestContext:
    """One request: method, target, version and headers, as rules see them."""

    __slots__ = (
        "connection", "headers", "headers_changed", "method", "reactor", "record",
        "target", "trace", "version",
    )  # fmt: skip

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        headers: list[tuple[str, str]],
        connection: ConnectionInfo,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.connection = connection
        self.headers_changed = False
        self.record: RequestRecord | None = None
        self.reactor: Any = None
        self.trace: Callable[[str], None] | None = None

    def add_header(self, name: str, value: str) -> None:
        """Add a header after the others (later rules and the server see it)."""
        self.headers.append((name, value))
        self.headers_changed = True

    def remove_headers(self, *names: str) -> None:
        """Remove every header called one of C{names}, in any case, and those
        whose names differ from it only by '_' for '-': CGI and WSGI servers take
        X_Ssl_Error for X-Ssl-Error, so a client must not slip one past a
        rule that replaces or removes the other."""
        if not names:
            return
        wanted = {_normal(name) for name in names}
        kept = [(n, v) for n, v in self.headers if _normal(n) not in wanted]
        if len(kept) != len(self.headers):
            self.headers[:] = kept
            self.headers_changed = True

    @property
    def path(self) -> str | None:
        """The path, as HAProxy's: from the first '/' after any scheme and
        authority (so that of C{http://host/a?b} is C{/a}), up to '?'; None
        for C{*} or an authority alone."""
        target = self.target
        if target.startswith("/"):
            return target.partition("?")[0]
        start = 0
        if target[:1].isalpha():
            scheme, colon, _ = target.partition(":")
            if not colon or not all(c.isalnum() or c in "+-." for c in scheme):
                return None
            start = len(scheme) + 1
            for _ in range(2):
                if target[start : start + 1] == "/":
                    start += 1
        slash = target.find("/", start)
        if slash < 0:
            return None
        return target[slash:].partition("?")[0]

    @property
    def query(self) -> str | None:
        """What follows the first '?', or None without one."""
        _, mark, query = self.target.partition("?")
        return query if mark else None
