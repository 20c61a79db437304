"""TLS termination in memory: handshakes, client certificates, revocation,
ignored errors, resumption.

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
    "chained",
    "expiredca",
    "revokedca",
    "critical",
)
CLIENT_HELLO = b"hello from the client"
SERVER_HELLO = b"hello from the server"


def server_tls(
    verify: str,
    ca_file: str = "ca.crt",
    crl_file: str | None = None,
    policy: VerifyPolicy | None = None,
) -> ServerTLS:
    """The TLS side of a bind C{ssl crt server.pem ca-file CA_FILE verify VERIFY}
    (and C{crl-file CRL_FILE}, C{crt-ignore-err}/C{ca-ignore-err} as in
    C{policy}), files named as in L{certlb.pki.PKI.write}."""
    files = pki_files()
    return ServerTLS.for_bind(
        files["server.pem"],
        files[ca_file],
        verify,
        "test",
        policy,
        None if crl_file is None else files[crl_file],
    )


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
            # The file holds the certificate and its chain, if it has one.
            context.use_certificate_chain_file(files[f"{name}.crt"])
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


@attrs.frozen
class Verified:
    """An accepted client's verification, as rules see it.

    @ivar errors: every (code, depth) recorded, in order.
    @ivar verify: C{ssl_c_verify}, the last error.
    @ivar crt_err: C{ssl_c_err}, the first error at depth 0.
    @ivar ca_err: C{ssl_c_ca_err}, the first error at depth > 0.
    @ivar ca_err_depth: C{ssl_c_ca_err_depth}.
    """

    errors: tuple[tuple[int, int], ...] = ()
    verify: int = 0
    crt_err: int = 0
    ca_err: int = 0
    ca_err_depth: int = 0


VERSIONS = {"TLSv1.2": SSL.TLS1_2_VERSION, "TLSv1.3": SSL.TLS1_3_VERSION}


def verdict(tls: ServerTLS, name: str | None) -> Verified | Refused:
    """What client C{name} gets from C{tls}: the same with TLS 1.2 and 1.3,
    or an assertion error saying how they differ."""
    seen: dict[str, Verified | Refused] = {}
    for protocol, version in VERSIONS.items():
        result = handshake(tls, Client(name, version=version))
        outcome = result.outcome()
        if isinstance(outcome, Refused):
            seen[protocol] = outcome
            continue
        expected = accepted(name)
        assert (outcome.has_crt, outcome.used, outcome.cn) == (
            expected.has_crt,
            expected.used,
            expected.cn,
        ), outcome
        state = result.state
        assert state is not None and state.protocol == protocol, state
        seen[protocol] = Verified(
            errors=tuple((e.code, e.depth) for e in state.errors),
            verify=state.verify,
            crt_err=state.crt_err,
            ca_err=state.ca_err,
            ca_err_depth=state.ca_err_depth,
        )
    tls12, tls13 = seen.values()
    assert tls12 == tls13, f"TLS 1.2 gives {tls12}, TLS 1.3 {tls13}"
    return tls13


def verdicts(
    tls: ServerTLS, names: tuple[str | None, ...] = CLIENTS
) -> dict[str | None, Verified | Refused]:
    """L{verdict} of each client of C{names}."""
    return {name: verdict(tls, name) for name in names}


# What HAProxy users expect of `verify optional` with CA 1 alone: no
# certificate is fine, any verification error refuses the handshake, the
# client's own (depth 0) or its CA's (the expired intermediate of expiredca,
# depth 1).  The revoked clients are accepted: no CRL is configured.
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
    "chained": accepted("chained"),
    "expiredca": Refused(((10, 1),), "certificate expired"),
    "revokedca": accepted("revokedca"),
    "critical": Refused(((34, 0),), "certificate unknown"),
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


def ignoring(
    crt: frozenset[int] | str = frozenset(), ca: frozenset[int] | str = frozenset()
) -> VerifyPolicy:
    """The policy of C{crt-ignore-err CRT ca-ignore-err CA}."""
    return VerifyPolicy(crt_ignore=crt, ca_ignore=ca)


def openssl_version() -> str:
    """The OpenSSL that pyOpenSSL runs on, for messages of tests that pin
    what it does."""
    return SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()


class RevocationTests(SynchronousTestCase):
    def test_revoked_refused(self) -> None:
        """With crl-file, verify optional refuses the revoked client with
        error 23 at depth 0 and the alert 'certificate revoked'; client1 is
        accepted with verify 0."""
        tls = server_tls("optional", "ca.crt", "ca_crl.pem")
        self.assertEqual(
            verdict(tls, "revoked"), Refused(((23, 0),), "certificate revoked")
        )
        self.assertEqual(verdict(tls, "client1"), Verified())

    def test_revoked_ignored(self) -> None:
        """crt-ignore-err 23, or all, accepts the revoked client with verify 23
        and crt_err 23."""
        revoked = Verified(((23, 0),), verify=23, crt_err=23)
        for policy in (ignoring(crt=frozenset({23})), ignoring(crt=ALL)):
            tls = server_tls("optional", "ca.crt", "ca_crl.pem", policy)
            self.assertEqual(verdict(tls, "revoked"), revoked, policy)

    def test_revoked_not_ignored_as_ca_error(self) -> None:
        """ca-ignore-err 23 (or all) does not accept a revoked client: its
        error is at depth 0."""
        for policy in (ignoring(ca=frozenset({23})), ignoring(ca=ALL)):
            tls = server_tls("optional", "ca.crt", "ca_crl.pem", policy)
            self.assertEqual(
                verdict(tls, "revoked"),
                Refused(((23, 0),), "certificate revoked"),
                policy,
            )

    def test_every_client_with_both_crls(self) -> None:
        """With ca.pem and the CRLs of both CAs, under verify optional, the
        good clients of both CAs are accepted with verify 0 and every error
        refuses; the clients of intermediate CAs get error 3 at depth 0, as
        ca_crl.pem has no CRL of their CA."""
        tls = server_tls("optional", "ca.pem", "ca_crl.pem")
        self.assertEqual(
            verdicts(tls),
            {
                None: Verified(),
                "client1": Verified(),
                "client2": Verified(),
                "client3": Verified(),
                "expired": Refused(((10, 0),), "certificate expired"),
                "notyetvalid": Refused(((9, 0),), "bad certificate"),
                "revoked": Refused(((23, 0),), "certificate revoked"),
                "selfsigned": Refused(((18, 0),), "unknown ca"),
                "untrusted": Refused(((20, 0),), "unknown ca"),
                "chained": Refused(((3, 0),), "unknown ca"),
                "expiredca": Refused(((3, 0),), "unknown ca"),
                "revokedca": Refused(((3, 0),), "unknown ca"),
                "critical": Refused(((34, 0),), "certificate unknown"),
            },
        )

    def test_article_phase5(self) -> None:
        """The article's phase 5 bind (ca.pem, crt-ignore-err all, crl-file
        with both CAs' CRLs) accepts every client whose errors are all at
        depth 0, keeping them all: expired 10, revoked 23, untrusted 20, 3
        and 21 (verify 21); errors of a CA of the chain still refuse."""
        tls = server_tls("optional", "ca.pem", "ca_crl.pem", ignoring(crt=ALL))
        self.assertEqual(
            verdicts(tls),
            {
                None: Verified(),
                "client1": Verified(),
                "client2": Verified(),
                "client3": Verified(),
                "expired": Verified(((10, 0),), verify=10, crt_err=10),
                "notyetvalid": Verified(((9, 0),), verify=9, crt_err=9),
                "revoked": Verified(((23, 0),), verify=23, crt_err=23),
                "selfsigned": Verified(((18, 0),), verify=18, crt_err=18),
                "untrusted": Verified(
                    ((20, 0), (3, 0), (21, 0)), verify=21, crt_err=20
                ),
                "chained": Verified(((3, 0),), verify=3, crt_err=3),
                "expiredca": Refused(((3, 0), (10, 1)), "certificate expired"),
                "revokedca": Refused(((3, 0), (23, 1)), "certificate revoked"),
                "critical": Verified(((34, 0),), verify=34, crt_err=34),
            },
        )

    def test_article_phase4(self) -> None:
        """The article's phase 4 bind (ca.crt alone, crt-ignore-err all,
        crl-file) accepts client3, whose CA is unknown, with verify 21, and
        the expired and revoked clients with verify 10 and 23.  As CA 2's CRL
        is in the file but CA 2 is not in the chain, OpenSSL takes client3
        for the CRL's signer and adds errors 35 (no CRL signing in its key
        usage) and 8 (CRL signature failure)."""
        tls = server_tls("optional", "ca.crt", "ca_crl.pem", ignoring(crt=ALL))
        names: tuple[str | None, ...] = ("client1", "client3", "expired", "revoked")
        self.assertEqual(
            verdicts(tls, names),
            {
                "client1": Verified(),
                "client3": Verified(
                    ((20, 0), (35, 0), (8, 0), (21, 0)), verify=21, crt_err=20
                ),
                "expired": Verified(((10, 0),), verify=10, crt_err=10),
                "revoked": Verified(((23, 0),), verify=23, crt_err=23),
            },
        )

    def test_missing_ca_crl(self) -> None:
        """Without CA 2's CRL, client3 is refused with error 3 (unable to get
        certificate CRL) at depth 0 and the alert 'unknown ca'; CA 1's
        clients are not affected."""
        tls = server_tls("optional", "ca.pem", "ca1_crl.pem")
        self.assertEqual(verdict(tls, "client3"), Refused(((3, 0),), "unknown ca"))
        self.assertEqual(verdict(tls, "client1"), Verified())
        self.assertEqual(
            verdict(tls, "revoked"), Refused(((23, 0),), "certificate revoked")
        )

    def test_missing_ca_crl_ignored(self) -> None:
        """crt-ignore-err 3 accepts client3 without CA 2's CRL, with verify 3;
        ca-ignore-err 3 does not."""
        tls = server_tls(
            "optional", "ca.pem", "ca1_crl.pem", ignoring(crt=frozenset({3}))
        )
        self.assertEqual(verdict(tls, "client3"), Verified(((3, 0),), 3, crt_err=3))
        tls = server_tls(
            "optional", "ca.pem", "ca1_crl.pem", ignoring(ca=frozenset({3}))
        )
        self.assertEqual(verdict(tls, "client3"), Refused(((3, 0),), "unknown ca"))

    def test_root_revocation_not_checked(self) -> None:
        """A root CA (self-signed, in ca-file) is not checked against a CRL:
        without CA 2's CRL, client3 gets error 3 once, at depth 0, and an
        expired CRL of CA 1 gives error 12 once.  (OpenSSL 3.0 also checks the
        root and repeats the error at its depth.)"""
        policy = ignoring(crt=ALL, ca=ALL)
        tls = server_tls("optional", "ca.pem", "ca1_crl.pem", policy)
        self.assertEqual(
            verdict(tls, "client3"),
            Verified(((3, 0),), 3, crt_err=3),
            openssl_version(),
        )
        tls = server_tls("optional", "ca.pem", "expired_crl.pem", policy)
        self.assertEqual(
            verdict(tls, "client1"),
            Verified(((12, 0),), 12, crt_err=12),
            openssl_version(),
        )

    def test_expired_crl(self) -> None:
        """An expired CRL of CA 1 refuses CA 1's clients with error 12 at depth
        0 and the alert 'certificate expired'; CA 2's clients, whose CRL is
        current, are accepted; crt-ignore-err 12 accepts with verify 12."""
        tls = server_tls("optional", "ca.pem", "expired_crl.pem")
        self.assertEqual(
            verdict(tls, "client1"), Refused(((12, 0),), "certificate expired")
        )
        self.assertEqual(verdict(tls, "client3"), Verified())
        tls = server_tls(
            "optional", "ca.pem", "expired_crl.pem", ignoring(crt=frozenset({12}))
        )
        self.assertEqual(
            verdict(tls, "client1"), Verified(((12, 0),), verify=12, crt_err=12)
        )

    def test_expired_crl_still_revokes(self) -> None:
        """An expired CRL still revokes: under crt-ignore-err all the revoked
        client gets 12 then 23 (verify 23), the expired one 12 then 10
        (verify 10), so rules on ssl_c_verify 23 and 10 still match."""
        tls = server_tls("optional", "ca.pem", "expired_crl.pem", ignoring(crt=ALL))
        self.assertEqual(
            verdict(tls, "revoked"),
            Verified(((12, 0), (23, 0)), verify=23, crt_err=12),
        )
        self.assertEqual(
            verdict(tls, "expired"),
            Verified(((12, 0), (10, 0)), verify=10, crt_err=12),
        )


class ChainTests(SynchronousTestCase):
    def test_chain_from_client(self) -> None:
        """A client of an intermediate CA that sends the intermediate with its
        certificate is accepted with ca-file holding only the root."""
        self.assertEqual(verdict(server_tls("optional"), "chained"), Verified())

    def test_expired_intermediate(self) -> None:
        """An expired intermediate CA refuses its client with error 10 at
        depth 1 and the alert 'certificate expired'."""
        self.assertEqual(
            verdict(server_tls("optional"), "expiredca"),
            Refused(((10, 1),), "certificate expired"),
        )

    def test_ca_ignore_err_for_the_chain(self) -> None:
        """ca-ignore-err 10 (or all) accepts the client of an expired
        intermediate, with verify 10, ca_err 10 at depth 1 and crt_err 0."""
        expected = Verified(((10, 1),), verify=10, ca_err=10, ca_err_depth=1)
        for policy in (ignoring(ca=frozenset({10})), ignoring(ca=ALL)):
            tls = server_tls("optional", policy=policy)
            self.assertEqual(verdict(tls, "expiredca"), expected, policy)

    def test_crt_ignore_err_not_for_the_chain(self) -> None:
        """crt-ignore-err 10 (or all) does not accept the client of an expired
        intermediate: the error is at depth 1."""
        for policy in (ignoring(crt=frozenset({10})), ignoring(crt=ALL)):
            tls = server_tls("optional", policy=policy)
            self.assertEqual(
                verdict(tls, "expiredca"),
                Refused(((10, 1),), "certificate expired"),
                policy,
            )

    def test_ca_ignore_err_not_for_the_client(self) -> None:
        """ca-ignore-err 10 (or all) does not accept an expired client: its
        error is at depth 0."""
        for policy in (ignoring(ca=frozenset({10})), ignoring(ca=ALL)):
            tls = server_tls("optional", policy=policy)
            self.assertEqual(
                verdict(tls, "expired"),
                Refused(((10, 0),), "certificate expired"),
                policy,
            )

    def test_every_crl(self) -> None:
        """With the CRLs of every CA, intermediates included, the chained
        client is accepted with verify 0, the client of the revoked
        intermediate refused with 23 at depth 1, that of the expired one with
        10 at depth 1."""
        tls = server_tls("optional", "ca.crt", "chain_crl.pem")
        names: tuple[str | None, ...] = ("chained", "revokedca", "expiredca")
        self.assertEqual(
            verdicts(tls, names),
            {
                "chained": Verified(),
                "revokedca": Refused(((23, 1),), "certificate revoked"),
                "expiredca": Refused(((10, 1),), "certificate expired"),
            },
        )

    def test_revoked_intermediate_ignored(self) -> None:
        """ca-ignore-err 23 accepts the client of a revoked intermediate, with
        verify 23 and ca_err 23 at depth 1; crt-ignore-err 23 does not."""
        tls = server_tls(
            "optional", "ca.crt", "chain_crl.pem", ignoring(ca=frozenset({23}))
        )
        self.assertEqual(
            verdict(tls, "revokedca"),
            Verified(((23, 1),), verify=23, ca_err=23, ca_err_depth=1),
        )
        tls = server_tls(
            "optional", "ca.crt", "chain_crl.pem", ignoring(crt=frozenset({23}))
        )
        self.assertEqual(
            verdict(tls, "revokedca"), Refused(((23, 1),), "certificate revoked")
        )

    def test_missing_intermediate_crl(self) -> None:
        """Without the CRL of the client's own CA (an intermediate), the
        error 3 is the client's, at depth 0: crt-ignore-err 3 accepts it,
        ca-ignore-err 3 does not."""
        tls = server_tls("optional", "ca.crt", "ca_crl.pem")
        self.assertEqual(verdict(tls, "chained"), Refused(((3, 0),), "unknown ca"))
        tls = server_tls(
            "optional", "ca.crt", "ca_crl.pem", ignoring(crt=frozenset({3}))
        )
        self.assertEqual(verdict(tls, "chained"), Verified(((3, 0),), 3, crt_err=3))
        tls = server_tls(
            "optional", "ca.crt", "ca_crl.pem", ignoring(ca=frozenset({3}))
        )
        self.assertEqual(verdict(tls, "chained"), Refused(((3, 0),), "unknown ca"))

    def test_missing_root_crl_for_intermediate(self) -> None:
        """Without the CRL of the root that issued the intermediate CA, the
        error 3 is the intermediate's, at depth 1: ca-ignore-err 3 accepts
        it (ca_err 3 at depth 1), crt-ignore-err 3 does not."""
        tls = server_tls("optional", "ca.crt", "intermediate_crl.pem")
        self.assertEqual(
            verdict(tls, "chained"), Refused(((3, 1),), "unknown ca"), openssl_version()
        )
        tls = server_tls(
            "optional", "ca.crt", "intermediate_crl.pem", ignoring(ca=frozenset({3}))
        )
        self.assertEqual(
            verdict(tls, "chained"),
            Verified(((3, 1),), verify=3, ca_err=3, ca_err_depth=1),
        )
        tls = server_tls(
            "optional", "ca.crt", "intermediate_crl.pem", ignoring(crt=frozenset({3}))
        )
        self.assertEqual(verdict(tls, "chained"), Refused(((3, 1),), "unknown ca"))


class HighErrorCodeTests(SynchronousTestCase):
    def test_unknown_critical_extension(self) -> None:
        """A client certificate with an unknown critical extension is refused
        with error 34 (above 31) at depth 0 and the alert 'certificate
        unknown'."""
        self.assertEqual(
            verdict(server_tls("optional"), "critical"),
            Refused(((34, 0),), "certificate unknown"),
        )

    def test_all_and_number_ignore_34(self) -> None:
        """crt-ignore-err all, or 34, accepts that client with verify 34;
        ca-ignore-err all does not."""
        expected = Verified(((34, 0),), verify=34, crt_err=34)
        for policy in (ignoring(crt=ALL), ignoring(crt=frozenset({34}))):
            tls = server_tls("optional", policy=policy)
            self.assertEqual(verdict(tls, "critical"), expected, policy)
        self.assertEqual(
            verdict(server_tls("optional", policy=ignoring(ca=ALL)), "critical"),
            Refused(((34, 0),), "certificate unknown"),
        )


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

    def test_none_resumes_tls13(self) -> None:
        """A verify none bind resumes TLS 1.3 sessions."""
        self.assert_resumed("none", SSL.TLS1_3_VERSION)

    def test_none_resumes_tls12(self) -> None:
        """A verify none bind resumes TLS 1.2 sessions."""
        self.assert_resumed("none", SSL.TLS1_2_VERSION)

    # Binds that verify clients resume sessions too, keeping the client's
    # identity: tests/test_resumption.py.


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

    def get_peer_cert_chain(self, as_cryptography: bool) -> None:
        return None

    def get_certificate(self, as_cryptography: bool) -> None:
        return None

    def get_context(self) -> SSL.Context:
        return SSL.Context(SSL.TLS_SERVER_METHOD)

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
