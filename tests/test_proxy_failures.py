"""Failures towards servers, in memory: retries, redispatch, retry-on, the
maxconn queue, backups, and what passive health checking is told."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from certlb.health.monitor import ServerMonitor
from certlb.proxy.runtime import BackendRuntime
from certlb.proxy.servers import ServerState
from certlb.rules.interfaces import IBalancer, IHealthCheck
from tests.proxy_harness import ProxyTestCase, head_and_body

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def farm(*lines: str, servers: str = "") -> str:
    """A frontend and its backend C{be}, with C{lines} in the backend."""
    body = "".join(f"        {line}\n" for line in lines)
    return f"""\
    frontend fe
        mode http
        bind :80
        default_backend be
    backend be
        mode http
        timeout connect 3s
        timeout server 7s
{body}{
        servers
        or '''        server s1 10.0.0.1:80
        server s2 10.0.0.2:80
'''
    }"""


class Recorder:
    """A server's health checker that only writes down what it is told."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, bool]] = []

    def observe(self, ok: bool, layer7: bool, why: str) -> None:
        self.seen.append((ok, layer7))


class FailuresTestCase(ProxyTestCase):
    @property
    def backend(self) -> BackendRuntime:
        backend = self.frontend.default
        assert backend is not None
        return backend

    def server(self, name: str) -> ServerState:
        return next(s for s in self.backend.servers if s.name == name)

    def status(self, response: bytes) -> int:
        head, _ = head_and_body(response)
        return int(head[0].split()[1])


class RetryTests(FailuresTestCase):
    config_text = farm("retries 2")

    def test_retry_waits_and_goes_to_the_same_server(self) -> None:
        """Without redispatch, a refused connection is tried again on the
        same server after min(timeout connect, 1s)."""
        client = self.connect_client()
        client.get()
        self.assertEqual(self.pending_connections(), [("10.0.0.1", 80)])
        self.refuse()
        self.reactor.advance(0.9)
        self.assertEqual(self.pending_connections(), [])
        self.reactor.advance(0.1)
        self.assertEqual(self.pending_connections(), [("10.0.0.1", 80)])
        self.accept().respond(OK)
        self.assertEqual(self.status(client.received()), 200)

    def test_retries_counted(self) -> None:
        """After 'retries' more failures, the client gets the 502, and the log
        says how many retries were made."""
        client = self.connect_client()
        client.get()
        for _ in range(2):
            self.refuse()
            self.reactor.advance(1)
        self.refuse()
        self.assertEqual(self.pending_connections(), [])
        self.assertEqual(self.status(client.received()), 502)

    def test_post_retried_on_connection_failure(self) -> None:
        """A request that is not idempotent is retried when the connection
        failed: nothing of it was sent."""
        client = self.connect_client()
        client.send(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        self.refuse()
        self.reactor.advance(1)
        server = self.accept()
        self.assertTrue(server.received().endswith(b"\r\n\r\nhi"))
        server.respond(OK)
        self.assertEqual(self.status(client.received()), 200)

    def test_empty_response_not_retried_by_default(self) -> None:
        """A fresh connection closed without an answer is a 502 at once:
        'retry-on' is conn-failure unless told otherwise."""
        client = self.connect_client()
        client.get()
        self.accept().close()
        self.assertEqual(self.status(client.received()), 502)
        self.assertEqual(self.pending_connections(), [])

    def test_client_gone_during_turnaround(self) -> None:
        """A client that leaves while its retry waits stops it, and frees its
        slot."""
        client = self.connect_client()
        client.get()
        self.refuse()
        client.close()
        self.reactor.advance(5)
        self.assertEqual(self.pending_connections(), [])
        self.assertEqual(self.server("s1").active, 0)


class NoRetryTests(FailuresTestCase):
    config_text = farm("retries 0")

    def test_retries_zero(self) -> None:
        """'retries 0' answers the first failure."""
        client = self.connect_client()
        client.get()
        self.refuse()
        self.assertEqual(self.status(client.received()), 502)


class RedispatchTests(FailuresTestCase):
    config_text = farm("option redispatch")

    def test_redispatch_at_once_to_another_server(self) -> None:
        """With redispatch and round robin over two servers, a refused request
        goes at once to the other server (as HAProxy does)."""
        client = self.connect_client()
        client.get()
        self.refuse()
        self.assertEqual(self.pending_connections(), [("10.0.0.2", 80)])
        self.accept().respond(OK)
        self.assertEqual(self.status(client.received()), 200)
        self.assertEqual([s.active for s in self.backend.servers], [0, 0])

    def test_redispatch_away_from_a_down_server(self) -> None:
        """A server marked down during the attempt is left at the retry."""
        client = self.connect_client()
        client.get()
        self.server("s1").up = False
        self.refuse()
        self.assertEqual(self.pending_connections(), [("10.0.0.2", 80)])

    def test_every_server_down_meanwhile(self) -> None:
        """If no server is left for the retry, the client gets a 503."""
        client = self.connect_client()
        client.get()
        for server in self.backend.servers:
            server.up = False
        self.refuse()
        self.assertEqual(self.status(client.received()), 503)


class RedispatchLastTests(FailuresTestCase):
    config_text = farm(
        "option redispatch", "balance source", "retries 2",
        servers="        server s1 10.0.0.1:80\n        server s2 10.0.0.2:80\n",
    )  # fmt: skip

    def test_hashing_redispatches_on_the_last_retry(self) -> None:
        """With a balancer that ties clients to servers, 'option redispatch'
        keeps the same server until the last retry."""
        client = self.connect_client()
        client.get()
        first = self.pending_connections()
        self.refuse()
        self.reactor.advance(1)
        self.assertEqual(self.pending_connections(), first)
        self.refuse()
        other = self.pending_connections()
        self.assertEqual(len(other), 1)
        self.assertNotEqual(other, first)


class RetryOnTests(FailuresTestCase):
    config_text = farm(
        "retry-on empty-response response-timeout 503", "option redispatch"
    )

    def test_empty_response_retried_for_get(self) -> None:
        """'retry-on empty-response' sends a GET again elsewhere."""
        client = self.connect_client()
        client.get()
        self.accept().close()
        self.accept().respond(OK)
        self.assertEqual(self.status(client.received()), 200)

    def test_empty_response_not_retried_for_post(self) -> None:
        """A POST that reached a server is never sent twice."""
        client = self.connect_client()
        client.send(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        self.accept().close()
        self.assertEqual(self.status(client.received()), 502)
        self.assertEqual(self.pending_connections(), [])

    def test_body_not_sent_twice(self) -> None:
        """A PUT whose body went to the server is not retried."""
        client = self.connect_client()
        client.send(b"PUT /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        self.accept().close()
        self.assertEqual(self.status(client.received()), 502)

    def test_response_timeout_retried(self) -> None:
        """'retry-on response-timeout' retries a server silent for 'timeout
        server'."""
        client = self.connect_client()
        client.get()
        silent = self.accept()
        self.reactor.advance(7)
        self.assertTrue(silent.transport.disconnecting)
        self.accept().respond(OK)
        self.assertEqual(self.status(client.received()), 200)

    def test_status_retried(self) -> None:
        """A 503 that 'retry-on' names is not shown to the client: the
        request goes again."""
        client = self.connect_client()
        client.get()
        first = self.accept()
        first.respond(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(client.received(), b"")
        self.assertTrue(first.transport.disconnecting)
        self.accept().respond(OK)
        self.assertEqual(self.status(client.received()), 200)

    def test_status_forwarded_when_retries_run_out(self) -> None:
        """When no retry is left, the server's own 503 reaches the client."""
        client = self.connect_client()
        client.get()
        for _ in range(4):
            self.accept().respond(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy")
        head, body = head_and_body(client.received())
        self.assertEqual(head[0], b"HTTP/1.1 503 Busy")
        self.assertEqual(body, b"busy")

    def test_status_not_named_forwarded(self) -> None:
        """A 500, which 'retry-on' does not name, goes to the client."""
        client = self.connect_client()
        client.get()
        self.accept().respond(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(self.status(client.received()), 500)
        self.assertEqual(self.pending_connections(), [])


class QueueTests(FailuresTestCase):
    config_text = farm(
        "timeout queue 2s",
        servers="        server s1 10.0.0.1:80 maxconn 1\n",
    )

    def test_over_maxconn_waits(self) -> None:
        """A request over the server's maxconn waits until the slot is free."""
        first, second = self.connect_client(), self.connect_client(port=50001)
        first.get(b"/1")
        second.get(b"/2")
        self.assertEqual(len(self.pending_connections()), 1)
        server = self.accept()
        server.respond(OK)
        self.assertEqual(self.status(first.received()), 200)
        self.assertIn(b"GET /2 ", server.received())  # on the same connection

    def test_queue_timeout_is_503(self) -> None:
        """A request that waits longer than 'timeout queue' gets a 503."""
        first, second = self.connect_client(), self.connect_client(port=50001)
        first.get()
        second.get()
        self.reactor.advance(1.9)
        self.assertEqual(second.received(), b"")
        self.reactor.advance(0.1)
        self.assertEqual(self.status(second.received()), 503)
        self.assertEqual(self.backend.waiting, type(self.backend.waiting)())

    def test_first_come_first_served(self) -> None:
        """Waiting requests get the slot in the order they came, before any
        newcomer."""
        clients = [self.connect_client(port=50000 + i) for i in range(3)]
        for i, client in enumerate(clients):
            client.get(b"/%d" % i)
        server = self.accept()
        self.assertIn(b"GET /0 ", server.received())
        late = self.connect_client(port=50010)
        late.get(b"/late")
        server.respond(OK)
        self.assertIn(b"GET /1 ", server.received())
        server.respond(OK)
        self.assertIn(b"GET /2 ", server.received())

    def test_client_gone_from_queue(self) -> None:
        """A client that leaves the queue does not take a slot later."""
        first, second = self.connect_client(), self.connect_client(port=50001)
        first.get()
        second.get()
        second.close()
        self.assertEqual(len(self.backend.waiting), 0)
        server = self.accept()
        server.respond(OK)
        self.assertEqual(self.server("s1").active, 0)

    def test_slot_freed_when_response_cut(self) -> None:
        """A response cut by the server frees its slot for the next request."""
        first, second = self.connect_client(), self.connect_client(port=50001)
        first.get()
        second.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab")
        server.protocol.connectionLost(Failure(ConnectionLost()))
        self.assertTrue(first.closed)
        self.accept().respond(OK)
        self.assertEqual(self.status(second.received()), 200)
        self.assertEqual(self.server("s1").active, 0)


class QueueDefaultTests(FailuresTestCase):
    config_text = farm(servers="        server s1 10.0.0.1:80 maxconn 1\n")

    def test_queue_timeout_defaults_to_connect(self) -> None:
        """Without 'timeout queue', a request waits 'timeout connect'."""
        self.assertEqual(self.backend.queue_timeout, 3.0)


class BackupTests(FailuresTestCase):
    config_text = farm(
        servers="        server s1 10.0.0.1:80\n"
        "        server b1 10.0.0.8:80 backup\n"
        "        server b2 10.0.0.9:80 backup\n"
    )

    def test_backup_idle_while_active_up(self) -> None:
        """Backup servers get nothing while an active server is up."""
        for port in range(50000, 50004):
            self.connect_client(port=port).get()
        self.assertEqual(self.pending_connections(), [("10.0.0.1", 80)] * 4)

    def test_first_backup_takes_over(self) -> None:
        """With every active server down, the first backup serves alone."""
        self.server("s1").up = False
        for port in range(50000, 50004):
            self.connect_client(port=port).get()
        self.assertEqual(self.pending_connections(), [("10.0.0.8", 80)] * 4)

    def test_all_down_is_503_at_once(self) -> None:
        """With no server up, the client gets a 503 without waiting."""
        for server in self.backend.servers:
            server.up = False
        client = self.connect_client()
        client.get()
        self.assertEqual(self.status(client.received()), 503)
        self.assertEqual(self.pending_connections(), [])


class AllBackupsTests(FailuresTestCase):
    config_text = farm(
        "option allbackups",
        servers="        server s1 10.0.0.1:80\n"
        "        server b1 10.0.0.8:80 backup\n"
        "        server b2 10.0.0.9:80 backup\n",
    )

    def test_all_backups_share(self) -> None:
        """'option allbackups' balances over every backup."""
        self.server("s1").up = False
        for port in range(50000, 50004):
            self.connect_client(port=port).get()
        self.assertEqual(
            sorted(self.pending_connections()),
            [("10.0.0.8", 80)] * 2 + [("10.0.0.9", 80)] * 2,
        )


class ObserveTests(FailuresTestCase):
    config_text = farm("retries 0", servers="        server s1 10.0.0.1:80\n")

    def setUp(self) -> None:
        super().setUp()
        self.seen = Recorder()
        self.server("s1").monitor = self.seen

    def test_connection_refused_is_layer4_error(self) -> None:
        """A refused connection is told as a layer 4 error."""
        self.connect_client().get()
        self.refuse()
        self.assertEqual(self.seen.seen, [(False, False)])

    def test_good_response(self) -> None:
        """A connection and a 200 are told as successes at layers 4 and 7."""
        self.connect_client().get()
        self.accept().respond(OK)
        self.assertEqual(self.seen.seen, [(True, False), (True, True)])

    def test_server_errors(self) -> None:
        """A 502 is a layer 7 error; a 501 is an answer, as in HAProxy."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 502 Bad\r\nContent-Length: 0\r\n\r\n")
        client.get()
        server.respond(b"HTTP/1.1 501 No\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(self.seen.seen, [(True, False), (False, True), (True, True)])

    def test_junk_is_layer7_error(self) -> None:
        """A response that is not HTTP is a layer 7 error."""
        self.connect_client().get()
        self.accept().respond(b"SSH-2.0-OpenSSH\r\n")
        self.assertEqual(self.seen.seen, [(True, False), (False, True)])


@implementer(IHealthCheck)
class _PendingCheck:
    """A health check that never answers (state is set by hand)."""

    def run(self) -> Deferred[str]:
        return Deferred()


class DownWhileQueuedTests(FailuresTestCase):
    config_text = farm(
        "timeout queue 2s",
        servers="        server s1 10.0.0.1:80 maxconn 1 check\n"
        "        server b1 10.0.0.8:80 backup\n",
    )

    def test_queue_goes_to_the_backup(self) -> None:
        """When the only active server goes DOWN, the requests waiting for it
        and those that come next go to the backup at once."""
        s1 = self.server("s1")
        monitor = ServerMonitor.watch(s1, self.backend, _PendingCheck(), self.reactor)
        first, second = self.connect_client(), self.connect_client(port=50001)
        first.get()
        second.get()
        self.assertEqual(len(self.backend.waiting), 1)
        monitor.record(False, "connection refused")
        third = self.connect_client(port=50002)
        third.get()
        self.assertEqual(
            self.pending_connections(),
            [("10.0.0.1", 80), ("10.0.0.8", 80), ("10.0.0.8", 80)],
        )

    def test_queue_gets_503_when_none_is_left(self) -> None:
        """When no server is left, the requests waiting get a 503 at once."""
        self.server("b1").disabled = True
        s1 = self.server("s1")
        monitor = ServerMonitor.watch(s1, self.backend, _PendingCheck(), self.reactor)
        first, second = self.connect_client(), self.connect_client(port=50001)
        first.get()
        second.get()
        monitor.record(False, "connection refused")
        self.assertEqual(self.status(second.received()), 503)


class RaceTests(FailuresTestCase):
    config_text = farm(servers="        server s1 10.0.0.1:80\n")

    def test_client_gone_while_connecting(self) -> None:
        """A client that leaves while certlb connects to the server: the
        connection, once made, goes back to the pool; nothing fails."""
        client = self.connect_client()
        client.get()
        client.close()
        server = self.accept()
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(self.engine.pool._idle[("10.0.0.1", 80)], [server.protocol])

    def test_drain_while_closing(self) -> None:
        """Stopping while a client connection is already closing leaves no
        timer behind once it is closed."""
        client = self.connect_client()
        client.send(b"GET / HTTP/1.0\r\n\r\n")
        self.accept().respond(OK)
        self.assertTrue(client.closed)
        client.channel.drain()  # type: ignore[attr-defined]
        client.channel.connectionLost(Failure(ConnectionLost()))
        cut = client.transport.abortConnection
        self.assertEqual(
            [
                c
                for c in self.reactor.getDelayedCalls()
                if getattr(c, "func", None) == cut
            ],
            [],
        )

    def test_response_cut_names_the_server(self) -> None:
        """The log line of a response cut by the server names the server."""
        events = EventLoggingObserver.createWithCleanup(
            self,  # type: ignore[arg-type]
            globalLogPublisher,
        )
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab")
        server.protocol.connectionLost(Failure(ConnectionLost()))
        lines = [formatEvent(e) for e in events if "response cut" in formatEvent(e)]
        self.assertIn(" via be/s1: ", lines[0])


@implementer(IBalancer)
class _RaisesAfterFirst:
    """A balancer (a plugin's, say) that fails from its second pick on."""

    def __init__(self) -> None:
        self.picks = 0

    def pick(self, context: object, servers: list[ServerState]) -> ServerState:
        self.picks += 1
        if self.picks > 1:
            raise RuntimeError("plugin bug")
        return servers[0]


class RedispatchFailureTests(FailuresTestCase):
    config_text = farm("retry-on empty-response 503", "option redispatch")

    def test_balancer_raising_on_redispatch(self) -> None:
        """A balancer that raises when a retry goes to another server ends
        the request with a 500, logged; no client is left waiting."""
        self.backend.balancer = _RaisesAfterFirst()
        client = self.connect_client()
        client.get()
        self.accept().respond(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(self.status(client.received()), 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual([s.active for s in self.backend.servers], [0, 0])


class RedispatchSingleServerTests(FailuresTestCase):
    config_text = farm(
        "option redispatch 1", "retries 3", servers="        server s1 10.0.0.1:80\n"
    )

    def test_turnaround_kept(self) -> None:
        """A redispatch that can only pick the same server still waits the
        turn-around before connecting again."""
        client = self.connect_client()
        client.get()
        self.refuse()
        self.assertEqual(self.pending_connections(), [])
        self.reactor.advance(1)
        self.assertEqual(self.pending_connections(), [("10.0.0.1", 80)])
        self.assertEqual(client.received(), b"")
