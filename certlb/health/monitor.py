"""A server's health: checked at intervals, told what requests see, and
turned DOWN or UP by HAProxy's rules."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    TimeoutError,
    maybeDeferred,
)
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from certlb.config.model import Server
from certlb.health.checks import CheckFailed
from certlb.proxy.runtime import BackendRuntime
from certlb.proxy.servers import ServerState
from certlb.rules.interfaces import IHealthCheck

log = Logger()


def initial_health(spec: Server) -> int:
    """Where a server's health counter starts (C{init-state}).

    The counter runs from 0 to C{rise + fall - 1}; the server is UP from
    C{rise}.  By default, as in HAProxy, a server starts UP and one failed
    check marks it DOWN; C{fully-up} gives it C{fall} failures to go,
    C{down} starts it DOWN with one passed check to come UP, C{fully-down}
    starts it DOWN needing C{rise} passed checks.
    """
    rise, fall = spec.rise, spec.fall
    return {
        "fully-up": rise + fall - 1,
        "down": rise - 1,
        "fully-down": 0,
    }.get(spec.init_state or "up", rise)


@attrs.define(eq=False)
class ServerMonitor:
    """Checks one server again and again, and keeps its health counter.

    @ivar health: HAProxy's counter: a failed check takes one off (and to 0,
        DOWN, once below C{rise}), a passed one adds one (and to the top,
        C{rise + fall - 1}, once at C{rise}: UP).
    @ivar errors: consecutive errors seen by requests (C{observe}).
    """

    server: ServerState
    backend: BackendRuntime
    check: IHealthCheck
    clock: Any
    health: int = 0
    errors: int = 0
    _call: IDelayedCall | None = None
    _running: Deferred[Any] | None = None
    _fast: bool = False
    _stopped: bool = True

    @classmethod
    def watch(
        cls,
        server: ServerState,
        backend: BackendRuntime,
        check: IHealthCheck,
        clock: Any,
    ) -> ServerMonitor:
        """A monitor for C{server}, which is set to its initial state and
        told of the monitor (for what requests see)."""
        assert server.spec is not None
        monitor = cls(server, backend, check, clock, initial_health(server.spec))
        server.up = monitor.health >= server.spec.rise
        server.monitor = monitor
        return monitor

    @property
    def spec(self) -> Server:
        assert self.server.spec is not None
        return self.server.spec

    @property
    def top(self) -> int:
        return self.spec.rise + self.spec.fall - 1

    def start(self, delay: float) -> None:
        """Check first in C{delay} seconds, then at the intervals."""
        self._stopped = False
        self._call = self.clock.callLater(delay, self._run)

    def stop(self) -> None:
        """Check no more; a check in progress is abandoned."""
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._running is not None:
            self._running.cancel()

    def interval(self) -> float:
        """Seconds to the next check: C{inter} when fully up, C{downinter}
        when fully down, C{fastinter} in between or after errors."""
        spec = self.spec
        fast, self._fast = self._fast, False
        if self.health == 0 and not self.server.up:
            chosen = spec.downinter
        elif self.health == self.top and not fast:
            chosen = spec.inter
        else:
            chosen = spec.fastinter
        return (chosen or spec.inter) / 1000

    def _run(self) -> None:
        self._call = None
        started = self.clock.seconds()
        running: Deferred[Any] = maybeDeferred(self.check.run)
        self._running = running
        # A safety net for a check that never answers (a plugin's): certlb's
        # own checks end within their timeouts, well before it.
        limit = (self.spec.inter + (self.backend.spec.timeouts.check or 0)) / 1000 + 1
        running.addTimeout(limit, self.clock)

        def done(result: str | Failure) -> None:
            self._running = None
            if self._stopped:
                return
            try:
                took = round((self.clock.seconds() - started) * 1000)
                if isinstance(result, str):
                    self.record(True, result, took)
                elif result.check(CheckFailed):
                    self.record(False, result.value.why, took)  # type: ignore[union-attr]
                elif result.check(TimeoutError):
                    self.record(False, f"no answer within {limit:g}s", took)
                elif result.check(CancelledError):
                    self.record(False, "the check was cancelled", took)
                else:
                    log.failure(
                        "health check of server {server} failed unexpectedly",
                        result,
                        server=self.server.label,
                    )
                    why = f"internal error in the check: {result.value!r}"
                    self.record(False, why, took)
            finally:
                if not self._stopped:
                    self._call = self.clock.callLater(self.interval(), self._run)

        running.addBoth(done)
        running.addErrback(
            lambda f: log.failure(
                "internal error after a health check of {server}",
                f,
                server=self.server.label,
            )
        )

    def record(self, passed: bool, why: str, took: int | None = None) -> None:
        """Count a check's outcome; turn the server UP or DOWN as it says.

        @param took: how long the check took, in milliseconds, if it was one.
        """
        rise = self.spec.rise
        if passed:
            self.errors = 0
            if self.health < self.top:
                self.health += 1
                if self.health >= rise:
                    self.health = self.top
            if self.health >= rise and not self.server.up:
                self._change(True, why, took)
        else:
            if self.health > 0:
                self.health -= 1
                if self.health < rise:
                    self.health = 0
            if self.health == 0 and self.server.up:
                self._change(False, why, took)

    def _change(self, up: bool, why: str, took: int | None) -> None:
        server, backend = self.server, self.backend
        server.up = up
        active, backup = backend.counts()
        log_level = log.info if up else log.warn
        log_level(
            "server {server} is {state} ({why}{took}); {active} active and "
            "{backup} backup servers {where}",
            server=server.label,
            state="UP" if up else "DOWN",
            why=why,
            took="" if took is None else f", check took {took} ms",
            active=active,
            backup=backup,
            where="online" if up else "left",
        )
        if not backend.tier():
            log.error(
                "backend '{backend}' has no server available", backend=backend.name
            )
        # Requests waiting get the server that came up, or the backups, or
        # their 503 when none is left.
        backend.wake()

    def observe(self, ok: bool, layer7: bool, why: str) -> None:
        """What a request saw of the server (C{observe}): errors in a row
        beyond C{error-limit} trigger C{on-error}.

        With C{observe layer4} only connections count; with C{layer7}, failed
        connections and bad responses count, and only a good response clears
        the count.
        """
        mode = self.spec.observe
        if mode is None or (layer7 and mode == "layer4"):
            return
        if ok:
            if layer7 == (mode == "layer7"):
                self.errors = 0
            return
        self.errors += 1
        if self.errors < self.spec.error_limit:
            return
        why = f"{self.errors} consecutive errors, last: {why}"
        self.errors = 0
        self._fast = True
        on_error = self.spec.on_error
        if on_error == "sudden-death" and self.health > self.spec.rise:
            self.health = self.spec.rise + 1
        elif on_error == "mark-down":
            self.health = self.spec.rise
        if on_error != "fastinter":
            self.record(False, why)
        self._sooner()

    def _sooner(self) -> None:
        """Bring the next check forward to C{fastinter}, if set."""
        fastinter = self.spec.fastinter
        call = self._call
        if fastinter is None or call is None or not call.active():
            return
        if call.getTime() > self.clock.seconds() + fastinter / 1000:
            call.reset(fastinter / 1000)
            self._fast = False
