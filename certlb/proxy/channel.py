"""The client side: an HTTP/1.1 server protocol feeding the forwarding engine.

One L{HTTPChannel} per client connection.  Requests are parsed strictly (by
llhttp, through C{httptools}) and answered in order: a pipelined request waits,
with reading paused, until the response before it is complete.  Request bodies
flow to the server through a L{BodyPipe} as they arrive; response bodies flow
back as the server sends them, each direction pausing the other side when it
cannot keep up.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import httptools
from OpenSSL.crypto import X509
from OpenSSL.SSL import Error as SSLError
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from certlb.proxy.accesslog import write_access_line
from certlb.proxy.http import (
    CHUNKED,
    LAST_CHUNK,
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    NO_BODY,
    UNTIL_CLOSE,
    Headers,
    RequestHead,
    StallGuard,
    body_framing,
    error_response,
    local_response,
    serialize_head,
)
from certlb.rules.context import ConnectionInfo, RequestContext
from certlb.rules.logformat import log_safe
from certlb.rules.record import RequestRecord
from certlb.tls.certinfo import CertificateFacts
from certlb.tls.state import client_cert_state, verify_record

if TYPE_CHECKING:
    from certlb.proxy.engine import Engine, Exchange
    from certlb.proxy.limits import ConnectionLimits
    from certlb.proxy.runtime import FrontendRuntime
    from certlb.rules.actions import LocalResponse

log = Logger()


class BodyPipe:
    """A request body on its way from the client to a server.

    The channel feeds it; the forwarding side attaches a sink (an object with
    C{body_data(bytes)} and C{body_end()}) when it is ready to send.  Until
    then, what arrives is kept and the client is not read from, so at most one
    read's worth of data waits here.
    """

    __slots__ = ("_buffer", "_channel", "_sink", "complete", "received")

    def __init__(self, channel: HTTPChannel) -> None:
        self._channel = channel
        self._buffer: list[bytes] = []
        self._sink: Any = None
        self.complete = False
        self.received = 0

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        if self._sink is not None:
            self._sink.body_data(data)
        elif self._buffer is not None:
            self._buffer.append(data)
            self._channel.pause_reading(self)

    def end(self) -> None:
        if self.complete:
            return
        self.complete = True
        if self._sink is not None:
            self._sink.body_end()

    def attach(self, sink: Any) -> None:
        """Send the body, from its first byte, to C{sink}."""
        self._sink = sink
        buffered, self._buffer = self._buffer, []
        for data in buffered:
            sink.body_data(data)
        if self.complete:
            sink.body_end()
        self._channel.resume_reading(self)

    def detach(self) -> None:
        """The sink failed before taking any of the body (the request goes to
        another server): keep what arrives for the next sink."""
        self._sink = None
        if self._buffer is None:
            self._buffer = []

    def discard(self) -> None:
        """Drop the body: it will not be forwarded (the request was answered)."""
        self._sink = None
        self._buffer = None  # type: ignore[assignment]
        self._channel.resume_reading(self)

    @property
    def started(self) -> bool:
        """Whether any of the body has been handed to a sink (so it cannot be
        sent again)."""
        return self._sink is not None and self.received > 0

    def pause(self) -> None:
        self._channel.pause_reading(self)

    def resume(self) -> None:
        self._channel.resume_reading(self)


class Incoming:
    """A request read from the client: its head and its body, and when it
    came (see L{certlb.proxy.engine.Incoming})."""

    __slots__ = ("accepted", "body", "head", "started")

    def __init__(
        self, head: RequestHead, body: BodyPipe, accepted: float, started: float
    ) -> None:
        self.head = head
        self.body = body
        self.accepted = accepted
        self.started = started


@implementer(IPushProducer)
class _UpstreamProducer:
    """Lets the client's transport pause and resume the server's, for one response."""

    def __init__(self, channel: HTTPChannel, exchange: Exchange) -> None:
        self.channel = channel
        self.exchange = exchange

    def pauseProducing(self) -> None:
        self.exchange.pause_upstream()
        self.channel.client_not_reading()

    def resumeProducing(self) -> None:
        self.channel.client_reading()
        self.exchange.resume_upstream()

    def stopProducing(self) -> None:
        self.exchange.client_gone()


class _Reject(Exception):
    """A request that certlb refuses to handle, with the status to answer."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


# Why reading may be paused, besides a body pipe: a request waits its turn.
_PIPELINE = "pipeline"

# What the one timer of a channel is waiting for.
_HEADERS = "http-request"
_CLIENT = "client"
_IDLE = "keep-alive"


class HTTPChannel(Protocol):
    """One client connection: parse requests, hand them to the engine, answer."""

    transport: Any

    def __init__(
        self,
        frontend: FrontendRuntime,
        engine: Engine,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.frontend = frontend
        self.engine = engine
        self.limits = limits
        self.clock: IReactorTime = engine.reactor
        self.connection: ConnectionInfo | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._url: list[bytes] = []
        self._headers: Headers = []
        self._head_bytes = 0
        self._in_head = False
        self._reading: Incoming | None = None
        self._current: Exchange | None = None
        self._pending: deque[Incoming] = deque()
        self._pausers: set[object] = set()
        self._timer: IDelayedCall | None = None
        self._timer_kind = ""
        self._received_any = False
        self._closing = False
        self._broken = False
        self._starting = False
        self._guard = StallGuard()
        self._abort_timer: IDelayedCall | None = None
        self._framing = NO_BODY
        self._close_after = False
        self._response_started = False
        self._draining = False
        self._idle_since = 0.0  # accepted, or the last response ended
        self._began = 0.0  # the first byte of the request head being read
        self._held: list[bytes] = []  # the response's bytes not yet written

    # -- connection --------------------------------------------------------

    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None
        self._idle_since = self.clock.seconds()
        no_delay = getattr(transport, "setTcpNoDelay", None)
        if no_delay is not None:  # small answers go at once, as HAProxy's do
            no_delay(True)
        peer, host = transport.getPeer(), transport.getHost()
        self.connection = ConnectionInfo(
            (getattr(peer, "host", ""), getattr(peer, "port", 0)),
            (getattr(host, "host", ""), getattr(host, "port", 0)),
            self.frontend.name,
            lambda: client_cert_state(transport),
        )
        self._arm(_HEADERS, self.frontend.http_request_timeout)
        if isinstance(self.factory, FrontendFactory):
            self.factory.opened(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closing = True
        self._cancel_timer()
        if self._abort_timer is not None and self._abort_timer.active():
            self._abort_timer.cancel()
        if not self._received_any:
            self._log_handshake_failure(reason)
        current, self._current = self._current, None
        if current is not None:
            current.client_gone()
        self._pending.clear()
        if self.limits is not None:
            self.limits.closed(self.frontend.name)
        if isinstance(self.factory, FrontendFactory):
            self.factory.closed(self)

    def drain(self) -> None:
        """certlb is stopping: close now if idle, else after the requests
        already read (the last response says C{Connection: close})."""
        self._draining = True
        if self._idle():
            self._lose()

    def _idle(self) -> bool:
        """No request under way, nor begun, nor waiting."""
        return (
            self._current is None
            and self._reading is None
            and not self._in_head
            and not self._pending
        )

    def _last_before_stop(self) -> bool:
        """While stopping: the current request is the last one begun."""
        current = self._current
        return (
            self._draining
            and not self._pending
            and not self._in_head
            and (
                self._reading is None
                or current is None
                or self._reading is current.incoming
            )
        )

    def _log_handshake_failure(self, reason: Failure) -> None:
        record = verify_record(self.transport)
        if record is None or not reason.check(SSLError):
            return
        if record.errors:
            why = "; ".join(str(e) for e in record.errors)
        else:
            why = _ssl_reason(reason)
        subject, issuer = _names(record.refused)
        log.info(
            "frontend {frontend}: TLS handshake with {client} failed: {why}{cert}",
            frontend=self.frontend.name,
            client=self._client_label(),
            why=why,
            cert=""
            if record.refused is None
            else f" (certificate subject {subject}, issuer {issuer})",
            errors=[(e.code, e.depth) for e in record.errors],
            subject=subject,
            issuer=issuer,
        )

    # -- reading -----------------------------------------------------------

    def pause_reading(self, why: object) -> None:
        """Stop reading from the client until every reason given is resumed.

        While certlb does not read, the client cannot be blamed for silence:
        C{timeout client} stops, and starts again on resuming.
        """
        if not self._pausers and not self._closing:
            self.transport.pauseProducing()
            if self._timer_kind == _CLIENT and not self._response_started:
                self._cancel_timer()
        self._pausers.add(why)

    def resume_reading(self, why: object) -> None:
        if why in self._pausers:
            self._pausers.discard(why)
            if not self._pausers and not self._closing:
                self.transport.resumeProducing()
                if self._reading is not None and self._timer is None:
                    self._arm(_CLIENT, self.frontend.client_timeout)

    def dataReceived(self, data: bytes) -> None:
        self._received_any = True
        while data and not (self._closing or self._broken):
            data = self._feed(data)

    def _feed(self, data: bytes) -> bytes:
        """Parse C{data}; return what is left for a new parser, if any."""
        self._guard.before()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            # llhttp stops after a request that carries Upgrade.  certlb does
            # not switch protocols: the request went on as a plain one, its
            # Upgrade header dropped; what follows is read by a new parser.
            self._parser = httptools.HttpRequestParser(self)
            return data[e.args[0] :]
        except httptools.HttpParserCallbackError as e:
            if isinstance(e.__context__, _Reject):
                self._bad_request(str(e.__context__), e.__context__.status)
                return b""
            # Raised by certlb's own code in a parser callback: a bug.
            log.failure(
                "frontend {frontend}: internal error while reading a request",
                Failure(e.__context__ or e),
                frontend=self.frontend.name,
            )
            if self._current is None and not self._closing:
                self._answer_and_close(500, "IR")
            else:
                self._abort()
        except httptools.HttpParserError as e:
            self._bad_request(str(e) or e.__class__.__name__)
        else:
            if self._guard.over(len(data)):
                self._bad_request(
                    f"a header line over {MAX_HEAD_BYTES} bytes",
                    431 if self._in_head else 400,
                )
        return b""

    def on_message_begin(self) -> None:
        self._guard.progress += 1
        self._url = []
        self._headers = []
        self._head_bytes = 0
        self._in_head = True
        self._began = self.clock.seconds()
        if self._current is None:
            self._arm(_HEADERS, self.frontend.http_request_timeout)

    def on_url(self, url: bytes) -> None:
        self._guard.progress += 1
        self._url.append(url)
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._guard.progress += 1
        if self._reading is None:
            self._headers.append((name, value))
            self._count(len(name) + len(value))
        # else: a trailer field after a chunked body; trailers are not forwarded.

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES or len(self._headers) > MAX_HEADERS:
            raise _Reject(
                431,
                f"request head over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} headers",
            )

    def on_headers_complete(self) -> None:
        self._guard.progress += 1
        self._in_head = False
        if self._closing:
            return
        parser = self._parser
        method = parser.get_method()
        if method == b"CONNECT":
            raise _Reject(405, "CONNECT is not supported: certlb does not tunnel")
        framing, length, codings = body_framing(self._headers)
        if codings or framing == UNTIL_CLOSE:
            raise _Reject(501, "a transfer coding other than chunked")
        version = parser.get_http_version().encode("ascii")
        head = RequestHead(
            method=method,
            target=b"".join(self._url),
            version=version,
            headers=self._headers,
            framing=framing,
            length=length,
            # An HTTP/1.0 message with Transfer-Encoding has faulty framing:
            # close after it (RFC 9112, 6.1).
            keep_alive=parser.should_keep_alive()
            and not (version == b"1.0" and framing == CHUNKED),
        )
        incoming = Incoming(head, BodyPipe(self), self._idle_since, self._began)
        incoming.body.complete = framing == NO_BODY
        self._reading = incoming
        if self._current is None and not self._pending:
            self._start(incoming)
        else:
            self._pending.append(incoming)
            self.pause_reading(_PIPELINE)

    def on_body(self, data: bytes) -> None:
        self._guard.progress += 1
        if self._reading is not None:
            if self._timer_kind == _CLIENT and self._timer is not None:
                self._timer.reset(self.frontend.client_timeout)
            self._reading.body.feed(data)

    def on_message_complete(self) -> None:
        self._guard.progress += 1
        incoming, self._reading = self._reading, None
        if incoming is None:
            return
        # llhttp resets its keep-alive flag once the message is over: read it here.
        incoming.head.keep_alive = (
            incoming.head.keep_alive and self._parser.should_keep_alive()
        )
        incoming.body.end()
        if self._timer_kind == _CLIENT and not self._response_started:
            self._cancel_timer()

    def _start(self, incoming: Incoming) -> None:
        self._framing = NO_BODY
        self._close_after = False
        self._response_started = False
        self._cancel_timer()
        assert self.connection is not None
        exchange = self.engine.exchange(self, incoming, self.frontend, self.connection)
        self._current = exchange
        if not incoming.body.complete and incoming.head.framing != NO_BODY:
            self._arm(_CLIENT, self.frontend.client_timeout)
        exchange.start()

    # -- timers --------------------------------------------------------------

    def _arm(self, kind: str, seconds: float) -> None:
        self._cancel_timer()
        self._timer_kind = kind
        self._timer = self.clock.callLater(seconds, self._expired, kind)

    def _cancel_timer(self) -> None:
        timer, self._timer, self._timer_kind = self._timer, None, ""
        if timer is not None and timer.active():
            timer.cancel()

    def _expired(self, kind: str) -> None:
        self._timer, self._timer_kind = None, ""
        if self._closing:
            return
        if kind == _HEADERS:
            if self._current is not None:
                return
            if self._in_head or self._reading is not None:
                log.info(
                    "frontend {frontend}: {client} sent no complete request in "
                    "time (timeout http-request)",
                    frontend=self.frontend.name,
                    client=self._client_label(),
                )
                self._answer_and_close(408, "cR")
            else:
                # Nothing of a request came (a browser's pre-connection, or an
                # idle keep-alive): close quietly, as HAProxy does.
                self._lose()
        elif kind == _CLIENT:
            log.info(
                "frontend {frontend}: client {client} timed out (timeout client)",
                frontend=self.frontend.name,
                client=self._client_label(),
            )
            if self._current is not None:
                self._current.record.cause = "c"
            self._abort()
        else:
            self._lose()

    def client_not_reading(self) -> None:
        """The client stopped reading the response: give it C{timeout client}."""
        self._arm(_CLIENT, self.frontend.client_timeout)

    def client_reading(self) -> None:
        if self._timer_kind == _CLIENT:
            if self._reading is not None:
                # A request body is still to come: the client owes that.
                self._arm(_CLIENT, self.frontend.client_timeout)
            else:
                self._cancel_timer()

    # -- errors ----------------------------------------------------------------

    def _bad_request(self, why: str, status: int = 400) -> None:
        if self._closing:
            return
        log.info(
            "frontend {frontend}: bad request from {client}: {why}",
            frontend=self.frontend.name,
            client=self._client_label(),
            why=why,
        )
        self._broken = True
        reading, self._reading = self._reading, None
        self._pending.clear()
        current = self._current
        if current is None:
            self._answer_and_close(status, "PR")
        elif reading is not None and reading is current.incoming:
            # The body being forwarded is broken, and so is its exchange.
            self._current = None
            current.client_gone()
            if self._response_started:
                self._abort()
            else:
                self._answer_and_close(status)
        else:
            # A response is under way; it cannot be followed by an error.
            self._close_after = True

    def _answer_and_close(self, status: int, termination: str | None = None) -> None:
        """Answer C{status} and close.

        @param termination: for a request that no exchange logs, the
            termination state of its access log line.
        """
        data = error_response(status, close=True)
        if termination is not None:
            self._log_refused(status, termination, len(data))
        self.transport.write(data)
        self._lose()

    def _log_refused(self, status: int, termination: str, size: int) -> None:
        """The access log line of a request refused before the frontend's
        rules saw it: its request line is C{<BADREQ>}, as HAProxy writes it."""
        if self.frontend.log_format is None or self.connection is None:
            return
        now = self.clock.seconds()
        record = RequestRecord(self._idle_since, self._began or now, None, "<BADREQ>")
        record.backend = self.frontend.name
        record.status, record.bytes_out, record.ended = status, size, now
        record.cause, record.stage = termination[0], termination[1]
        record.actconn, record.feconn = self.counts()
        context = RequestContext("", "", "", [], self.connection)
        context.record = record
        write_access_line(self.frontend, context)

    def _lose(self) -> None:
        """Close once what was written is sent; a client that reads nothing
        more is cut after C{timeout client}."""
        if self._closing:
            return
        self._closing = True
        self._cancel_timer()
        self.transport.loseConnection()
        self._abort_timer = self.clock.callLater(
            self.frontend.client_timeout, self.transport.abortConnection
        )

    def _abort(self) -> None:
        self._closing = True
        self._cancel_timer()
        self.transport.abortConnection()

    def _client_label(self) -> str:
        if self.connection is None:
            return "?"
        host, port = self.connection.source
        return f"{host}:{port}"

    # -- responses (called by the Exchange) ------------------------------------

    def send_informational(self, status: int, reason: bytes, headers: Headers) -> None:
        """Relay a 1xx response (such as 100 Continue) to an HTTP/1.1 client."""
        current = self._current
        if self._closing or current is None or current.incoming.head.version != b"1.1":
            return
        self.transport.write(
            serialize_head(b"HTTP/1.1 %d %s" % (status, reason), headers)
        )

    def send_head(
        self, status: int, reason: bytes, headers: Headers, framing: str,
        exchange: Exchange,
    ) -> None:  # fmt: skip
        """Start the response: status line and headers, framed for this client.

        @param headers: end-to-end headers, C{Content-Length} included when
            the server sent one; this adds C{Transfer-Encoding} and
            C{Connection} as this client needs them.
        @param framing: how the server delimits the body.
        """
        if self._closing:
            return
        head = exchange.incoming.head
        client_11 = head.version == b"1.1"
        close = self._close_after or not head.keep_alive or self._last_before_stop()
        if framing in (CHUNKED, UNTIL_CLOSE):
            if client_11:
                framing = CHUNKED
                headers.append((b"Transfer-Encoding", b"chunked"))
            else:
                framing, close = UNTIL_CLOSE, True
        if close:
            headers.append((b"Connection", b"close"))
        elif not client_11:
            headers.append((b"Connection", b"keep-alive"))
        self._framing = framing
        self._close_after = close
        self._response_started = True
        if self._timer_kind == _CLIENT and self._reading is None:
            self._cancel_timer()
        transport = self.transport
        assert transport is not None
        data = serialize_head(b"HTTP/1.1 %d %s" % (status, reason), headers)
        exchange.record.bytes_out += len(data)
        # Held until the end of the server's read (flush), or of the
        # response: a small response goes out in one write, one TLS record.
        self._held.append(data)
        transport.registerProducer(_UpstreamProducer(self, exchange), True)

    def send_data(self, data: bytes) -> None:
        if self._closing or not data:
            return
        if self._framing == CHUNKED:
            size = b"%x\r\n" % len(data)
            self._sent(len(size) + len(data) + 2)
            self._held += (size, data, b"\r\n")
        else:
            self._sent(len(data))
            self._held.append(data)

    def flush(self) -> None:
        held, self._held = self._held, []
        if held and not self._closing:
            self.transport.write(b"".join(held))

    def _sent(self, size: int) -> None:
        if self._current is not None:
            self._current.record.bytes_out += size

    def send_end(self) -> None:
        """The response is complete: end it, then go on with the next request."""
        if self._closing:
            return
        if self._framing == CHUNKED:
            self._sent(len(LAST_CHUNK))
            self._held.append(LAST_CHUNK)
        self.flush()
        self.transport.unregisterProducer()
        self._finished()

    def send_local(self, response: LocalResponse, exchange: Exchange) -> None:
        """Answer the current request without a server (an error, a redirect,
        a rule's answer)."""
        if self._closing:
            return
        body = exchange.incoming.body
        close = self._close_after or not exchange.incoming.head.keep_alive
        close = close or not body.complete or self._last_before_stop()
        body.discard()
        head = exchange.incoming.head.method == b"HEAD"
        data = local_response(response, close, head)
        exchange.record.bytes_out += len(data)
        self.transport.write(data)
        self._close_after = close
        self._finished()

    def abort_response(self) -> None:
        """The response cannot be completed: cut the connection, so that the
        client sees that it is incomplete."""
        if not self._closing:
            self._abort()

    def counts(self) -> tuple[int, int]:
        """Client connections open now: on the process, on this frontend
        (0 and 0 without C{limits}, which count them)."""
        if self.limits is None:
            return 0, 0
        return self.limits.count_all(), self.limits.count(self.frontend.name)

    def _finished(self) -> None:
        self._idle_since = self.clock.seconds()
        if not self._in_head:
            self._began = 0.0
        current, self._current = self._current, None
        if self._close_after or current is None or not current.incoming.body.complete:
            self._lose()
            return
        if self._starting:
            return  # the loop below, further up the stack, goes on
        self._starting = True
        try:
            # A loop, not recursion: pipelined requests answered at once by
            # certlb itself would otherwise nest one call per request.
            while self._current is None and self._pending and not self._closing:
                self._start(self._pending.popleft())
        finally:
            self._starting = False
        if not self._pending:
            self.resume_reading(_PIPELINE)
        if self._draining and self._idle() and not self._closing:
            self._lose()
            return
        waiting = self._reading is None or self._reading.body.complete
        if self._current is None and waiting and not self._closing:
            if self._in_head:  # the next request has begun to arrive
                self._arm(_HEADERS, self.frontend.http_request_timeout)
            else:
                self._arm(_IDLE, self.frontend.keep_alive_timeout)


def _names(certificate: X509 | None) -> tuple[str | None, str | None]:
    """The subject and issuer of a certificate, as C{ssl_c_s_dn} and
    C{ssl_c_i_dn} write them (None for one that cannot be read)."""
    if certificate is None:
        return None, None
    try:
        facts = CertificateFacts(certificate.to_cryptography())
        # A refused client chose these names: nothing in them may add a line.
        subject, issuer = facts.subject.oneline, facts.issuer.oneline
        return (
            None if subject is None else log_safe(subject),
            None if issuer is None else log_safe(issuer),
        )
    except Exception:
        return None, None


def _ssl_reason(reason: Failure) -> str:
    """A short text for an OpenSSL handshake error."""
    value: Any = reason.value
    try:
        errors = value.args[0]
        texts = [e[2] for e in errors if isinstance(e, tuple) and len(e) == 3]
        if texts:
            return ", ".join(texts)
    except (AttributeError, IndexError, TypeError):
        pass
    return str(value)


class FrontendFactory(Factory):
    """Builds an L{HTTPChannel} per connection accepted by a frontend.

    With C{limits}, each channel gives its place back when it closes; the
    place is taken by L{certlb.proxy.limits.LimitedFactory}, outside TLS.

    @ivar channels: the client connections open now.
    """

    noisy = False

    def __init__(
        self,
        frontend: FrontendRuntime,
        engine: Engine,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.frontend = frontend
        self.engine = engine
        self.limits = limits
        self.channels: set[HTTPChannel] = set()
        self._drained: list[Deferred[None]] = []

    def buildProtocol(self, addr: object) -> HTTPChannel:
        channel = HTTPChannel(self.frontend, self.engine, self.limits)
        channel.factory = self
        return channel

    def opened(self, channel: HTTPChannel) -> None:
        self.channels.add(channel)

    def closed(self, channel: HTTPChannel) -> None:
        self.channels.discard(channel)
        if not self.channels:
            drained, self._drained = self._drained, []
            for d in drained:
                d.callback(None)

    def drain(self) -> Deferred[None]:
        """Close every connection once its requests are answered.

        @return: fires when no connection is left.
        """
        for channel in list(self.channels):
            channel.drain()
        if not self.channels:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._drained.append(d)
        return d

    def abort(self) -> None:
        """Cut every connection still open (C{hard-stop-after})."""
        for channel in list(self.channels):
            channel.transport.abortConnection()
