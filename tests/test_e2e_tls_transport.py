"""TLS on the socket (L{certlb.tls.transport}), end to end: real sockets,
real curl and openssl, and Python TLS clients on threads where a program
cannot do what the test needs (pause reading, pipeline, watch the close)."""

from __future__ import annotations

import hashlib
import os
import random
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import threads
from twisted.internet.task import deferLater
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from certlb.tls.transport import TLSPort, TLSServer
from tests.e2e import E2ETestCase, curl, reactor, require, run, s_client
from tests.helpers import pki_files

CONFIG = """\
    frontend fe
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.crt verify optional
     default_backend be

    frontend strict
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.crt verify required
     default_backend be

    frontend quick
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.crt verify optional
     timeout http-request 300ms
     default_backend be

    backend be
     mode http
     server s1 127.0.0.1:{port}
"""

# A response large enough to fill every buffer on the way (socket buffers,
# OpenSSL's records) many times over.
BIG = random.Random(7).randbytes(6 * 1024 * 1024)
BIG_SHA = hashlib.sha256(BIG).hexdigest()


class _Backend(Resource):
    """GET /big: L{BIG}; POST: the body's length and SHA-256; otherwise the
    request's path."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        if request.path == b"/big":
            return BIG
        return b"path " + request.uri + b"\n"

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        body = request.content.read()
        return f"{len(body)} {hashlib.sha256(body).hexdigest()}\n".encode()


def _context(client: str | None = None) -> ssl.SSLContext:
    files = pki_files()
    context = ssl.create_default_context(cafile=files["ca.crt"])
    if client is not None:
        context.load_cert_chain(files[f"{client}.crt"], files[f"{client}.key"])
    return context


def _connect(
    port: int, client: str | None = None, rcvbuf: int | None = None
) -> ssl.SSLSocket:
    """A blocking Python TLS client connection (run on a thread), handshake
    done; a read of a connection ended without close_notify raises."""
    raw = socket.socket()
    raw.settimeout(10)
    if rcvbuf is not None:  # before connecting, so the window is small too
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.connect(("127.0.0.1", port))
    return _context(client).wrap_socket(
        raw, server_hostname="localhost", suppress_ragged_eofs=False
    )


def _read_to_end(conn: ssl.SSLSocket) -> bytes:
    """Everything until the server's close_notify (an end without it raises
    C{ssl.SSLEOFError})."""
    chunks: list[bytes] = []
    while True:
        data = conn.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _read_response(conn: ssl.SSLSocket) -> bytes:
    """One response with a Content-Length, read from a kept-alive connection."""
    data = b""
    while True:
        head, _, body = data.partition(b"\r\n\r\n")
        match = re.search(rb"(?im)^content-length: *(\d+)", head)
        if match is not None and len(body) >= int(match.group(1)):
            return data
        more = conn.recv(65536)
        if not more:
            raise AssertionError(f"connection ended after {data!r}")
        data += more


def _split_responses(data: bytes) -> list[tuple[bytes, bytes]]:
    """(status line, body) of each response with a Content-Length in C{data}."""
    responses = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        match = re.search(rb"(?im)^content-length: *(\d+)", head)
        assert match is not None, head
        length = int(match.group(1))
        responses.append((head.split(b"\r\n")[0], rest[:length]))
        data = rest[length:]
    return responses


def _request(path: str, close: bool = False) -> bytes:
    connection = b"close" if close else b"keep-alive"
    return (
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\n".encode()
        + b"Connection: "
        + connection
        + b"\r\n\r\n"
    )


class TLSTransportTests(E2ETestCase):
    """The client side of certlb, TLS on the socket, on the global reactor."""

    def setUp(self) -> None:
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        site = Site(_Backend())
        site.noisy = False
        ports = self.start_certlb(CONFIG.format(port=self.start_backend("s1", site)))
        self.port = ports["fe"]
        self.strict = ports["strict"]
        self.quick = ports["quick"]
        self.url = f"https://127.0.0.1:{self.port}/"

    # -- helpers -----------------------------------------------------------

    def channels(self) -> set[Any]:
        return set(self.service.factories["fe"].channels)

    async def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait (at most 10 s) until C{condition()} holds."""
        deadline = time.monotonic() + 10
        while not condition():
            if time.monotonic() > deadline:
                self.fail(f"never happened: {what}")
            await deferLater(reactor, 0.01, lambda: None)

    def handshake_failures(self) -> list[str]:
        return [
            text
            for text in map(formatEvent, self.events)
            if "TLS handshake with" in text
        ]

    async def raw_client_then_close(self, send: bytes, reset: bool = False) -> None:
        """Connect over TCP, send C{send}, wait for certlb to have the
        connection, then close (with a reset if C{reset}) and wait for certlb
        to have closed it too."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            if send:
                sock.sendall(send)
            await self.wait_until(lambda: len(self.channels()) == 1, "accepted")
            if reset:
                linger = struct.pack("ii", 1, 0)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        finally:
            sock.close()
        await self.wait_until(lambda: not self.channels(), "closed by certlb")

    # -- tests -------------------------------------------------------------

    async def test_listener_is_tls_port(self) -> None:
        """On the global (POSIX) reactor, an ssl bind listens with TLSPort and
        each client connection is a TLSServer carrying the OpenSSL connection."""
        ports = [port for _, _, port in self.service.listeners.ports]
        self.assertTrue(all(isinstance(port, TLSPort) for port in ports), ports)
        release = threading.Event()

        def client() -> bytes:
            with _connect(self.port, "client1") as conn:
                conn.sendall(_request("/held"))
                answer = conn.recv(65536)
                release.wait(10)
                return answer

        done = threads.deferToThread(client)
        try:
            await self.wait_until(lambda: len(self.channels()) == 1, "connected")
            (channel,) = self.channels()
            self.assertIsInstance(channel.transport, TLSServer)
            self.assertIs(channel.transport.getHandle(), channel.transport.tls)
            await self.wait_until(
                lambda: any(c.tls is not None for c in self.service.connections()),
                "handshake over",
            )
            (connection,) = list(self.service.connections())
            self.assertEqual(connection.frontend, "fe")
        finally:
            release.set()
        self.assertIn(b"path /held", await done)

    async def test_write_goes_out_at_once(self) -> None:
        """A write on a connection with nothing queued is handed to OpenSSL
        and the socket at once: nothing is left queued when write() returns,
        and the client reads it."""
        answered, release = threading.Event(), threading.Event()

        def client() -> bytes:
            with _connect(self.port, "client1") as conn:
                conn.sendall(_request("/first"))
                _read_response(conn)
                answered.set()
                release.wait(10)
                return conn.recv(65536)

        done = threads.deferToThread(client)
        try:
            await self.wait_until(answered.is_set, "first response read")
            (channel,) = self.channels()
            transport = channel.transport
            transport.write(b"written at once")
            self.assertFalse(transport.dataBuffer or transport._tempDataBuffer)
        finally:
            release.set()
        self.assertEqual(await done, b"written at once")

    async def test_large_response_intact(self) -> None:
        """A response of several MB reaches curl complete and intact."""
        result = await curl(self.url + "big", "client1")
        self.assertEqual(result.code, 0, result.err)
        self.assertEqual(len(result.out), len(BIG))
        self.assertEqual(hashlib.sha256(result.out).hexdigest(), BIG_SHA)

    async def test_large_response_slow_reader(self) -> None:
        """A client that reads nothing for a while, then reads on, with small
        socket buffers on both sides (so that OpenSSL's writes block, with a
        record half sent), gets the whole large response, intact, and the
        connection stays usable for the next request."""
        connected = threading.Event()

        def client() -> tuple[bytes, bytes]:
            with _connect(self.port, None, rcvbuf=4096) as conn:
                connected.wait(10)
                conn.sendall(_request("/big"))
                time.sleep(0.3)
                big = _read_response(conn)
                conn.sendall(_request("/next"))
                return big, _read_response(conn)

        done = threads.deferToThread(client)
        try:
            await self.wait_until(lambda: len(self.channels()) == 1, "connected")
            (channel,) = self.channels()
            server_side = channel.transport.socket
            server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        finally:
            connected.set()
        big, after = await done
        ((status, body),) = _split_responses(big)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertEqual(hashlib.sha256(body).hexdigest(), BIG_SHA)
        self.assertEqual(
            _split_responses(after), [(b"HTTP/1.1 200 OK", b"path /next\n")]
        )

    async def test_parallel_large_responses_intact(self) -> None:
        """Several large responses downloaded at once, each on its own TLS
        connection, all reach curl complete and intact."""
        require("curl")
        count = 6
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        args = ["--parallel", "--parallel-immediate", "--parallel-max", str(count)]
        args += ["--output-dir", directory, "-w", "connects %{num_connects}\n"]
        for i in range(count):
            args += ["-o", f"big{i}", f"{self.url}big?{i}"]
        result = await curl(args[-1], "client1", *args[:-1])
        self.assertEqual(result.code, 0, result)
        connects = [int(n) for n in re.findall(rb"connects (\d+)\n", result.out)]
        self.assertEqual(connects, [1] * count, result.out)
        for i in range(count):
            with open(os.path.join(directory, f"big{i}"), "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), BIG_SHA, i)

    async def test_large_upload_intact(self) -> None:
        """A request body of several MB (curl --data-binary) reaches the
        server complete and intact."""
        path = self.mktemp()
        body = random.Random(11).randbytes(5 * 1024 * 1024)
        with open(path, "wb") as f:
            f.write(body)
        result = await curl(self.url + "upload", "client1", "--data-binary", f"@{path}")
        self.assertEqual(result.code, 0, result)
        expected = f"{len(body)} {hashlib.sha256(body).hexdigest()}\n".encode()
        self.assertEqual(result.out, expected)

    async def test_connection_close_sends_close_notify(self) -> None:
        """After the response to a 'Connection: close' request, certlb ends
        TLS with close_notify: Python's ssl reads a clean end, not an EOF
        error."""

        def client() -> bytes:
            with _connect(self.port, "client1") as conn:
                conn.sendall(_request("/bye", close=True))
                return _read_to_end(conn)

        data = await threads.deferToThread(client)
        ((status, body),) = _split_responses(data)
        self.assertEqual((status, body), (b"HTTP/1.1 200 OK", b"path /bye\n"))

    async def test_connection_close_s_client_no_unexpected_eof(self) -> None:
        """openssl s_client -ign_eof, after a 'Connection: close' request,
        exits cleanly with no 'unexpected eof' error."""
        result = await s_client(self.port, "client1")
        self.assertEqual(result.code, 0, result)
        self.assertIn(b"path /", result.out)
        self.assertNotIn(b"unexpected eof", result.out + result.err)
        self.assertNotIn(b":error:", result.err)

    async def test_silent_tcp_client_not_a_handshake_failure(self) -> None:
        """A client that connects over TCP and closes without a byte is not
        logged as a TLS handshake failure."""
        await self.raw_client_then_close(b"")
        self.assertEqual(self.handshake_failures(), [])

    async def test_reset_before_hello_not_a_handshake_failure(self) -> None:
        """A client that connects and resets the connection without a byte
        is not logged as a TLS handshake failure."""
        await self.raw_client_then_close(b"", reset=True)
        self.assertEqual(self.handshake_failures(), [])

    async def test_truncated_hello_not_a_handshake_failure(self) -> None:
        """A client that closes in the middle of its ClientHello (an
        unexpected EOF for OpenSSL) is not logged as a TLS handshake failure."""
        # A handshake record's header announcing 200 bytes, then 3 of them.
        await self.raw_client_then_close(b"\x16\x03\x01\x00\xc8\x01\x00\x00")
        self.assertEqual(self.handshake_failures(), [])

    async def test_plaintext_is_a_handshake_failure(self) -> None:
        """A client speaking plain HTTP to the TLS port gets no HTTP answer,
        its connection is closed (it reads an end of stream, not a reset),
        and certlb logs a TLS handshake failure."""

        def client() -> bytes:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                received = b""
                while data := s.recv(65536):
                    received += data
                return received

        received = await threads.deferToThread(client)
        self.assertNotIn(b"HTTP/1.", received)
        await self.wait_until(lambda: bool(self.handshake_failures()), "logged")
        (line,) = self.handshake_failures()
        self.assertRegex(
            line, r"^frontend fe: TLS handshake with 127\.0\.0\.1:\d+ failed: "
        )

    async def test_tls12_refused_certificate_gets_alert(self) -> None:
        """Over TLS 1.2 (the refusal comes before the client's Finished is
        read), a client whose certificate is refused reads the alert that
        says why, and certlb logs the failure."""
        require("openssl")
        files = pki_files()
        args = ["s_client", "-connect", f"127.0.0.1:{self.strict}", "-tls1_2"]
        args += ["-CAfile", files["ca.crt"], "-servername", "localhost"]
        args += ["-cert", files["expired.crt"], "-key", files["expired.key"]]
        result = await run("openssl", args, stdin=_request("/", close=True))
        self.assertIn(b"alert certificate expired", result.err, result)
        self.assertNotIn(b"path /", result.out)
        await self.wait_until(lambda: bool(self.handshake_failures()), "logged")
        (line,) = self.handshake_failures()
        self.assertRegex(
            line, r"^frontend strict: TLS handshake with 127\.0\.0\.1:\d+ failed: "
        )

    async def test_tls12_valid_certificate_served(self) -> None:
        """A TLS 1.2 client with a valid certificate is served on the strict
        (verify required) frontend."""
        url = f"https://127.0.0.1:{self.strict}/tls12"
        result = await curl(url, "client1", "--tls-max", "1.2")
        self.assertEqual(result.code, 0, result)
        self.assertEqual(result.out, b"path /tls12\n")

    async def test_many_keep_alive_requests(self) -> None:
        """Fifty requests on one kept-alive connection are all answered, in
        order, over a single TLS connection."""
        require("curl")
        urls = [f"{self.url}k{i}" for i in range(50)]
        files = pki_files()
        args = ["-sS", "--max-time", "20", "--cacert", files["ca.crt"]]
        args += ["-w", "connects %{num_connects}\n", *urls]
        result = await run("curl", args)
        self.assertEqual(result.code, 0, result)
        paths = re.findall(rb"path /(k\d+)\n", result.out)
        self.assertEqual(paths, [f"k{i}".encode() for i in range(50)])
        connects = [int(n) for n in re.findall(rb"connects (\d+)\n", result.out)]
        self.assertEqual(sum(connects), 1, result.out)

    async def test_pipelined_requests_in_one_write(self) -> None:
        """Requests pipelined in one TLS write are all answered, in order."""
        count = 20
        batch = b"".join(_request(f"/p{i}") for i in range(count - 1))
        batch += _request(f"/p{count - 1}", close=True)

        def client() -> bytes:
            with _connect(self.port, "client1") as conn:
                conn.sendall(batch)
                return _read_to_end(conn)

        responses = _split_responses(await threads.deferToThread(client))
        self.assertEqual(
            responses,
            [(b"HTTP/1.1 200 OK", f"path /p{i}\n".encode()) for i in range(count)],
        )

    async def test_client_gone_mid_download(self) -> None:
        """A client that resets its connection in the middle of a large
        response is dropped by certlb, which goes on serving others."""

        def client() -> None:
            conn = _connect(self.port, "client1")
            conn.sendall(_request("/big"))
            conn.recv(65536)
            linger = struct.pack("ii", 1, 0)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            conn.close()

        await threads.deferToThread(client)
        await self.wait_until(lambda: not self.channels(), "client dropped")
        result = await curl(self.url + "after", "client1")
        self.assertEqual(result.out, b"path /after\n", result)

    async def test_idle_keep_alive_closed_with_close_notify(self) -> None:
        """A kept-alive connection left idle is closed by certlb (timeout
        http-request) with close_notify: the client reads a clean end."""

        def client() -> tuple[bytes, bytes]:
            with _connect(self.quick, "client1") as conn:
                conn.sendall(_request("/idle"))
                return _read_response(conn), _read_to_end(conn)

        response, after = await threads.deferToThread(client)
        self.assertEqual(
            _split_responses(response), [(b"HTTP/1.1 200 OK", b"path /idle\n")]
        )
        self.assertEqual(after, b"")

    async def test_silent_client_closed_quietly(self) -> None:
        """A TCP client that never starts its handshake is closed at timeout
        http-request, and not logged as a TLS handshake failure."""
        received = await threads.deferToThread(self._raw_until_closed, b"")
        self.assertEqual(received, b"")
        self.assertEqual(self.handshake_failures(), [])

    async def test_stalled_handshake_closed_quietly(self) -> None:
        """A client that stops in the middle of its ClientHello is closed at
        timeout http-request, and not logged as a TLS handshake failure."""
        hello = b"\x16\x03\x01\x00\xc8\x01\x00\x00"
        received = await threads.deferToThread(self._raw_until_closed, hello)
        self.assertEqual(received, b"")
        self.assertEqual(self.handshake_failures(), [])

    def _raw_until_closed(self, send: bytes) -> bytes:
        """On a thread: connect over TCP to the quick frontend, send C{send},
        and read until certlb closes."""
        with socket.create_connection(("127.0.0.1", self.quick), timeout=10) as s:
            if send:
                s.sendall(send)
            received = b""
            while data := s.recv(65536):
                received += data
            return received
