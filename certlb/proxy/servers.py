"""Servers at run time: their configuration, their state, their load."""

from __future__ import annotations

from typing import Any

import attrs

from certlb.config.addresses import format_address
from certlb.config.model import Server
from certlb.tls.client import UpstreamTLS


@attrs.define(eq=False)
class ServerState:
    """A server at run time.

    @ivar spec: the configuration line it comes from (health-check settings).
    @ivar up: what health checks last said; see L{certlb.health} for the
        state a server starts in.
    @ivar active: requests sent to it and not finished (for C{leastconn},
        C{maxconn} and C{first}).
    @ivar monitor: its health checker, if C{check} is set: told of what
        requests see (C{observe}).
    @ivar tls: its TLS settings, if it has C{ssl}.
    """

    name: str
    host: str
    port: int
    weight: int = 1
    disabled: bool = False
    backup: bool = False
    maxconn: int | None = None
    up: bool = True
    backend: str = ""
    spec: Server | None = None
    active: int = 0
    monitor: Any = None
    tls: UpstreamTLS | None = None

    @classmethod
    def from_spec(cls, spec: Server, backend: str) -> ServerState:
        return cls(
            name=spec.name,
            host=spec.host,
            port=spec.port,
            weight=spec.weight,
            disabled=spec.disabled,
            backup=spec.backup,
            maxconn=spec.maxconn,
            backend=backend,
            spec=spec,
            tls=UpstreamTLS.for_server(spec) if spec.ssl else None,
        )

    @property
    def usable(self) -> bool:
        """Whether it may be chosen at all: up, enabled, of some weight."""
        return self.up and not self.disabled and self.weight > 0

    @property
    def has_slot(self) -> bool:
        """Whether it can take one more request now (C{maxconn})."""
        return self.maxconn is None or self.active < self.maxconn

    @property
    def address(self) -> str:
        """C{host:port}, IPv6 in brackets."""
        return format_address(self.host, self.port)

    @property
    def label(self) -> str:
        """C{backend/server}, as logs name it."""
        return f"{self.backend}/{self.name}"

    def observe(self, ok: bool, layer7: bool, why: str = "") -> None:
        """Tell its health checker what a request saw (passive checking).

        @param ok: the attempt went well.
        @param layer7: it is about the HTTP response (not the connection).
        """
        if self.monitor is not None:
            self.monitor.observe(ok, layer7, why)
