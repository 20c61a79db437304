"""The forwarding engine: one request through the rules, the balancer and the pool.

An L{Exchange} takes a request read by a front door (the request head and a
body pipe), routes it with its frontend's rules, picks a server, sends the
request over a pooled connection and streams the response back.  The front
door is anything with the L{Downstream} methods: certlb's own HTTP/1.1
channel, or the twisted.web resource that embeds certlb in a C{Site}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from certlb.config.model import HASHING_ALGORITHMS
from certlb.proxy.accesslog import write_access_line
from certlb.proxy.http import (
    CHUNKED,
    NO_BODY,
    Headers,
    RequestHead,
    drop_connection_named,
    end_to_end,
    request_problem,
    serialize_head,
    without_hop_by_hop,
)
from certlb.proxy.identity import XFCC, identity_headers, vouched
from certlb.proxy.runtime import BackendRuntime, FrontendRuntime
from certlb.proxy.servers import ServerState
from certlb.proxy.stick import Stickiness
from certlb.proxy.upstream import ConnectionPool, UpstreamConnection, UpstreamError
from certlb.rules.actions import LocalResponse, encode_text
from certlb.rules.context import ConnectionInfo, RequestContext, header_present
from certlb.rules.pending import ActionFailed
from certlb.rules.record import RequestRecord

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
    def flush(self) -> None:
        """Send what C{send_head} and C{send_data} may have held back, to
        write a response in one piece when it all came in one read."""
        ...

    def send_local(self, response: LocalResponse, exchange: Exchange) -> None: ...
    def abort_response(self) -> None: ...
    def counts(self) -> tuple[int, int]:
        """Client connections open now: on the process, on the frontend."""
        ...


class Incoming(Protocol):
    """A request as a front door read it.

    @ivar accepted: when its connection was accepted, or when the response
        before it ended (the reactor's seconds).
    @ivar started: when the first byte of its head arrived.
    """

    head: RequestHead
    body: Any
    accepted: float
    started: float


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
    """One request and its response.

    Its way to a server: a server is picked among those that serve now and
    have a free slot (C{maxconn}), or the request waits in its backend's
    queue for one, at most C{timeout queue}.  An attempt that fails in a way
    C{retry-on} names is tried again, up to C{retries} times: on the same
    server after a turn-around of min(C{timeout connect}, 1s), or on another
    one when C{option redispatch} says so.  Requests that are not idempotent,
    or that have a body, are retried only when the connection failed (so
    before anything was sent).

    @ivar server: the server of the current attempt, whose slot it holds.
    @ivar record: what the access log line says of the request; the front
        door adds the bytes it writes to C{record.bytes_out}.
    """

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
        self._reconnected_once = (
            False  # on a fresh connection, after a reused one failed
        )
        self._retries = 0  # as HAProxy counts them, for retries and redispatch
        self._timer: IDelayedCall | None = None  # in the queue, or before a retry
        self._stickiness: Stickiness | None = None
        self._pending: Deferred[Any] | None = None  # an action's answer
        head = incoming.head
        self.record = RequestRecord(
            incoming.accepted,
            incoming.started,
            engine.reactor.seconds(),
            f"{head.method.decode('latin-1')} {head.target.decode('latin-1')} "
            f"HTTP/{head.version.decode('latin-1')}",
        )
        self.record.backend = frontend.name
        self._logged = False

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
            self._answer(LocalResponse(400), "P")
            return
        drop_connection_named(head)
        self.context = context = self._new_context()
        # No client may forge an identity; only a proxy before certlb that
        # proved itself with a valid certificate may pass
        # X-Forwarded-Client-Cert on, as in Envoy.
        # (The certificate's state is made only when needed.)
        forged: Iterable[str] = self.frontend.forged
        if header_present(context.headers, XFCC) and not vouched(self.connection.tls):
            forged = (*forged, XFCC)
        context.remove_headers(*forged)
        self._then(self.frontend.rules.apply(context), self._frontend_ruled)

    def _then(self, outcome: Any, then: Callable[[LocalResponse | None], None]) -> None:
        """Go on with C{then} once the rules have said: at once, or when the
        Deferred of an action that asks another service fires."""
        if not isinstance(outcome, Deferred):
            then(outcome)
            return
        self._pending = outcome

        def answered(answer: LocalResponse | None) -> None:
            self._pending = None
            if not self._done:
                then(answer)

        def failed(failure: Failure) -> None:
            self._pending = None
            if self._done:
                return  # the client went away, and the action was cancelled
            error = failure.value
            if not isinstance(error, ActionFailed):
                self._bug(failure)
                return
            if error.failure is not None:  # the traceback, at error level
                log.failure(
                    "frontend {frontend}: {why}",
                    error.failure,
                    LogLevel.error,
                    frontend=self.frontend.name,
                    why=error.why,
                )
            self._error(error.status, error.why, "PR" if error.status == 504 else "IR")

        outcome.addCallbacks(answered, failed).addErrback(self._bug)

    def _frontend_ruled(self, answer: LocalResponse | None) -> None:
        context = self.context
        assert context is not None
        if answer is not None:
            self._answer(answer, "P" if answer.denied else "L")
            return
        backend = self.frontend.route(context)
        if backend is None:
            self._error(
                503,
                "no use_backend rule matched and there is no default_backend",
                "SC",
            )
            return
        self.backend = backend
        self.record.backend = backend.name
        rules = self.frontend.backend_rules(backend)
        self._then(rules.apply(context) if rules else None, self._backend_ruled)

    def _backend_ruled(self, answer: LocalResponse | None) -> None:
        context, backend = self.context, self.backend
        assert context is not None and backend is not None
        if answer is not None:
            self._answer(answer, "P" if answer.denied else "L")
            return
        if backend.persistence is not None:
            self._stickiness = backend.persistence.evaluate(
                context, self.engine.reactor.seconds()
            )
        if backend.waiting and backend.tier():
            if context.trace is not None:
                context.trace(f"backend {backend.name}: queued behind others waiting")
            self._wait()  # behind those already waiting
        else:
            self._assign()

    def _assign(self, avoid: ServerState | None = None, pause: bool = False) -> None:
        """Pick a server and send the request there, or wait for a slot.

        @param avoid: the server that failed the last attempt, if any: another
            one is preferred.
        @param pause: wait the turn-around before connecting again to
            C{avoid}, when it is the only one left.
        """
        backend = self.backend
        assert backend is not None
        if not backend.tier():
            self._error(503, f"backend '{backend.name}' has no server available", "SC")
            return
        trace = self.context.trace if self.context is not None else None
        sticky = self._sticky_server() if avoid is None else None
        if sticky is not None:
            if trace is not None:
                trace(f"server {sticky.label}: chosen (its stick table entry)")
            self._take(sticky)
            self._connect(fresh=False)
            return
        free = backend.free()
        if not free:
            if trace is not None:
                trace(f"backend {backend.name}: no server has a free slot: queued")
            self._wait()
            return
        if avoid is not None and len(free) > 1:
            free = [s for s in free if s is not avoid] or free
        server = backend.balancer.pick(self.context, free)
        if trace is not None:
            trace(f"server {server.label}: picked by the balancer among {len(free)}")
        self._take(server)
        if pause and server is avoid:
            self._turn_around()
        else:
            self._connect(fresh=False)

    def _stuck_to(self) -> ServerState | None:
        """The server a C{stick} rule found for this request, if it is up and
        enabled (a drained server, of weight 0, keeps its clients)."""
        assert self.backend is not None
        name = self._stickiness.server if self._stickiness else None
        for server in self.backend.servers:
            if server.name == name and server.up and not server.disabled:
                return server
        return None

    def _sticky_server(self) -> ServerState | None:
        """The server this request sticks to, when it has a free slot (else
        the request is balanced, and its entry kept for the next ones)."""
        server = self._stuck_to()
        return server if server is not None and server.has_slot else None

    def _take(self, server: ServerState) -> None:
        assert self.incoming is not None and self.backend is not None
        self.server = server
        server.active += 1
        if self.record.assigned is None:
            self.record.assigned = self.engine.reactor.seconds()
        self.record.server = server.name
        self._request = self._request_head(self.incoming.head, self.backend)

    def _give_back(self, wake: bool = True) -> None:
        """Free the slot held on the server, for a request waiting for one
        (unless this one is to pick again first: C{wake} false)."""
        server, self.server = self.server, None
        if server is not None:
            server.active -= 1
            assert self.backend is not None
            if wake:
                self.backend.wake()

    def _wait(self) -> None:
        backend = self.backend
        assert backend is not None
        backend.waiting.append(self)
        self._timer = self.engine.reactor.callLater(
            backend.queue_timeout, self._waited_too_long
        )

    def dequeued(self) -> None:
        """A slot is free: take it (called by the backend's queue)."""
        self._cancel_timer()
        try:
            self._assign()
        except Exception:
            self._bug(Failure())

    def _waited_too_long(self) -> None:
        self._timer = None
        assert self.backend is not None
        self.backend.waiting.remove(self)
        self.record.assigned = self.engine.reactor.seconds()
        self._error(
            503,
            f"no free server in backend '{self.backend.name}' after "
            f"{self.backend.queue_timeout:g}s in the queue (timeout queue)",
            "sQ",
        )

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _finish(self) -> None:
        """The exchange is over: count who else is there, for the access
        log, then give back what it holds."""
        self._done = True
        self._count()
        self._cancel_timer()
        if self.backend is not None and self in self.backend.waiting:
            self.backend.waiting.remove(self)
        self._give_back()

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
        tls = self.connection.tls if self.frontend.identity.adds_headers else None
        if tls is not None and tls.certificate is not None and vouched(tls):
            identity = identity_headers(
                self.frontend.identity, tls.peer, tls.chain, self.context.headers
            )
            replaced = {name.lower().encode("latin-1") for name, _ in identity}
            headers = [(n, v) for n, v in headers if n.lower() not in replaced]
            headers += [(n.encode("latin-1"), v.encode("latin-1")) for n, v in identity]
        return serialize_head(b"%s %s HTTP/1.1" % (head.method, head.target), headers)

    def _connect(self, fresh: bool) -> None:
        self._timer = None
        assert self.server is not None and self.backend is not None
        if not fresh and self.server.tls is None:
            idle = self.engine.pool.take_idle(self.server.host, self.server.port)
            if idle is not None:
                try:
                    self._connected(idle)
                except Exception:
                    self._bug(Failure())
                return
        d = self.engine.pool.acquire(
            self.server.host,
            self.server.port,
            self.backend.connect_timeout,
            fresh,
            self.server.tls,
            self.context,
        )
        d.addCallbacks(self._connected, self._connect_failed)
        d.addErrback(self._bug)

    def _connected(self, upstream: UpstreamConnection) -> None:
        if self._done:
            self.engine.pool.release(upstream)
            return
        assert self.backend is not None and self.server is not None
        if not upstream.reused:
            self.server.observe(True, False)
        self.record.connected = self.engine.reactor.seconds()
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
            assert self.server is not None
            self.server.observe(False, False, error.why)
            self._attempt_failed(error)
        else:
            self._bug(failure)

    def _attempt_failed(self, error: UpstreamError, status: int | None = None) -> None:
        """An attempt got no usable response: retry it, or answer the error.

        @param status: the status of a response that C{retry-on} names.
        """
        try:
            self._retry_or_fail(error, status)
        except Exception:
            self._bug(Failure())

    def _retry_or_fail(self, error: UpstreamError, status: int | None) -> None:
        server, backend = self.server, self.backend
        assert server is not None and backend is not None
        event = status if status is not None else error.event
        if not self._may_retry(event):
            if self._retries:
                error.why += f" (after {self._retries} retries)"
            stage = "C" if error.event == "conn-failure" else "H"
            self._error(error.status, error.why, _server_cause(error) + stage)
            return
        self._retries += 1
        self.record.retries = self._retries
        redispatch = self._redispatch(server)
        self.record.redispatched |= redispatch
        log.info(
            "frontend {frontend}: retry {retry} of {retries} of {method} {target} "
            "{where}: {server} failed: {why}",
            frontend=self.frontend.name,
            retry=self._retries,
            retries=backend.spec.retries,
            method=self.incoming.head.method.decode("latin-1"),
            target=self.incoming.head.target.decode("latin-1"),
            where="on another server" if redispatch else "on the same server",
            server=server.label,
            why=error.why,
        )
        if redispatch:
            self._give_back(wake=False)
            self._assign(avoid=server, pause=event == "conn-failure")
            backend.wake()
        elif event == "conn-failure":
            self._turn_around()
        else:
            self._connect(fresh=False)

    def _turn_around(self) -> None:
        """Connect again to the same server, not at once: one that is
        restarting gets a moment, min(C{timeout connect}, 1s), as in HAProxy."""
        assert self.backend is not None
        self._timer = self.engine.reactor.callLater(
            min(self.backend.connect_timeout, 1.0), self._reconnect
        )

    def _reconnect(self) -> None:
        try:
            self._connect(fresh=False)
        except Exception:
            self._bug(Failure())

    def _may_retry(self, event: str | int | None) -> bool:
        assert self.backend is not None
        spec = self.backend.spec
        if event not in spec.retry_on or self._retries >= spec.retries:
            return False
        if event == "conn-failure":
            return True  # nothing was sent
        head = self.incoming.head
        return head.method in IDEMPOTENT and head.framing == NO_BODY

    def _redispatch(self, server: ServerState) -> bool:
        """Whether this retry goes to another server (C{option redispatch}):
        as HAProxy, when the server is no longer usable, on the retries the
        option's interval says, or at once when the balancer does not tie
        requests to servers and there are other active ones."""
        assert self.backend is not None
        spec = self.backend.spec
        interval = spec.redispatch
        if interval is None:
            return False
        if not server.usable:
            return True
        # Positive: every Nth retry; negative: the Nth before the last.
        every = interval if interval > 0 else spec.retries + 1 + interval
        if every > 0 and self._retries % every == 0:
            return True
        hashing = spec.balance.algorithm in HASHING_ALGORITHMS
        return not hashing and self.backend.counts()[0] > 1

    def _bug(self, failure: Failure) -> None:
        log.failure(
            "frontend {frontend}: internal error while forwarding a request",
            failure,
            frontend=self.frontend.name,
        )
        if not self._done:
            if self._responded:
                self.record.cause, self.record.stage = "I", "D"
                self._finish()
                self.downstream.abort_response()
                self._log_access()
            else:
                self._error(500, "internal error", "I" + self._stage())

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
        assert self.server is not None
        # As HAProxy's "observe layer7": 5xx statuses but 501 and 505 are
        # the server's errors; the others are answers to the request.
        failing = 500 <= status <= 599 and status not in (501, 505)
        self.server.observe(not failing, True, f"HTTP status {status}")
        if self._may_retry(status):
            upstream, self.upstream = self.upstream, None
            if upstream is not None:
                upstream.abandon()
            self._attempt_failed(
                UpstreamError(status, f"the server answered {status}"), status
            )
            return
        self._responded = True
        self.record.responded = self.engine.reactor.seconds()
        self.record.status = status
        if self._stickiness is not None:
            stuck = self._stuck_to()
            if stuck is None or stuck is self.server:
                now = self.engine.reactor.seconds()
                for table, key in self._stickiness.stores:
                    table.store(key, self.server.name, now)
        headers = end_to_end(headers)
        if codings:  # transfer codings besides chunked, which certlb keeps
            headers.append((b"Transfer-Encoding", codings))
        self.downstream.send_head(status, reason, headers, framing, self)

    def response_data(self, data: bytes) -> None:
        if not self._done:
            self.downstream.send_data(data)

    def response_read_done(self) -> None:
        if not self._done:
            self.downstream.flush()

    def response_end(self) -> None:
        if self._done:
            return
        self._finish()
        self.upstream = None
        self.downstream.send_end()
        self._log_access()

    def response_failed(
        self, failure: UpstreamError, upstream: UpstreamConnection
    ) -> None:
        if self._done:
            return
        self.upstream = None
        if self._responded:
            assert self.server is not None
            self.server.observe(False, True, failure.why)
            self._log(failure.why, "response cut")
            self.record.cause, self.record.stage = _server_cause(failure), "D"
            self._finish()
            self.downstream.abort_response()
            self._log_access()
            return
        if (
            failure.event == "empty-response"
            and upstream.reused
            and not self._reconnected_once
            and self.incoming.head.method in IDEMPOTENT
            and not self.incoming.body.started
        ):
            # A kept-alive connection that the server closed meanwhile,
            # without a byte of answer: the request was most likely not
            # processed, and being idempotent, it may go again (RFC 9110,
            # 9.2.2), on a new connection, without counting as a retry.
            self._reconnected_once = True
            self.incoming.body.detach()
            self._connect(fresh=True)
            return
        assert self.server is not None
        self.server.observe(False, True, failure.why)
        self._attempt_failed(failure)

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
        record = self.record
        record.stage = self._stage()
        if record.cause == "-":  # else the front door said why ('c': timeout)
            record.cause = "C"
        self._finish()
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.abandon()
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
        self._log_access()

    def _error(self, status: int, why: str, termination: str) -> None:
        """Answer an error, logged as a warning with C{why}.

        @param termination: the access log's termination state (its first
            two characters: who ended the request, and at which stage).
        """
        self._log(why, str(status))
        self._answer(LocalResponse(status), *termination)

    def _answer(
        self, response: LocalResponse, cause: str = "L", stage: str = "R"
    ) -> None:
        """Answer the request without a server (an error, or a rule's answer)."""
        self.record.status = response.status
        self.record.cause, self.record.stage = cause, stage
        self._finish()
        self.downstream.send_local(response, self)
        self._log_access()

    def _stage(self) -> str:
        """Where the request is, as the access log's termination state says:
        reading (R), queued (Q), connecting (C), waiting for the response
        head (H), or sending the response (D)."""
        if self._responded:
            return "D"
        if self.upstream is not None:
            return "H"
        if self.server is not None:
            return "C"
        if self.backend is not None and self in self.backend.waiting:
            return "Q"
        return "R"

    def _new_context(self) -> RequestContext:
        head = self.incoming.head
        context = RequestContext(
            head.method.decode("latin-1"),
            head.target.decode("latin-1"),
            "HTTP/" + head.version.decode("latin-1"),
            [(n.decode("latin-1"), v.decode("latin-1")) for n, v in head.headers],
            self.connection,
        )
        context.record = self.record
        context.reactor = self.engine.reactor
        if self.frontend.tracer is not None:  # twistd certlb --debug-rules
            context.trace = self.frontend.tracer.start(context)
        return context

    def _count(self) -> None:
        """Note in the record the requests on the backend and on the server,
        this one included, and those waiting in the backend's queue."""
        record, backend = self.record, self.backend
        if backend is None:
            return
        waiting = len(backend.waiting)
        queued = self in backend.waiting
        record.backend_queue = waiting - queued
        record.beconn = sum(s.active for s in backend.servers) + waiting
        if self.server is None and not queued:
            record.beconn += 1
        if self.server is not None:
            record.srvconn = self.server.active

    def _log_access(self) -> None:
        """Write the request's access log line, once, if the frontend says how."""
        if self._logged or self.frontend.log_format is None:
            return
        self._logged = True
        record = self.record
        record.ended = self.engine.reactor.seconds()
        record.actconn, record.feconn = self.downstream.counts()
        write_access_line(self.frontend, self.context or self._new_context())

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


def _server_cause(error: UpstreamError) -> str:
    """C{s} when the server was too slow (a timeout), else C{S}."""
    return "s" if error.status == 504 or "(timeout connect)" in error.why else "S"
