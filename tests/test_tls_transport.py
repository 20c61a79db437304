"""certlb.tls.transport where the socket is tight: OpenSSL's reads that wait
for room to write, and writes that wait for the peer's handshake.

End to end: real sockets on 127.0.0.1, the global reactor, and a client in a
thread that reads slowly through a small socket buffer.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL, crypto
from twisted.internet import reactor as _reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from certlb.tls.transport import TLSPort
from tests.helpers import pki

reactor: Any = _reactor


def _context(chain: int) -> SSL.Context:
    """A server context whose certificate comes with C{chain} more copies of
    itself: a first flight far larger than a small socket buffer."""
    server = pki().server
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.use_certificate(crypto.X509.from_cryptography(server.certificate))
    context.use_privatekey(crypto.PKey.from_cryptography_key(server.key))
    for _ in range(chain):
        context.add_extra_chain_cert(crypto.X509.from_cryptography(server.certificate))
    return context


class _Creator:
    def __init__(self, context: SSL.Context) -> None:
        self.context = context

    def serverConnectionForTLS(self, transport: object, sock: socket.socket) -> Any:
        return SSL.Connection(self.context, sock)


def _slow_client(
    port: int, message: bytes, hello_sent: Callable[[], object] = lambda: None
) -> bytes:
    """Handshake reading 1 kB at a time through a 2 kB receive buffer, send
    C{message}, and return all that comes back until the server closes.

    @param hello_sent: called once the ClientHello is sent.
    """
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", port))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)

    def pump() -> bool:
        """One step of the handshake; whether it is over."""
        try:
            tls.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False
        finally:
            if outgoing.pending:
                raw.sendall(outgoing.read())

    pump()
    hello_sent()
    time.sleep(0.3)  # the server's flight fills both sides' buffers
    while True:
        data = raw.recv(1024)
        if not data:
            raise AssertionError("the server closed during the handshake")
        incoming.write(data)
        if pump():
            break
        time.sleep(0.002)
    tls.write(message)
    raw.sendall(outgoing.read())
    received = b""
    while True:
        data = raw.recv(4096)
        if not data:
            return received
        incoming.write(data)
        try:
            while chunk := tls.read(4096):
                received += chunk
            return received  # the end
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            return received  # close_notify


class _Answer(Protocol):
    """Answers the first data with C{pong:} and closes."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"pong:" + data)  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class _EarlyWriter(Protocol):
    """Writes on connecting (before the handshake is over), then closes."""

    def connectionMade(self) -> None:
        self.transport.write(b"early words")  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class TightSocketTests(TestCase):
    def listen(self, protocol: type[Protocol]) -> int:
        self.port = TLSPort.listen(
            reactor,
            0,
            Factory.forProtocol(protocol),
            _Creator(_context(60)),
            "127.0.0.1",
        )
        self.addCleanup(self.port.stopListening)
        # Accepted sockets inherit the small send buffer.
        self.port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        return int(self.port.getHost().port)

    async def test_handshake_larger_than_the_buffers(self) -> None:
        """A handshake whose first flight needs many writes, each waiting for
        the slow client to make room, completes; the answer then comes, and a
        clean close (close_notify)."""
        port = self.listen(_Answer)
        received = await deferToThread(_slow_client, port, b"ping")
        self.assertEqual(received, b"pong:ping")

    async def test_close_while_a_write_waits_for_the_handshake(self) -> None:
        """What a protocol writes before the handshake is over, and then closes,
        reaches the client once the handshake is done."""
        port = self.listen(_EarlyWriter)
        received = await deferToThread(_slow_client, port, b"")
        self.assertEqual(received, b"early words")

    async def test_write_on_accept_with_the_hello_there(self) -> None:
        """A protocol that writes on connecting, when the ClientHello is
        already there to answer (a large answer that fills the socket), gets
        its bytes to the client after the handshake (OpenSSL fails a write
        retried while a handshake message is half sent: writes wait)."""
        port = self.listen(_EarlyWriter)
        self.port.stopReading()  # accepted only once the hello has come

        def accept() -> None:
            reactor.callFromThread(self.port.startReading)

        received = await deferToThread(_slow_client, port, b"", accept)
        self.assertEqual(received, b"early words")
