"""TLS termination in memory: handshakes, client certificates, resumption.

Each test runs real OpenSSL handshakes between certlb's L{ServerTLS} and a
small client of its own, over L{iosim} instead of sockets, with a L{Clock}
instead of the reactor.
"""

from __future__ import annotations

import os
import re

import attrs
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransport
from twisted.logger import globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from certlb.tls.server import CIPHERS, ServerTLS, build_context
from certlb.tls.state import (
    ALL,
    ClientCertState,
    VerifyError,
    VerifyPolicy,
    VerifyRecord,
    client_cert_state,
    verify_record,
)
from tests.helpers import pki, pki_files

CLIENTS = (
    None,
    "client1",
    "client2",
    "client3",
    "expired",
    "notyetvalid",
    "revoked",
    "selfsigned",
    "untrusted",
)
CLIENT_HELLO = b"hello from the client"
SERVER_HELLO = b"hello from the server"


def server_tls(verify: str, ca_file: str = "ca.crt") -> ServerTLS:
    """The TLS side of a bind C{ssl crt server.pem ca-file CA_FILE verify VERIFY}."""
    files = pki_files()
    return ServerTLS.for_bind(files["server.pem"], files[ca_file], verify, "test")


@implementer(IOpenSSLClientConnectionCreator)
class Client:
    """A TLS client that trusts CA 1, checks the server's certificate, and
    presents the certificate of client C{name} (or none).

    @ivar server_checks: how many times this client's verify callback ran on
        the server's chain: twice per full handshake, never on a resumed one.
    @ivar connection: the OpenSSL connection of the last handshake.
    @ivar session: the session offered in the next handshake, if any.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        version: int | None = None,
        max_version: int | None = None,
        alpn: list[bytes] | None = None,
    ) -> None:
        files = pki_files()
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.load_verify_locations(files["ca.crt"])
        context.set_verify(SSL.VERIFY_PEER, self._verify)
        if name is not None:
            context.use_certificate_file(files[f"{name}.crt"])
            context.use_privatekey_file(files[f"{name}.key"])
        if version is not None:
            context.set_min_proto_version(version)
            context.set_max_proto_version(version)
        if max_version is not None:
            context.set_max_proto_version(max_version)
            # Without this, OpenSSL would not even offer versions below 1.2.
            context.set_cipher_list(b"DEFAULT@SECLEVEL=0")
        if alpn is not None:
            context.set_alpn_protos(alpn)
        self.context = context
        self.server_checks = 0
        self.connection: SSL.Connection | None = None
        self.session: SSL.Session | None = None

    def _verify(
        self,
        connection: SSL.Connection,
        certificate: object,
        code: int,
        depth: int,
        ok: int,
    ) -> bool:
        self.server_checks += 1
        return bool(ok)

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        connection.set_tlsext_host_name(b"localhost")
        if self.session is not None:
            connection.set_session(self.session)
        self.connection = connection
        return connection


class Peer(Protocol):
    """One side's application: sends C{greeting}, keeps what it receives and
    why its connection ended."""

    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting
        self.received = b""
        self.reason: Failure | None = None
        self.record: VerifyRecord | None = None

    def connectionMade(self) -> None:
        # Before the handshake: the record outlives a failed one, the
        # transport's accessor does not.
        self.record = verify_record(self.transport)
        self.transport.write(self.greeting)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason


def ssl_reasons(reason: Failure | None) -> list[str]:
    """OpenSSL's reasons in a connection-lost C{reason}, if it is an SSL error."""
    if reason is None or not isinstance(reason.value, SSL.Error):
        return []
    return [str(error[2]) for error in reason.value.args[0]]


@attrs.frozen
class Accepted:
    """A handshake that let data flow both ways, and the state it left."""

    has_crt: bool
    used: bool
    cn: str | None
    verify: int = 0


@attrs.frozen
class Refused:
    """A handshake that failed: the errors recorded, the client's alert."""

    errors: tuple[tuple[int, int], ...]
    alert: str | None


def accepted(name: str | None) -> Accepted:
    """How client C{name} (C{None}: no certificate) looks once accepted."""
    if name is None:
        return Accepted(has_crt=False, used=False, cn=None)
    return Accepted(has_crt=True, used=True, cn=f"certlb {name} client")


@attrs.define
class Handshake:
    """One in-memory TLS connection between a L{ServerTLS} and a L{Client}."""

    server: Peer
    client: Peer

    @property
    def accepted(self) -> bool:
        """Both greetings went through and the server kept the connection."""
        return (
            self.server.reason is None
            and self.server.received == CLIENT_HELLO
            and self.client.received == SERVER_HELLO
        )

    @property
    def state(self) -> ClientCertState | None:
        """The server side's L{ClientCertState}, through the HTTP accessor."""
        return client_cert_state(self.server.transport)

    @property
    def alert(self) -> str | None:
        """The alert the client got, as in C{"unknown ca"}, if any."""
        for text in ssl_reasons(self.client.reason):
            match = re.search(r"\balert (.+)$", text)
            if match:
                return match.group(1)
        return None

    def outcome(self) -> Accepted | Refused:
        """What a user sees: accepted with a state, or refused with errors."""
        if self.accepted:
            state = self.state
            assert state is not None
            return Accepted(
                has_crt=state.has_crt,
                used=state.used,
                cn=common_name(state),
                verify=state.verify,
            )
        if not ssl_reasons(self.server.reason) or self.server.record is None:
            raise AssertionError(f"neither accepted nor refused by TLS: {self}")
        errors = tuple((e.code, e.depth) for e in self.server.record.errors)
        return Refused(errors, self.alert)


def common_name(state: ClientCertState) -> str | None:
    """The CN of the client's certificate, if it has one."""
    if state.certificate is None:
        return None
    (cn,) = state.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn.value)


def handshake(tls: ServerTLS, client: Client) -> Handshake:
    """Connect C{client} to C{tls} in memory and let both sides talk."""
    clock = Clock()
    server, client_side = Peer(SERVER_HELLO), Peer(CLIENT_HELLO)
    server_factory = TLSMemoryBIOFactory(
        tls, False, Factory.forProtocol(lambda: server), clock=clock
    )
    client_factory = TLSMemoryBIOFactory(
        client, True, Factory.forProtocol(lambda: client_side), clock=clock
    )
    _, _, pump = iosim.connectedServerAndClient(
        lambda: server_factory.buildProtocol(None),
        lambda: client_factory.buildProtocol(None),
        clock=clock,
    )
    pump.flush()
    return Handshake(server, client_side)


def matrix(
    verify: str, ca_file: str = "ca.crt"
) -> dict[str | None, Accepted | Refused]:
    """The outcome of every client of the test PKI against one bind."""
    tls = server_tls(verify, ca_file)
    return {name: handshake(tls, Client(name)).outcome() for name in CLIENTS}


# What HAProxy users expect of `verify optional` with CA 1 alone: no
# certificate is fine, any verification error refuses the handshake.  The
# revoked client is accepted: no CRL is configured.
OPTIONAL_WITH_CA1: dict[str | None, Accepted | Refused] = {
    None: accepted(None),
    "client1": accepted("client1"),
    "client2": accepted("client2"),
    "client3": Refused(((20, 0),), "unknown ca"),
    "expired": Refused(((10, 0),), "certificate expired"),
    "notyetvalid": Refused(((9, 0),), "bad certificate"),
    "revoked": accepted("revoked"),
    "selfsigned": Refused(((18, 0),), "unknown ca"),
    "untrusted": Refused(((20, 0),), "unknown ca"),
}


class VerifyModeTests(SynchronousTestCase):
    def test_verify_none(self) -> None:
        """verify none accepts every client and asks none for a certificate,
        even one that has a certificate to give."""
        self.assertEqual(matrix("none"), {name: accepted(None) for name in CLIENTS})

    def test_verify_optional(self) -> None:
        """verify optional accepts no certificate and good ones, and refuses
        every certificate that fails verification, with its error."""
        self.assertEqual(matrix("optional"), OPTIONAL_WITH_CA1)

    def test_verify_required(self) -> None:
        """verify required is optional that refuses a client without a
        certificate."""
        expected = dict(OPTIONAL_WITH_CA1)
        expected[None] = Refused((), "certificate required")
        self.assertEqual(matrix("required"), expected)

    def test_several_cas(self) -> None:
        """With CA 1 and CA 2 in ca-file, client3 (from CA 2) is accepted too,
        under optional and required."""
        expected = {**OPTIONAL_WITH_CA1, "client3": accepted("client3")}
        self.assertEqual(matrix("optional", "ca.pem"), expected)
        expected[None] = Refused((), "certificate required")
        self.assertEqual(matrix("required", "ca.pem"), expected)

    def test_server_reasons(self) -> None:
        """A refused handshake ends the server side's connection with an
        OpenSSL error saying why."""
        refused = handshake(server_tls("optional"), Client("expired"))
        self.assertEqual(
            ssl_reasons(refused.server.reason), ["certificate verify failed"]
        )
        self.assertEqual(refused.client.received, b"")
        self.assertEqual(refused.server.received, b"")
        missing = handshake(server_tls("required"), Client())
        self.assertEqual(
            ssl_reasons(missing.server.reason), ["peer did not return a certificate"]
        )


class ClientCertStateTests(SynchronousTestCase):
    def test_valid_certificate(self) -> None:
        """After client1's handshake, the state says a good certificate was
        presented and used, with no error, and names the TLS session."""
        result = handshake(server_tls("optional"), Client("client1"))
        self.assertTrue(result.accepted)
        state = result.state
        assert state is not None
        self.assertEqual(
            (state.has_crt, state.used, state.verify, state.crt_err, state.ca_err),
            (True, True, 0, 0, 0),
        )
        self.assertEqual((state.ca_err_depth, state.errors), (0, ()))
        self.assertEqual(common_name(state), "certlb client1 client")
        self.assertEqual(state.certificate, pki().clients["client1"].certificate)
        self.assertEqual(state.protocol, "TLSv1.3")
        self.assertIsNotNone(state.cipher)
        self.assertEqual(state.sni, "localhost")

    def test_no_certificate(self) -> None:
        """Under verify optional, a client without a certificate leaves a
        state with nothing presented, nothing used and no error."""
        result = handshake(server_tls("optional"), Client())
        self.assertTrue(result.accepted)
        state = result.state
        assert state is not None
        self.assertEqual(
            (state.has_crt, state.used, state.verify, state.certificate),
            (False, False, 0, None),
        )

    def test_state_built_once(self) -> None:
        """The state is extracted once per connection, then reused."""
        result = handshake(server_tls("optional"), Client("client1"))
        self.assertIs(result.state, result.state)

    def test_plain_transport(self) -> None:
        """A transport that is not TLS has no certificate state."""
        self.assertIsNone(client_cert_state(StringTransport()))
        self.assertIsNone(verify_record(StringTransport()))

    def test_refused_record(self) -> None:
        """After a refused handshake the record keeps the error and its depth:
        expired 10, self-signed 18, unknown CA 20, all at depth 0."""
        tls = server_tls("optional")
        for name, code in [("expired", 10), ("selfsigned", 18), ("untrusted", 20)]:
            record = handshake(tls, Client(name)).server.record
            assert record is not None
            self.assertTrue(record.presented, name)
            self.assertEqual(record.errors, [VerifyError(code, 0)], name)

    def test_error_text(self) -> None:
        """A recorded error reads as OpenSSL's meaning, name, code and depth."""
        record = handshake(server_tls("optional"), Client("expired")).server.record
        assert record is not None
        self.assertEqual(
            [str(e) for e in record.errors],
            ["certificate has expired (X509_V_ERR_CERT_HAS_EXPIRED, 10) at depth 0"],
        )


class VerifyPolicyTests(SynchronousTestCase):
    def test_default_ignores_nothing(self) -> None:
        """By default no error is ignored, at any depth."""
        policy = VerifyPolicy()
        for code in (2, 9, 10, 18, 20, 21, 23):
            for depth in (0, 1, 2):
                self.assertFalse(policy.ignores(code, depth), (code, depth))

    def test_crt_ignore_is_for_depth_zero(self) -> None:
        """crt-ignore-err codes are ignored on the client's certificate only."""
        policy = VerifyPolicy(crt_ignore=frozenset({10, 18}))
        self.assertTrue(policy.ignores(10, 0))
        self.assertTrue(policy.ignores(18, 0))
        self.assertFalse(policy.ignores(9, 0))
        self.assertFalse(policy.ignores(10, 1))
        self.assertFalse(policy.ignores(18, 2))

    def test_ca_ignore_is_for_the_chain(self) -> None:
        """ca-ignore-err codes are ignored at every depth above 0, not at 0."""
        policy = VerifyPolicy(ca_ignore=frozenset({10}))
        self.assertTrue(policy.ignores(10, 1))
        self.assertTrue(policy.ignores(10, 5))
        self.assertFalse(policy.ignores(10, 0))
        self.assertFalse(policy.ignores(9, 1))

    def test_all(self) -> None:
        """'all' ignores every code, known or not, 32 to 63 and large ones
        included, at the depths it is given for."""
        crt_all = VerifyPolicy(crt_ignore=ALL)
        ca_all = VerifyPolicy(ca_ignore=ALL)
        for code in [*range(1, 100), 1000, 2**31 - 1]:
            self.assertTrue(crt_all.ignores(code, 0), code)
            self.assertFalse(crt_all.ignores(code, 1), code)
            self.assertTrue(ca_all.ignores(code, 1), code)
            self.assertFalse(ca_all.ignores(code, 0), code)

    def policy_tls(self, policy: VerifyPolicy) -> ServerTLS:
        files = pki_files()
        context = build_context(
            files["server.pem"], files["ca.crt"], "optional", b"policy test"
        )
        return ServerTLS(context, policy)

    def test_ignored_error_accepts(self) -> None:
        """With crt-ignore-err 10, an expired client is accepted and its state
        says verify 10, crt_err 10."""
        tls = self.policy_tls(VerifyPolicy(crt_ignore=frozenset({10})))
        result = handshake(tls, Client("expired"))
        self.assertEqual(
            result.outcome(),
            Accepted(has_crt=True, used=True, cn="certlb expired client", verify=10),
        )
        state = result.state
        assert state is not None
        self.assertEqual((state.crt_err, state.ca_err, state.ca_err_depth), (10, 0, 0))
        self.assertEqual(state.errors, (VerifyError(10, 0),))

    def test_other_errors_still_refuse(self) -> None:
        """Ignoring 10 does not let a not-yet-valid (9) or untrusted (20)
        client in."""
        tls = self.policy_tls(VerifyPolicy(crt_ignore=frozenset({10})))
        self.assertEqual(
            handshake(tls, Client("notyetvalid")).outcome(),
            Refused(((9, 0),), "bad certificate"),
        )
        self.assertEqual(
            handshake(tls, Client("untrusted")).outcome(),
            Refused(((20, 0),), "unknown ca"),
        )

    def test_all_keeps_every_error(self) -> None:
        """With crt-ignore-err all, an untrusted client is accepted; its state
        keeps every error in order, crt_err the first and verify the last."""
        tls = self.policy_tls(VerifyPolicy(crt_ignore=ALL))
        result = handshake(tls, Client("untrusted"))
        self.assertTrue(result.accepted)
        state = result.state
        assert state is not None
        self.assertEqual(state.errors, (VerifyError(20, 0), VerifyError(21, 0)))
        self.assertEqual((state.crt_err, state.verify, state.ca_err), (20, 21, 0))
        self.assertEqual(common_name(state), "certlb untrusted client")


class ProtocolVersionTests(SynchronousTestCase):
    def test_tls11_refused(self) -> None:
        """A client that cannot speak TLS 1.2 or later is refused with a
        protocol version alert, before any certificate is looked at."""
        result = handshake(
            server_tls("optional"), Client("client1", max_version=SSL.TLS1_1_VERSION)
        )
        self.assertFalse(result.accepted)
        self.assertEqual(result.alert, "protocol version")
        self.assertEqual(ssl_reasons(result.server.reason), ["unsupported protocol"])
        assert result.server.record is not None
        self.assertFalse(result.server.record.presented)

    def test_tls12_accepted(self) -> None:
        """A TLS 1.2 client is accepted with one of certlb's cipher suites."""
        result = handshake(
            server_tls("optional"), Client("client1", version=SSL.TLS1_2_VERSION)
        )
        self.assertEqual(result.outcome(), accepted("client1"))
        state = result.state
        assert state is not None
        self.assertEqual(state.protocol, "TLSv1.2")
        assert state.cipher is not None
        self.assertIn(state.cipher.encode("ascii"), CIPHERS.split(b":"))


class ResumptionTests(SynchronousTestCase):
    def reconnect(self, verify: str, version: int) -> tuple[Client, Handshake]:
        """Connect client1 twice to one bind, offering the first connection's
        session the second time; the client and the second handshake."""
        tls = server_tls(verify)
        client = Client("client1", version=version)
        first = handshake(tls, client)
        self.assertTrue(first.accepted)
        self.assertEqual(client.server_checks, 2)
        assert client.connection is not None
        client.session = client.connection.get_session()
        client.server_checks = 0
        second = handshake(tls, client)
        self.assertTrue(second.accepted)
        return client, second

    def assert_resumed(self, verify: str, version: int) -> None:
        client, second = self.reconnect(verify, version)
        self.assertEqual(client.server_checks, 0, "the server's chain was checked")
        self.assertEqual(second.outcome(), accepted(None))

    def assert_full_handshake(self, verify: str, version: int) -> None:
        client, second = self.reconnect(verify, version)
        self.assertEqual(client.server_checks, 2, "the session was resumed")
        record = second.server.record
        assert record is not None
        self.assertTrue(record.presented, "the verify callback did not run")
        self.assertEqual(second.outcome(), accepted("client1"))

    def test_none_resumes_tls13(self) -> None:
        """A verify none bind resumes TLS 1.3 sessions."""
        self.assert_resumed("none", SSL.TLS1_3_VERSION)

    def test_none_resumes_tls12(self) -> None:
        """A verify none bind resumes TLS 1.2 sessions."""
        self.assert_resumed("none", SSL.TLS1_2_VERSION)

    def test_optional_no_resumption_tls13(self) -> None:
        """A verify optional bind verifies the client again on every TLS 1.3
        connection: no resumption."""
        self.assert_full_handshake("optional", SSL.TLS1_3_VERSION)

    def test_optional_no_resumption_tls12(self) -> None:
        """A verify optional bind verifies the client again on every TLS 1.2
        connection, even one offering its previous session."""
        self.assert_full_handshake("optional", SSL.TLS1_2_VERSION)

    def test_required_no_resumption_tls13(self) -> None:
        """A verify required bind verifies the client again on every TLS 1.3
        connection: no resumption."""
        self.assert_full_handshake("required", SSL.TLS1_3_VERSION)

    def test_required_no_resumption_tls12(self) -> None:
        """A verify required bind verifies the client again on every TLS 1.2
        connection, even one offering its previous session."""
        self.assert_full_handshake("required", SSL.TLS1_2_VERSION)


class VerifyCallbackFailureTests(SynchronousTestCase):
    def test_exception_refuses_and_logs(self) -> None:
        """An exception in the verify callback refuses the client and is
        logged as a failure, not lost."""

        def broken(self: VerifyRecord, code: int, depth: int, ok: bool) -> bool:
            raise RuntimeError("broken verify")

        self.patch(VerifyRecord, "verify", broken)
        # Twisted annotates trial's TestCase, but only needs addCleanup.
        events = EventLoggingObserver.createWithCleanup(
            self,  # type: ignore[arg-type]
            globalLogPublisher,
        )
        result = handshake(server_tls("optional"), Client("client1"))
        self.assertFalse(result.accepted)
        self.assertEqual(result.client.received, b"")
        self.assertEqual(result.alert, "internal error")
        self.assertEqual(
            ssl_reasons(result.server.reason), ["certificate verify failed"]
        )
        record = result.server.record
        assert record is not None
        self.assertEqual(
            [str(e) for e in record.errors],
            [
                "application verification failure "
                "(X509_V_ERR_APPLICATION_VERIFICATION, 50) at depth 1"
            ],
        )
        failures = [e for e in events if "log_failure" in e]
        self.assertEqual(len(failures), 1)
        self.assertEqual(
            failures[0]["log_format"],
            "certificate verification callback failed; refusing the client",
        )
        self.assertIsInstance(failures[0]["log_failure"].value, RuntimeError)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ServerDetailsTests(SynchronousTestCase):
    def ca_names(self, verify: str, ca_file: str) -> list[str]:
        """The CNs of the CAs the server named in its certificate request."""
        client = Client("client1")
        self.assertTrue(handshake(server_tls(verify, ca_file), client).accepted)
        assert client.connection is not None
        return [
            dict(name.get_components())[b"CN"].decode()
            for name in client.connection.get_client_ca_list()
        ]

    def test_ca_names_one_ca(self) -> None:
        """The certificate request names CA 1 when ca-file is ca.crt."""
        self.assertEqual(self.ca_names("optional", "ca.crt"), ["certlb test CA 1"])

    def test_ca_names_two_cas(self) -> None:
        """The certificate request names CA 1 and CA 2 when ca-file holds
        both."""
        self.assertEqual(
            self.ca_names("required", "ca.pem"),
            ["certlb test CA 1", "certlb test CA 2"],
        )

    def test_no_ca_names_without_verify(self) -> None:
        """verify none sends no certificate request, so no CA names."""
        self.assertEqual(self.ca_names("none", "ca.pem"), [])

    def test_alpn_http11(self) -> None:
        """A client offering h2 and http/1.1 gets http/1.1."""
        client = Client("client1", alpn=[b"h2", b"http/1.1"])
        result = handshake(server_tls("optional"), client)
        self.assertTrue(result.accepted)
        assert client.connection is not None
        self.assertEqual(client.connection.get_alpn_proto_negotiated(), b"http/1.1")
        self.assertEqual(
            result.server.transport.negotiatedProtocol,  # type: ignore[union-attr]
            b"http/1.1",
        )

    def test_alpn_h2_only(self) -> None:
        """A client offering only h2 gets no protocol, and is still served."""
        client = Client("client1", alpn=[b"h2"])
        result = handshake(server_tls("optional"), client)
        self.assertTrue(result.accepted)
        assert client.connection is not None
        self.assertEqual(client.connection.get_alpn_proto_negotiated(), b"")
        self.assertIsNone(
            result.server.transport.negotiatedProtocol  # type: ignore[union-attr]
        )

    def test_chain_sent(self) -> None:
        """The server sends its certificate first, then the chain of its crt
        file, wherever the chain was in the file."""
        p = pki()
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(
                p.ca1.certificate_pem()
                + p.server.key_pem()
                + p.server.certificate_pem()
            )
        client = Client()
        tls = ServerTLS.for_bind(path, None, "none", "chain test")
        self.assertTrue(handshake(tls, client).accepted)
        assert client.connection is not None
        chain = client.connection.get_peer_cert_chain(as_cryptography=True)
        self.assertEqual(chain, [p.server.certificate, p.ca1.certificate])

    def test_interface(self) -> None:
        """ServerTLS provides IOpenSSLServerConnectionCreator."""
        self.assertTrue(
            verifyObject(IOpenSSLServerConnectionCreator, server_tls("optional"))
        )


class _FakeConnection:
    """What VerifyRecord reads of an OpenSSL connection, with odd values."""

    def __init__(self, servername: bytes | None) -> None:
        self.servername = servername

    def get_peer_certificate(self, as_cryptography: bool) -> None:
        return None

    def get_servername(self) -> bytes | None:
        return self.servername

    def get_protocol_version_name(self) -> str:
        return "TLSv1.3"

    def get_cipher_name(self) -> str:
        return "TLS_AES_128_GCM_SHA256"


class RecordEdgeTests(SynchronousTestCase):
    def test_verdict_without_code_is_an_error(self) -> None:
        """OpenSSL failing a certificate without an error code is recorded as
        error 1 and refuses it, never as a pass."""
        record = VerifyRecord(VerifyPolicy())
        self.assertFalse(record.verify(0, 0, False))
        self.assertEqual([(e.code, e.depth) for e in record.errors], [(1, 0)])
        self.assertTrue(record.verify(0, 0, True))

    def test_sni_not_ascii(self) -> None:
        """A server name that is not ASCII is kept, escaped, instead of making
        the state fail on every request."""
        record = VerifyRecord(VerifyPolicy())
        state = record.state(_FakeConnection(b"xn--a\xff"))  # type: ignore[arg-type]
        self.assertEqual(state.sni, "xn--a\\xff")
