"""The server side: HTTP/1.1 client connections to servers, and their pool.

An L{UpstreamConnection} carries one request at a time (no pipelining towards
servers).  Its response is parsed strictly, by llhttp through C{httptools}, and
handed piece by piece to the L{ResponseHandler} that sent the request.  When
the response is complete and both sides agree to keep the connection, it goes
back to the L{ConnectionPool} for the next request to the same server.

Towards a server with C{ssl}, a connection is handed out once its TLS
handshake is done, within C{timeout connect}; a handshake that fails (the
server's certificate refused, or the server refusing certlb) is a connection
failure.  TLS connections are pooled by server and SNI.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Hashable
from typing import Any
from typing import Protocol as TypingProtocol

import httptools
from OpenSSL import SSL
from twisted.internet import error, tcp
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
)
from twisted.internet.interfaces import (
    IDelayedCall,
    IHandshakeListener,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from certlb.config.addresses import format_address
from certlb.proxy.http import (
    CHUNKED,
    LAST_CHUNK,
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    NO_BODY,
    UNTIL_CLOSE,
    Headers,
    StallGuard,
    body_framing,
    connection_tokens,
)
from certlb.rules.interfaces import IRequestContext
from certlb.sockets import send_at_once
from certlb.tls.client import UpstreamTLS, handshake_failure, tls_error

log = Logger()

IDLE_TIMEOUT = 5.0  # seconds an unused connection to a server stays open
MAX_IDLE_PER_SERVER = 64


class UpstreamError(Exception):
    """A server failed a request.

    @ivar status: what the client gets when nothing was sent yet: 502 (the
        server refused, reset, or answered garbage) or 504 (it was too slow).
    @ivar why: a short text for the log.
    @ivar event: what went wrong, in the words of C{retry-on}:
        C{conn-failure} (no connection: the request was not sent),
        C{empty-response} (the server closed the connection without sending
        a byte: on a kept-alive connection, the request was most likely
        never processed), C{junk-response} (no valid response head),
        C{response-timeout} (C{timeout server} struck before the response
        head), or C{None} once the response head came.
    """

    def __init__(self, status: int, why: str, event: str | None = None) -> None:
        super().__init__(why)
        self.status = status
        self.why = why
        self.event = event


class ResponseHandler(TypingProtocol):
    """What an L{UpstreamConnection} reports a response to."""

    def response_informational(
        self, status: int, reason: bytes, headers: Headers
    ) -> None: ...
    def response_head(
        self, status: int, reason: bytes, headers: Headers, framing: str, codings: bytes
    ) -> None: ...
    def response_data(self, data: bytes) -> None: ...
    def response_end(self) -> None: ...
    def response_read_done(self) -> None:
        """What the server sent in one read has been reported (the response
        goes on): what was held back to be sent at once may go now."""
        ...

    def response_failed(
        self, failure: UpstreamError, connection: UpstreamConnection
    ) -> None: ...


@implementer(IPushProducer)
class _BodyProducer:
    """Lets the server's transport pause and resume reading the client.

    While the server takes no more of the body, it is the one keeping the
    exchange waiting: C{timeout server} runs.
    """

    def __init__(self, connection: UpstreamConnection, body: Any) -> None:
        self.connection = connection
        self.body = body

    def pauseProducing(self) -> None:
        self.body.pause()
        self.connection._start_timer()

    def resumeProducing(self) -> None:
        if not self.connection._request_sent:
            self.connection._stop_timer()
        self.body.resume()

    def stopProducing(self) -> None:
        self.body.resume()


@implementer(IHandshakeListener)
class UpstreamConnection(Protocol):
    """One HTTP/1.1 connection to a server.

    @ivar ready: over TLS, fires with this connection once the handshake is
        done, or fails with L{UpstreamError}; C{None} otherwise.
    """

    transport: Any

    def __init__(
        self,
        pool: ConnectionPool,
        key: Hashable,
        tls: bool = False,
        connect_timeout: float = 0.0,
    ) -> None:
        self.pool = pool
        self.key = key
        self.ready: Deferred[UpstreamConnection] | None = Deferred() if tls else None
        self._connect_timeout = connect_timeout
        self._handshake_timer: IDelayedCall | None = None
        self.clock: IReactorTime = pool.reactor
        self.handler: ResponseHandler | None = None
        self.reused = False
        self.connected = False
        self.informational = False
        self._parser = httptools.HttpResponseParser(self)
        self._reason = b""
        self._headers: Headers = []
        self._framing = NO_BODY
        self._head_received = False
        self._head_bytes = 0
        self._request_framing = NO_BODY
        self._request_sent = False
        self._head_request = False
        self._timeout = 0.0
        self._timer: IDelayedCall | None = None
        self._idle_timer: IDelayedCall | None = None
        self._paused = False
        self._reusable = True
        self._codings = b""
        self._answered = False  # any byte of a response came
        self._ended: ResponseHandler | None = None
        self._guard = StallGuard()

    # -- connection -------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected = True
        if self.ready is not None:
            self._handshake_timer = self.clock.callLater(
                self._connect_timeout, self._handshake_timed_out
            )

    def handshakeCompleted(self) -> None:
        ready, self.ready = self.ready, None
        self._stop_handshake_timer()
        if ready is not None:
            ready.callback(self)

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        ready, self.ready = self.ready, None
        if ready is not None:
            self.transport.abortConnection()
            ready.errback(
                UpstreamError(
                    502,
                    f"TLS handshake with {self._address()} not done after "
                    f"{self._connect_timeout:g}s (timeout connect)",
                    "conn-failure",
                )
            )

    def _stop_handshake_timer(self) -> None:
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        self._handshake_timer = None

    def _address(self) -> str:
        host, port = self.key[:2]  # type: ignore[index]
        return format_address(host, port)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = False
        self._cancel_timers()
        self._stop_handshake_timer()
        self.pool.lost(self)
        ready, self.ready = self.ready, None
        if ready is not None:
            # The handshake did not end: nothing was sent yet.
            why = handshake_failure(self.transport, reason)
            ready.errback(
                UpstreamError(502, f"{self._address()}: {why}", "conn-failure")
            )
            return
        handler, self.handler = self.handler, None
        if handler is None:
            return
        clean = reason.check(error.ConnectionDone) is not None
        if not self._answered and not self.reused and reason.check(SSL.Error):
            # The server's TLS refused certlb after the handshake (as a TLS
            # 1.3 server does a client certificate): no request was read.
            why = f"the server refused the TLS connection: {tls_error(reason)}"
            handler.response_failed(UpstreamError(502, why, "conn-failure"), self)
            return
        if self._head_received and self._framing == UNTIL_CLOSE and clean:
            # A body delimited by the end of the connection is complete now
            # (but not when the connection was reset).
            handler.response_end()
            return
        if self._head_received:
            why = "the server closed the connection before the end of the response"
        else:
            why = "the server closed the connection without a response"
        if not clean and reason.getErrorMessage():
            why += f" ({reason.getErrorMessage()})"
        if not self._answered:
            event: str | None = "empty-response"
        else:
            event = None if self._head_received else "junk-response"
        failure = UpstreamError(502, why, event)
        handler.response_failed(failure, self)

    # -- request ------------------------------------------------------------

    def send(
        self,
        handler: ResponseHandler,
        head: bytes,
        body: Any,
        request_framing: str,
        head_request: bool,
        timeout: float,
        close: bool = False,
    ) -> None:
        """Send a request; its response goes to C{handler}.

        @param head: the request line and headers, serialized.
        @param body: a L{certlb.proxy.channel.BodyPipe}, or C{None}.
        @param request_framing: how the body is sent: L{NO_BODY}, L{LENGTH} or
            L{CHUNKED}.
        @param head_request: the request is a HEAD, whose response has no body.
        @param timeout: C{timeout server}, in seconds: the longest silence
            from the server once the request is sent, or while it does not
            read the request body.
        @param close: close the connection after the response (C{option
            http-server-close}).
        """
        self._cancel_idle()
        if close:
            self._reusable = False
        self.handler = handler
        self._answered = False
        self._headers = []
        self._head_received = False
        self.informational = False
        self._request_framing = request_framing
        self._request_sent = request_framing == NO_BODY
        self._head_request = head_request
        self._timeout = timeout
        transport = self.transport
        assert transport is not None
        if request_framing == NO_BODY and isinstance(transport, tcp.Connection):
            head = send_at_once(transport, head)  # the whole request, at once
        if head:
            transport.write(head)
        if request_framing == NO_BODY:
            self._start_timer()
        else:
            transport.registerProducer(_BodyProducer(self, body), True)
            body.attach(self)

    def body_data(self, data: bytes) -> None:
        if not self.connected:
            return
        if self._request_framing == CHUNKED:
            self.transport.writeSequence([b"%x\r\n" % len(data), data, b"\r\n"])
        else:
            self.transport.write(data)

    def body_end(self) -> None:
        if not self.connected:
            return
        if self._request_framing == CHUNKED:
            self.transport.write(LAST_CHUNK)
        self.transport.unregisterProducer()
        self._request_sent = True
        self._start_timer()

    # -- response -------------------------------------------------------------

    def _start_timer(self) -> None:
        """Start, or restart, C{timeout server}."""
        if self._timer is not None and self._timer.active():
            self._timer.reset(self._timeout)
        elif self.handler is not None:
            self._timer = self.clock.callLater(self._timeout, self._timed_out)

    def _stop_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def dataReceived(self, data: bytes) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.reset(self._timeout)
        if self.handler is None:
            # Nothing was asked: a server that talks now is out of step.
            self._reusable = False
            self.pool.lost(self)
            self.transport.loseConnection()
            return
        self._answered = True
        self._guard.before()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as e:
            cause = e.__context__
            if not isinstance(cause, httptools.HttpParserError):
                log.failure(
                    "internal error while reading a response", Failure(cause or e)
                )
            self._junk(f"invalid response from the server: {cause}")
        except httptools.HttpParserError as e:
            self._junk(f"invalid response from the server: {e}")
        except httptools.HttpParserUpgrade:
            self._junk("the server switched protocols")
        else:
            if self._guard.over(len(data)):
                self._junk("response head too large")
        finally:
            # A response ends once llhttp is done with this read: what came
            # after it in the same read must not be taken as the answer to
            # the next request sent on this connection.
            ended, self._ended = self._ended, None
            if ended is not None:
                self.pool.release(self)
                ended.response_end()
            elif self._head_received and self.handler is not None:
                self.handler.response_read_done()

    def on_message_begin(self) -> None:
        self._guard.progress += 1
        if self._ended is not None or self.handler is None:
            self._reusable = False  # a message nobody asked for: out of step
        self._headers = []
        self._reason = b""
        self._head_bytes = 0

    def on_status(self, reason: bytes) -> None:
        self._guard.progress += 1
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._guard.progress += 1
        if not self._head_received:
            self._headers.append((name, value))
            self._head_bytes += len(name) + len(value)
            if self._head_bytes > MAX_HEAD_BYTES or len(self._headers) > MAX_HEADERS:
                raise httptools.HttpParserError("response head too large")

    def on_headers_complete(self) -> None:
        self._guard.progress += 1
        handler = self.handler
        if handler is None:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:
                raise httptools.HttpParserError("101 Switching Protocols")
            self.informational = True
            handler.response_informational(status, self._reason, self._headers)
            return
        self.informational = False
        self._head_received = True
        framing, _, codings = body_framing(self._headers)
        if self._head_request or status in (204, 304):
            framing = NO_BODY
        elif framing == NO_BODY and not _has_length(self._headers):
            framing = UNTIL_CLOSE
        self._framing = framing
        handler.response_head(status, self._reason, self._headers, framing, codings)
        if self._head_request and self.handler is handler:
            # llhttp cannot be told that a HEAD response has no body: end it
            # here and read the next response with a fresh parser.
            keep_alive = self._keep_alive_headers()
            self._parser = httptools.HttpResponseParser(self)
            self._complete(keep_alive)

    def on_body(self, data: bytes) -> None:
        self._guard.progress += 1
        if self.handler is not None and self._head_received:
            self.handler.response_data(data)
        elif self._head_request:
            self._reusable = False  # body bytes after a HEAD response

    def on_message_complete(self) -> None:
        self._guard.progress += 1
        if self.informational:
            self.informational = False
            return
        if self.handler is None or not self._head_received:
            return
        self._complete(self._parser.should_keep_alive())

    def _keep_alive_headers(self) -> bool:
        """Whether the response head allows another request (for a HEAD
        response, whose end llhttp does not see)."""
        tokens = connection_tokens(self._headers)
        if self._parser.get_http_version() == "1.0":
            return b"keep-alive" in tokens
        return b"close" not in tokens

    def _complete(self, keep_alive: bool) -> None:
        handler, self.handler = self.handler, None
        self._cancel_timers()
        if self._paused:
            # The whole response is read: a slow client no longer holds
            # this connection, which can serve the next request.
            self._paused = False
            self.transport.resumeProducing()
        self._reusable = self._reusable and keep_alive and self._request_sent
        # Ended (and back to the pool) when this read is parsed: see
        # dataReceived.
        self._ended = handler

    def _fail(self, failure: UpstreamError) -> None:
        handler, self.handler = self.handler, None
        self._reusable = False
        self._cancel_timers()
        if self.transport is not None:
            self.transport.abortConnection()
        if handler is not None:
            handler.response_failed(failure, self)

    def _junk(self, why: str) -> None:
        self._fail(
            UpstreamError(502, why, None if self._head_received else "junk-response")
        )

    def _timed_out(self) -> None:
        self._timer = None
        why = f"no answer from the server in {self._timeout:g}s (timeout server)"
        event = None if self._head_received else "response-timeout"
        self._fail(UpstreamError(504, why, event))

    # -- flow control and reuse ---------------------------------------------

    def pause(self) -> None:
        """The client cannot take more: stop reading, and stop the clock."""
        if not self._paused and self.connected:
            self._paused = True
            self.transport.pauseProducing()
            self._stop_timer()

    def resume(self) -> None:
        if self._paused and self.connected:
            self._paused = False
            self.transport.resumeProducing()
            if self._request_sent:
                self._start_timer()

    def abandon(self) -> None:
        """The client went away: this connection's state is unknown, close it."""
        self.handler = None
        self._reusable = False
        self._cancel_timers()
        if self.connected:
            self.transport.abortConnection()

    @property
    def reusable(self) -> bool:
        return bool(self._reusable and self.connected and not self._paused)

    def idle(self, timeout: float) -> None:
        """Wait in the pool; close after C{timeout} seconds unused."""
        self.reused = True
        self._idle_timer = self.clock.callLater(timeout, self._idle_expired)

    def _idle_expired(self) -> None:
        self._idle_timer = None
        self.pool.lost(self)
        self.transport.loseConnection()

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None and self._idle_timer.active():
            self._idle_timer.cancel()
        self._idle_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_idle()
        self._stop_timer()


def _has_length(headers: Headers) -> bool:
    return any(name.lower() == b"content-length" for name, _ in headers)


class ConnectionPool:
    """Persistent connections to servers, shared by every backend.

    @ivar reactor: connects, and times idle connections.
    """

    def __init__(
        self,
        reactor: Any,
        idle_timeout: float = IDLE_TIMEOUT,
        max_idle: int = MAX_IDLE_PER_SERVER,
    ) -> None:
        self.reactor = reactor
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._idle: dict[Hashable, list[UpstreamConnection]] = {}

    def acquire(
        self,
        host: str,
        port: int,
        connect_timeout: float,
        fresh: bool = False,
        tls: UpstreamTLS | None = None,
        request: IRequestContext | None = None,
    ) -> Deferred[UpstreamConnection]:
        """A connection to C{host:port}: an idle one if any (unless C{fresh}),
        else a new one.

        @param tls: the server's TLS settings, when it has C{ssl}.
        @param request: the request to send, of which C{tls} takes its SNI.
        @return: a Deferred that fails with L{UpstreamError} when the server
            cannot be reached (or its TLS handshake fails).
        """
        sni = None
        if tls is not None:
            try:
                sni = tls.server_name(request)
            except Exception:
                return fail()
        key: Hashable = (host, port) if tls is None else (host, port, tls, sni)
        connection = None if fresh else self._take_idle(key)
        if connection is not None:
            return succeed(connection)
        endpoint = client_endpoint(self.reactor, host, port, connect_timeout)
        factory: Any = _UpstreamFactory(self, key, tls is not None, connect_timeout)
        if tls is not None:
            factory = TLSMemoryBIOFactory(
                tls.connector(sni), True, factory, clock=self.reactor
            )
        d: Deferred[Any] = endpoint.connect(factory)
        d.addErrback(_connect_error, host, port, connect_timeout)
        if tls is not None:
            d.addCallback(_handshake)
        return d

    def take_idle(self, host: str, port: int) -> UpstreamConnection | None:
        """An idle connection to the plain-TCP server C{host:port}, if any
        (what L{acquire} would give at once, without a Deferred)."""
        return self._take_idle((host, port))

    def _take_idle(self, key: Hashable) -> UpstreamConnection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not idle:
                del self._idle[key]
            if connection.reusable and not connection.transport.disconnecting:
                connection._cancel_idle()
                return connection
        return None

    def release(self, connection: UpstreamConnection) -> None:
        """Take back a connection whose exchange is over; keep it if it can
        serve again."""
        if not connection.reusable:
            if connection.connected:
                connection.transport.loseConnection()
            return
        idle = self._idle.setdefault(connection.key, [])
        if len(idle) >= self.max_idle:
            connection.transport.loseConnection()
            return
        idle.append(connection)
        connection.idle(self.idle_timeout)

    def lost(self, connection: UpstreamConnection) -> None:
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)
            if not idle:
                # Keys may come from requests (SNI): keep none that is empty.
                del self._idle[connection.key]

    def close(self) -> None:
        """Close every idle connection (at shutdown)."""
        for idle in self._idle.values():
            for connection in list(idle):
                connection._cancel_timers()
                if connection.connected:
                    connection.transport.loseConnection()
        self._idle.clear()


def _handshake(protocol: Any) -> Deferred[UpstreamConnection]:
    """The connection inside a TLS one, once its handshake is done."""
    connection: UpstreamConnection = protocol.wrappedProtocol
    if connection.ready is not None:
        return connection.ready
    if connection.connected:  # done already
        return succeed(connection)
    return fail(UpstreamError(502, "the TLS connection ended at once", "conn-failure"))


class _UpstreamFactory(Factory):
    noisy = False

    def __init__(
        self,
        pool: ConnectionPool,
        key: Hashable,
        tls: bool = False,
        connect_timeout: float = 0.0,
    ) -> None:
        self.pool = pool
        self.key = key
        self.tls = tls
        self.connect_timeout = connect_timeout

    def buildProtocol(self, addr: object) -> UpstreamConnection:
        return UpstreamConnection(self.pool, self.key, self.tls, self.connect_timeout)


def client_endpoint(reactor: Any, host: str, port: int, timeout: float) -> Any:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return HostnameEndpoint(reactor, host, port, timeout=timeout)
    if address.version == 6:
        return TCP6ClientEndpoint(reactor, host, port, timeout=timeout)
    return TCP4ClientEndpoint(reactor, host, port, timeout=timeout)


def _connect_error(failure: Failure, host: str, port: int, timeout: float) -> Failure:
    if failure.check(error.TimeoutError, error.UserError):
        raise UpstreamError(
            502,
            f"connection to {host}:{port} timed out after {timeout:g}s "
            "(timeout connect)",
            "conn-failure",
        )
    if failure.check(error.ConnectionRefusedError):
        raise UpstreamError(502, f"connection to {host}:{port} refused", "conn-failure")
    if failure.check(error.DNSLookupError):
        raise UpstreamError(502, f"cannot resolve {host}", "conn-failure")
    if failure.check(error.ConnectError):
        raise UpstreamError(
            502,
            f"cannot connect to {host}:{port}: {failure.getErrorMessage()}",
            "conn-failure",
        )
    return failure
