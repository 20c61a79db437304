"""The client's identity for servers: forged headers removed, RFC 9440's
Client-Cert headers, and Envoy's X-Forwarded-Client-Cert."""

from __future__ import annotations

import base64
import datetime
import hashlib
import textwrap
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from twisted.trial.unittest import SynchronousTestCase

from certlb.config import parse_config
from certlb.config.model import IdentityHeaders
from certlb.proxy.identity import (
    certificate_headers,
    forged,
    identity_headers,
    rfc9440,
    xfcc_element,
)
from certlb.tls.certinfo import CertificateFacts
from certlb.tls.state import ClientCertState
from tests.helpers import pki
from tests.proxy_harness import ProxyTestCase

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def self_signed(name: x509.Name, *alternatives: x509.GeneralName) -> x509.Certificate:
    """A self-signed certificate for C{name}, with those subject alternative
    names."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if alternatives:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(list(alternatives)), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def certificate_with_names() -> x509.Certificate:
    """A self-signed certificate with a URI and two DNS names."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'Acme, "Inc"'),
            x509.NameAttribute(NameOID.COMMON_NAME, "svc"),
        ]
    )
    return self_signed(
        name,
        x509.UniformResourceIdentifier("spiffe://acme/svc"),
        x509.DNSName("svc.acme"),
        x509.DNSName("svc2.acme"),
    )


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


class CertificateHeadersTests(SynchronousTestCase):
    def headers(self, lines: str) -> frozenset[str]:
        text = "frontend f\n  mode http\n  bind :80\n  default_backend b\n"
        text += "backend b\n  mode http\n  server s 10.0.0.1:80\n" + lines
        config, _ = parse_config(text, "t.cfg", {})
        return certificate_headers(config)

    def test_value_from_certificate(self) -> None:
        """A header whose value reads a certificate fetch is one a client may
        not send."""
        self.assertEqual(
            self.headers(
                "  http-request set-header X-Ssl-Error %[ssl_c_verify]\n"
                "  http-request add-header X-Client %[src]\n"
            ),
            {"x-ssl-error"},
        )

    def test_condition_on_certificate(self) -> None:
        """So is a header set under a condition on the certificate, named or
        anonymous (the article's reqadd)."""
        self.assertEqual(
            self.headers(
                "  acl has_cert ssl_fc_has_crt\n"
                "  reqadd X-Ssl-Error:\\ 10 if { ssl_c_verify 10 }\n"
                "  http-request set-header X-Cert yes if has_cert\n"
                "  http-request set-header X-Path %[path] if { path_beg /a }\n"
                "  http-request del-header X-Gone if has_cert\n"
            ),
            {"x-ssl-error", "x-cert"},
        )

    def test_forged(self) -> None:
        """The standard identity headers are always removed, but
        X-Forwarded-Client-Cert when a proxy before certlb is trusted with it."""
        self.assertEqual(
            forged(IdentityHeaders(), frozenset({"x-ssl-error"})),
            {
                "client-cert",
                "client-cert-chain",
                "x-forwarded-client-cert",
                "x-ssl-error",
            },
        )
        self.assertEqual(
            forged(IdentityHeaders(xfcc="append"), frozenset()),
            {"client-cert", "client-cert-chain"},
        )


class FormatTests(SynchronousTestCase):
    def test_rfc9440(self) -> None:
        """Client-Cert is the certificate's DER in base64 between colons;
        Client-Cert-Chain lists the rest of the chain."""
        chained = pki().clients["chained"]
        headers = rfc9440(
            CertificateFacts(chained.certificate),
            (chained.certificate, *chained.chain),
        )
        self.assertEqual(headers[0][0], "Client-Cert")
        self.assertEqual(
            base64.b64decode(headers[0][1].strip(":")), der(chained.certificate)
        )
        self.assertEqual(headers[1][0], "Client-Cert-Chain")
        items = headers[1][1].split(", ")
        self.assertEqual(
            [base64.b64decode(i.strip(":")) for i in items],
            [der(c) for c in chained.chain],
        )
        self.assertEqual(len(rfc9440(CertificateFacts(chained.certificate), ())), 1)

    def test_xfcc(self) -> None:
        """An XFCC element: the hash of the DER, the PEM URL-encoded, the
        subject quoted, each URI and DNS name."""
        certificate = certificate_with_names()
        element = xfcc_element(
            CertificateFacts(certificate), (), ("Hash", "Cert", "Subject", "URI", "DNS")
        )
        parts = element.split(";")
        self.assertEqual(
            parts[0], "Hash=" + hashlib.sha256(der(certificate)).hexdigest()
        )
        self.assertEqual(
            unquote(parts[1][len('Cert="') : -1]).encode("ascii"),
            certificate.public_bytes(Encoding.PEM),
        )
        # RFC 4514's escapes, then a quoted string's.
        self.assertEqual(parts[2], r'Subject="CN=svc,O=Acme\\, \\\"Inc\\\""')
        self.assertEqual(
            parts[3:], ["URI=spiffe://acme/svc", "DNS=svc.acme", "DNS=svc2.acme"]
        )

    def test_modes(self) -> None:
        """sanitize-set writes certlb's element alone, append adds it after
        those received, sanitize and forward write none."""
        certificate = certificate_with_names()
        received = [("X-Forwarded-Client-Cert", "By=x;Hash=1")]

        def xfcc(mode: str) -> list[str]:
            identity = IdentityHeaders(xfcc=mode, xfcc_fields=("URI",))
            headers = identity_headers(
                identity, CertificateFacts(certificate), (), received
            )
            return [v for n, v in headers if n == "X-Forwarded-Client-Cert"]

        self.assertEqual(xfcc("sanitize-set"), ["URI=spiffe://acme/svc"])
        self.assertEqual(xfcc("append"), ["By=x;Hash=1,URI=spiffe://acme/svc"])
        self.assertEqual(xfcc("sanitize"), [])
        self.assertEqual(xfcc("forward"), [])

    def test_without_certificate(self) -> None:
        """Without a client certificate, no identity header is written."""
        identity = IdentityHeaders(client_cert=True, xfcc="sanitize-set")
        self.assertEqual(identity_headers(identity, None, (), []), [])


class OptionTests(SynchronousTestCase):
    def parse(self, line: str) -> tuple[IdentityHeaders, list[str]]:
        config, problems = parse_config(
            f"frontend f\n  mode http\n  bind :80\n  {line}\n  default_backend b\n"
            "backend b\n  mode http\n  server s h:80\n",
            "t.cfg",
            {},
        )
        return config.frontends[0].identity, [str(p) for p in problems]

    def test_options(self) -> None:
        """The options land in the frontend's identity settings."""
        self.assertEqual(
            self.parse("option client-cert-headers"),
            (IdentityHeaders(client_cert=True), []),
        )
        self.assertEqual(
            self.parse("option forwarded-client-cert")[0].xfcc, "sanitize-set"
        )
        self.assertEqual(
            self.parse("option forwarded-client-cert append Hash,URI")[0],
            IdentityHeaders(xfcc="append", xfcc_fields=("Hash", "URI")),
        )

    def test_bad_option(self) -> None:
        """A word that is no mode nor field is an error with a suggestion."""
        _, problems = self.parse("option forwarded-client-cert apend")
        self.assertEqual(
            problems,
            [
                "t.cfg:4: error: 'option forwarded-client-cert': 'apend' is "
                "neither a mode (sanitize, sanitize-set, forward, append) nor a "
                "field (Hash,Cert,Chain,Subject,URI,DNS); did you mean 'append'?"
            ],
        )

    def test_in_backend_warns(self) -> None:
        """In a backend, the options do nothing, and say so."""
        _, problems = parse_config(
            "backend b\n  mode http\n  option client-cert-headers\n  server s h:80\n",
            "t.cfg",
            {},
        )
        self.assertEqual(
            [str(p) for p in problems],
            [
                "t.cfg:3: warning: 'option client-cert-headers' has no effect in a "
                "backend section; it belongs in defaults or frontend or listen "
                "sections"
            ],
        )


CONFIG = """\
    frontend fe
        mode http
        bind :80
        option client-cert-headers
        option forwarded-client-cert sanitize-set Hash
        http-request set-header X-Ssl-Error %[ssl_c_verify] if { ssl_c_verify gt 0 }
        default_backend be
    backend be
        mode http
        server s1 10.0.0.1:80
"""


class ForgeryTests(ProxyTestCase):
    config_text = textwrap.dedent(CONFIG)

    def test_forged_headers_never_reach_the_server(self) -> None:
        """What a client sends as its identity is removed; the server gets
        certlb's headers only."""
        client1 = pki().clients["client1"]
        state = ClientCertState(
            has_crt=True,
            used=True,
            certificate=client1.certificate,
            chain=(client1.certificate,),
        )
        client = self.connect_client(state)
        client.get(
            headers=b"Client-Cert: :Zm9yZ2Vk:\r\n"
            b"Client_Cert_Chain: :Zm9yZ2Vk:\r\n"
            b"X-Forwarded-Client-Cert: Hash=forged\r\n"
            b"X-Ssl-Error: 0\r\nx-ssl_error: 0\r\nX-Other: kept\r\n"
        )
        server = self.accept()
        sent = server.received().decode("latin-1")
        self.assertNotIn("forged", sent)
        self.assertNotIn("Zm9yZ2Vk", sent)
        self.assertNotIn("ssl-error", sent.lower())
        self.assertNotIn("ssl_error", sent.lower())
        self.assertIn("X-Other: kept\r\n", sent)
        encoded = base64.b64encode(der(client1.certificate)).decode("ascii")
        self.assertIn(f"Client-Cert: :{encoded}:\r\n", sent)
        digest = hashlib.sha256(der(client1.certificate)).hexdigest()
        self.assertIn(f"X-Forwarded-Client-Cert: Hash={digest}\r\n", sent)
        self.assertNotIn("Client-Cert-Chain", sent)

    def test_without_certificate_nothing_is_added(self) -> None:
        """A client without a certificate gets no identity header, and its
        forged ones are removed all the same."""
        client = self.connect_client()
        client.get(headers=b"Client-Cert: :Zm9yZ2Vk:\r\n")
        sent = self.accept().received().decode("latin-1")
        self.assertNotIn("Client-Cert", sent)
        self.assertNotIn("X-Forwarded-Client-Cert", sent)


def certificate_named(common_name: str) -> x509.Certificate:
    """A self-signed certificate whose subject's CN is C{common_name}."""
    return self_signed(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )


XFCC_CONFIG = """\
    frontend fe
        mode http
        bind :80
        option client-cert-headers
        option forwarded-client-cert {mode} Subject
        default_backend be
    backend be
        mode http
        server s1 10.0.0.1:80
"""


class HostileCertificateTests(ProxyTestCase):
    config_text = textwrap.dedent(XFCC_CONFIG.format(mode="sanitize-set"))

    def send(self, state: ClientCertState) -> str:
        client = self.connect_client(state)
        client.get()
        return self.accept().received().decode("latin-1")

    def state(self, certificate: x509.Certificate, verify: int = 0) -> ClientCertState:
        return ClientCertState(
            has_crt=True, used=True, verify=verify, certificate=certificate
        )

    def test_no_header_injection(self) -> None:
        """A subject holding CR LF cannot add a header line: the characters
        are written %0D%0A."""
        sent = self.send(self.state(certificate_named("x\r\nClient-Cert: :Zm9y:")))
        self.assertNotIn("\r\nClient-Cert: :Zm9y:", sent)
        self.assertIn("CN=x%0D%0AClient-Cert: :Zm9y:", sent)

    def test_non_latin_subject(self) -> None:
        """A subject beyond Latin-1 is written as UTF-8 %XX, not a 500."""
        sent = self.send(self.state(certificate_named("山田")))
        self.assertIn('X-Forwarded-Client-Cert: Subject="CN=%E5%B1%B1%E7%94%B0"', sent)

    def test_unverified_certificate_not_vouched_for(self) -> None:
        """A certificate let in despite a verification error (crt-ignore-err)
        gets no identity header."""
        client1 = pki().clients["client1"]
        sent = self.send(self.state(client1.certificate, verify=18))
        self.assertNotIn("Client-Cert", sent)
        self.assertNotIn("X-Forwarded-Client-Cert", sent)


class XfccForwardTests(ProxyTestCase):
    config_text = textwrap.dedent(XFCC_CONFIG.format(mode="append"))

    def test_only_a_verified_proxy_passes_it_on(self) -> None:
        """In append mode, the header received is kept only from a client
        with a valid certificate (a proxy before certlb)."""
        forged = b'X-Forwarded-Client-Cert: Subject="CN=admin"\r\n'
        client = self.connect_client()
        client.get(headers=forged)
        self.assertNotIn("CN=admin", self.accept().received().decode("latin-1"))
        proxy = pki().clients["client1"]
        state = ClientCertState(has_crt=True, used=True, certificate=proxy.certificate)
        client = self.connect_client(state, port=50001)
        client.get(headers=forged)
        sent = self.accept().received().decode("latin-1")
        subject = proxy.certificate.subject.rfc4514_string()
        self.assertIn(
            f'X-Forwarded-Client-Cert: Subject="CN=admin",Subject="{subject}"', sent
        )

    def test_other_spellings_removed(self) -> None:
        """From a client without a valid certificate, the header is removed
        whatever its case, and with '_' for '-' (as CGI servers read it)."""
        client = self.connect_client()
        client.get(
            headers=b'x_forwarded_client_cert: Subject="CN=admin"\r\n'
            b'X-FORWARDED-CLIENT-CERT: Subject="CN=root"\r\n'
        )
        sent = self.accept().received().decode("latin-1")
        self.assertNotIn("CN=admin", sent)
        self.assertNotIn("CN=root", sent)


class RoutedByCertificateTests(SynchronousTestCase):
    def test_backend_chosen_by_certificate(self) -> None:
        """Headers that a backend adds are vouched for by the certificate
        when a use_backend rule chooses that backend by it."""
        text = (
            "frontend f\n  mode http\n  bind :80\n"
            "  use_backend secure if { ssl_c_verify 0 }\n  default_backend open\n"
            "backend secure\n  mode http\n  http-request add-header X-Auth yes\n"
            "  server s 10.0.0.1:80\n"
            "backend open\n  mode http\n  http-request add-header X-Open yes\n"
            "  server s 10.0.0.2:80\n"
        )
        config, _ = parse_config(text, "t.cfg", {})
        self.assertEqual(certificate_headers(config), {"x-auth"})
