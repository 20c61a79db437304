"""The request and connection objects rules see."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from zope.interface import implementer

from certlb.rules.interfaces import IConnectionInfo, IRequestContext
from certlb.tls.state import ClientCertState


@implementer(IConnectionInfo)
class ConnectionInfo:
    """A client connection; its TLS state is read once, when first needed."""

    __slots__ = ("_tls", "_tls_source", "destination", "frontend", "source")

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

    @property
    def tls(self) -> ClientCertState | None:
        if self._tls_source is not None:
            self._tls = self._tls_source()
            self._tls_source = None
        return self._tls


@implementer(IRequestContext)
class RequestContext:
    """One request: method, target, version and headers, as rules see them."""

    __slots__ = ("connection", "headers", "method", "target", "version")

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        headers: Sequence[tuple[str, str]],
        connection: ConnectionInfo,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.connection = connection

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str | None:
        _, mark, query = self.target.partition("?")
        return query if mark else None
