"""PEM files: which certificate goes with the key, the chain, and clear errors."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from certlb.tls.pem import PemError, load_ca_certificates, load_crls, load_key_pair
from tests.helpers import pki

# The DER of the OID of curve P-256, which every key of the test PKI uses, and
# one of a curve that does not exist: a bit flipped in a key or certificate.
P256 = bytes.fromhex("06082a8648ce3d030107")
NO_CURVE = bytes.fromhex("06082a8648ce3d030100")


def pem(label: str, der: bytes) -> bytes:
    """C{der} as a PEM block labelled C{label}."""
    body = base64.encodebytes(der).decode("ascii")
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode("ascii")


def names(certificates: Iterable[x509.Certificate]) -> list[str]:
    """The subjects of C{certificates}, in order."""
    return [c.subject.rfc4514_string() for c in certificates]


class PemFileTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def write(self, name: str, *parts: bytes) -> str:
        """Write C{parts} one after the other into file C{name}; its path."""
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(b"".join(parts))
        return path

    def key_pair_error(self, path: str) -> str:
        """The message of the L{PemError} that loading C{path} raises."""
        return str(self.assertRaises(PemError, load_key_pair, path))


class KeyPairTests(PemFileTestCase):
    def test_certificate_and_key(self) -> None:
        """A certificate followed by its key loads with an empty chain."""
        server = pki().server
        path = self.write("server.pem", server.certificate_pem(), server.key_pem())
        pair = load_key_pair(path)
        self.assertEqual(pair.certificate, server.certificate)
        self.assertEqual(pair.chain, ())
        key = pair.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.assertEqual(key, server.key_pem())

    def test_certificate_found_wherever_it_is(self) -> None:
        """The certificate is the one matching the key, wherever it is in the
        file; the others are its chain, in the order of the file."""
        p = pki()
        path = self.write(
            "mixed.pem",
            p.ca1.certificate_pem(),
            p.server.key_pem(),
            p.ca2.certificate_pem(),
            p.server.certificate_pem(),
            p.untrusted_ca.certificate_pem(),
        )
        pair = load_key_pair(path)
        self.assertEqual(pair.certificate, p.server.certificate)
        self.assertEqual(
            names(pair.chain),
            [
                "CN=certlb test CA 1,O=certlb test PKI",
                "CN=certlb test CA 2,O=certlb test PKI",
                "CN=certlb untrusted CA,O=certlb test PKI",
            ],
        )

    def test_key_before_certificate(self) -> None:
        """The key may come before the certificate."""
        server = pki().server
        path = self.write("server.pem", server.key_pem(), server.certificate_pem())
        self.assertEqual(load_key_pair(path).certificate, server.certificate)

    def test_traditional_key_format(self) -> None:
        """A key in OpenSSL's traditional format (C{EC PRIVATE KEY}) loads."""
        server = pki().server
        key = server.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        self.assertIn(b"-----BEGIN EC PRIVATE KEY-----", key)
        path = self.write("server.pem", server.certificate_pem(), key)
        self.assertEqual(load_key_pair(path).certificate, server.certificate)

    def test_missing_file(self) -> None:
        """A file that does not exist is named as such."""
        path = os.path.join(self.directory, "nope.pem")
        self.assertEqual(
            self.key_pair_error(path), f"certificate file {path!r} does not exist"
        )

    def test_directory(self) -> None:
        """A directory is refused, saying to give a PEM file."""
        self.assertEqual(
            self.key_pair_error(self.directory),
            f"certificate file {self.directory!r} is a directory; give a PEM file",
        )

    def test_unreadable_file(self) -> None:
        """A file that cannot be read says why."""
        if os.geteuid() == 0:
            raise SkipTest("root reads any file, whatever its mode")
        path = self.write("server.pem", pki().server.certificate_pem())
        os.chmod(path, 0)
        self.assertEqual(
            self.key_pair_error(path),
            f"certificate file {path!r} cannot be read: Permission denied",
        )

    def test_no_certificate(self) -> None:
        """A file with only a key says it holds no certificate."""
        path = self.write("key.pem", pki().server.key_pem())
        self.assertEqual(
            self.key_pair_error(path),
            f"certificate file {path!r} holds no PEM certificate",
        )

    def test_no_key(self) -> None:
        """A file without a key says how to append it."""
        path = self.write("server.crt", pki().server.certificate_pem())
        self.assertEqual(
            self.key_pair_error(path),
            f"certificate file {path!r} has no private key; append the key to "
            f"the certificate, as in: cat server.crt server.key > {path}",
        )

    def test_encrypted_key(self) -> None:
        """An encrypted PKCS#8 key is refused, saying how to decrypt it."""
        server = pki().server
        key = server.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        path = self.write("server.pem", server.certificate_pem(), key)
        self.assertEqual(
            self.key_pair_error(path),
            f"certificate file {path!r} has an encrypted private key, which "
            "certlb cannot use unattended; decrypt it with: "
            "openssl pkey -in KEY -out KEY.plain",
        )

    def test_encrypted_traditional_key(self) -> None:
        """A key encrypted in OpenSSL's traditional format (a C{Proc-Type}
        header) is called encrypted too, not damaged."""
        server = pki().server
        key = server.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(b"secret"),
        )
        self.assertIn(b"Proc-Type: 4,ENCRYPTED", key)
        path = self.write("server.pem", server.certificate_pem(), key)
        self.assertIn("has an encrypted private key", self.key_pair_error(path))

    def test_key_does_not_match(self) -> None:
        """A key that matches no certificate is refused, naming the first
        certificate of the file."""
        p = pki()
        path = self.write(
            "mixed.pem",
            p.server.certificate_pem(),
            p.ca1.certificate_pem(),
            p.clients["client1"].key_pem(),
        )
        self.assertEqual(
            self.key_pair_error(path),
            f"certificate file {path!r}: the private key does not match the "
            "certificate (CN=certlb test server,O=certlb test PKI); put the key "
            "that was made with this certificate in the file",
        )

    def test_damaged_certificate(self) -> None:
        """A certificate whose DER is cut short is called damaged."""
        server = pki().server
        der = server.certificate.public_bytes(serialization.Encoding.DER)
        path = self.write(
            "server.pem", pem("CERTIFICATE", der[: len(der) // 2]), server.key_pem()
        )
        self.assertIn(
            f"certificate file {path!r} holds a damaged certificate: ",
            self.key_pair_error(path),
        )

    def test_certificate_that_is_not_base64(self) -> None:
        """A certificate block that is not base64 is called damaged."""
        path = self.write(
            "server.pem",
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
            pki().server.key_pem(),
        )
        self.assertIn("holds a damaged certificate: ", self.key_pair_error(path))

    def test_certificate_with_damaged_public_key(self) -> None:
        """A certificate whose public key cannot be read is called damaged,
        by name (not a traceback)."""
        server = pki().server
        der = server.certificate.public_bytes(serialization.Encoding.DER)
        self.assertEqual(der.count(P256), 1)
        path = self.write(
            "server.pem",
            pem("CERTIFICATE", der.replace(P256, NO_CURVE)),
            server.key_pem(),
        )
        self.assertIn(
            f"certificate file {path!r} holds a damaged certificate "
            "(CN=certlb test server,O=certlb test PKI): ",
            self.key_pair_error(path),
        )

    def test_damaged_key(self) -> None:
        """A key whose DER cannot be parsed is called damaged."""
        server = pki().server
        path = self.write(
            "server.pem",
            server.certificate_pem(),
            pem("PRIVATE KEY", b"\x30\x03\x02\x01\x00"),
        )
        self.assertIn(
            f"certificate file {path!r} holds a damaged private key: ",
            self.key_pair_error(path),
        )

    def test_key_of_unknown_curve(self) -> None:
        """A key naming a curve that does not exist is called damaged (not a
        traceback)."""
        server = pki().server
        der = server.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.assertEqual(der.count(P256), 1)
        path = self.write(
            "server.pem",
            server.certificate_pem(),
            pem("PRIVATE KEY", der.replace(P256, NO_CURVE)),
        )
        self.assertIn(
            f"certificate file {path!r} holds a damaged private key: ",
            self.key_pair_error(path),
        )


class CaFileTests(PemFileTestCase):
    def test_several_cas(self) -> None:
        """A CA file may hold several CAs; all are loaded, in order."""
        p = pki()
        path = self.write(
            "cas.pem",
            p.ca1.certificate_pem(),
            p.ca2.certificate_pem(),
            p.untrusted_ca.certificate_pem(),
        )
        self.assertEqual(
            load_ca_certificates(path),
            [p.ca1.certificate, p.ca2.certificate, p.untrusted_ca.certificate],
        )

    def test_one_ca(self) -> None:
        """A CA file of one CA gives that CA."""
        path = self.write("ca.crt", pki().ca1.certificate_pem())
        self.assertEqual(load_ca_certificates(path), [pki().ca1.certificate])

    def test_missing_file(self) -> None:
        """A CA file that does not exist is named as a CA file."""
        path = os.path.join(self.directory, "nope.crt")
        error = self.assertRaises(PemError, load_ca_certificates, path)
        self.assertEqual(str(error), f"CA file {path!r} does not exist")

    def test_directory(self) -> None:
        """A CA file that is a directory says to give a PEM file."""
        error = self.assertRaises(PemError, load_ca_certificates, self.directory)
        self.assertEqual(
            str(error), f"CA file {self.directory!r} is a directory; give a PEM file"
        )

    def test_no_certificate(self) -> None:
        """An empty CA file, or one of a key only, holds no certificate."""
        for name, data in [("empty.crt", b""), ("key.pem", pki().ca1.key_pem())]:
            path = self.write(name, data)
            error = self.assertRaises(PemError, load_ca_certificates, path)
            self.assertEqual(str(error), f"CA file {path!r} holds no PEM certificate")

    def test_damaged_ca(self) -> None:
        """A damaged CA certificate is called damaged."""
        der = pki().ca1.certificate.public_bytes(serialization.Encoding.DER)
        path = self.write("ca.crt", pem("CERTIFICATE", der[:100]))
        error = self.assertRaises(PemError, load_ca_certificates, path)
        self.assertIn(f"CA file {path!r} holds a damaged certificate: ", str(error))


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    """C{crl} as PEM."""
    return crl.public_bytes(serialization.Encoding.PEM)


class CrlFileTests(PemFileTestCase):
    def crl_error(self, path: str) -> str:
        """The message of the L{PemError} that loading CRL file C{path}
        raises."""
        return str(self.assertRaises(PemError, load_crls, path))

    def test_several_crls(self) -> None:
        """A CRL file may hold the CRLs of several CAs; all are loaded, in
        order."""
        ca1, ca2 = pki().crls
        path = self.write("ca_crl.pem", crl_pem(ca1), crl_pem(ca2))
        self.assertEqual(load_crls(path), [ca1, ca2])

    def test_text_around(self) -> None:
        """Text around the CRLs (as C{openssl crl -text} writes) is skipped."""
        ca1, ca2 = pki().crls
        path = self.write(
            "text.pem",
            b"Certificate Revocation List (CRL):\n    Version 2 (0x1)\n",
            crl_pem(ca1),
            b"\n# CA 2\n",
            crl_pem(ca2),
        )
        self.assertEqual(load_crls(path), [ca1, ca2])

    def test_missing_file(self) -> None:
        """A CRL file that does not exist is named as a CRL file."""
        path = os.path.join(self.directory, "nope.pem")
        self.assertEqual(self.crl_error(path), f"CRL file {path!r} does not exist")

    def test_directory(self) -> None:
        """A CRL file that is a directory says to give a PEM file."""
        self.assertEqual(
            self.crl_error(self.directory),
            f"CRL file {self.directory!r} is a directory; give a PEM file",
        )

    def test_unreadable_file(self) -> None:
        """A CRL file that cannot be read says why."""
        if os.geteuid() == 0:
            raise SkipTest("root reads any file, whatever its mode")
        path = self.write("ca_crl.pem", crl_pem(pki().crls[0]))
        os.chmod(path, 0)
        self.assertEqual(
            self.crl_error(path),
            f"CRL file {path!r} cannot be read: Permission denied",
        )

    def test_no_crl(self) -> None:
        """An empty file, or one of text, holds no PEM CRL."""
        for name, data in [("empty.pem", b""), ("text.pem", b"no CRL here\n")]:
            path = self.write(name, data)
            self.assertEqual(
                self.crl_error(path),
                f"CRL file {path!r} holds no PEM CRL (-----BEGIN X509 CRL-----)",
            )

    def test_certificates_instead(self) -> None:
        """A file of certificates (a CA file given as crl-file) is named as
        such, saying to give revocation lists."""
        path = self.write("ca.crt", pki().ca1.certificate_pem())
        self.assertEqual(
            self.crl_error(path),
            f"CRL file {path!r} holds certificates but no CRL; give the CAs' "
            "revocation lists (PEM, -----BEGIN X509 CRL-----)",
        )

    def test_der_crl(self) -> None:
        """A CRL in DER is recognised, with the command that converts it."""
        der = pki().crls[0].public_bytes(serialization.Encoding.DER)
        path = self.write("ca.crl", der)
        self.assertEqual(
            self.crl_error(path),
            f"CRL file {path!r} holds a DER CRL; convert it to PEM with: "
            f"openssl crl -inform DER -in {path} -out {path}.pem",
        )

    def test_damaged_crl(self) -> None:
        """A CRL whose DER is cut short is called damaged, by its number in
        the file."""
        ca1, ca2 = pki().crls
        der = ca2.public_bytes(serialization.Encoding.DER)
        path = self.write(
            "ca_crl.pem", crl_pem(ca1), pem("X509 CRL", der[: len(der) // 2])
        )
        self.assertIn(
            f"CRL file {path!r}: CRL number 2 is damaged: ", self.crl_error(path)
        )

    def test_crl_that_is_not_base64(self) -> None:
        """A CRL block that is not base64 is called damaged."""
        path = self.write(
            "ca_crl.pem",
            b"-----BEGIN X509 CRL-----\nnot base64!\n-----END X509 CRL-----\n",
        )
        self.assertIn(
            f"CRL file {path!r}: CRL number 1 is damaged: ", self.crl_error(path)
        )

    def test_crl_cut_short(self) -> None:
        """A CRL without its END line (a file cut short) says so, instead of
        'no CRL' or a parse error."""
        ca1, ca2 = pki().crls
        path = self.write("ca_crl.pem", crl_pem(ca1), crl_pem(ca2)[:200])
        self.assertEqual(
            self.crl_error(path),
            f"CRL file {path!r}: CRL number 2 is cut short (no "
            "'-----END X509 CRL-----' line)",
        )
