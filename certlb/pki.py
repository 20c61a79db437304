"""A throw-away PKI for the demo and the tests (EC P-256, via C{cryptography}).

L{generate} makes two trusted CAs, an untrusted one, a server certificate for
C{localhost}, C{127.0.0.1} and C{::1}, and one client of every kind that
certificate policies tell apart; every certificate has its own CN.
L{PKI.write} puts them in a directory as PEM files a user can give to
C{openssl} and C{curl}.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)

# The clients, by file name: issuer ("ca1", "ca2", "untrusted", or "self"),
# and validity relative to now, in days.
CLIENTS: dict[str, tuple[str, int, int]] = {
    "client1": ("ca1", -1, 365),
    "client2": ("ca1", -1, 365),
    "client3": ("ca2", -1, 365),
    "expired": ("ca1", -30, -1),
    "notyetvalid": ("ca1", 1, 365),
    "revoked": ("ca1", -1, 365),
    "selfsigned": ("self", -1, 365),
    "untrusted": ("untrusted", -1, 365),
}


@attrs.frozen
class Identity:
    """A certificate and its private key."""

    name: str
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@attrs.frozen
class PKI:
    """Every certificate of the throw-away PKI, and the CAs' revocation lists.

    @ivar crls: CA 1's list (which revokes the C{revoked} client) and CA 2's.
    """

    ca1: Identity
    ca2: Identity
    untrusted_ca: Identity
    server: Identity
    clients: dict[str, Identity]
    crls: tuple[x509.CertificateRevocationList, ...]

    def write(self, directory: str) -> dict[str, str]:
        """Write the PKI as PEM files into C{directory}, named as in the article.

        Files: C{ca.crt} (CA 1), C{ca2.crt} (CA 2), C{ca.pem} (both),
        C{untrusted-ca.crt}, C{server.pem} (certificate and key, as C{crt}
        wants it), C{ca_crl.pem} (the CRLs of both CAs), and for each client
        C{NAME.crt}, C{NAME.key} and C{NAME.pem} (both).

        @return: the path of each file, by file name.
        """
        os.makedirs(directory, exist_ok=True)
        ca1, ca2 = self.ca1.certificate_pem(), self.ca2.certificate_pem()
        contents: dict[str, bytes] = {
            "ca.crt": ca1,
            "ca2.crt": ca2,
            "ca.pem": ca1 + ca2,
            "untrusted-ca.crt": self.untrusted_ca.certificate_pem(),
            "server.pem": self.server.certificate_pem() + self.server.key_pem(),
            "ca_crl.pem": b"".join(
                crl.public_bytes(serialization.Encoding.PEM) for crl in self.crls
            ),
        }
        for name, identity in self.clients.items():
            contents[f"{name}.crt"] = identity.certificate_pem()
            contents[f"{name}.key"] = identity.key_pem()
            contents[f"{name}.pem"] = identity.certificate_pem() + identity.key_pem()
        paths: dict[str, str] = {}
        for filename, data in contents.items():
            path = paths[filename] = os.path.join(directory, filename)
            with open(path, "wb") as f:
                f.write(data)
            if b"PRIVATE KEY" in data:
                os.chmod(path, 0o600)
        return paths


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certlb test PKI"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _issue(
    common_name: str,
    issuer: Identity | None,
    now: datetime.datetime,
    days: tuple[int, int],
    ca: bool = False,
    server_names: Sequence[str] = (),
    client: bool = False,
) -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(common_name)
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + days[0] * DAY)
        .not_valid_after(now + days[1] * DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if server_names:
        alternatives: list[x509.GeneralName] = []
        for name in server_names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternatives.append(x509.DNSName(name))
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alternatives), critical=False
        ).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    if client:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return Identity(common_name, builder.sign(signer, hashes.SHA256()), key)


def _crl(
    ca: Identity, revoked: Sequence[Identity], now: datetime.datetime
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - DAY)
        .next_update(now + 30 * DAY)
    )
    for identity in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(identity.certificate.serial_number)
            .revocation_date(now - DAY)
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256())


def generate(now: datetime.datetime | None = None) -> PKI:
    """Make a fresh PKI whose validity periods are relative to C{now}."""
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    authorities = {
        "ca1": _issue("certlb test CA 1", None, now, (-2, 3650), ca=True),
        "ca2": _issue("certlb test CA 2", None, now, (-2, 3650), ca=True),
        "untrusted": _issue("certlb untrusted CA", None, now, (-2, 3650), ca=True),
    }
    server = _issue(
        "certlb test server",
        authorities["ca1"],
        now,
        (-1, 365),
        server_names=("localhost", "127.0.0.1", "::1"),
    )
    clients = {
        name: _issue(
            f"certlb {name} client",
            None if issuer == "self" else authorities[issuer],
            now,
            (start, end),
            client=True,
        )
        for name, (issuer, start, end) in CLIENTS.items()
    }
    return PKI(
        ca1=authorities["ca1"],
        ca2=authorities["ca2"],
        untrusted_ca=authorities["untrusted"],
        server=server,
        clients=clients,
        crls=(
            _crl(authorities["ca1"], [clients["revoked"]], now),
            _crl(authorities["ca2"], [], now),
        ),
    )
