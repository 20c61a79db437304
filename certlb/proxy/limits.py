"""C{maxconn}: how many client connections a frontend, and certlb, hold at once.

When a limit is reached, the listening ports it covers stop accepting: new
connections wait in the kernel's backlog, as with HAProxy, until a connection
closes.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.protocol import Factory


@attrs.define(eq=False)
class ConnectionLimits:
    """Counts connections per frontend and in all; pauses and resumes ports.

    @ivar total: the global C{maxconn}, or C{None}.
    @ivar per_frontend: each frontend's C{maxconn}, by name (absent: none).
    """

    total: int | None = None
    per_frontend: dict[str, int] = attrs.Factory(dict)
    _counts: dict[str, int] = attrs.Factory(dict)
    _all: int = 0
    _ports: dict[str, list[object]] = attrs.Factory(dict)
    _paused: set[int] = attrs.Factory(set)

    def add_port(self, frontend: str, port: object) -> None:
        """A listening port of C{frontend}, to pause when a limit is reached.

        (A port that cannot pause is not paused: connections over the limit
        are then closed as soon as they are accepted.)
        """
        if hasattr(port, "stopReading") and hasattr(port, "startReading"):
            self._ports.setdefault(frontend, []).append(port)

    def remove_port(self, port: object) -> None:
        """Forget a port that stops listening (it must not be resumed)."""
        for ports in self._ports.values():
            if port in ports:
                ports.remove(port)
        self._paused.discard(id(port))

    def count(self, frontend: str) -> int:
        return self._counts.get(frontend, 0)

    def count_all(self) -> int:
        """Connections open now on every frontend."""
        return self._all

    def accept(self, frontend: str) -> bool:
        """Count a new connection; C{False} when it is over a limit (refuse it)."""
        if self._full(frontend):
            return False
        self._counts[frontend] = self._counts.get(frontend, 0) + 1
        self._all += 1
        self._update()
        return True

    def closed(self, frontend: str) -> None:
        self._counts[frontend] -= 1
        self._all -= 1
        self._update()

    def _full(self, frontend: str) -> bool:
        if self.total is not None and self._all >= self.total:
            return True
        limit = self.per_frontend.get(frontend)
        return limit is not None and self._counts.get(frontend, 0) >= limit

    def _update(self) -> None:
        for frontend, ports in self._ports.items():
            full = self._full(frontend)
            for port in ports:
                paused = id(port) in self._paused
                if full and not paused:
                    port.stopReading()  # type: ignore[attr-defined]
                    self._paused.add(id(port))
                elif paused and not full:
                    port.startReading()  # type: ignore[attr-defined]
                    self._paused.discard(id(port))


class LimitedFactory(Factory):
    """Takes a place under the limits for each connection, or refuses it.

    It stands outside TLS, so that a connection over the limit is closed
    before anything else is built for it; the protocol built by C{factory}
    must call C{limits.closed(frontend)} when its connection ends.
    """

    noisy = False

    def __init__(self, limits: ConnectionLimits, frontend: str, factory: Any) -> None:
        self.limits = limits
        self.frontend = frontend
        self.factory = factory

    def buildProtocol(self, addr: object) -> Any:
        if not self.limits.accept(self.frontend):
            return None
        protocol = self.factory.buildProtocol(addr)
        if protocol is None:
            self.limits.closed(self.frontend)
        return protocol

    def doStart(self) -> None:
        self.factory.doStart()

    def doStop(self) -> None:
        self.factory.doStop()

    def logPrefix(self) -> str:
        return str(self.factory.logPrefix())
