"""The health checks themselves: connect to a server (over TLS with
C{check-ssl}, or for a server with C{ssl}), and with C{option httpchk} ask
it an HTTP question.

Over TLS a check uses the server's own TLS settings (C{verify}, C{ca-file},
C{crl-file}, C{crt}, C{verifyhost}), with C{check-sni} or a constant C{sni}
as its SNI: a server whose certificate certlb would refuse fails its checks.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import attrs
from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from certlb.config.model import HttpCheck
from certlb.proxy.upstream import client_endpoint
from certlb.rules.interfaces import IHealthCheck
from certlb.tls.client import UpstreamTLS, handshake_failure, unverified

# As HAProxy's check buffer: what is read of a response, at most.
MAX_RESPONSE = 16384
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})(?: [^\r\n]*)?\r?\n")


class CheckFailed(Exception):
    """A health check failed; C{why} says how, in a few words for the log."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def connect_failure(failure: Failure) -> str:
    """What went wrong connecting, in a few words."""
    if failure.check(error.ConnectionRefusedError):
        return "connection refused"
    if failure.check(error.DNSLookupError):
        return "cannot resolve the server's name"
    if failure.check(error.ConnectError):
        return f"cannot connect: {failure.getErrorMessage()}"
    return f"cannot connect: {failure.value!r}"


def http_request(http: HttpCheck, host: str) -> bytes:
    """The request of C{option httpchk}, as sent."""
    lines = [f"{http.method} {http.uri} {http.version}"]
    if http.host is not None or http.version == "HTTP/1.1":
        lines.append(f"Host: {http.host or host}")
    lines += ["Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _within(status: int, codes: str) -> bool:
    low, _, high = codes.partition("-")
    return int(low) <= status <= int(high or low)


def judge(http: HttpCheck, status: int, body: bytes) -> tuple[bool, str]:
    """Whether a response passes C{http-check expect}, and why in words.

    Without an expectation, a 2xx or 3xx status passes, as in HAProxy.
    """
    if http.expect is None:
        return 200 <= status <= 399, f"HTTP status {status}"
    if http.expect == "status":
        met = any(_within(status, codes) for codes in http.pattern.split(","))
    elif http.expect == "rstatus":
        met = re.search(http.pattern, str(status)) is not None
    else:
        text = body.decode("latin-1")
        if http.expect == "string":
            met = http.pattern in text
        else:
            met = re.search(http.pattern, text) is not None
    passed = met != http.negate
    expectation = f"{'! ' if http.negate else ''}{http.expect} {http.pattern}"
    if passed:
        return True, f"HTTP status {status}, as 'expect {expectation}' wants"
    return False, f"HTTP status {status}, not what 'expect {expectation}' wants"


@implementer(IHandshakeListener)
class _CheckProtocol(Protocol):
    """One check on one connection: connected (and the TLS handshake done),
    or the request sent and the response judged."""

    transport: Any

    def __init__(self, check: ConnectCheck, result: Deferred[str]) -> None:
        self.check = check
        self.result = result
        self.received = b""
        self.handshake_done = False

    def connectionMade(self) -> None:
        http = self.check.http
        if http is not None:
            self.transport.write(http_request(http, self.check.host))
        elif not self.check.tls:
            self._end(True, "connection accepted")

    def handshakeCompleted(self) -> None:
        self.handshake_done = True
        if self.check.http is None:
            self._end(True, "TLS handshake done")

    def dataReceived(self, data: bytes) -> None:
        http = self.check.http
        if http is None:
            return  # a TLS check: what the server says is not asked for
        self.received = (self.received + data)[:MAX_RESPONSE]
        needs_body = http.expect in ("string", "rstring")
        if len(self.received) >= MAX_RESPONSE or (
            not needs_body and b"\n" in self.received
        ):
            self._judge()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.result.called:
            return
        if self.check.tls and not self.handshake_done:
            self._end(False, handshake_failure(self.transport, reason))
        elif self.received:
            self._judge()
        else:
            self._end(False, "connection closed without a response")

    def _judge(self) -> None:
        http = self.check.http
        assert http is not None
        match = _STATUS_LINE.match(self.received)
        if match is None:
            first = self.received.split(b"\n", 1)[0][:60]
            self._end(False, f"not an HTTP response: {first!r}")
            return
        body = self.received.partition(b"\r\n\r\n")[2]
        self._end(*judge(http, int(match.group(1)), body))

    def _end(self, passed: bool, why: str) -> None:
        if self.result.called:
            return
        if passed:
            self.result.callback(why)
        else:
            self.result.errback(CheckFailed(why))
        self.transport.loseConnection()


@implementer(IHealthCheck)
@attrs.define(eq=False)
class ConnectCheck:
    """A check by connection: TCP, TLS with C{check-ssl}, and an HTTP request
    with C{option httpchk}.

    @ivar timeout: how long the connection may take; without C{read_timeout},
        how long the whole check may take.
    @ivar read_timeout: C{timeout check}: how long the response may take once
        connected.
    """

    reactor: Any
    host: str
    port: int
    timeout: float
    read_timeout: float | None = None
    http: HttpCheck | None = None
    tls: bool = False
    client_tls: UpstreamTLS | None = None

    def run(self) -> Deferred[str]:
        return _Attempt(self).result


class _Attempt:
    """One run of a L{ConnectCheck}: its connection, its timer, its result."""

    def __init__(self, check: ConnectCheck) -> None:
        self.check = check
        self.protocol: _CheckProtocol | None = None
        self.result: Deferred[str] = Deferred(lambda _: self._abort())
        self.result.addBoth(self._stop_timer)
        what = "" if check.read_timeout is None else " connecting"
        self.timer = check.reactor.callLater(
            check.timeout, self._expire, what, check.timeout
        )
        factory: Any = Factory.forProtocol(self._build)
        factory.noisy = False
        if check.tls:
            tls = check.client_tls or _unverified()
            factory = TLSMemoryBIOFactory(
                tls.connector(tls.check_sni), True, factory, clock=check.reactor
            )
        endpoint = client_endpoint(check.reactor, check.host, check.port, check.timeout)
        self.connecting: Deferred[Any] = endpoint.connect(factory)
        self.connecting.addErrback(self._not_connected)

    def _build(self) -> _CheckProtocol:
        self.protocol = _CheckProtocol(self.check, self.result)
        read_timeout = self.check.read_timeout
        if read_timeout is not None:
            self._stop_timer()
            self.timer = self.check.reactor.callLater(
                read_timeout, self._expire, " waiting for the response", read_timeout
            )
        return self.protocol

    def _not_connected(self, failure: Failure) -> None:
        if not self.result.called and not failure.check(CancelledError):
            self.result.errback(CheckFailed(connect_failure(failure)))

    def _expire(self, what: str, seconds: float) -> None:
        if not self.result.called:
            self.result.errback(CheckFailed(f"timed out{what} after {seconds:g}s"))
            self._abort()

    def _abort(self) -> None:
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.abortConnection()
        elif not self.connecting.called:
            self.connecting.cancel()

    def _stop_timer(self, result: object = None) -> object:
        if self.timer.active():
            self.timer.cancel()
        return result


# For a check built without the server's settings (in Python): TLS that
# verifies nothing.
_unverified = functools.cache(unverified)
