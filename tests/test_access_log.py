"""Access logs: 'option httplog' and 'log-format', one line per request."""

from __future__ import annotations

import datetime
import os
import textwrap
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionLost, TimeoutError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from certlb.config import parse_config
from certlb.config.model import Config
from certlb.proxy.channel import HTTPChannel
from certlb.rules.record import log_date
from certlb.tls.state import ClientCertState
from tests.helpers import pki
from tests.proxy_harness import WITHOUT_CERT, Client, ClientTransport, ProxyTestCase
from tests.test_tls import Client as TLSClient
from tests.test_tls import server_tls

# 27/Nov/2026:02:00:00 UTC
NOW = 1795744800.0

CONFIG = """\
    frontend fe
        mode http
        bind 127.0.0.1:8443
        option httplog
        http-request deny if { path /admin }
        redirect location /new code 301 if { path /old }
        use_backend empty if { path /empty }
        default_backend be
    backend be
        mode http
        retries 1
        timeout queue 5s
        server s1 10.0.0.1:80 maxconn 1
    backend empty
        mode http
"""

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


class AccessLogTestCase(ProxyTestCase):
    """A frontend that logs each request; its clock reads 27/Nov/2026, UTC."""

    config_text = CONFIG

    def setUp(self) -> None:
        tz = os.environ.get("TZ")
        os.environ["TZ"] = "UTC"
        time.tzset()
        self.addCleanup(self._restore_tz, tz)
        super().setUp()
        self.reactor.advance(NOW)
        self.events = EventLoggingObserver.createWithCleanup(
            self,  # type: ignore[arg-type]  # a SynchronousTestCase does as well
            globalLogPublisher,
        )

    @staticmethod
    def _restore_tz(tz: str | None) -> None:
        if tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = tz
        time.tzset()

    def connect_client(
        self, tls: ClientCertState | None = WITHOUT_CERT, port: int = 50000
    ) -> Client:
        """A client of certlb's own channel, counted by the limits."""
        self.limits.accept(self.frontend_name)
        channel = HTTPChannel(self.frontend, self.engine, self.limits)
        transport = ClientTransport(tls, port)
        channel.makeConnection(transport)
        return Client(channel, transport)

    def lines(self) -> list[str]:
        """The access log lines written so far."""
        return [
            formatEvent(event)
            for event in self.events
            if event.get("log_namespace") == "certlb.access"
        ]

    def wait(self, ms: int) -> None:
        self.reactor.advance(ms / 1000)


class HttplogTests(AccessLogTestCase):
    def test_normal(self) -> None:
        """A request answered by a server: its timers, status, bytes sent,
        server, a normal termination and the counters."""
        client = self.connect_client()
        self.wait(123)
        client.get()
        self.wait(2)
        server = self.accept()
        self.wait(5)
        server.respond(OK)
        sent = len(client.received())
        self.assertEqual(
            self.lines(),
            [
                f"192.0.2.7:50000 [27/Nov/2026:02:00:00.123] fe~ be/s1 0/0/2/5/7 "
                f'200 {sent} - - ---- 1/1/1/1/0 0/0 "GET / HTTP/1.1"'
            ],
        )
        self.assertEqual(sent, 43)

    def test_queued(self) -> None:
        """A request that waited for the server's one slot: Tw says how long,
        and the first request's line counts the one still queued."""
        first = self.connect_client()
        first.get(b"/1")
        second = self.connect_client(port=50001)
        second.get(b"/2")
        server = self.accept()
        self.wait(40)
        server.respond(OK)
        server.received()
        self.wait(10)
        server.respond(OK)
        first.received(), second.received()
        self.assertEqual(
            self.lines(),
            [
                "192.0.2.7:50000 [27/Nov/2026:02:00:00.000] fe~ be/s1 0/0/0/40/40 "
                '200 43 - - ---- 2/2/2/1/0 0/1 "GET /1 HTTP/1.1"',
                "192.0.2.7:50001 [27/Nov/2026:02:00:00.000] fe~ be/s1 0/40/0/10/50 "
                '200 43 - - ---- 2/2/1/1/0 0/0 "GET /2 HTTP/1.1"',
            ],
        )

    def test_refused(self) -> None:
        """A server that refuses the connection, even when tried again: 502,
        the server at fault at the connect stage (SC--), one retry."""
        client = self.connect_client()
        client.get()
        self.refuse()
        self.wait(1000)  # the turn-around before trying the same server again
        self.refuse()
        self.assertStatus(client.received(), 502)
        [line] = self.lines()
        self.assertRegex(
            line,
            r"^192\.0\.2\.7:50000 \[27/Nov/2026:02:00:00\.000\] fe~ be/s1 "
            r"0/0/-1/-1/1000 502 \d+ - - SC-- 1/1/1/1/1 0/0 \"GET / HTTP/1\.1\"$",
        )

    def test_server_timeout(self) -> None:
        """A server that does not answer within timeout server: 504, sH--."""
        client = self.connect_client()
        client.get()
        self.accept()
        self.wait(60000)
        self.assertStatus(client.received(), 504)
        [line] = self.lines()
        self.assertIn(" be/s1 0/0/0/-1/60000 504 ", line)
        self.assertIn(" sH-- 1/1/1/1/0 ", line)

    def test_connect_timeout(self) -> None:
        """A connection to the server that times out: sC--."""
        client = self.connect_client()
        client.get()
        self.refuse(TimeoutError())
        self.wait(1000)
        self.refuse(TimeoutError())
        self.assertStatus(client.received(), 502)
        [line] = self.lines()
        self.assertIn(" 0/0/-1/-1/1000 502 ", line)
        self.assertIn(" sC-- 1/1/1/1/1 ", line)

    def test_client_leaves(self) -> None:
        """A client that leaves during the response: CD--, with the status the
        server gave and the bytes sent before."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf.")
        sent = len(client.received())
        self.wait(3)
        client.channel.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(
            self.lines(),
            [
                f"192.0.2.7:50000 [27/Nov/2026:02:00:00.000] fe~ be/s1 0/0/0/0/3 "
                f'200 {sent} - - CD-- 1/1/1/1/0 0/0 "GET / HTTP/1.1"'
            ],
        )

    def test_client_timeout(self) -> None:
        """A client that stops reading the response for timeout client: cD--."""
        client = self.connect_client()
        client.get()
        server = self.accept()
        server.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf.")
        client.stop_reading()
        self.wait(60000)
        self.assertTrue(client.transport.aborted)
        client.channel.connectionLost(Failure(ConnectionLost()))
        [line] = self.lines()
        self.assertIn(" 0/0/0/0/60000 200 ", line)
        self.assertIn(" cD-- ", line)

    def test_deny(self) -> None:
        """A request denied by a rule: 403, no backend but the frontend, no
        server, the proxy's doing at the request stage (PR--)."""
        client = self.connect_client()
        client.get(b"/admin")
        sent = len(client.received())
        self.assertEqual(
            self.lines(),
            [
                f"192.0.2.7:50000 [27/Nov/2026:02:00:00.000] fe~ fe/<NOSRV> "
                f'0/-1/-1/-1/0 403 {sent} - - PR-- 1/1/0/0/0 0/0 "GET /admin HTTP/1.1"'
            ],
        )

    def test_redirect(self) -> None:
        """A redirect: its code, answered locally at the request stage (LR--)."""
        client = self.connect_client()
        client.get(b"/old")
        sent = len(client.received())
        self.assertEqual(
            self.lines(),
            [
                f"192.0.2.7:50000 [27/Nov/2026:02:00:00.000] fe~ fe/<NOSRV> "
                f'0/-1/-1/-1/0 301 {sent} - - LR-- 1/1/0/0/0 0/0 "GET /old HTTP/1.1"'
            ],
        )

    def test_no_server(self) -> None:
        """A backend without a server to serve: 503, <NOSRV>, SC-- as HAProxy."""
        client = self.connect_client()
        client.get(b"/empty")
        sent = len(client.received())
        self.assertEqual(
            self.lines(),
            [
                f"192.0.2.7:50000 [27/Nov/2026:02:00:00.000] fe~ empty/<NOSRV> "
                f"0/-1/-1/-1/0 503 {sent} - - SC-- 1/1/1/0/0 0/0 "
                '"GET /empty HTTP/1.1"'
            ],
        )

    def test_no_line_without_format(self) -> None:
        """Without 'option httplog' or 'log-format', no access log line."""
        self.frontend.log_format = None
        client = self.connect_client()
        client.get()
        self.accept().respond(OK)
        self.assertEqual(self.lines(), [])

    def test_event(self) -> None:
        """The line is an info event in the certlb.access namespace, whose
        text is the line (so twistd's --logfile and --syslog take it)."""
        client = self.connect_client()
        client.get(b"/admin")
        [event] = [e for e in self.events if e.get("log_namespace") == "certlb.access"]
        self.assertEqual(event["log_level"].name, "info")
        self.assertEqual(event["log_format"], "{line}")
        self.assertEqual(event["frontend"], "fe")


class LogDateTests(AccessLogTestCase):
    def test_log_date(self) -> None:
        """Dates are written as HAProxy's, with milliseconds, months in English."""
        self.assertEqual(log_date(NOW + 0.0456), "27/Nov/2026:02:00:00.046")
        self.assertEqual(log_date(NOW + 0.9996), "27/Nov/2026:02:00:01.000")


CUSTOM = """\
    frontend fe
        mode http
        bind 127.0.0.1:8443
        log-format "%ci %{+Q}[ssl_c_s_dn(cn)] verify=%[ssl_c_verify] %ST %ts %HM %HP%HQ"
        default_backend be
    backend be
        mode http
        server s1 10.0.0.1:80
"""


class LogFormatTests(AccessLogTestCase):
    config_text = CUSTOM

    def test_certificate_fields(self) -> None:
        """A log-format line with the client certificate's CN and its
        verification result, and request aliases."""
        certificate = pki().clients["expired"].certificate
        tls = ClientCertState(
            has_crt=True, used=True, verify=10, crt_err=10, certificate=certificate
        )
        client = self.connect_client(tls)
        client.get(b"/a?b=1")
        self.accept().respond(OK)
        self.assertEqual(
            self.lines(),
            ['192.0.2.7 "certlb expired client" verify=10 200 -- GET /a?b=1'],
        )

    def test_without_certificate(self) -> None:
        """Missing values are '-', or '""' when quoted."""
        client = self.connect_client()
        client.get()
        self.accept().respond(OK)
        self.assertEqual(self.lines(), ['192.0.2.7 "" verify=0 200 -- GET /-'])


class ParserTests(SynchronousTestCase):
    def parse(self, text: str) -> tuple[Config, list[str]]:
        config, problems = parse_config(textwrap.dedent(text), "t.cfg", environ={})
        return config, [str(p) for p in problems]

    def test_log_global_and_no_log(self) -> None:
        """'log global' (as HAProxy configurations carry) is accepted; 'no
        log' silences a frontend's access lines; 'log global' in the global
        section is an error."""
        config, problems = self.parse(
            """\
            defaults
              mode http
              log global
              option httplog
            frontend a
              bind :80
              default_backend b
            frontend c
              bind :81
              no log
              default_backend b
            backend b
              log global
              server s h:80
            """
        )
        self.assertEqual(problems, [])
        self.assertIsNotNone(config.frontends[0].log_format)
        self.assertIsNone(config.frontends[1].log_format)
        _, problems = self.parse("global\n  log 127.0.0.1:514 local0\n  log global\n")
        self.assertEqual(
            problems,
            [
                "t.cfg:3: error: 'log global' refers to the global section's logs: "
                "it belongs in defaults, frontend, listen or backend sections",
            ],
        )

    def test_option_httplog(self) -> None:
        """'option httplog' in defaults gives HAProxy's HTTP log format to the
        frontends after it; 'no option httplog' takes it back."""
        config, problems = self.parse(
            """\
            defaults
              mode http
              option httplog
            frontend a
              bind :80
              default_backend b
            frontend c
              bind :81
              no option httplog
              default_backend b
            backend b
              server s h:80
            """
        )
        self.assertEqual(problems, [])
        a, c = config.frontends
        self.assertEqual(
            a.log_format,
            "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc "
            "%ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r",
        )
        self.assertIsNone(c.log_format)

    def test_log_format_overrides(self) -> None:
        """'log-format' replaces the format of 'option httplog'."""
        config, problems = self.parse(
            """\
            frontend a
              mode http
              bind :80
              option httplog
              log-format "%ci %ST"
              default_backend b
            backend b
              mode http
              server s h:80
            """
        )
        self.assertEqual((config.frontends[0].log_format, problems), ("%ci %ST", []))

    def test_errors(self) -> None:
        """Errors give the line and the column of the fault, and what to write."""
        _, problems = self.parse(
            """\
            frontend a
              mode http
              bind :80
              log-format "%ci %Tx"
              default_backend b
            frontend c
              mode http
              bind :81
              log-format %ci %ST
              option httplog clf
              default_backend b
            backend b
              mode http
              option httplog
              server s h:80
            """
        )
        self.assertTrue(
            problems[0].startswith(
                "t.cfg:4: error: in log-format '%ci %Tx' at column 5: unknown "
                "alias '%Tx'; the aliases are %ci, %cp,"
            ),
            problems[0],
        )
        self.assertEqual(
            problems[1:],
            [
                "t.cfg:9: error: 'log-format' takes one string: put it in "
                "double quotes, as in 'log-format \"%ci:%cp %ST\"'",
                "t.cfg:10: error: 'option httplog clf' (the Common Log Format) "
                "is not implemented yet; write 'option httplog', or a "
                "'log-format' string",
                "t.cfg:14: warning: 'option httplog' has no effect in a "
                "backend section; it belongs in defaults, frontend or listen "
                "sections",
            ],
        )


class HandshakeFailureTests(AccessLogTestCase):
    def test_refused_certificate(self) -> None:
        """A client refused at the handshake is logged with its address and
        port, each error with its depth, and the subject and issuer of the
        certificate that failed."""
        tls = server_tls("optional")
        client = TLSClient("expired")
        clock = Clock()
        channel_factory = Factory.forProtocol(
            lambda: HTTPChannel(self.frontend, self.engine)
        )
        server_factory = TLSMemoryBIOFactory(tls, False, channel_factory, clock=clock)
        client_factory = TLSMemoryBIOFactory(
            client, True, Factory.forProtocol(Protocol), clock=clock
        )
        _, _, pump = iosim.connectedServerAndClient(
            lambda: server_factory.buildProtocol(None),
            lambda: client_factory.buildProtocol(None),
            serverTransportFactory=lambda protocol: iosim.FakeTransport(
                protocol,
                isServer=True,
                hostAddress=IPv4Address("TCP", "127.0.0.1", 8443),
                peerAddress=IPv4Address("TCP", "192.0.2.7", 50000),
            ),
            clock=clock,
        )
        pump.flush()
        [text] = [
            formatEvent(e)
            for e in self.events
            if "TLS handshake" in (e.get("log_format") or "")
        ]
        self.assertRegex(
            text,
            r"^frontend fe: TLS handshake with 192\.0\.2\.7:50000 failed: "
            r"certificate has expired \(X509_V_ERR_CERT_HAS_EXPIRED, 10\) at "
            r"depth 0 \(certificate subject /O=certlb test PKI/CN=certlb expired "
            r"client, issuer /O=certlb test PKI/CN=certlb test CA 1\)$",
        )


class ResourceDoorTests(AccessLogTestCase):
    door = "resource"

    def connect_client(
        self, tls: ClientCertState | None = WITHOUT_CERT, port: int = 50000
    ) -> Client:
        return ProxyTestCase.connect_client(self, tls, port)

    def test_normal(self) -> None:
        """Through twisted.web, the same line, but for the bytes (the body
        alone: twisted.web writes the head) and the connection counts."""
        client = self.connect_client()
        client.get()
        self.wait(4)
        self.accept().respond(OK)
        self.assertEqual(
            self.lines(),
            [
                "192.0.2.7:50000 [27/Nov/2026:02:00:00.000] fe~ be/s1 0/0/4/0/4 "
                '200 5 - - ---- 0/0/1/1/0 0/0 "GET / HTTP/1.1"'
            ],
        )


class RefusedBeforeRulesTests(AccessLogTestCase):
    def test_bad_request(self) -> None:
        """A request the HTTP parser refuses: 400, <BADREQ>, PR--, and no
        time to receive a head that never was complete (TR -1)."""
        client = self.connect_client()
        client.send(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        sent = len(client.received())
        self.assertEqual(
            self.lines(),
            [
                "192.0.2.7:50000 [27/Nov/2026:02:00:00.000] fe~ fe/<NOSRV> "
                f'-1/-1/-1/-1/0 400 {sent} - - PR-- 1/1/0/0/0 0/0 "<BADREQ>"'
            ],
        )

    def test_request_timeout(self) -> None:
        """A head not complete within timeout http-request (counted from its
        first byte): 408, cR--."""
        client = self.connect_client()
        self.wait(100)
        client.send(b"GET / HTTP/1.1\r\n")
        self.reactor.advance(self.frontend.http_request_timeout)
        sent = len(client.received())
        [line] = self.lines()
        self.assertEqual(
            line,
            "192.0.2.7:50000 [27/Nov/2026:02:00:00.100] fe~ fe/<NOSRV> "
            f"-1/-1/-1/-1/{int(self.frontend.http_request_timeout * 1000)} "
            f'408 {sent} - - cR-- 1/1/0/0/0 0/0 "<BADREQ>"',
        )


def _hostile_certificate() -> x509.Certificate:
    """A certificate whose CN and DNS name hold line breaks."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil\r\n<134>forged")])
    start = datetime.datetime(2026, 1, 1)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=999))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("a\nb.example")]), False
        )
        .sign(key, hashes.SHA256())
    )


class LogInjectionTests(AccessLogTestCase):
    config_text = """\
    frontend fe
        mode http
        bind :80
        log-format "%{+Q}[ssl_c_s_dn(cn)] %[ssl_c_san(DNS)] %ST"
        default_backend be
    backend be
        mode http
        server s1 10.0.0.1:80
"""

    def test_certificate_fields_cannot_add_lines(self) -> None:
        """A certificate's fields holding CR or LF are logged with them
        written #0D and #0A, on one line."""
        state = ClientCertState(
            has_crt=True, used=True, certificate=_hostile_certificate()
        )
        client = self.connect_client(state)
        client.get()
        self.accept().respond(OK)
        self.assertEqual(self.lines(), ['"evil#0D#0A<134>forged" a#0Ab.example 200'])
