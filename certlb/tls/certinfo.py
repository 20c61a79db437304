"""A certificate's fields as HAProxy's C{ssl_c_*} and C{ssl_f_*} fetches give them.

A L{CertificateFacts} wraps one certificate of a connection; each field is
worked out the first time a rule asks for it, then kept for the life of the
connection.  Names are OpenSSL's short names (C{CN}, C{RSA-SHA256},
C{id-ecPublicKey}), as HAProxy prints them, so rules written for HAProxy match
the same strings here.  Text is given as rules see all text: the bytes of the
certificate decoded as Latin-1 (a UTF-8 C{é} is two characters, as it is two
bytes in a header).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from functools import cached_property
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import crypto

try:
    # pyOpenSSL's own binding to OpenSSL: OpenSSL's short names (as HAProxy
    # prints them) and whether a session was resumed; no public API of
    # pyOpenSSL or cryptography gives either.
    from OpenSSL._util import ffi as _ffi
    from OpenSSL._util import lib as _lib
except ImportError:  # pragma: no cover - a pyOpenSSL without it
    _ffi = _lib = None

__all__ = [
    "SAN_TYPES",
    "CertificateFacts",
    "DistinguishedName",
    "openssl_short_name",
    "resumption_supported",
    "session_master_key",
    "session_reused",
]

# certlb's ssl_c_san(TYPE) filters, by the name written in a configuration
# (in lower case), and the kind of name each keeps.
SAN_TYPES: dict[str, type[x509.GeneralName]] = {
    "dns": x509.DNSName,
    "uri": x509.UniformResourceIdentifier,
    "email": x509.RFC822Name,
    "ip": x509.IPAddress,
}
_UNDEF = "UNDEF"  # OpenSSL's short name for an object it does not know
# Where session_master_key copies a key (the reactor's thread only).
_MASTER_KEY_SIZE = 64  # TLS 1.2: 48 bytes; TLS 1.3: the hash size, at most 64
_MASTER_KEY = _ffi.new("unsigned char[]", _MASTER_KEY_SIZE) if _ffi else None


def openssl_short_name(oid: x509.ObjectIdentifier, undefined: str = _UNDEF) -> str:
    """OpenSSL's short name for C{oid} (C{CN}, C{RSA-SHA256}), or C{undefined}
    when OpenSSL has no name for it."""
    if _lib is not None:
        nid = _lib.OBJ_txt2nid(oid.dotted_string.encode("ascii"))
        if nid:
            name = _lib.OBJ_nid2sn(nid)
            if name != _ffi.NULL:
                return str(_ffi.string(name).decode("ascii"))
    return undefined


def session_reused(connection: Any) -> bool:
    """Whether an OpenSSL connection resumed an earlier session (through the
    session cache or a ticket), as OpenSSL's C{SSL_session_reused} says."""
    handle = getattr(connection, "_ssl", None)
    if _lib is None or handle is None:
        return False
    return bool(_lib.SSL_session_reused(handle))


def session_master_key(connection: Any) -> bytes | None:
    """The master key of an OpenSSL connection's current session, or None
    before it has one (or without pyOpenSSL's binding).

    A TLS 1.2 session keeps its master key when it is resumed, by session ID
    or ticket; a TLS 1.3 session's key is the one of the ticket it was issued
    in or resumed from.  The key is secret: keep no more than a digest of it.
    """
    handle = getattr(connection, "_ssl", None)
    if _lib is None or handle is None:
        return None
    session = _lib.SSL_get_session(handle)
    if session == _ffi.NULL:
        return None
    size = _lib.SSL_SESSION_get_master_key(session, _MASTER_KEY, _MASTER_KEY_SIZE)
    return _ffi.buffer(_MASTER_KEY, size)[:] if size else None


def resumption_supported() -> bool:
    """Whether certlb can tell resumed sessions apart (pyOpenSSL's binding
    to OpenSSL is there)."""
    return _lib is not None


def _without_nul(raw: bytes) -> bytes | None:
    """HAProxy's rule for a NUL in a DN value: one followed by other data
    makes the value malformed (None); trailing NULs are cut to one."""
    nul = raw.find(b"\0")
    if nul < 0:
        return raw
    if raw[nul:].strip(b"\0"):
        return None
    return raw[: nul + 1]


_RFC2253_SPECIAL = frozenset(b',+"\\<>;')


def _rfc2253_value(value: str) -> str:
    """A DN value escaped as OpenSSL's C{XN_FLAG_RFC2253} escapes it: the
    special characters with a backslash, control characters and every byte of
    a non-ASCII character in hexadecimal, a leading C{#} or space and a
    trailing space with a backslash."""
    data = value.encode("utf-8")
    out = []
    for i, byte in enumerate(data):
        if byte < 0x20 or byte > 0x7E:
            out.append(f"\\{byte:02X}")
        elif (
            byte in _RFC2253_SPECIAL
            or (i == 0 and byte in b"# ")
            or (i == len(data) - 1 and byte == 0x20)
        ):
            out.append("\\" + chr(byte))
        else:
            out.append(chr(byte))
    return "".join(out)


def _der_hex(tag: int, raw: bytes) -> str:
    """C{#} and the DER of a value in hexadecimal, as OpenSSL writes the
    value of an attribute it does not know in an RFC 2253 DN."""
    size = len(raw)
    if size < 0x80:
        length = bytes([size])
    else:
        octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(octets)]) + octets
    return "#" + (bytes([tag]) + length + raw).hex().upper()


@attrs.frozen
class _Entry:
    """One attribute of a DN: its name as OpenSSL prints it, its value as
    the certificate holds it (None when malformed), and in RFC 2253 form."""

    name: str
    raw: str | None
    rfc2253: str
    rdn: int


@attrs.frozen
class DistinguishedName:
    """A subject or issuer name, in the forms HAProxy gives."""

    entries: tuple[_Entry, ...]

    @classmethod
    def build(cls, name: x509.Name, openssl: crypto.X509Name) -> DistinguishedName:
        """Read C{name}; C{openssl} is the same name as OpenSSL parsed it,
        whose components keep the bytes exactly as the certificate has them."""
        attributes = [
            (index, attribute)
            for index, rdn in enumerate(name.rdns)
            for attribute in rdn
        ]
        components = openssl.get_components()
        entries = []
        for (index, attribute), (short, raw) in zip(
            attributes, components, strict=False
        ):
            named = short.decode("ascii", "replace")
            value = attribute.value
            if named == _UNDEF:
                named = attribute.oid.dotted_string
                # The ASN.1 tag of the value's string type (UTF8String: 12).
                tag = getattr(getattr(attribute, "_type", None), "value", 12)
                escaped = _der_hex(tag, raw)
            elif isinstance(value, str):
                escaped = _rfc2253_value(value)
            else:
                escaped = _der_hex(3, value)  # a BIT STRING (x500UniqueIdentifier)
            clean = _without_nul(raw)
            entries.append(
                _Entry(
                    named,
                    None if clean is None else clean.decode("latin-1"),
                    escaped,
                    index,
                )
            )
        return cls(tuple(entries))

    @cached_property
    def oneline(self) -> str | None:
        """C{/C=FR/O=Example/CN=client1}; None when a value is malformed."""
        if any(entry.raw is None for entry in self.entries) or not self.entries:
            return None
        return "".join(f"/{entry.name}={entry.raw}" for entry in self.entries)

    @cached_property
    def rfc2253(self) -> str | None:
        """C{CN=client1,O=Example,C=FR} (RFC 2253: last attribute first)."""
        if not self.entries:
            return None
        parts = []
        previous = None
        for entry in reversed(self.entries):
            if previous is not None:
                parts.append("+" if entry.rdn == previous else ",")
            parts.append(f"{entry.name}={entry.rfc2253}")
            previous = entry.rdn
        return "".join(parts)

    def entry(self, name: str, occurrence: int) -> str | None:
        """The value of the C{occurrence}th attribute called C{name} (in any
        case): 1 is the first, -1 the last; None when there is none."""
        wanted = name.lower()
        ordered = self.entries if occurrence > 0 else reversed(self.entries)
        count = abs(occurrence)
        for entry in ordered:
            if entry.name.lower() == wanted:
                count -= 1
                if count == 0:
                    return entry.raw
        return None


def _asn1_time(when: datetime.datetime) -> str | None:
    """HAProxy's C{YYMMDDhhmmssZ}, for the years 2000 to 2099 only."""
    if not 2000 <= when.year <= 2099:
        return None
    return when.strftime("%y%m%d%H%M%SZ")


def _ip_text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address as OpenSSL prints it: IPv6 as eight uncompressed groups."""
    if address.version == 4:
        return str(address)
    groups = [int.from_bytes(address.packed[i : i + 2], "big") for i in range(0, 16, 2)]
    return ":".join(f"{group:X}" for group in groups)


def _general_name(name: x509.GeneralName) -> str:
    """A subject alternative name as OpenSSL's C{GENERAL_NAME_print} writes it."""
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.IPAddress):
        if isinstance(name.value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return f"IP Address:{_ip_text(name.value)}"
        return "IP Address:<invalid>"
    if isinstance(name, x509.DirectoryName):
        return "DirName:" + ", ".join(
            f"{openssl_short_name(a.oid, a.oid.dotted_string)} = {a.value!s}"
            for a in name.value
        )
    if isinstance(name, x509.RegisteredID):
        return f"Registered ID:{name.value.dotted_string}"
    return "othername:<unsupported>"


def _san_value(name: x509.GeneralName) -> str:
    """One subject alternative name alone, for C{ssl_c_san(TYPE)}: an IP
    address in its usual text form (C{2001:db8::1})."""
    return str(name.value)


@attrs.frozen
class CertificateFacts:
    """The fields of one certificate, each worked out once, when first read.

    @ivar certificate: the certificate.
    """

    certificate: x509.Certificate

    @cached_property
    def _openssl(self) -> crypto.X509:
        return crypto.X509.from_cryptography(self.certificate)

    @cached_property
    def subject(self) -> DistinguishedName:
        """The subject's name (C{ssl_c_s_dn})."""
        return DistinguishedName.build(
            self.certificate.subject, self._openssl.get_subject()
        )

    @cached_property
    def issuer(self) -> DistinguishedName:
        """The issuer's name (C{ssl_c_i_dn})."""
        return DistinguishedName.build(
            self.certificate.issuer, self._openssl.get_issuer()
        )

    @cached_property
    def der(self) -> bytes:
        """The certificate in DER (C{ssl_c_der})."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @cached_property
    def sha1(self) -> bytes:
        """The SHA-1 digest of the DER (C{ssl_c_sha1})."""
        return hashlib.sha1(self.der, usedforsecurity=False).digest()

    @cached_property
    def serial(self) -> bytes:
        """The serial number's bytes, big-endian, without a sign byte, as
        OpenSSL keeps it (C{ssl_c_serial})."""
        number = abs(self.certificate.serial_number)
        return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")

    @cached_property
    def version(self) -> int:
        """The version: 3 for an X.509v3 certificate (C{ssl_c_version})."""
        return int(self.certificate.version.value) + 1

    @cached_property
    def not_before(self) -> str | None:
        """The start of validity, C{YYMMDDhhmmssZ} (C{ssl_c_notbefore})."""
        return _asn1_time(self.certificate.not_valid_before_utc)

    @cached_property
    def not_after(self) -> str | None:
        """The end of validity, C{YYMMDDhhmmssZ} (C{ssl_c_notafter})."""
        return _asn1_time(self.certificate.not_valid_after_utc)

    def remaining_days(self, now: float) -> int:
        """Whole days from C{now} (POSIX time) to the end of validity;
        negative once it has passed (C{ssl_c_remaining_days})."""
        left = self.certificate.not_valid_after_utc.timestamp() - now
        return int(left // 86400)

    @cached_property
    def sig_alg(self) -> str:
        """The signature algorithm's short name (C{ssl_c_sig_alg})."""
        return openssl_short_name(self.certificate.signature_algorithm_oid)

    @cached_property
    def key_alg(self) -> str:
        """The public key algorithm's short name (C{ssl_c_key_alg})."""
        return openssl_short_name(self.certificate.public_key_algorithm_oid)

    @cached_property
    def _alternative_names(self) -> tuple[x509.GeneralName, ...]:
        try:
            extension = self.certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            )
        except (x509.ExtensionNotFound, ValueError):
            return ()
        return tuple(extension.value)

    @cached_property
    def san(self) -> str | None:
        """Every subject alternative name, as HAProxy gives them: C{DNS:a,
        IP Address:127.0.0.1, URI:...} (C{ssl_c_san})."""
        names = self._alternative_names
        return ", ".join(map(_general_name, names)) if names else None

    def san_values(self, kind: type[x509.GeneralName]) -> tuple[str, ...]:
        """The subject alternative names of one C{kind}, each alone."""
        return tuple(
            _san_value(name)
            for name in self._alternative_names
            if isinstance(name, kind)
        )
