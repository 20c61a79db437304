"""Drive certlb's proxy in memory: a client, certlb, and fake servers.

No sockets and no global reactor: clients and servers are
L{StringTransport}s, connections to servers are taken from a
L{MemoryReactorClock}, and time moves only when a test advances it.
"""

from __future__ import annotations

import textwrap
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from certlb.config import parse_config
from certlb.config.errors import ERROR
from certlb.proxy.channel import HTTPChannel
from certlb.proxy.engine import Engine
from certlb.proxy.limits import ConnectionLimits
from certlb.proxy.resource import FrontendResource
from certlb.proxy.runtime import build_runtime
from certlb.proxy.upstream import UpstreamConnection
from certlb.tls.state import ClientCertState, VerifyPolicy, VerifyRecord

PHASE2 = """\
    frontend fe
        mode http
        bind 127.0.0.1:8443
        use_backend sharepoint if { ssl_fc_has_crt }
        default_backend webmail
    backend sharepoint
        mode http
        server srv1 10.0.0.1:80 check
        server srv2 10.0.0.2:80 check
    backend webmail
        mode http
        server srv3 10.0.0.3:80 check
        server srv4 10.0.0.4:80 check
"""

WITH_CERT = ClientCertState(has_crt=True, used=True)
WITHOUT_CERT = ClientCertState()


class _Handle:
    """What C{transport.getHandle()} gives for a TLS connection: its record."""

    def __init__(self, state: ClientCertState) -> None:
        self.verify_record = VerifyRecord(VerifyPolicy(), state=state)


class ClientTransport(StringTransport):
    """A client connection, TLS or not, that remembers being aborted."""

    def __init__(self, tls: ClientCertState | None = None, port: int = 50000) -> None:
        super().__init__(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8443),
            peerAddress=IPv4Address("TCP", "192.0.2.7", port),
        )
        self._handle = _Handle(tls) if tls is not None else None
        self.aborted = False

    def getHandle(self) -> object:
        return self._handle

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class Client:
    """One client connection to certlb."""

    def __init__(self, channel: Protocol, transport: ClientTransport) -> None:
        self.channel = channel
        self.transport = transport

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def get(self, path: bytes = b"/", headers: bytes = b"") -> None:
        self.send(
            b"GET " + path + b" HTTP/1.1\r\nHost: example\r\n" + headers + b"\r\n"
        )

    def received(self) -> bytes:
        """Everything certlb wrote to this client so far (and forget it)."""
        data = self.transport.value()
        self.transport.clear()
        return data

    def close(self) -> None:
        self.channel.connectionLost(Failure(ConnectionDone()))

    def stop_reading(self) -> None:
        """The client stops reading: its connection pauses what certlb sends."""
        self.transport.producer.pauseProducing()  # type: ignore[union-attr]

    def start_reading(self) -> None:
        self.transport.producer.resumeProducing()  # type: ignore[union-attr]

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)


class Server:
    """certlb's connection to one server: what it sent, and how to answer."""

    def __init__(
        self,
        host: str,
        port: int,
        protocol: UpstreamConnection,
        transport: StringTransport,
    ) -> None:
        self.host = host
        self.port = port
        self.protocol = protocol
        self.transport = transport

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def received(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def respond(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def close(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))

    def stop_reading(self) -> None:
        """The server stops reading: its connection pauses what certlb sends."""
        self.transport.producer.pauseProducing()  # type: ignore[union-attr]

    def start_reading(self) -> None:
        self.transport.producer.resumeProducing()  # type: ignore[union-attr]


class ProxyTestCase(SynchronousTestCase):
    """A frontend of an in-memory certlb, its clients and its servers.

    @cvar door: how clients reach the frontend: C{"channel"}, certlb's own
        HTTP/1.1 server, or C{"resource"}, twisted.web's C{Site} serving
        L{FrontendResource}.
    """

    config_text = PHASE2
    frontend_name = "fe"
    door = "channel"

    def setUp(self) -> None:
        config, problems = parse_config(textwrap.dedent(self.config_text), "t.cfg", {})
        errors = [p for p in problems if p.severity == ERROR]
        assert not errors, errors
        self.reactor = MemoryReactorClock()
        self.engine = Engine(self.reactor)
        self.frontends = build_runtime(config)
        self.frontend = self.frontends[self.frontend_name]
        self.limits = ConnectionLimits()
        self._connected = 0

    def connect_client(
        self, tls: ClientCertState | None = WITHOUT_CERT, port: int = 50000
    ) -> Client:
        channel: Protocol
        if self.door == "channel":
            channel = HTTPChannel(self.frontend, self.engine, None)
        else:
            resource = FrontendResource(self.frontend, self.engine)
            site = Site(resource, reactor=self.reactor)
            channel = site.buildProtocol(None)
        transport = ClientTransport(tls, port)
        channel.makeConnection(transport)
        return Client(channel, transport)

    def pending_connections(self) -> list[tuple[str, int]]:
        """The server connections certlb asked for that are not made yet."""
        return [(h, p) for h, p, *_ in self.reactor.tcpClients[self._connected :]]

    def accept(self) -> Server:
        """Let certlb's oldest pending connection to a server succeed."""
        host, port, factory, _, _ = self.reactor.tcpClients[self._connected]
        self._connected += 1
        protocol: Any = factory.buildProtocol(IPv4Address("TCP", host, port))
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        protocol.makeConnection(transport)
        return Server(host, port, protocol._wrappedProtocol, transport)

    def refuse(self, reason: Exception | None = None) -> None:
        """Let certlb's oldest pending connection to a server fail: refused,
        or for C{reason}."""
        _, _, factory, _, _ = self.reactor.tcpClients[self._connected]
        connector = self.reactor.connectors[self._connected]
        self._connected += 1
        factory.clientConnectionFailed(
            connector, Failure(reason or ConnectionRefusedError())
        )

    def kept_alive(self) -> tuple[Client, Server]:
        """A client and a server connection after one complete exchange."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        client.received()
        server.received()
        return client, server

    def assertStatus(self, response: bytes, status: int) -> None:
        first = response.split(b"\r\n", 1)[0]
        self.assertEqual(
            first.split(b" ")[:2], [b"HTTP/1.1", str(status).encode()], response
        )


def head_and_body(response: bytes) -> tuple[list[bytes], bytes]:
    """Split a response into its head lines and its body."""
    head, _, body = response.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), body


def header(response: bytes, name: bytes) -> list[bytes]:
    """The values of header C{name} in a response or request."""
    lines, _ = head_and_body(response)
    values = []
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower():
            values.append(value.strip())
    return values
