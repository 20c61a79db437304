"""A graceful stop: grace, requests in flight, idle connections, hard-stop-after."""

from __future__ import annotations

import textwrap
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from certlb.config import parse_config
from certlb.service import CertlbService, make_service
from tests.proxy_harness import Client, ClientTransport

CONFIG = """\
    global
{global_}
    frontend fe
        mode http
        bind 127.0.0.1:8080
{frontend}
        default_backend be
    backend be
        mode http
        server s1 10.0.0.1:80
"""

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class _Port:
    """A listening port that says whether it still listens."""

    def __init__(self, port: int, interface: str) -> None:
        self.address = IPv4Address("TCP", interface, port)
        self.listening = True

    def stopListening(self) -> None:
        self.listening = False

    def getHost(self) -> IPv4Address:
        return self.address


class _Reactor(MemoryReactorClock):
    def listenTCP(
        self, port: int, factory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        super().listenTCP(port, factory, backlog, interface)
        self.port = _Port(port, interface)
        return self.port


class StopTests(SynchronousTestCase):
    def start(self, global_: str = "", frontend: str = "") -> CertlbService:
        text = CONFIG.format(
            global_=f"        {global_}" if global_ else "",
            frontend=f"        {frontend}" if frontend else "",
        )
        config, problems = parse_config(textwrap.dedent(text), "t.cfg", {})
        self.assertEqual([p for p in problems if p.severity == "error"], [])
        self.reactor = _Reactor()
        service = make_service(config, self.reactor)
        service.startService()
        return service

    def connect(self) -> Client:
        factory = self.reactor.tcpServers[0][1]
        channel: Any = factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 50000))
        transport = ClientTransport()
        channel.makeConnection(transport)
        return Client(channel, transport)

    def serve(self, response: bytes) -> Any:
        """Let certlb's connection to the server succeed, and answer; return
        the connection, to answer on it again."""
        _, _, factory, _, _ = self.reactor.tcpClients[-1]
        protocol: Any = factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 80))
        protocol.makeConnection(StringTransport())
        server = protocol._wrappedProtocol
        server.dataReceived(response)
        return server

    def test_idle_connection_closed(self) -> None:
        """At a stop, a connection with no request is closed, the port stops
        listening, and the stop completes when the connection is gone."""
        service = self.start()
        client = self.connect()
        stopped = service.stopService()
        self.assertFalse(self.reactor.port.listening)
        self.assertTrue(client.closed)
        self.assertNoResult(stopped)
        client.close()
        self.successResultOf(stopped)

    def test_request_in_flight_finishes(self) -> None:
        """A request under way at the stop gets its whole response, with
        'Connection: close', and the stop waits for it."""
        service = self.start()
        client = self.connect()
        client.get()
        stopped = service.stopService()
        self.assertFalse(client.closed)
        self.reactor.advance(30)
        self.assertNoResult(stopped)
        self.serve(OK)
        response = client.received()
        self.assertTrue(response.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertIn(b"\r\nConnection: close\r\n", response)
        self.assertTrue(response.endswith(b"\r\n\r\nok"))
        self.assertTrue(client.closed)
        client.close()
        self.successResultOf(stopped)

    def test_pipelined_requests_answered(self) -> None:
        """Requests already read at the stop are all answered; only the last
        response closes the connection."""
        service = self.start()
        client = self.connect()
        client.send(
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        stopped = service.stopService()
        server = self.serve(OK)
        first = client.received()
        self.assertNotIn(b"Connection: close", first)
        self.assertFalse(client.closed)
        server.dataReceived(OK)
        second = client.received()
        self.assertIn(b"\r\nConnection: close\r\n", second)
        self.assertTrue(client.closed)
        client.close()
        self.successResultOf(stopped)

    def test_grace_keeps_listening(self) -> None:
        """'grace' keeps the frontend accepting for so long after the stop."""
        service = self.start(frontend="grace 5s")
        stopped = service.stopService()
        self.reactor.advance(4.9)
        self.assertTrue(self.reactor.port.listening)
        client = self.connect()  # still accepted, and served
        self.reactor.advance(0.1)
        self.assertFalse(self.reactor.port.listening)
        self.assertTrue(client.closed)
        client.close()
        self.successResultOf(stopped)

    def test_global_grace(self) -> None:
        """A 'grace' in the global section covers every frontend."""
        service = self.start(global_="grace 2s")
        service.stopService()
        self.reactor.advance(1.9)
        self.assertTrue(self.reactor.port.listening)
        self.reactor.advance(0.1)
        self.assertFalse(self.reactor.port.listening)

    def test_hard_stop_after_cuts(self) -> None:
        """'hard-stop-after' ends the wait: connections still open are cut."""
        service = self.start(global_="hard-stop-after 3s", frontend="grace 10s")
        client = self.connect()
        client.get()
        stopped = service.stopService()
        self.reactor.advance(2.9)
        self.assertTrue(self.reactor.port.listening)
        self.assertFalse(client.transport.aborted)
        self.reactor.advance(0.1)
        self.assertFalse(self.reactor.port.listening)
        self.assertTrue(client.transport.aborted)
        client.close()
        self.successResultOf(stopped)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
