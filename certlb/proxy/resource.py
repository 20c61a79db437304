"""The twisted.web front door: a resource that forwards through a frontend.

For applications that already run a twisted.web C{Site}: mount
L{FrontendResource} anywhere in the resource tree and requests reaching it go
through the frontend's rules, its balancer and the server pool, exactly as
requests on certlb's own listeners do (the same L{Exchange} serves both).

twisted.web reads a whole request body (into memory, or a temporary file
when it is large) before a resource sees the request, and writes header
names in its own capitalization; certlb's own listeners stream bodies as they
arrive and keep headers as the client wrote them.  Use C{make_service} for a
load balancer; use this resource to embed certlb's routing in a site.
"""

from __future__ import annotations

from typing import IO, Any

from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from certlb.proxy.engine import Engine, Exchange
from certlb.proxy.http import (
    LENGTH,
    NO_BODY,
    REASONS,
    Headers,
    RequestHead,
    error_page,
)
from certlb.proxy.runtime import FrontendRuntime
from certlb.rules.actions import LocalResponse
from certlb.rules.context import ConnectionInfo
from certlb.tls.state import client_cert_state

CHUNK = 65536


class _SpooledBody:
    """A request body that twisted.web has already read, sent on demand."""

    # Read from a file, the body can always be sent again.
    started = False

    def __init__(self, content: IO[bytes] | None, length: int) -> None:
        self._content = content
        self.length = length
        self.complete = True
        self._sink: Any = None
        self._paused = False
        self._sent = 0

    def attach(self, sink: Any) -> None:
        self._sink = sink
        self._sent = 0
        self._paused = False
        if self._content is not None:
            self._content.seek(0)
        self._pump()

    def detach(self) -> None:
        self._sink = None

    def _pump(self) -> None:
        sink = self._sink
        while sink is not None and not self._paused and self._sent < self.length:
            assert self._content is not None
            data = self._content.read(min(CHUNK, self.length - self._sent))
            if not data:
                break
            self._sent += len(data)
            sink.body_data(data)
        if sink is not None and self._sent >= self.length and not self._paused:
            self._sink = None
            sink.body_end()

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._pump()

    def discard(self) -> None:
        self._sink = None


class _Incoming:
    def __init__(self, head: RequestHead, body: _SpooledBody, now: float) -> None:
        self.head = head
        self.body = body
        # twisted.web does not say when the request began: its head is
        # taken as read at once, on a new connection.
        self.accepted = self.started = now


@implementer(IPushProducer)
class _Producer:
    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def pauseProducing(self) -> None:
        self.exchange.pause_upstream()

    def resumeProducing(self) -> None:
        self.exchange.resume_upstream()

    def stopProducing(self) -> None:
        self.exchange.client_gone()


class _RequestDownstream:
    """Answers an exchange through a twisted.web C{Request}."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.gone = False
        # twisted.web writes the head: only body bytes are counted.
        self.exchange: Exchange | None = None

    def counts(self) -> tuple[int, int]:
        return 0, 0  # twisted.web's Site does not count its connections

    def send_informational(self, status: int, reason: bytes, headers: Headers) -> None:
        pass  # twisted.web answered any Expect: 100-continue itself.

    def send_head(
        self, status: int, reason: bytes, headers: Headers, framing: str,
        exchange: Exchange,
    ) -> None:  # fmt: skip
        request = self.request
        request.setResponseCode(status, reason)
        response = request.responseHeaders
        # twisted.web's own Server and Date give way to the server's.
        response.removeHeader(b"server")
        response.removeHeader(b"date")
        for name, value in headers:
            response.addRawHeader(name, value)
        request.registerProducer(_Producer(exchange), True)

    def send_data(self, data: bytes) -> None:
        if not self.gone:
            if self.exchange is not None:
                self.exchange.record.bytes_out += len(data)
            self.request.write(data)

    def send_end(self) -> None:
        if not self.gone:
            self.request.unregisterProducer()
            self.request.finish()

    def flush(self) -> None:
        pass  # twisted.web's request writes as it is given.

    def send_local(self, response: LocalResponse, exchange: Exchange | None) -> None:
        if self.gone:
            return
        request = self.request
        headers = list(response.headers)
        body = response.body
        if body is None:
            page_headers, body = error_page(response.status)
            headers += page_headers
        request.setResponseCode(response.status, REASONS.get(response.status))
        for name, value in headers:
            request.responseHeaders.addRawHeader(name, value)
        if response.status not in (204, 304):
            request.setHeader(b"content-length", b"%d" % len(body))
            if exchange is not None:
                exchange.record.bytes_out += len(body)
            request.write(body)
        request.finish()

    def abort_response(self) -> None:
        if not self.gone:
            self.gone = True
            self.request.channel.transport.abortConnection()  # type: ignore[union-attr]


class FrontendResource(Resource):
    """A twisted.web resource that forwards every request through a frontend."""

    isLeaf = True

    def __init__(self, frontend: FrontendRuntime, engine: Engine) -> None:
        super().__init__()
        self.frontend = frontend
        self.engine = engine

    def render(self, request: Request) -> Any:
        # No Content-Type of twisted.web's own: only the server's.
        request.defaultContentType = None
        if request.method == b"CONNECT":
            _RequestDownstream(request).send_local(LocalResponse(405), None)
            return NOT_DONE_YET
        content = request.content
        length = 0
        if content is not None:
            content.seek(0, 2)
            length = content.tell()
        headers: Headers = [
            (name, value)
            for name, values in request.requestHeaders.getAllRawHeaders()
            if name.lower() not in (b"content-length", b"expect")
            for value in values
        ]
        if length:
            headers.append((b"Content-Length", b"%d" % length))
        head = RequestHead(
            method=request.method,
            target=request.uri,
            version=request.clientproto.partition(b"/")[2] or b"1.0",
            headers=headers,
            framing=LENGTH if length else NO_BODY,
            length=length or None,
        )
        peer, host = request.getClientAddress(), request.getHost()
        transport = request.channel.transport
        connection = ConnectionInfo(
            (getattr(peer, "host", ""), getattr(peer, "port", 0)),
            (getattr(host, "host", ""), getattr(host, "port", 0)),
            self.frontend.name,
            lambda: client_cert_state(transport),
        )
        downstream = _RequestDownstream(request)
        now = self.engine.reactor.seconds()
        exchange = self.engine.exchange(
            downstream, _Incoming(head, _SpooledBody(content, length), now),
            self.frontend, connection,
        )  # fmt: skip
        downstream.exchange = exchange

        def gone(failure: Failure) -> None:
            downstream.gone = True
            exchange.client_gone()

        request.notifyFinish().addErrback(gone)
        exchange.start()
        return NOT_DONE_YET
