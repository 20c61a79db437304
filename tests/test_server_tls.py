"""TLS towards servers: the server line's options, their checks, and real
OpenSSL handshakes in memory between certlb's pool or health checks and a
TLS server, over L{iosim} with a L{MemoryReactorClock}.
"""

from __future__ import annotations

import os
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from certlb.config import parse_config
from certlb.config.errors import ERROR
from certlb.config.model import SampleExpression, Server
from certlb.health.checks import CheckFailed, ConnectCheck
from certlb.health.service import connect_check
from certlb.proxy.runtime import build_backends
from certlb.proxy.upstream import ConnectionPool, UpstreamConnection, UpstreamError
from certlb.rules.acl import RuleError
from certlb.rules.context import ConnectionInfo, RequestContext
from certlb.tls.client import UpstreamTLS
from certlb.tls.names import compile_sni, name_mismatch
from tests.helpers import pki, pki_dir, pki_files


def parse_server(options: str) -> tuple[Server | None, list[str]]:
    """Parse and check one server line with C{options}, written next to the
    test PKI; return the server and the problems' messages."""
    text = f"backend b\n mode http\n server s 127.0.0.1:8443 {options}\n"
    config, problems = parse_config(text, os.path.join(pki_dir(), "t.cfg"), {})
    servers = config.backends[0].servers if config.backends else ()
    return (servers[0] if servers else None), [str(p) for p in problems]


def tls_for(options: str) -> UpstreamTLS:
    """The TLS settings of a server line, which must have no problem."""
    server, problems = parse_server(options)
    assert server is not None and problems == [], problems
    return UpstreamTLS.for_server(server)


def request(host: str | None) -> RequestContext:
    headers = [] if host is None else [("Host", host)]
    connection = ConnectionInfo(("10.0.0.9", 5000), ("127.0.0.1", 443), "fe")
    return RequestContext("GET", "/", "HTTP/1.1", headers, connection)


@implementer(IOpenSSLServerConnectionCreator)
class Backend:
    """A TLS server with certificate C{crt} (a file of the test PKI) that
    requires a client certificate from C{require}'s CAs, if given.

    @ivar connection: its OpenSSL connection of the last handshake.
    """

    def __init__(self, crt: str = "server.pem", require: str | None = None) -> None:
        files = pki_files()
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.use_certificate_chain_file(files[crt])
        context.use_privatekey_file(files[crt])
        if require is not None:
            context.load_verify_locations(files[require])
            context.set_verify(
                SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                lambda connection, certificate, code, depth, ok: bool(ok),
            )
        self.context = context
        self.connection: SSL.Connection | None = None

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        self.connection = SSL.Connection(self.context, None)
        return self.connection

    @property
    def sni(self) -> bytes | None:
        assert self.connection is not None
        return self.connection.get_servername()

    @property
    def client_cn(self) -> str | None:
        assert self.connection is not None
        certificate = self.connection.get_peer_certificate()
        return None if certificate is None else certificate.get_subject().CN


def complete(reactor: MemoryReactorClock, backend: Backend) -> iosim.IOPump:
    """Connect the last connection C{reactor} was asked for to C{backend},
    in memory, and let both sides talk."""
    _, _, factory, _, _ = reactor.tcpClients[-1]
    server_factory = TLSMemoryBIOFactory(
        backend, False, Factory.forProtocol(Protocol), clock=reactor
    )
    client = factory.buildProtocol(None)
    server = server_factory.buildProtocol(None)
    pump = iosim.connect(
        server,
        iosim.makeFakeServer(server),
        client,
        iosim.makeFakeClient(client),
        clock=reactor,
    )
    pump.flush()
    return pump


class PoolHarness:
    """A pool on a memory reactor, whose connections go to a L{Backend}."""

    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()
        self.pool = ConnectionPool(self.reactor)

    def connect(
        self,
        tls: UpstreamTLS,
        backend: Backend,
        context: RequestContext | None = None,
    ) -> Any:
        d = self.pool.acquire("127.0.0.1", 8443, 5.0, False, tls, context)
        complete(self.reactor, backend)
        return d


class ParserTests(SynchronousTestCase):
    def test_every_option(self) -> None:
        """Each TLS option of a server lands in its field, files resolved
        against the configuration's directory."""
        server, problems = parse_server(
            "ssl verify required ca-file ./ca.crt crl-file ca_crl.pem "
            "crt client1.pem sni req.hdr(host) verifyhost www.example.com "
            "check-sni check.example.com ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3"
        )
        self.assertEqual(problems, [])
        assert server is not None
        files = pki_files()
        self.assertEqual(
            (
                server.ssl,
                server.verify,
                server.ca_file,
                server.crl_file,
                server.crt,
                str(server.sni),
                server.verifyhost,
                server.check_sni,
                server.ssl_min_ver,
                server.ssl_max_ver,
            ),
            (
                True,
                "required",
                files["ca.crt"],
                files["ca_crl.pem"],
                files["client1.pem"],
                "req.hdr(host)",
                "www.example.com",
                "check.example.com",
                "TLSv1.2",
                "TLSv1.3",
            ),
        )

    def test_defaults(self) -> None:
        """Without options a server has no TLS; C{verify} unwritten means
        C{required}."""
        server, _ = parse_server("")
        assert server is not None
        self.assertEqual(
            (server.ssl, server.verify, server.verifies), (False, None, True)
        )

    def test_no_ssl(self) -> None:
        """C{no-ssl} and C{no-check-ssl} cancel C{ssl} and C{check-ssl}
        written before them on the line."""
        server, problems = parse_server("ssl check-ssl no-ssl no-check-ssl")
        self.assertEqual(problems, [])
        assert server is not None
        self.assertEqual((server.ssl, server.check_ssl), (False, False))

    def test_bad_verify(self) -> None:
        """C{verify optional} is a bind's mode, not a server's."""
        _, problems = parse_server("ssl verify optional ca-file ca.crt")
        self.assertEqual(
            problems,
            [
                f"{pki_dir()}/t.cfg:3: error: 'optional' is not a server verify "
                "mode; use one of none, required"
            ],
        )

    def test_old_tls_versions(self) -> None:
        """TLS versions below 1.2 are refused by name; unknown ones are not
        versions."""
        _, problems = parse_server("ssl verify none ssl-min-ver TLSv1.0")
        self.assertIn(
            "certlb does not speak TLSv1.0, which is no longer safe; use "
            "TLSv1.2 or TLSv1.3",
            problems[0],
        )
        _, problems = parse_server("ssl verify none ssl-max-ver TLS1.3")
        self.assertIn("'TLS1.3' is not a TLS version", problems[0])
        self.assertIn("did you mean 'TLSv1.3'", problems[0])

    def test_missing_values(self) -> None:
        """Options that take a value say so when it is missing."""
        for option in ("ca-file", "crt", "sni", "verifyhost", "verify"):
            _, problems = parse_server(f"ssl {option}")
            self.assertEqual(len(problems), 1, option)
            self.assertIn(f"'{option}'", problems[0])

    def test_bad_sni_expression(self) -> None:
        """A C{sni} that is not a sample expression is refused where it is
        written."""
        _, problems = parse_server("ssl verify none sni req.hdr(host")
        self.assertEqual(len(problems), 1)
        self.assertIn(":3: error:", problems[0])


class CheckerTests(SynchronousTestCase):
    def test_ssl_needs_ca_file(self) -> None:
        """As HAProxy, C{ssl} verifies by default, which needs a C{ca-file}:
        the error names the line and says what to add."""
        _, problems = parse_server("ssl")
        self.assertEqual(
            problems,
            [
                f"{pki_dir()}/t.cfg:3: error: server 's': its certificate is "
                "verified by default ('verify required'), which needs the CAs "
                "it must come from; add 'ca-file FILE', or 'verify none' to "
                "accept any certificate (anyone in between could then read and "
                "change the traffic)"
            ],
        )

    def test_check_ssl_needs_ca_file(self) -> None:
        """C{check-ssl} uses the server's TLS settings, so it needs a
        C{ca-file} too, or C{verify none}."""
        _, problems = parse_server("check check-ssl")
        self.assertIn("add 'ca-file FILE'", problems[0])
        _, problems = parse_server("check check-ssl verify none")
        self.assertEqual(problems, [])

    def test_options_need_ssl(self) -> None:
        """TLS options without C{ssl} are errors that say to add it."""
        _, problems = parse_server("ca-file ca.crt crt client1.pem verify none")
        self.assertEqual(len(problems), 1)
        self.assertIn(
            "'verify', 'ca-file' and 'crt' need TLS; add 'ssl' to this server line",
            problems[0],
        )

    def test_file_problems(self) -> None:
        """Missing or wrong files are reported, each with its reason."""
        _, problems = parse_server(
            "ssl ca-file missing.crt crt ca.crt crl-file client1.crt"
        )
        text = "\n".join(problems)
        self.assertIn("CA file", text)
        self.assertIn("missing.crt' does not exist", text)
        self.assertIn("has no private key", text)
        self.assertIn("holds certificates but no CRL", text)

    def test_verify_none_ignores(self) -> None:
        """C{ca-file}, C{crl-file} and C{verifyhost} do nothing with C{verify
        none}: a warning says so."""
        _, problems = parse_server("ssl verify none ca-file ca.crt verifyhost x")
        self.assertEqual(len(problems), 1)
        self.assertIn(
            "warning: server 's': 'ca-file' and 'verifyhost' have no effect with "
            "'verify none'",
            problems[0],
        )

    def test_sni_must_compile(self) -> None:
        """An unknown fetch in C{sni}, or a C{str} without one name, is an
        error."""
        _, problems = parse_server("ssl verify none sni nosuchfetch")
        self.assertIn("server 's': 'sni': unknown fetch 'nosuchfetch'", problems[0])
        _, problems = parse_server("ssl verify none sni str()")
        self.assertIn("'str' takes one name", problems[0])

    def test_versions_in_order(self) -> None:
        """C{ssl-min-ver} above C{ssl-max-ver} is an error."""
        _, problems = parse_server(
            "ssl verify none ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.2"
        )
        self.assertIn(
            "'ssl-min-ver TLSv1.3' is above 'ssl-max-ver TLSv1.2'", problems[0]
        )

    def test_valid_line(self) -> None:
        """A complete line has no problem."""
        _, problems = parse_server(
            "ssl ca-file ca.crt crl-file ca_crl.pem crt client1.pem sni str(localhost)"
        )
        self.assertEqual([p for p in problems if ERROR in p], [])


class NameTests(SynchronousTestCase):
    def test_sni_constant(self) -> None:
        """C{str(NAME)} is a constant, also for health checks."""
        sni, constant = compile_sni(SampleExpression("str", ("www.example.com",)))
        self.assertEqual((sni(None), constant), ("www.example.com", "www.example.com"))

    def test_sni_per_request(self) -> None:
        """C{req.hdr(host)} gives the request's Host, and nothing without one
        or without a request."""
        sni, constant = compile_sni(SampleExpression("req.hdr", ("host",)))
        self.assertIsNone(constant)
        self.assertEqual(sni(request("app.example")), "app.example")
        self.assertIsNone(sni(request(None)))
        self.assertIsNone(sni(None))

    def test_sni_unknown(self) -> None:
        """An unknown fetch does not compile."""
        self.assertRaises(RuleError, compile_sni, SampleExpression("nosuch"))

    def test_name_mismatch(self) -> None:
        """The server certificate is for localhost and 127.0.0.1, not for
        another name or address."""
        certificate = pki().server.certificate
        self.assertIsNone(name_mismatch(certificate, "localhost"))
        self.assertIsNone(name_mismatch(certificate, "127.0.0.1"))
        why = name_mismatch(certificate, "www.example.com")
        assert why is not None
        self.assertTrue(why.startswith("certificate name mismatch: "), why)
        self.assertIn("not for www.example.com", why)
        self.assertIn("localhost, 127.0.0.1", why)
        self.assertIsNotNone(name_mismatch(certificate, "10.0.0.1"))

    def test_expected_name(self) -> None:
        """The name checked is the SNI sent, else C{verifyhost}, else the
        server's address; none with C{verify none}."""
        tls = tls_for("ssl ca-file ca.crt")
        self.assertEqual(tls.expected_name(None), "127.0.0.1")
        self.assertEqual(tls.expected_name("a.example"), "a.example")
        tls = tls_for("ssl ca-file ca.crt verifyhost v.example")
        self.assertEqual(tls.expected_name(None), "v.example")
        self.assertEqual(tls.expected_name("a.example"), "a.example")
        # An address (from a client's Host, say) is not sent as SNI, so it
        # is not what is checked either.
        self.assertEqual(tls.expected_name("192.0.2.7"), "v.example")
        self.assertIsNone(tls_for("ssl verify none").expected_name("a.example"))

    def test_connector_interface(self) -> None:
        """What the pool gives Twisted is an IOpenSSLClientConnectionCreator."""
        from twisted.internet.interfaces import IOpenSSLClientConnectionCreator

        connector = tls_for("ssl verify none").connector(None)
        self.assertTrue(verifyObject(IOpenSSLClientConnectionCreator, connector))


class HandshakeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = PoolHarness()

    def test_trusted_server(self) -> None:
        """A server whose certificate comes from the ca-file and holds its
        address gives a connection once the handshake is done."""
        d = self.harness.connect(tls_for("ssl ca-file ca.crt"), Backend())
        connection = self.successResultOf(d)
        self.assertIsInstance(connection, UpstreamConnection)
        self.assertIsNone(connection.ready)
        self.assertTrue(connection.connected)

    def test_untrusted_server(self) -> None:
        """A certificate from another CA fails the connection, with
        OpenSSL's reason, as a connection failure."""
        d = self.harness.connect(
            tls_for("ssl ca-file ca.crt"), Backend("untrusted.pem")
        )
        error = self.failureResultOf(d, UpstreamError).value
        self.assertEqual((error.status, error.event), (502, "conn-failure"))
        self.assertEqual(
            error.why,
            "127.0.0.1:8443: TLS handshake failed: certificate verify failed: "
            "unable to get local issuer certificate (error 20 at depth 0)",
        )

    def test_verify_none(self) -> None:
        """C{verify none} takes any certificate."""
        d = self.harness.connect(tls_for("ssl verify none"), Backend("untrusted.pem"))
        self.assertIsInstance(self.successResultOf(d), UpstreamConnection)

    def test_name_mismatch(self) -> None:
        """A trusted certificate for another name fails the connection."""
        tls = tls_for("ssl ca-file ca.crt verifyhost www.example.com")
        d = self.harness.connect(tls, Backend())
        error = self.failureResultOf(d, UpstreamError).value
        self.assertEqual(error.event, "conn-failure")
        self.assertIn(
            "TLS handshake failed: certificate name mismatch: the server's "
            "certificate is for localhost, 127.0.0.1, ::1, not for www.example.com",
            error.why,
        )

    def test_sni_sent_and_checked(self) -> None:
        """The SNI of the request is sent, and the certificate checked
        against it."""
        backend = Backend()
        tls = tls_for("ssl ca-file ca.crt sni req.hdr(host)")
        d = self.harness.connect(tls, backend, request("localhost"))
        self.successResultOf(d)
        self.assertEqual(backend.sni, b"localhost")
        d = self.harness.connect(tls, backend, request("other.example"))
        self.assertIn("not for other.example", self.failureResultOf(d).value.why)

    def test_no_sni_for_addresses(self) -> None:
        """An IP address is not sent as SNI (RFC 6066), but still checked."""
        backend = Backend()
        d = self.harness.connect(
            tls_for("ssl ca-file ca.crt sni str(127.0.0.1)"), backend
        )
        self.successResultOf(d)
        self.assertIsNone(backend.sni)

    def test_client_certificate(self) -> None:
        """C{crt} is presented to a server that asks for a certificate."""
        backend = Backend(require="ca.crt")
        d = self.harness.connect(tls_for("ssl ca-file ca.crt crt client1.pem"), backend)
        self.successResultOf(d)
        self.assertEqual(backend.client_cn, _cn("client1"))

    def test_crl_for_the_whole_chain(self) -> None:
        """With a C{crl-file}, the CA of the server needs its CRL there."""
        d = self.harness.connect(
            tls_for("ssl ca-file ca.crt crl-file ca_crl.pem"), Backend()
        )
        self.successResultOf(d)
        d = self.harness.connect(
            tls_for("ssl ca-file ca.crt crl-file intermediate_crl.pem"), Backend()
        )
        self.assertIn(
            "certificate verify failed: unable to get certificate CRL (error 3",
            self.failureResultOf(d, UpstreamError).value.why,
        )

    def test_tls_versions(self) -> None:
        """C{ssl-max-ver TLSv1.2} keeps the connection to TLS 1.2."""
        backend = Backend()
        d = self.harness.connect(
            tls_for("ssl ca-file ca.crt ssl-max-ver TLSv1.2"), backend
        )
        self.successResultOf(d)
        assert backend.connection is not None
        self.assertEqual(backend.connection.get_protocol_version_name(), "TLSv1.2")

    def test_pooled_by_sni(self) -> None:
        """A kept connection serves the next request of the same SNI only;
        the pool keeps no entry for names without connections."""
        pool = self.harness.pool
        tls = tls_for("ssl ca-file ca.crt sni req.hdr(host)")
        connection = self.successResultOf(
            self.harness.connect(tls, Backend(), request("localhost"))
        )
        pool.release(connection)
        again = pool.acquire("127.0.0.1", 8443, 5.0, False, tls, request("localhost"))
        self.assertIs(self.successResultOf(again), connection)
        self.assertEqual(pool._idle, {})
        other = pool.acquire("127.0.0.1", 8443, 5.0, False, tls, request("127.0.0.1"))
        self.assertNoResult(other)

    def test_handshake_timeout(self) -> None:
        """A handshake that does not end within C{timeout connect} fails the
        connection."""
        reactor = self.harness.reactor
        tls = tls_for("ssl ca-file ca.crt")
        d = self.harness.pool.acquire("127.0.0.1", 8443, 2.0, False, tls)
        _, _, factory, _, _ = reactor.tcpClients[-1]
        client = factory.buildProtocol(None)
        assert client is not None
        client.makeConnection(StringTransport())  # a server that says nothing
        self.assertNoResult(d)
        reactor.advance(2)
        error = self.failureResultOf(d, UpstreamError).value
        self.assertEqual(error.event, "conn-failure")
        self.assertIn("TLS handshake with 127.0.0.1:8443 not done after 2s", error.why)

    def test_refused_after_handshake(self) -> None:
        """A TLS alert instead of a response (a TLS 1.3 server refusing the
        client's certificate) is a connection failure, with its reason."""
        failures: list[UpstreamError] = []

        class Handler:
            def response_failed(self, failure: UpstreamError, connection: Any) -> None:
                failures.append(failure)

        connection = UpstreamConnection(self.harness.pool, ("h", 1))
        connection.makeConnection(StringTransport())
        connection.send(Handler(), b"GET / HTTP/1.1\r\n\r\n", None, "none", False, 5)  # type: ignore[arg-type]
        alert = SSL.Error([("SSL routines", "", "tlsv13 alert certificate required")])
        connection.connectionLost(Failure(alert))
        self.assertEqual(
            [(f.event, f.why) for f in failures],
            [
                (
                    "conn-failure",
                    "the server refused the TLS connection: tlsv13 alert "
                    "certificate required",
                )
            ],
        )


def _cn(name: str) -> str:
    from cryptography.x509.oid import NameOID

    certificate = pki().clients[name].certificate
    (cn,) = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn.value)


class HealthCheckTests(SynchronousTestCase):
    def check(self, options: str, backend: Backend) -> Any:
        reactor = MemoryReactorClock()
        server, problems = parse_server(options)
        assert server is not None and problems == [], problems
        tls = UpstreamTLS.for_server(server)
        check = ConnectCheck(reactor, "127.0.0.1", 8443, 5.0, tls=True, client_tls=tls)
        d = check.run()
        complete(reactor, backend)
        return d

    def test_good_certificate(self) -> None:
        """A check over TLS passes on a server certlb trusts."""
        d = self.check("ssl check ca-file ca.crt", Backend())
        self.assertEqual(self.successResultOf(d), "TLS handshake done")

    def test_bad_certificate(self) -> None:
        """A check over TLS fails, with the reason, on a server whose
        certificate certlb would refuse."""
        d = self.check("ssl check ca-file ca.crt", Backend("untrusted.pem"))
        self.assertEqual(
            self.failureResultOf(d, CheckFailed).value.why,
            "TLS handshake failed: certificate verify failed: unable to get "
            "local issuer certificate (error 20 at depth 0)",
        )

    def test_check_sni(self) -> None:
        """Checks send C{check-sni}, and check the certificate against it."""
        backend = Backend()
        d = self.check("ssl check ca-file ca.crt check-sni localhost", backend)
        self.successResultOf(d)
        self.assertEqual(backend.sni, b"localhost")

    def test_settings_from_the_server(self) -> None:
        """A server with C{ssl} is checked over TLS with its own settings,
        unless checks go elsewhere (C{port}); C{check-ssl} forces TLS."""
        text = (
            "backend b\n mode http\n"
            " server a 127.0.0.1:1 ssl check ca-file ca.crt\n"
            " server b 127.0.0.1:2 ssl check ca-file ca.crt port 80\n"
            " server c 127.0.0.1:3 ssl check ca-file ca.crt port 80 check-ssl\n"
        )
        config, problems = parse_config(text, os.path.join(pki_dir(), "t.cfg"), {})
        self.assertEqual(problems, [])
        backend = build_backends(config)["b"]
        reactor = MemoryReactorClock()
        checks = [
            connect_check(s.spec, backend, reactor, s.tls)  # type: ignore[arg-type]
            for s in backend.servers
        ]
        self.assertEqual([c.tls for c in checks], [True, False, True])
        self.assertIs(checks[0].client_tls, backend.servers[0].tls)
        self.assertIsNone(checks[1].client_tls)


class BoundaryTests(SynchronousTestCase):
    def test_client_tls_knows_no_http(self) -> None:
        """TLS towards servers imports nothing of HTTP (certlb.proxy,
        twisted.web), and the name checks nothing of twisted.internet."""
        from tests.test_boundaries import _closure

        imported = _closure("certlb.tls.client")
        http = [m for m in imported if m.startswith(("certlb.proxy", "twisted.web"))]
        self.assertEqual(http, [])
        imported = _closure("certlb.tls.names")
        self.assertEqual([m for m in imported if m.startswith("twisted.internet")], [])
