"""Log targets: the C{log} lines of a proxy, as writers of syslog lines.

A L{LogWriter} formats a message as its target says (C{rfc3164},
C{rfc5424}, C{short} or C{raw}) and hands the bytes to a sink: a stream
(C{stdout}, C{stderr}), a UDP port (a syslog server) or a unix datagram
socket (C{/dev/log}).  L{LogTargetsService} opens the sinks when certlb
starts and closes them when it stops.  A line that cannot be sent is lost;
the failure is logged, at most once a minute per target.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from certlb.config.model import LOG_FACILITIES, LOG_LEVELS, LogTarget

log = Logger()

_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
FAILURE_INTERVAL = 60.0  # seconds between two reports of a target's failures


def format_line(
    target: LogTarget,
    message: str,
    severity: int,
    when: datetime,
    hostname: str,
    pid: int,
) -> bytes:
    """The bytes of one log line for C{target}, cut to its C{len}.

    @param severity: the syslog severity, 0 (emerg) to 7 (debug).
    @param when: the time of the line, with its time zone.
    """
    pri = f"<{LOG_FACILITIES.index(target.facility) * 8 + severity}>"
    if target.format == "rfc3164":
        stamp = f"{_MONTHS[when.month - 1]} {when.day:2d} {when:%H:%M:%S}"
        line = f"{pri}{stamp} {hostname} certlb[{pid}]: {message}"
    elif target.format == "rfc5424":
        stamp = when.isoformat(timespec="microseconds")
        line = f"{pri}1 {stamp} {hostname} certlb {pid} - - {message}"
    elif target.format == "short":
        line = f"{pri}{message}"
    else:
        line = message
    # One message, one line, whatever it holds.
    line = line.replace("\r", "#0D").replace("\n", "#0A")
    return line.encode("utf-8", "replace")[: target.length]


@attrs.define(eq=False)
class LogWriter:
    """Sends the lines of a proxy to one log target.

    @ivar sink: takes the bytes of each line.
    @ivar clock: the time, in seconds since the epoch.
    """

    target: LogTarget
    sink: Callable[[bytes], None]
    clock: Callable[[], float] = time.time
    hostname: str = attrs.Factory(socket.gethostname)
    pid: int = attrs.Factory(os.getpid)
    _last_failure: float | None = None

    def send(self, message: str, level: str = "info") -> None:
        """Send C{message} at C{level}, if the target's level lets it through.
        Never raises: a line that cannot be sent is reported and dropped."""
        severity = LOG_LEVELS.index(level)
        target = self.target
        if target.level is not None and severity > LOG_LEVELS.index(target.level):
            return
        if target.minlevel is not None:
            severity = max(severity, LOG_LEVELS.index(target.minlevel))
        now = self.clock()
        try:
            when = datetime.fromtimestamp(now).astimezone()
            self.sink(
                format_line(target, message, severity, when, self.hostname, self.pid)
            )
        except Exception:
            if (
                self._last_failure is None
                or now - self._last_failure >= FAILURE_INTERVAL
            ):
                self._last_failure = now
                log.failure(
                    "cannot send a log line to {target} ({location}); lines are "
                    "lost until it can be reached",
                    target=target.address,
                    location=target.location,
                )


class _StreamSink:
    """C{stdout} or C{stderr}, looked up at each line (twistd may replace them)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, data: bytes) -> None:
        stream = getattr(sys, self.name)
        stream.write(data.decode("utf-8", "replace") + "\n")
        stream.flush()

    def open(self, reactor: Any) -> None:
        pass

    def close(self) -> Deferred[Any] | None:
        return None


class _UDPSink:
    """A syslog server over UDP, sent to from a port of the reactor's."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.port: Any = None

    def __call__(self, data: bytes) -> None:
        if self.port is None:
            raise RuntimeError("certlb's logging is not started")
        self.port.write(data, self.address)

    def open(self, reactor: Any) -> None:
        interface = "::" if ":" in self.address[0] else ""
        self.port = reactor.listenUDP(0, DatagramProtocol(), interface=interface)

    def close(self) -> Deferred[Any] | None:
        port, self.port = self.port, None
        return None if port is None else port.stopListening()


class _UnixSink:
    """A unix datagram socket, such as C{/dev/log}; never waits for it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.socket: socket.socket | None = None

    def __call__(self, data: bytes) -> None:
        if self.socket is None:
            raise RuntimeError("certlb's logging is not started")
        self.socket.sendto(data, self.path)

    def open(self, reactor: Any) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.setblocking(False)

    def close(self) -> Deferred[Any] | None:
        sock, self.socket = self.socket, None
        if sock is not None:
            sock.close()
        return None


def _sink(target: LogTarget) -> _StreamSink | _UDPSink | _UnixSink:
    if target.kind == "udp":
        assert target.host is not None
        return _UDPSink(target.host, target.port)
    if target.kind == "unix":
        assert target.path is not None
        return _UnixSink(target.path)
    return _StreamSink(target.kind)


class LogTargetsService(Service):
    """The writers of every log target of a configuration, one per target.

    @ivar writers: by target; a writer sends nothing until the service starts.
    """

    def __init__(self, targets: Iterable[LogTarget], reactor: Any) -> None:
        self.reactor = reactor
        self._sinks: dict[LogTarget, _StreamSink | _UDPSink | _UnixSink] = {}
        self.writers: dict[LogTarget, LogWriter] = {}
        for target in targets:
            if target not in self.writers:
                sink = self._sinks[target] = _sink(target)
                self.writers[target] = LogWriter(target, sink, reactor.seconds)

    def startService(self) -> None:
        Service.startService(self)
        for target, sink in self._sinks.items():
            try:
                sink.open(self.reactor)
            except Exception:
                log.failure(
                    "cannot open log target {target} ({location})",
                    target=target.address,
                    location=target.location,
                )

    def stopService(self) -> Deferred[Any]:
        Service.stopService(self)
        return gatherResults(
            [maybeDeferred(sink.close) for sink in self._sinks.values()]
        )
