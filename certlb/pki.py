"""A throw-away PKI for the demo and the tests (EC P-256, via C{cryptography}).

L{generate} makes two trusted CAs, an untrusted one, intermediate CAs under
CA 1 (valid, expired, revoked), a server certificate for C{localhost},
C{127.0.0.1} and C{::1}, one client of every kind that certificate policies
tell apart, and revocation lists (good, expired, incomplete); every
certificate has its own CN.  L{PKI.write} puts them in a directory as PEM
files a user can give to C{openssl} and C{curl}.
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
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

DAY = datetime.timedelta(days=1)

# The intermediate CAs, all issued by CA 1, by name: CN, and validity relative
# to now, in days.  CA 1's CRL revokes "revoked-intermediate".
INTERMEDIATES: dict[str, tuple[str, int, int]] = {
    "intermediate": ("certlb test intermediate CA", -2, 3650),
    "expired-intermediate": ("certlb expired intermediate CA", -30, -1),
    "revoked-intermediate": ("certlb revoked intermediate CA", -2, 3650),
}

# The clients, by file name: issuer ("ca1", "ca2", "untrusted", "self", or an
# intermediate), and validity relative to now, in days.
CLIENTS: dict[str, tuple[str, int, int]] = {
    "client1": ("ca1", -1, 365),
    "client2": ("ca1", -1, 365),
    "client3": ("ca2", -1, 365),
    "expired": ("ca1", -30, -1),
    "notyetvalid": ("ca1", 1, 365),
    "revoked": ("ca1", -1, 365),
    "selfsigned": ("self", -1, 365),
    "untrusted": ("untrusted", -1, 365),
    "chained": ("intermediate", -1, 365),
    "expiredca": ("expired-intermediate", -1, 365),
    "revokedca": ("revoked-intermediate", -1, 365),
    "critical": ("ca1", -1, 365),
}

# The client whose certificate has a critical extension no one knows, which
# OpenSSL refuses with X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION (34): an error
# above 31, for the tests of "crt-ignore-err all".
UNKNOWN_CRITICAL = frozenset({"critical"})
# A UUID-based OID (ITU-T X.667), which needs no registration.
UNKNOWN_EXTENSION = ObjectIdentifier("2.25.158456325028528675187087900672")


@attrs.frozen
class Identity:
    """A certificate and its private key.

    @ivar chain: the CAs between the certificate and its root, which the
        holder sends with it (the intermediate CA of a chained client).
    """

    name: str
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def chain_pem(self) -> bytes:
        """The certificate followed by its chain."""
        return self.certificate_pem() + b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in self.chain
        )

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@attrs.frozen
class PKI:
    """Every certificate of the throw-away PKI, and the CAs' revocation lists.

    @ivar intermediates: the intermediate CAs under CA 1, by name (see
        L{INTERMEDIATES}).
    @ivar crls: CA 1's list (which revokes the C{revoked} client and the
        C{revoked-intermediate} CA) and CA 2's.
    @ivar intermediate_crls: the list of each intermediate CA, by name; none
        revokes anything.
    @ivar expired_crl: CA 1's list as C{crls} has it, but whose next update
        was due yesterday.
    """

    ca1: Identity
    ca2: Identity
    untrusted_ca: Identity
    server: Identity
    clients: dict[str, Identity]
    crls: tuple[x509.CertificateRevocationList, ...]
    intermediates: dict[str, Identity] = attrs.Factory(dict)
    intermediate_crls: dict[str, x509.CertificateRevocationList] = attrs.Factory(dict)
    expired_crl: x509.CertificateRevocationList | None = None

    def write(self, directory: str) -> dict[str, str]:
        """Write the PKI as PEM files into C{directory}, named as in the article.

        Certificates: C{ca.crt} (CA 1), C{ca2.crt} (CA 2), C{ca.pem} (both),
        C{untrusted-ca.crt}, C{intermediate-ca.crt},
        C{expired-intermediate-ca.crt} and C{revoked-intermediate-ca.crt} (the
        intermediate CAs, from CA 1), C{server.pem} (certificate and key, as
        C{crt} wants it), and for each client C{NAME.crt}, C{NAME.key} and
        C{NAME.pem} (both).  The C{.crt} and C{.pem} of a client of an
        intermediate CA (C{chained}, C{expiredca}, C{revokedca}) hold the
        intermediate after the client's certificate, so that C{curl --cert}
        sends it; C{openssl s_client} needs C{-cert_chain
        intermediate-ca.crt} too.

        Revocation lists: C{ca_crl.pem} (CA 1's and CA 2's), C{ca1_crl.pem}
        (CA 1's alone: CA 2's is missing), C{expired_crl.pem} (CA 1's,
        expired, and CA 2's), C{intermediate_crl.pem} (the intermediate CAs'
        alone: CA 1's is missing) and C{chain_crl.pem} (every CA's,
        intermediates included).

        @return: the path of each file, by file name.
        """
        os.makedirs(directory, exist_ok=True)
        ca1, ca2 = self.ca1.certificate_pem(), self.ca2.certificate_pem()
        crl1, crl2 = (_crl_pem(crl) for crl in self.crls)
        intermediate_crls = b"".join(map(_crl_pem, self.intermediate_crls.values()))
        contents: dict[str, bytes] = {
            "ca.crt": ca1,
            "ca2.crt": ca2,
            "ca.pem": ca1 + ca2,
            "untrusted-ca.crt": self.untrusted_ca.certificate_pem(),
            "server.pem": self.server.certificate_pem() + self.server.key_pem(),
            "ca_crl.pem": crl1 + crl2,
            "ca1_crl.pem": crl1,
            "intermediate_crl.pem": intermediate_crls,
            "chain_crl.pem": crl1 + crl2 + intermediate_crls,
        }
        if self.expired_crl is not None:
            contents["expired_crl.pem"] = _crl_pem(self.expired_crl) + crl2
        for name, identity in self.intermediates.items():
            contents[f"{name}-ca.crt"] = identity.certificate_pem()
        for name, identity in self.clients.items():
            contents[f"{name}.crt"] = identity.chain_pem()
            contents[f"{name}.key"] = identity.key_pem()
            contents[f"{name}.pem"] = identity.chain_pem() + identity.key_pem()
        paths: dict[str, str] = {}
        for filename, data in contents.items():
            path = paths[filename] = os.path.join(directory, filename)
            with open(path, "wb") as f:
                f.write(data)
            if b"PRIVATE KEY" in data:
                os.chmod(path, 0o600)
        return paths


def _crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


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
    unknown_critical: bool = False,
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
    if unknown_critical:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(UNKNOWN_EXTENSION, b"\x05\x00"), critical=True
        )
    chain: tuple[x509.Certificate, ...] = ()
    if issuer is not None and issuer.certificate.issuer != issuer.certificate.subject:
        # Issued by an intermediate CA: send it along.
        chain = (issuer.certificate, *issuer.chain)
    return Identity(common_name, builder.sign(signer, hashes.SHA256()), key, chain)


def _crl(
    ca: Identity,
    revoked: Sequence[Identity],
    now: datetime.datetime,
    days: tuple[int, int] = (-1, 30),
) -> x509.CertificateRevocationList:
    """C{ca}'s list revoking C{revoked}, updated and due C{days} from now."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now + days[0] * DAY)
        .next_update(now + days[1] * DAY)
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
    intermediates = {
        name: _issue(common_name, authorities["ca1"], now, (start, end), ca=True)
        for name, (common_name, start, end) in INTERMEDIATES.items()
    }
    issuers = {**authorities, **intermediates}
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
            None if issuer == "self" else issuers[issuer],
            now,
            (start, end),
            client=True,
            unknown_critical=name in UNKNOWN_CRITICAL,
        )
        for name, (issuer, start, end) in CLIENTS.items()
    }
    revoked_by_ca1 = [clients["revoked"], intermediates["revoked-intermediate"]]
    return PKI(
        ca1=authorities["ca1"],
        ca2=authorities["ca2"],
        untrusted_ca=authorities["untrusted"],
        server=server,
        clients=clients,
        crls=(
            _crl(authorities["ca1"], revoked_by_ca1, now),
            _crl(authorities["ca2"], [], now),
        ),
        intermediates=intermediates,
        intermediate_crls={
            name: _crl(identity, [], now) for name, identity in intermediates.items()
        },
        expired_crl=_crl(authorities["ca1"], revoked_by_ca1, now, (-31, -1)),
    )
