"""What a TLS connection learnt about its client's certificate.

A L{VerifyRecord} is attached to each server-side TLS connection.  The verify
callback writes every (error, depth) into it during the handshake; afterwards
the HTTP side reads one frozen L{ClientCertState}, built once per connection.

A resumed session runs no verify callback: what the full handshake found is
kept in the bind's L{SessionOutcomes}, by session, and given back to the
connections that resume it.
"""

from __future__ import annotations

import collections
import hashlib
import time
import weakref
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

import attrs
from cryptography import x509
from OpenSSL import crypto
from OpenSSL.SSL import SSL_CB_HANDSHAKE_DONE
from twisted.logger import Logger

from certlb.tls.certinfo import CertificateFacts, session_master_key, session_reused
from certlb.tls.verify_codes import describe

if TYPE_CHECKING:
    from OpenSSL.SSL import Connection, Context

log = Logger()

ALL = "all"
# X509_V_ERR_APPLICATION_VERIFICATION: what a resumed session whose first
# verification is no longer known reports (see SessionOutcomes).
UNKNOWN_OUTCOME = 50


@attrs.frozen
class VerifyError:
    """One verification error: OpenSSL's code and the depth in the chain."""

    code: int
    depth: int

    def __str__(self) -> str:
        return f"{describe(self.code)} at depth {self.depth}"


@attrs.frozen
class VerifyPolicy:
    """Which verification errors let a handshake go on.

    @ivar crt_ignore: codes ignored at depth 0 (the client's certificate), or
        L{ALL}.
    @ivar ca_ignore: codes ignored at depth > 0 (the CAs of its chain), or
        L{ALL}.
    """

    crt_ignore: frozenset[int] | str = frozenset()
    ca_ignore: frozenset[int] | str = frozenset()

    def ignores(self, code: int, depth: int) -> bool:
        """Whether an error of C{code} at C{depth} is to be let through."""
        ignored = self.crt_ignore if depth == 0 else self.ca_ignore
        return ignored == ALL or code in ignored


@attrs.frozen
class ClientCertState:
    """The client-certificate facts of one TLS connection (HAProxy's fetches).

    @ivar has_crt: a certificate was presented in this connection's handshake
        (C{ssl_fc_has_crt}).
    @ivar used: the session has a client certificate, resumed sessions
        included (C{ssl_c_used}).
    @ivar verify: the final verification result, 0 when it passed; OpenSSL
        reports the last error (C{ssl_c_verify}).
    @ivar crt_err: the first error at depth 0, or 0 (C{ssl_c_err}).
    @ivar ca_err: the first error of a CA of the chain, or 0 (C{ssl_c_ca_err}).
    @ivar ca_err_depth: the depth of C{ca_err}, or 0 (C{ssl_c_ca_err_depth}).
    @ivar errors: every error seen, in order.
    @ivar certificate: the client's certificate, if any.
    @ivar protocol: the TLS version, as in C{TLSv1.3}.
    @ivar cipher: the cipher suite's OpenSSL name.
    @ivar sni: the server name the client asked for, if any.
    @ivar chain: the certificates the client sent after its own, as it sent
        them (C{ssl_c_chain_der}).
    @ivar verified_chain: the chain OpenSSL verified, from the client's
        certificate to a CA of the C{ca-file}, as OpenSSL gives it (turned
        into L{root} only when a rule asks for C{ssl_c_r_dn}).
    @ivar local_certificate: certlb's own certificate, which this connection
        presented to the client (C{ssl_f_*}).
    @ivar resumed: the session was resumed (C{ssl_fc_is_resumed}).
    """

    has_crt: bool = False
    used: bool = False
    verify: int = 0
    crt_err: int = 0
    ca_err: int = 0
    ca_err_depth: int = 0
    errors: tuple[VerifyError, ...] = ()
    certificate: x509.Certificate | None = None
    protocol: str | None = None
    cipher: str | None = None
    sni: str | None = None
    chain: tuple[x509.Certificate, ...] = ()
    verified_chain: tuple[crypto.X509, ...] = attrs.field(
        default=(), eq=False, repr=False
    )
    local_certificate: x509.Certificate | None = None
    resumed: bool = False

    @cached_property
    def peer(self) -> CertificateFacts | None:
        """The client certificate's fields, each read once per connection."""
        return None if self.certificate is None else CertificateFacts(self.certificate)

    @cached_property
    def local(self) -> CertificateFacts | None:
        """certlb's own certificate's fields, each read once per connection."""
        if self.local_certificate is None:
            return None
        return CertificateFacts(self.local_certificate)

    @cached_property
    def chain_der(self) -> bytes | None:
        """The certificates of L{chain} in DER, one after the other; None
        without any (C{ssl_c_chain_der})."""
        if not self.chain:
            return None
        return b"".join(CertificateFacts(c).der for c in self.chain)

    @cached_property
    def root(self) -> x509.Certificate | None:
        """The root CA of the verified chain, as HAProxy finds it: the first
        self-issued certificate of the chain, else its last (C{ssl_c_r_dn})."""
        for candidate in self.verified_chain:
            if candidate.get_subject() == candidate.get_issuer():
                return candidate.to_cryptography()
        if not self.verified_chain:
            return None
        return self.verified_chain[-1].to_cryptography()

    @cached_property
    def root_facts(self) -> CertificateFacts | None:
        """The root CA's fields, read once per connection."""
        return None if self.root is None else CertificateFacts(self.root)


@attrs.frozen
class SessionOutcome:
    """What the full handshake of a TLS session found about its client's
    certificate, for the connections that resume the session.

    @ivar errors: every verification error, in order.
    @ivar chain: the certificates the client sent after its own.
    @ivar verified_chain: the chain OpenSSL verified.
    """

    errors: tuple[VerifyError, ...]
    chain: tuple[crypto.X509, ...] = attrs.field(eq=False, repr=False)
    verified_chain: tuple[crypto.X509, ...] = attrs.field(eq=False, repr=False)


@attrs.define(eq=False)
class SessionOutcomes:
    """The verification outcomes of one bind's resumable sessions, by session.

    A session is known by a digest of its master key, which OpenSSL keeps in
    its session cache and inside the (encrypted, authenticated) tickets it
    issues; a client cannot choose it.  Entries outlive the sessions they
    describe (C{ttl}, on the monotonic clock, is longer than the session
    timeout); when more than C{size} are kept the oldest go first.  A
    resumed session whose outcome is gone is reported as not verified
    (L{UNKNOWN_OUTCOME}), never as clean.

    @ivar ttl: how long an outcome is kept, in seconds.
    @ivar size: how many outcomes are kept at most.
    @ivar clock: the monotonic clock.
    """

    ttl: float
    size: int = 50_000
    clock: Callable[[], float] = time.monotonic
    _entries: collections.OrderedDict[bytes, tuple[float, SessionOutcome]] = (
        attrs.field(init=False, factory=collections.OrderedDict)
    )

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, key: bytes, outcome: SessionOutcome) -> None:
        """Keep C{outcome} for the session known by C{key}."""
        now = self.clock()
        entries = self._entries
        entries[key] = (now + self.ttl, outcome)
        entries.move_to_end(key)
        # Entries are in the order they were kept: the oldest come first.
        while entries:
            expires, _ = next(iter(entries.values()))
            if expires > now and len(entries) <= self.size:
                break
            entries.popitem(last=False)

    def recall(self, key: bytes) -> SessionOutcome | None:
        """The outcome kept for C{key}, if it is still there."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[key]
            return None
        return entry[1]


@attrs.define(eq=False)
class VerifyRecord:
    """Collects the verification of one connection while its handshake runs.

    @ivar sessions: where the outcome of this bind's sessions is kept, when
        it lets sessions that verified a client be resumed.
    @ivar restored: for a resumed session, the outcome of its full
        handshake, if it was found.
    @ivar refused: the certificate whose error failed the handshake (an
        OpenSSL C{X509}), for the log: OpenSSL keeps no peer certificate
        after a failed verification.
    """

    policy: VerifyPolicy
    presented: bool = False
    errors: list[VerifyError] = attrs.Factory(list)
    sessions: SessionOutcomes | None = None
    restored: SessionOutcome | None = None
    refused: crypto.X509 | None = None
    _session: int | None = None
    _state: ClientCertState | None = None
    _handshake_done: bool = False
    _own: SessionOutcome | None = None  # this handshake's outcome

    def verify(self, code: int, depth: int, ok: bool = True) -> bool:
        """Record one verify callback; return whether the handshake goes on.

        @param ok: OpenSSL's own verdict; a failure without an error code is
            recorded as X509_V_ERR_UNSPECIFIED (1).
        """
        self.presented = True
        if code == 0 and not ok:
            code = 1
        if code == 0:
            return True
        self.errors.append(VerifyError(code, depth))
        return self.policy.ignores(code, depth)

    def track_session(self, connection: Connection, where: int) -> None:
        """Follow the connection's session once its handshake is done: give a
        resumed one its outcome back, and keep the outcome of every session
        this connection makes resumable (with TLS 1.3, one per ticket, sent
        after the handshake).

        Called by OpenSSL's info callback, at every step of the handshake
        (C{where} says which): the steps before its end are passed over.
        """
        if where & SSL_CB_HANDSHAKE_DONE:
            self._handshake_done = True
        if self.sessions is None or not self._handshake_done:
            return
        master_key = session_master_key(connection)
        # Python's hash tells a new key from the last one cheaply; the
        # outcomes are kept by the key's SHA-256.
        if master_key is None or hash(master_key) == self._session:
            return
        first, self._session = self._session is None, hash(master_key)
        key = hashlib.sha256(master_key).digest()
        if first and session_reused(connection):
            self.restored = self.sessions.recall(key)
            return
        if session_reused(connection):
            outcome = self.restored
        else:  # the same for each ticket of the connection (renegotiation,
            # which could change the certificate, is off): made once
            if self._own is None:
                self._own = self._outcome(connection)
            outcome = self._own
        if outcome is not None and connection.get_peer_certificate() is not None:
            self.sessions.remember(key, outcome)

    def _outcome(self, connection: Connection) -> SessionOutcome:
        return SessionOutcome(
            tuple(self.errors),
            tuple(connection.get_peer_cert_chain(as_cryptography=False) or ()),
            tuple(connection.get_verified_chain() or ()),
        )

    def state(self, connection: Connection) -> ClientCertState:
        """The connection's L{ClientCertState}, built on first use.

        Call it once the handshake is over (when application data arrives):
        the state is kept from the first call on.
        """
        if self._state is None:
            self._state = self._build(connection)
        return self._state

    def _build(self, connection: Connection) -> ClientCertState:
        certificate = connection.get_peer_certificate(as_cryptography=True)
        resumed = session_reused(connection)
        errors = tuple(self.errors)
        # On a server, OpenSSL's peer chain holds what the client sent after
        # its own certificate (HAProxy's ssl_c_chain_der gives the same).
        chain = tuple(connection.get_peer_cert_chain(as_cryptography=True) or ())
        verified: tuple[crypto.X509, ...] = ()
        if certificate is not None:
            verified = tuple(connection.get_verified_chain() or ())
        if resumed and certificate is not None and not self.presented:
            if self.restored is None:
                log.warn(
                    "a resumed TLS session's verification is no longer known: "
                    "its client certificate is reported as not verified "
                    "(error {code})",
                    code=UNKNOWN_OUTCOME,
                )
                errors = (VerifyError(UNKNOWN_OUTCOME, 0),)
            else:
                errors = self.restored.errors
                chain = chain or tuple(c.to_cryptography() for c in self.restored.chain)
                verified = self.restored.verified_chain
        crt_errors = [e for e in errors if e.depth == 0]
        ca_errors = [e for e in errors if e.depth > 0]
        name = connection.get_servername()
        return ClientCertState(
            has_crt=self.presented,
            used=certificate is not None,
            verify=errors[-1].code if errors else 0,
            crt_err=crt_errors[0].code if crt_errors else 0,
            ca_err=ca_errors[0].code if ca_errors else 0,
            ca_err_depth=ca_errors[0].depth if ca_errors else 0,
            errors=errors,
            certificate=certificate,
            protocol=connection.get_protocol_version_name(),
            cipher=connection.get_cipher_name(),
            # Host names in SNI are ASCII; anything else is shown escaped.
            sni=name.decode("ascii", "backslashreplace") if name else None,
            chain=chain,
            verified_chain=verified,
            local_certificate=_local_certificate(connection),
            resumed=resumed,
        )


# certlb's own certificate, by the OpenSSL context (one per bind) that
# presents it: converted once per bind rather than once per connection.
_LOCAL_CERTIFICATES: weakref.WeakKeyDictionary[Context, x509.Certificate | None] = (
    weakref.WeakKeyDictionary()
)


def _local_certificate(connection: Connection) -> x509.Certificate | None:
    """The certificate this connection presented (certlb's own)."""
    context = connection.get_context()
    try:
        return _LOCAL_CERTIFICATES[context]
    except KeyError:
        certificate = connection.get_certificate(as_cryptography=True)
        _LOCAL_CERTIFICATES[context] = certificate
        return certificate


def verify_record(transport: object) -> VerifyRecord | None:
    """The L{VerifyRecord} of a TLS transport, or C{None} for plain TCP."""
    get_handle = getattr(transport, "getHandle", None)
    record = getattr(get_handle(), "verify_record", None) if get_handle else None
    return record if isinstance(record, VerifyRecord) else None


def client_cert_state(transport: object) -> ClientCertState | None:
    """The one accessor HTTP code uses: the certificate state of a transport.

    @return: C{None} when the transport is not TLS.
    """
    record = verify_record(transport)
    if record is None:
        return None
    return record.state(transport.getHandle())  # type: ignore[attr-defined]
