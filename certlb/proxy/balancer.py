"""Balancing algorithms: which server of a backend gets the next request."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from zope.interface import implementer

from certlb.config.addresses import format_address
from certlb.rules.interfaces import IBalancer, IRequestContext


@attrs.define(eq=False)
class ServerState:
    """A server at run time: its configuration and whether it can take requests.

    @ivar up: what health checks last said (servers start up).
    """

    name: str
    host: str
    port: int
    weight: int = 1
    disabled: bool = False
    up: bool = True
    backend: str = ""

    @property
    def usable(self) -> bool:
        """Whether the balancer may choose this server."""
        return self.up and not self.disabled and self.weight > 0

    @property
    def address(self) -> str:
        """C{host:port}, IPv6 in brackets."""
        return format_address(self.host, self.port)

    @property
    def label(self) -> str:
        """C{backend/server}, as logs name it."""
        return f"{self.backend}/{self.name}"


@implementer(IBalancer)
@attrs.define(eq=False)
class RoundRobin:
    """Smooth weighted round robin: each server in turn, in proportion to weight.

    Over any window of (sum of weights) requests, each usable server gets its
    weight's share, and servers are interleaved rather than chosen in runs
    (a server of weight 3 next to one of weight 1 goes a, a, b, a — not
    a, a, a, b).  A server that is down, disabled or of weight 0 is skipped.
    """

    servers: Sequence[ServerState]
    _current: list[int] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._current = [0] * len(self.servers)

    def pick(self, context: IRequestContext | None = None) -> ServerState | None:
        current = self._current
        best = -1
        total = 0
        for index, server in enumerate(self.servers):
            if not server.usable:
                continue
            current[index] += server.weight
            total += server.weight
            if best < 0 or current[index] > current[best]:
                best = index
        if best < 0:
            return None
        current[best] -= total
        return self.servers[best]
