"""Read certificates and keys from PEM files, with errors that say what to do.

Pure Python over C{cryptography}: used both by the configuration checker and
when TLS contexts are built.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from certlb.config.sources import read_bytes

_KEY_BLOCK = re.compile(
    rb"-----BEGIN ((?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY)-----.*?"
    rb"-----END \1-----",
    re.DOTALL,
)


class PemError(Exception):
    """A PEM file cannot be used; the message says why and what to do."""


@attrs.frozen
class KeyPair:
    """A certificate, the chain that goes with it, and its private key."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key: PrivateKeyTypes


def _read(path: str, what: str) -> bytes:
    try:
        return read_bytes(path)
    except FileNotFoundError:
        raise PemError(f"{what} {path!r} does not exist") from None
    except IsADirectoryError:
        raise PemError(f"{what} {path!r} is a directory; give a PEM file") from None
    except OSError as e:
        raise PemError(f"{what} {path!r} cannot be read: {e.strerror}") from None


def _certificates(data: bytes, path: str, what: str) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise PemError(f"{what} {path!r} holds no PEM certificate")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise PemError(f"{what} {path!r} holds a damaged certificate: {e}") from None


def _public(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_key_pair(path: str) -> KeyPair:
    """Load a C{crt} file: certificate, private key and chain in one PEM.

    The certificate is the one whose public key matches the private key; the
    other certificates are sent as its chain, in the order of the file.

    @raise PemError: the file is missing, unreadable, has no certificate, no
        key, an encrypted key, or a key that matches no certificate.
    """
    what = "certificate file"
    data = _read(path, what)
    certificates = _certificates(data, path, what)
    match = _KEY_BLOCK.search(data)
    if match is None:
        raise PemError(
            f"{what} {path!r} has no private key; append the key to the "
            f"certificate, as in: cat server.crt server.key > {path}"
        )
    label, block = match.group(1), match.group(0)
    # PKCS#8 says so in its label, OpenSSL's traditional format in a header.
    if label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block:
        raise PemError(
            f"{what} {path!r} has an encrypted private key, which certlb cannot "
            "use unattended; decrypt it with: openssl pkey -in KEY -out KEY.plain"
        )
    try:
        key = serialization.load_pem_private_key(block, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise PemError(f"{what} {path!r} holds a damaged private key: {e}") from None
    wanted = _public(key.public_key())
    for index, certificate in enumerate(certificates):
        try:
            public = _public(certificate.public_key())
        except (ValueError, UnsupportedAlgorithm) as e:
            subject = certificate.subject.rfc4514_string()
            raise PemError(
                f"{what} {path!r} holds a damaged certificate ({subject}): {e}"
            ) from None
        if public == wanted:
            chain = certificates[:index] + certificates[index + 1 :]
            return KeyPair(certificate, tuple(chain), key)
    subject = certificates[0].subject.rfc4514_string()
    raise PemError(
        f"{what} {path!r}: the private key does not match the certificate "
        f"({subject}); put the key that was made with this certificate in the file"
    )


_CRL_BEGIN = b"-----BEGIN X509 CRL-----"
_CRL_END = b"-----END X509 CRL-----"


def load_crls(path: str) -> list[x509.CertificateRevocationList]:
    """Load a C{crl-file}: the revocation lists of one or several CAs.

    @raise PemError: the file is missing, unreadable, holds no CRL (saying
        how to convert a DER one, or that it holds certificates instead), or
        a damaged one (numbered from 1, in the order of the file).
    """
    what = "CRL file"
    data = _read(path, what)
    if _CRL_BEGIN not in data:
        raise PemError(_no_crl(data, path, what))
    crls = []
    # Each CRL runs from its BEGIN line to the next END line.
    for number, chunk in enumerate(data.split(_CRL_BEGIN)[1:], start=1):
        end = chunk.find(_CRL_END)
        if end < 0:
            raise PemError(
                f"{what} {path!r}: CRL number {number} is cut short (no "
                f"'{_CRL_END.decode()}' line)"
            )
        try:
            crls.append(x509.load_pem_x509_crl(_CRL_BEGIN + chunk[:end] + _CRL_END))
        except (ValueError, UnsupportedAlgorithm) as e:
            raise PemError(
                f"{what} {path!r}: CRL number {number} is damaged: {e}"
            ) from None
    return crls


def _no_crl(data: bytes, path: str, what: str) -> str:
    """Why a file without a PEM CRL is not a CRL file, and what to give."""
    if b"-----BEGIN CERTIFICATE-----" in data:
        return (
            f"{what} {path!r} holds certificates but no CRL; give the CAs' "
            "revocation lists (PEM, -----BEGIN X509 CRL-----)"
        )
    try:
        x509.load_der_x509_crl(data)
    except (ValueError, UnsupportedAlgorithm):
        return f"{what} {path!r} holds no PEM CRL (-----BEGIN X509 CRL-----)"
    return (
        f"{what} {path!r} holds a DER CRL; convert it to PEM with: "
        f"openssl crl -inform DER -in {path} -out {path}.pem"
    )


def load_ca_certificates(path: str) -> list[x509.Certificate]:
    """Load a C{ca-file}: one or more CA certificates.

    @raise PemError: the file is missing, unreadable or holds no certificate.
    """
    what = "CA file"
    return _certificates(_read(path, what), path, what)
