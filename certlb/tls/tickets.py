"""New session-ticket keys for every TLS bind, every so often.

A ticket is the session's secrets, encrypted with the bind's ticket key and
kept by the client: whoever holds the key can read every ticket it sealed,
so the key must not live for ever.  HAProxy and nginx keep the keys they
draw at start for the life of the process, unless the administrator
rotates key files; nginx rotates its own every hour when it shares a
session cache.  certlb gives each bind a new context every
C{tune.ssl.ticket-key-lifetime} (an hour by default): new random keys and a
new session cache.  A client that offers a session of the old context gets
a full handshake, verified again; the connections already open keep theirs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from certlb.tls.server import ServerTLS

log = Logger()


class TicketKeyRotation(Service):
    """Calls L{ServerTLS.rotate} on each bind every C{lifetime} seconds.

    A bind whose new context cannot be made keeps its old one, and the
    failure is logged; the others go on (as does the rotation).
    """

    def __init__(
        self, binds: Iterable[tuple[str, ServerTLS]], lifetime: float, reactor: Any
    ) -> None:
        self.binds = list(binds)
        self.lifetime = lifetime
        self.reactor = reactor
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        if self.binds and self.lifetime > 0:
            self._loop = LoopingCall(self.rotate)
            self._loop.clock = self.reactor
            self._loop.start(self.lifetime, now=False).addErrback(
                lambda f: log.failure("session-ticket key rotation stopped", f)
            )

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def rotate(self) -> None:
        """Give every bind new session-ticket keys now."""
        for name, tls in self.binds:
            try:
                tls.rotate()
            except Exception:
                log.failure(
                    "bind {bind}: new session-ticket keys could not be made; "
                    "the old ones are kept",
                    bind=name,
                )
        log.debug("new session-ticket keys for {count} binds", count=len(self.binds))
