"""The forwarding engine: one request through the rules, the balancer and the pool.

An L{Exchange} takes a request read by a front door (the request head and a
body pipe), routes it with its frontend's rules, picks a server, sends the
request over a pooled connection and streams the response back.  The front
door is anything with the L{Downstream} methods: certlb's own HTTP/1.1
channel, or the twisted.web resource that embeds certlb in a C{Site}.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from certlb.proxy.balancer import ServerState
from certlb.proxy.http import (
    CHUNKED,
    Headers,
    RequestHead,
    drop_connection_named,
    end_to_end,
    request_problem,
    serialize_head,
    without_hop_by_hop,
)
from certlb.proxy.runtime import BackendRuntime, FrontendRuntime
from certlb.proxy.upstream import ConnectionPool, UpstreamConnection, UpstreamError
from certlb.rules.actions import LocalResponse, encode_text
from certlb.rules.context import ConnectionInfo, RequestContext

log = Logger()

# Methods whose requests may be sent twice (RFC 9110, 9.2.2).
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class Downstream(Protocol):
    """What an exchange answers its client through (a front door)."""

    def send_informational(
        self, status: int, reason: bytes, headers: Headers
    ) -> None: ...
    def send_head(
        self,
        status: int,
        reason: bytes,
        headers: Headers,
        framing: str,
        exchange: Exchange,
    ) -> None: ...
    def send_data(self, data: bytes) -> None: ...
    def send_end(self) -> None: ...
    def send_local(self, response: LocalResponse, exchange: Exchange) -> None: ...
    def abort_response(self) -> None: ...


class Incoming(Protocol):
    """A request as a front door read it."""

    head: RequestHead
    body: Any


class Engine:
    """What every exchange shares: the reactor and the server connection pool."""

    def __init__(
        self, reactor: IReactorTime, pool: ConnectionPool | None = None
    ) -> None:
        self.reactor = reactor
        self.pool = pool if pool is not None else ConnectionPool(reactor)

    def exchange(
        self,
        downstream: Downstream,
        incoming: Incoming,
        frontend: FrontendRuntime,
        connection: ConnectionInfo,
    ) -> Exchange:
        return Exchange(downstream, incoming, frontend, self, connection)


class Exchange:
    """One request and its response."""

    def __init__(
        self,
        downstream: Downstream,
        incoming: Incoming,
        frontend: FrontendRuntime,
        engine: Engine,
        connection: ConnectionInfo,
    ) -> None:
        self.downstream = downstream
        self.incoming = incoming
        self.frontend = frontend
        self.engine = engine
        self.connection = connection
        self.backend: BackendRuntime | None = None
        self.server: ServerState | None = None
        self.upstream: UpstreamConnection | None = None
        self.context: RequestContext | None = None
        self._request: bytes = b""
        self._responded = False
        self._done = False
        self._retried = False

    def start(self) -> None:
        """Route the request, pick a server, and send it there.

        An exception from a rule or a balancer (a plugin's, say) ends this
        request with a 500 and is logged; the connection goes on.
        """
        try:
            self._route()
        except Exception:
            self._bug(Failure())

    def _route(self) -> None:
        head = self.incoming.head
        problem = request_problem(head)
        if problem is not None:
            self._log(problem, "400")
            self._answer(LocalResponse(400))
            return
        drop_connection_named(head)
        self.context = context = RequestContext(
            head.method.decode("latin-1"),
            head.target.decode("latin-1"),
            "HTTP/" + head.version.decode("latin-1"),
            [(n.decode("latin-1"), v.decode("latin-1")) for n, v in head.headers],
            self.connection,
        )
        answer = self.frontend.rules.apply(context)
        if answer is not None:
            self._answer(answer)
            return
        backend = self.frontend.route(context)
        if backend is None:
            self._error(
                503, "no use_backend rule matched and there is no default_backend"
            )
            return
        self.backend = backend
        rules = self.frontend.backend_rules(backend)
        answer = rules.apply(context) if rules else None
        if answer is not None:
            self._answer(answer)
            return
        server = backend.balancer.pick(context)
        if server is None:
            self._error(503, f"backend '{backend.name}' has no usable server")
            return
        self.server = server
        self._request = self._request_head(head, backend)
        self._connect(fresh=False)

    def _request_head(self, head: RequestHead, backend: BackendRuntime) -> bytes:
        assert self.context is not None
        if self.context.headers_changed:
            written = [
                (encode_text(n), encode_text(v)) for n, v in self.context.headers
            ]
        else:
            written = head.headers
        # The body's framing is certlb's to say, whatever the rules wrote.
        headers = [
            (n, v)
            for n, v in without_hop_by_hop(written)
            if n.lower() != b"content-length"
        ]
        if head.framing == CHUNKED:
            headers.append((b"Transfer-Encoding", b"chunked"))
        elif head.length is not None:
            headers.append((b"Content-Length", b"%d" % head.length))
        if backend.server_close or self.frontend.server_close:
            headers.append((b"Connection", b"close"))
        forwardfor = backend.forwardfor or self.frontend.forwardfor
        if head.version == b"1.0" and not any(n.lower() == b"host" for n, _ in headers):
            # Sent on as HTTP/1.1, which requires a Host, as nginx does.
            assert self.server is not None
            headers.insert(0, (b"Host", self.server.address.encode("ascii")))
        if forwardfor is not None:
            client = self.connection.source[0]
            name = forwardfor.header.lower()
            present = any(n.lower() == name for n, _ in headers)
            if forwardfor.applies_to(client) and not (forwardfor.if_none and present):
                headers.append((forwardfor.header, client.encode("latin-1")))
        return serialize_head(b"%s %s HTTP/1.1" % (head.method, head.target), headers)

    def _connect(self, fresh: bool) -> None:
        assert self.server is not None and self.backend is not None
        d = self.engine.pool.acquire(
            self.server.host, self.server.port, self.backend.connect_timeout, fresh
        )
        d.addCallbacks(self._connected, self._connect_failed)
        d.addErrback(self._bug)

    def _connected(self, upstream: UpstreamConnection) -> None:
        assert self.backend is not None
        if self._done:
            self.engine.pool.release(upstream)
            return
        self.upstream = upstream
        head = self.incoming.head
        upstream.send(
            self,
            self._request,
            self.incoming.body,
            head.framing,
            head.method == b"HEAD",
            self.backend.server_timeout,
            self.backend.server_close or self.frontend.server_close,
        )

    def _connect_failed(self, failure: Failure) -> None:
        if self._done:
            return
        if failure.check(UpstreamError):
            error: UpstreamError = failure.value  # type: ignore[assignment]
            self._error(error.status, error.why)
        else:
            self._bug(failure)

    def _bug(self, failure: Failure) -> None:
        log.failure(
            "frontend {frontend}: internal error while forwarding a request",
            failure,
            frontend=self.frontend.name,
        )
        if not self._done:
            if self._responded:
                self._done = True
                self.downstream.abort_response()
            else:
                self._error(500, "internal error")

    # -- ResponseHandler -------------------------------------------------------

    def response_informational(
        self, status: int, reason: bytes, headers: Headers
    ) -> None:
        if not self._done:
            self.downstream.send_informational(status, reason, end_to_end(headers))

    def response_head(
        self, status: int, reason: bytes, headers: Headers, framing: str, codings: bytes
    ) -> None:
        if self._done:
            return
        self._responded = True
        headers = end_to_end(headers)
        if codings:  # transfer codings besides chunked, which certlb keeps
            headers.append((b"Transfer-Encoding", codings))
        self.downstream.send_head(status, reason, headers, framing, self)

    def response_data(self, data: bytes) -> None:
        if not self._done:
            self.downstream.send_data(data)

    def response_end(self) -> None:
        if self._done:
            return
        self._done = True
        self.upstream = None
        self.downstream.send_end()

    def response_failed(
        self, failure: UpstreamError, upstream: UpstreamConnection
    ) -> None:
        if self._done:
            return
        self.upstream = None
        if not self._responded:
            if (
                failure.retryable
                and upstream.reused
                and not self._retried
                and self.incoming.head.method in IDEMPOTENT
                and not self.incoming.body.started
            ):
                # A kept-alive connection that the server closed meanwhile,
                # without a byte of answer: the request was most likely not
                # processed, and being idempotent, it may go again (RFC 9110,
                # 9.2.2), on a new connection.
                self._retried = True
                self.incoming.body.detach()
                self._connect(fresh=True)
                return
            self._error(failure.status, failure.why)
            return
        self._done = True
        self._log(failure.why, "response cut")
        self.downstream.abort_response()

    # -- from the front door --------------------------------------------------------

    def pause_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.pause()

    def resume_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.resume()

    def client_gone(self) -> None:
        """The client disconnected: stop, and drop the server connection."""
        if self._done:
            return
        self._done = True
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abandon()

    def _error(self, status: int, why: str) -> None:
        self._log(why, str(status))
        self._answer(LocalResponse(status))

    def _answer(self, response: LocalResponse) -> None:
        """Answer the request without a server (an error, or a rule's answer)."""
        self._done = True
        self.downstream.send_local(response, self)

    def _log(self, why: str, outcome: str) -> None:
        head = self.incoming.head
        host, port = self.connection.source
        log.warn(
            "frontend {frontend}: {outcome} for {method} {target} from {client}"
            "{via}: {why}",
            frontend=self.frontend.name,
            outcome=outcome,
            method=head.method.decode("latin-1"),
            target=head.target.decode("latin-1"),
            client=f"{host}:{port}",
            via=f" via {self.server.label}" if self.server else "",
            why=why,
        )
