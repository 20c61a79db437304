"""End to end: certlb reaching servers over TLS, on real sockets.

Backends are Twisted TLS servers on 127.0.0.1; curl talks to certlb, which
verifies each backend's certificate and presents its own.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import ssl
from twisted.internet.task import deferLater
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from tests.e2e import E2ETestCase, curl, reactor
from tests.helpers import pki_files

CLIENT1 = b"TLS backend, client certlb client1 client\n"
FRONTEND = """\
    frontend fe
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem
     default_backend bk
    backend bk
     mode http
     timeout connect 2s
     timeout server 5s
     retries 0
"""


class WhoAmI(Resource):
    """Answers with the CN of the client certificate it got, if any."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        certificate = request.transport.getPeerCertificate()  # type: ignore[union-attr]
        if certificate is None:
            return b"TLS backend, no client certificate\n"
        return b"TLS backend, client " + certificate.get_subject().CN.encode() + b"\n"


class ServerTlsTests(E2ETestCase):
    def setUp(self) -> None:
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        # Run last: once certlb stopped, its kept TLS connections end with a
        # close_notify exchange, which takes a few turns of the reactor.
        self.addCleanup(deferLater, reactor, 0.2, lambda: None)

    def tls_backend(self, crt: str = "server.pem", require_client: bool = True) -> int:
        """A TLS server with certificate C{crt}, that requires a client
        certificate from CA 1 (or none); return its port."""
        files = pki_files()
        with open(files[crt]) as f:
            certificate = ssl.PrivateCertificate.loadPEM(f.read())
        with open(files["ca.crt"], "rb") as f:
            ca = ssl.Certificate.loadPEM(f.read())
        options = certificate.options(ca) if require_client else certificate.options()
        port = reactor.listenSSL(0, Site(WhoAmI()), options, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    def through_certlb(self, server: str) -> str:
        ports = self.start_certlb(FRONTEND + f"     {server}\n")
        return f"https://127.0.0.1:{ports['fe']}/"

    def logged(self, text: str) -> bool:
        return any(text in formatEvent(e) for e in self.events)

    async def wait_for_log(self, text: str, within: float) -> None:
        deadline = time.time() + within
        while not self.logged(text):
            if time.time() > deadline:
                lines = "\n".join(formatEvent(e) for e in self.events)
                self.fail(f"no {text!r} logged within {within}s; logged:\n{lines}")
            await deferLater(reactor, 0.05, lambda: None)

    async def test_client_certificate(self) -> None:
        """With C{crt}, the backend that requires a client certificate gets
        certlb's, and the client gets the backend's answer."""
        port = self.tls_backend()
        url = self.through_certlb(
            f"server s 127.0.0.1:{port} ssl verify required ca-file ./ca.crt "
            "crt ./client1.pem"
        )
        result = await curl(url)
        self.assertEqual(result.out, CLIENT1)

    async def test_no_client_certificate(self) -> None:
        """Without C{crt}, the backend refuses certlb, and the client gets a
        502; the log says why."""
        port = self.tls_backend()
        url = self.through_certlb(f"server s 127.0.0.1:{port} ssl ca-file ./ca.crt")
        result = await curl(url, None, "-o", "/dev/null", "-w", "%{http_code}")
        self.assertEqual(result.out, b"502", result)
        self.assertTrue(self.logged("502 for GET / from"))
        # TLS 1.3 servers refuse a client certificate after the handshake.
        self.assertTrue(
            self.logged(
                "the server refused the TLS connection: tlsv13 alert certificate "
                "required"
            ),
            "\n".join(formatEvent(e) for e in self.events),
        )

    async def test_untrusted_backend(self) -> None:
        """A backend whose certificate is not from the ca-file gets no
        request: the client gets a 502, the log has the verify reason."""
        port = self.tls_backend("untrusted.pem", require_client=False)
        url = self.through_certlb(f"server s 127.0.0.1:{port} ssl ca-file ./ca.crt")
        result = await curl(url, None, "-o", "/dev/null", "-w", "%{http_code}")
        self.assertEqual(result.out, b"502", result)
        self.assertTrue(
            self.logged(
                "via bk/s: 127.0.0.1:"
                f"{port}: TLS handshake failed: certificate verify failed: unable "
                "to get local issuer certificate (error 20 at depth 0)"
            ),
            "\n".join(formatEvent(e) for e in self.events),
        )

    async def test_name_mismatch(self) -> None:
        """A trusted certificate for another name than C{verifyhost} gives
        a 502, logged as a name mismatch."""
        port = self.tls_backend(require_client=False)
        url = self.through_certlb(
            f"server s 127.0.0.1:{port} ssl ca-file ./ca.crt verifyhost app.example"
        )
        result = await curl(url, None, "-o", "/dev/null", "-w", "%{http_code}")
        self.assertEqual(result.out, b"502", result)
        self.assertTrue(self.logged("certificate name mismatch"))

    async def test_verify_none(self) -> None:
        """C{verify none} reaches a backend whatever its certificate."""
        port = self.tls_backend("untrusted.pem", require_client=False)
        url = self.through_certlb(f"server s 127.0.0.1:{port} ssl verify none")
        result = await curl(url)
        self.assertEqual(result.out, b"TLS backend, no client certificate\n")

    async def test_keep_alive(self) -> None:
        """Requests in a row reuse one TLS connection to the backend."""
        port = self.tls_backend()
        url = self.through_certlb(
            f"server s 127.0.0.1:{port} ssl ca-file ./ca.crt crt ./client1.pem"
        )
        result = await curl(url, None, url, url)
        self.assertEqual(result.out, CLIENT1 * 3)
        pool: Any = self.service.engine.pool
        self.assertEqual(sum(len(idle) for idle in pool._idle.values()), 1)

    async def test_check_ssl_marks_bad_certificate_down(self) -> None:
        """Health checks use the server's TLS settings: a server with a
        certificate certlb refuses is marked DOWN, with the reason."""
        good = self.tls_backend()
        bad = self.tls_backend("untrusted.pem", require_client=False)
        check = "ssl ca-file ./ca.crt crt ./client1.pem check inter 200ms fall 1"
        self.start_certlb(
            FRONTEND
            + f"     server good 127.0.0.1:{good} {check}\n"
            + f"     server bad 127.0.0.1:{bad} {check}\n"
        )
        await self.wait_for_log(
            "server bk/bad is DOWN (TLS handshake failed: certificate verify "
            "failed: unable to get local issuer certificate",
            5,
        )
        servers = self.service.backends["bk"].servers
        self.assertEqual([s.up for s in servers], [True, False])
