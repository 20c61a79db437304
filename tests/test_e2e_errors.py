"""Failures end to end: servers down, refusing, resetting; what clients see."""

from __future__ import annotations

import socket
import struct
from typing import Any

from twisted.internet.protocol import Factory, Protocol

from tests.e2e import E2ETestCase, curl, reactor

ONE_BACKEND = """\
    frontend fe
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.crt verify optional
     default_backend be
    backend be
     mode http
     timeout server 2s
     server s1 127.0.0.1:{port}
"""


def _reset(transport: Any) -> None:
    """Close with a TCP reset rather than a clean end."""
    handle = transport.getHandle()
    handle.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.loseConnection()


class _ResetAfterRequest(Protocol):
    def dataReceived(self, data: bytes) -> None:
        _reset(self.transport)


class _ResetMidResponse(Protocol):
    transport: Any

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000
        )
        reactor.callLater(0.2, _reset, self.transport)


class _Garbage(Protocol):
    transport: Any

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"this is not HTTP\r\n\r\n")


class _Silent(Protocol):
    pass


class ServerFailureTests(E2ETestCase):
    def start_with(self, protocol: type[Protocol]) -> str:
        port = reactor.listenTCP(
            0, Factory.forProtocol(protocol), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        ports = self.start_certlb(ONE_BACKEND.format(port=port.getHost().port))
        return f"https://127.0.0.1:{ports['fe']}/"

    async def test_refused_is_502(self) -> None:
        """A server that refuses connections gives the client a 502."""
        ports = self.start_certlb(ONE_BACKEND.format(port=self.free_port()))
        result = await curl(f"https://127.0.0.1:{ports['fe']}/", None, "-i")
        self.assertIn(b"HTTP/1.1 502 Bad Gateway", result.out, result)

    async def test_reset_is_502(self) -> None:
        """A server that resets the connection on the request gives a 502."""
        result = await curl(self.start_with(_ResetAfterRequest), None, "-i")
        self.assertIn(b"HTTP/1.1 502 Bad Gateway", result.out, result)

    async def test_garbage_is_502(self) -> None:
        """A server that answers garbage gives a 502."""
        result = await curl(self.start_with(_Garbage), None, "-i")
        self.assertIn(b"HTTP/1.1 502 Bad Gateway", result.out, result)

    async def test_slow_server_is_504(self) -> None:
        """A server silent for 'timeout server' gives a 504."""
        result = await curl(self.start_with(_Silent), None, "-i")
        self.assertIn(b"HTTP/1.1 504 Gateway Timeout", result.out, result)

    async def test_reset_mid_response_is_incomplete(self) -> None:
        """A response cut by a server reset never looks complete to curl."""
        result = await curl(self.start_with(_ResetMidResponse), None, "-o", "/dev/null")
        self.assertIn(result.code, (18, 56), result)

    async def test_servers_down_is_503(self) -> None:
        """With every server of the backend down, clients get a 503; with one
        back up, they are served again."""
        ports = self.start_certlb(ONE_BACKEND.format(port=self.start_backend("s1")))
        url = f"https://127.0.0.1:{ports['fe']}/"
        server = self.service.frontends["fe"].default.servers[0]
        server.up = False
        result = await curl(url, None, "-i")
        self.assertIn(b"HTTP/1.1 503 Service Unavailable", result.out, result)
        server.up = True
        result = await curl(url)
        self.assertEqual(result.out.split(b"\n")[0], b"server s1")
