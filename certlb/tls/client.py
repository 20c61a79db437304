"""TLS towards servers (C{server ... ssl}): contexts, verification, names.

One L{UpstreamTLS} per server line: an OpenSSL client context built from its
C{crt}, C{ca-file}, C{crl-file}, C{verify} and TLS versions, and what the
server's certificate must be for.  With C{verify required} (HAProxy's
default), the handshake fails unless the server's chain leads to a CA of the
C{ca-file} (with a C{crl-file}, no certificate of the chain may be revoked,
and every CA of it needs a CRL there) and its certificate holds, in its
subjectAltName, the name certlb expects: the SNI sent, else C{verifyhost},
else the server's address as written on the line.  C{verify none} checks
nothing at all.

Why a handshake failed is kept on the connection (L{CheckedConnection}), so
that the proxy and the health checks can say it in the log.
"""

from __future__ import annotations

import contextlib

import attrs
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from certlb.config.model import Server
from certlb.rules.interfaces import IRequestContext
from certlb.tls.names import ServerName, compile_sni, is_address, name_mismatch
from certlb.tls.pem import load_key_pair
from certlb.tls.server import CIPHERS, check_crls, trust
from certlb.tls.verify_codes import VERIFY_CODES

log = Logger()

VERSIONS = {"TLSv1.2": SSL.TLS1_2_VERSION, "TLSv1.3": SSL.TLS1_3_VERSION}


class CheckedConnection(SSL.Connection):
    """An OpenSSL client connection that knows the name the server's
    certificate must hold, and keeps why verification failed.

    @ivar expected_name: the name, or C{None} to check none (C{verify none}).
    @ivar failure: why the server's certificate was refused, if it was.
    """

    def __init__(self, context: SSL.Context, expected_name: str | None) -> None:
        super().__init__(context, None)
        self.expected_name = expected_name
        self.failure: str | None = None
        self._name_checked = False


def _verify_callback(
    connection: CheckedConnection, certificate: object, code: int, depth: int, ok: int
) -> bool:
    """Refuse the server at the first error of its chain, or when its
    certificate is not for the expected name; never let an exception pass."""
    try:
        if not ok:
            if connection.failure is None:
                text = VERIFY_CODES.get(code, ("", f"error {code}"))[1]
                where = f" (error {code} at depth {depth})"
                connection.failure = f"certificate verify failed: {text}{where}"
            return False
        name = connection.expected_name
        if depth == 0 and name is not None and not connection._name_checked:
            connection._name_checked = True
            problem = name_mismatch(certificate.to_cryptography(), name)  # type: ignore[attr-defined]
            if problem is not None:
                connection.failure = problem
                return False
        return True
    except Exception:
        # pyOpenSSL would keep the exception and fail later, obscurely.
        log.failure("server certificate verification failed; refusing the server")
        with contextlib.suppress(Exception):
            connection.failure = "certificate verify failed: internal error"
        return False


def build_client_context(
    verify: bool,
    ca_file: str | None = None,
    crl_file: str | None = None,
    crt: str | None = None,
    min_version: str | None = None,
    max_version: str | None = None,
) -> SSL.Context:
    """An OpenSSL client context for one server.

    @param verify: verify the server's certificate against C{ca_file}
        (required then).
    @param crl_file: a PEM of CRLs: revocation is then checked for the whole
        chain (OpenSSL's C{CRL_CHECK_ALL}).
    @param crt: a PEM with certlb's client certificate, its key and chain,
        sent when the server asks for one.
    @param min_version: C{TLSv1.2} (the default) or C{TLSv1.3};
        C{max_version} likewise.
    @raise certlb.tls.pem.PemError: a file cannot be used.
    """
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(VERSIONS[min_version or "TLSv1.2"])
    if max_version is not None:
        context.set_max_proto_version(VERSIONS[max_version])
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)  # pooled idle connections
    context.set_cipher_list(CIPHERS)
    # No ALPN, as HAProxy without 'alpn': some servers fail a handshake
    # that offers it when they have no protocol list of their own.
    if crt is not None:
        pair = load_key_pair(crt)
        context.use_certificate(pair.certificate)
        context.use_privatekey(pair.key)  # type: ignore[arg-type]
        for certificate in pair.chain:
            context.add_extra_chain_cert(certificate)
        context.check_privatekey()
    if not verify:
        context.set_verify(SSL.VERIFY_NONE)
        return context
    assert ca_file is not None, "verify needs a ca-file (the checker says so)"
    trust(context, ca_file)
    if crl_file is not None:
        check_crls(context, crl_file)
    context.set_verify(SSL.VERIFY_PEER, _verify_callback)  # type: ignore[arg-type]
    return context


@implementer(IOpenSSLClientConnectionCreator)
@attrs.frozen
class _Connector:
    """Makes the OpenSSL connection of one connection to a server, with the
    SNI of the request that opens it."""

    tls: UpstreamTLS
    sni: str | None

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        return self.tls.connection(self.sni)


@attrs.define(eq=False)
class UpstreamTLS:
    """TLS towards one server: its context, and the names to send and check.

    @ivar verify: the certificate is verified (C{verify required}).
    @ivar host: the server's address, the name checked when no other is.
    @ivar verifyhost: the name checked when no SNI is sent.
    @ivar sni: the SNI of a request (see L{compile_sni}), if C{sni} is set.
    @ivar check_sni: the SNI of health checks: C{check-sni}, else a constant
        C{sni}.
    """

    context: SSL.Context
    verify: bool
    host: str
    verifyhost: str | None = None
    sni: ServerName | None = None
    check_sni: str | None = None

    @classmethod
    def for_server(cls, spec: Server) -> UpstreamTLS:
        """The TLS settings of a server line (with C{ssl} or C{check-ssl}).

        @raise certlb.tls.pem.PemError: a file cannot be used.
        @raise certlb.rules.acl.RuleError: the C{sni} expression does not
            compile (the checker says so first).
        """
        context = build_client_context(
            spec.verifies,
            spec.ca_file,
            spec.crl_file,
            spec.crt,
            spec.ssl_min_ver,
            spec.ssl_max_ver,
        )
        sni, constant = compile_sni(spec.sni) if spec.sni else (None, None)
        return cls(
            context,
            spec.verifies,
            spec.host,
            spec.verifyhost,
            sni,
            spec.check_sni or constant,
        )

    def server_name(self, request: IRequestContext | None) -> str | None:
        """The SNI to send for C{request}, if any."""
        return None if self.sni is None else self.sni(request)

    def expected_name(self, sni: str | None) -> str | None:
        """The name the server's certificate must hold, or C{None} when not
        verified."""
        if not self.verify:
            return None
        return _sendable(sni) or self.verifyhost or self.host

    def connector(self, sni: str | None) -> IOpenSSLClientConnectionCreator:
        """What makes the OpenSSL connections that send C{sni}."""
        return _Connector(self, sni)

    def connection(self, sni: str | None) -> CheckedConnection:
        connection = CheckedConnection(self.context, self.expected_name(sni))
        sent = _sendable(sni)
        if sent is not None:
            connection.set_tlsext_host_name(sent.encode("idna"))
        connection.set_connect_state()
        return connection


def _sendable(sni: str | None) -> str | None:
    """C{sni} if it can go in a TLS SNI (a name, not an address), else
    C{None}: a name that is not sent is not the one checked either."""
    if sni is None or is_address(sni):
        return None
    try:
        sni.encode("idna")
    except (UnicodeError, ValueError):
        return None
    return sni


def unverified() -> UpstreamTLS:
    """TLS that checks nothing of the server (C{verify none})."""
    return UpstreamTLS(build_client_context(False), False, "")


def handshake_failure(transport: object, reason: Failure) -> str:
    """Why a TLS connection ended before its handshake was done, in words.

    @param transport: the L{twisted.protocols.tls.TLSMemoryBIOProtocol} of
        the connection.
    """
    connection = getattr(transport, "getHandle", lambda: None)()
    failure = getattr(connection, "failure", None)
    return "TLS handshake failed: " + (str(failure) if failure else tls_error(reason))


def tls_error(reason: Failure) -> str:
    """The text of a TLS error (OpenSSL's reasons), or of another failure."""
    if reason.check(SSL.Error):
        args = getattr(reason.value, "args", ())
        errors = args[0] if args else []
        if isinstance(errors, list):
            texts = [e[-1] for e in errors if isinstance(e, tuple) and e[-1]]
            if texts:
                return ", ".join(texts)
    return reason.getErrorMessage() or repr(reason.value)
