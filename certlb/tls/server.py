"""TLS contexts for listeners, and the verify callback that fills VerifyRecords.

One L{ServerTLS} per C{bind ... ssl}: it owns an OpenSSL context built from the
bind's C{crt}, C{ca-file} and C{verify}, and gives every connection its own
L{VerifyRecord}.

Every bind resumes sessions, by session ID (OpenSSL's session cache) and by
ticket, for L{SESSION_TIMEOUT} seconds.  A resumed session runs no verify
callback: on binds that verify clients, an info callback follows each
connection's session, keeps what the full handshake found in the bind's
L{SessionOutcomes} and gives it back to the connections that resume it (see
L{certlb.tls.state}).  Each bind has its own context, so its own session
cache, session ID context and ticket keys: a session never crosses binds.
OpenSSL draws the ticket keys at random when a context is made (pyOpenSSL
gives no way to set them): tickets of another process are not accepted.
L{ServerTLS.rotate} gives a bind a new context, so new keys (and an empty
session cache), made from the files as they were read at start:
C{tune.ssl.ticket-key-lifetime} says how often (see L{certlb.service}).

With a C{crl-file}, OpenSSL checks the revocation of every certificate of the
client's chain against a CRL of its issuer, and reports what goes wrong at
that certificate's depth: a client whose CA has no CRL in the file gets error
3 at depth 0 (a C{crt-ignore-err} matter), an intermediate CA whose issuer has
none gets it at depth 1 (C{ca-ignore-err}); likewise 12 for an expired CRL,
11 for one not yet valid, 8 for one another key signed.  A self-signed root
of the C{ca-file} is not checked by the OpenSSL that C{cryptography} ships
(OpenSSL 3.0 checks it too, against its own CRL, and repeats those errors at
its depth).
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
from collections.abc import Callable
from typing import Any

import attrs
from cryptography import x509
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.logger import Logger
from zope.interface import implementer

from certlb.tls.certinfo import resumption_supported
from certlb.tls.pem import load_ca_certificates, load_crls, load_key_pair
from certlb.tls.state import SessionOutcomes, VerifyError, VerifyPolicy, VerifyRecord

log = Logger()

# Mozilla's "intermediate" TLS 1.2 suites; TLS 1.3 suites are OpenSSL's.
CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    b"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    b"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
APPLICATION_VERIFICATION = 50  # X509_V_ERR_APPLICATION_VERIFICATION
VERIFY_FLAGS = {
    "none": SSL.VERIFY_NONE,
    "optional": SSL.VERIFY_PEER,
    "required": SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
}
# How long a session can be resumed (as HAProxy's tune.ssl.lifetime), and how
# much longer certlb keeps its outcome.
SESSION_TIMEOUT = 300
OUTCOME_MARGIN = 60


def _verify_callback(
    connection: SSL.Connection, certificate: object, code: int, depth: int, ok: int
) -> bool:
    """Record one verification step; never let an exception pass silently."""
    try:
        record: VerifyRecord = connection.verify_record
        going_on = record.verify(code, depth, bool(ok))
        if not going_on and record.refused is None:
            record.refused = certificate  # type: ignore[assignment]
        return going_on
    except Exception:
        # pyOpenSSL would keep the exception and fail later, obscurely: log it,
        # record it as an application verification failure, and refuse the
        # certificate explicitly.
        log.failure("certificate verification callback failed; refusing the client")
        with contextlib.suppress(Exception):
            connection.verify_record.errors.append(
                VerifyError(APPLICATION_VERIFICATION, depth)
            )
        return False


def _track_session(connection: SSL.Connection, where: int, value: int) -> None:
    """OpenSSL's info callback: let the connection's record follow its session."""
    try:
        connection.verify_record.track_session(connection, where)
    except Exception:
        # A record that cannot follow its session restores nothing: a resumed
        # client is then reported as not verified.
        log.failure("following a TLS session failed")


class RecordingConnection(SSL.Connection):
    """An OpenSSL connection that carries the L{VerifyRecord} of its handshake.

    (Twisted keeps the connection's app data for itself.)
    """

    def __init__(
        self,
        context: SSL.Context,
        record: VerifyRecord,
        sock: socket.socket | None = None,
    ) -> None:
        super().__init__(context, sock)
        self.verify_record = record


def _select_alpn(connection: SSL.Connection, offered: list[bytes]) -> Any:
    return b"http/1.1" if b"http/1.1" in offered else SSL.NO_OVERLAPPING_PROTOCOLS


def build_context(
    crt: str,
    ca_file: str | None,
    verify: str,
    session_id: bytes,
    crl_file: str | None = None,
) -> SSL.Context:
    """An OpenSSL server context for one bind (see L{context_maker})."""
    return context_maker(crt, ca_file, verify, session_id, crl_file)()


def context_maker(
    crt: str,
    ca_file: str | None,
    verify: str,
    session_id: bytes,
    crl_file: str | None = None,
) -> Callable[[], SSL.Context]:
    """Read a bind's files once; give what makes its OpenSSL server contexts.

    Each context made is new: its own session cache and its own ticket keys,
    which OpenSSL draws at random.

    @param crt: a PEM holding the certificate, its key and its chain.
    @param ca_file: a PEM of the CAs that client certificates must come from,
        and whose names are sent to clients; required unless C{verify} is
        C{"none"}.
    @param verify: C{"none"}, C{"optional"} or C{"required"}.
    @param session_id: the session ID context (unique per bind).
    @param crl_file: a PEM of CRLs: revocation is then checked for the whole
        chain (OpenSSL's C{CRL_CHECK_ALL}, as HAProxy does), and a
        certificate whose issuer has no CRL in the file gets error 3.
    @raise certlb.tls.pem.PemError: a file cannot be used.
    """
    pair = load_key_pair(crt)
    authorities: list[x509.Certificate] = []
    crls: list[x509.CertificateRevocationList] = []
    if verify != "none":
        assert ca_file is not None, "verify needs a ca-file (the checker says so)"
        authorities = load_ca_certificates(ca_file)
        if crl_file is not None:
            crls = load_crls(crl_file)

    def make() -> SSL.Context:
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_options(
            SSL.OP_NO_COMPRESSION
            | SSL.OP_CIPHER_SERVER_PREFERENCE
            | SSL.OP_NO_RENEGOTIATION
            | SSL.OP_SINGLE_ECDH_USE
        )
        # An idle connection gives its read and write buffers back (about
        # 34 kB each), as nginx has OpenSSL do.
        context.set_mode(SSL.MODE_RELEASE_BUFFERS)
        context.set_cipher_list(CIPHERS)
        context.use_certificate(pair.certificate)
        context.use_privatekey(pair.key)  # type: ignore[arg-type]
        for certificate in pair.chain:
            context.add_extra_chain_cert(certificate)
        context.check_privatekey()
        context.set_alpn_select_callback(_select_alpn)
        context.set_session_id(session_id)
        context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
        context.set_timeout(SESSION_TIMEOUT)
        if verify != "none":
            _add_authorities(context, authorities)
            context.set_client_ca_list(
                [crypto.X509.from_cryptography(ca).get_subject() for ca in authorities]
            )
            if resumption_supported():
                context.set_info_callback(_track_session)
            else:  # pragma: no cover - resumed sessions could not be told apart
                context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
                context.set_options(SSL.OP_NO_TICKET)
            if crl_file is not None:
                _add_crls(context, crls)
        context.set_verify(VERIFY_FLAGS[verify], _verify_callback)
        return context

    return make


@implementer(IOpenSSLServerConnectionCreator)
@attrs.define(eq=False)
class ServerTLS:
    """Makes each accepted connection's OpenSSL connection, with its record.

    @ivar sessions: the outcomes of the bind's sessions, for the connections
        that resume them.
    """

    context: SSL.Context
    policy: VerifyPolicy = attrs.Factory(VerifyPolicy)
    sessions: SessionOutcomes = attrs.Factory(
        lambda: SessionOutcomes(SESSION_TIMEOUT + OUTCOME_MARGIN)
    )
    renew: Callable[[], SSL.Context] | None = None

    @classmethod
    def for_bind(
        cls,
        crt: str,
        ca_file: str | None,
        verify: str,
        name: str,
        policy: VerifyPolicy | None = None,
        crl_file: str | None = None,
    ) -> ServerTLS:
        """Build the TLS side of one bind; C{name} makes its session ID context."""
        session_id = hashlib.sha256(name.encode()).digest()[:32]
        make = context_maker(crt, ca_file, verify, session_id, crl_file)
        return cls(make(), policy or VerifyPolicy(), renew=make)

    def rotate(self) -> None:
        """New session-ticket keys: the connections from now on get a new
        context (and so an empty session cache too).  A client that offers
        an older session gets a full handshake, verified again."""
        if self.renew is not None:
            self.context = self.renew()

    def serverConnectionForTLS(
        self, tlsProtocol: object, sock: socket.socket | None = None
    ) -> SSL.Connection:
        """A connection over memory buffers (Twisted's TLS), or on C{sock}
        (L{certlb.tls.transport.TLSServer})."""
        return RecordingConnection(
            self.context, VerifyRecord(self.policy, sessions=self.sessions), sock
        )


def trust(context: SSL.Context, ca_file: str) -> list[x509.Certificate]:
    """Make C{context} trust the CAs of C{ca_file} (read as every file a
    configuration names is: see L{certlb.config.sources}); return them.

    @raise PemError: the file holds no certificate, or cannot be read.
    """
    authorities = load_ca_certificates(ca_file)
    _add_authorities(context, authorities)
    return authorities


def _add_authorities(context: SSL.Context, authorities: list[x509.Certificate]) -> None:
    store = context.get_cert_store()
    assert store is not None
    for authority in authorities:
        store.add_cert(crypto.X509.from_cryptography(authority))


def check_crls(context: SSL.Context, crl_file: str) -> None:
    """Make C{context} check the revocation of every certificate of a peer's
    chain against the CRLs of C{crl_file}.

    @raise PemError: the file holds no CRL, or cannot be read.
    """
    _add_crls(context, load_crls(crl_file))


def _add_crls(context: SSL.Context, crls: list[x509.CertificateRevocationList]) -> None:
    store = context.get_cert_store()
    assert store is not None
    for crl in crls:
        store.add_crl(crl)
    store.set_flags(
        crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL
    )
