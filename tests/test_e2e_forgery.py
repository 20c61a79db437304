"""Client identity end to end, with curl: the headers certlb writes reach
the server, and those a client forges never do; stickiness per client."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.e2e import E2ETestCase, curl
from tests.helpers import pki_files

BIND = "127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.crt verify optional"
CONFIG = """\
    frontend fe
     mode http
     bind BIND crt-ignore-err 10
     option client-cert-headers
     option forwarded-client-cert sanitize-set Hash,Subject
     http-request set-header X-Ssl-Error %[ssl_c_verify] if { ssl_fc_has_crt }
     default_backend be
    backend be
     mode http
     server s1 127.0.0.1:{port}
"""

FORGED = (
    "-H", "Client-Cert: :Zm9yZ2Vk:",
    "-H", "Client-Cert-Chain: :Zm9yZ2Vk:",
    "-H", "X-Forwarded-Client-Cert: Hash=forged",
    "-H", "X-Ssl-Error: 0",
    "-H", "X-Ssl_Error: 0",
)  # fmt: skip


def received(output: bytes) -> dict[str, list[str]]:
    """The headers the echoing server got, by lower-case name."""
    headers: dict[str, list[str]] = {}
    for line in output.decode("latin-1").splitlines()[2:]:
        name, _, value = line.partition(": ")
        headers.setdefault(name.lower(), []).append(value)
    return headers


def certificate(name: str) -> x509.Certificate:
    with open(pki_files()[f"{name}.crt"], "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


class ForgeryTests(E2ETestCase):
    def url(self) -> str:
        port = self.start_backend("s1")
        ports = self.start_certlb(
            CONFIG.replace("{port}", str(port)).replace("BIND", BIND)
        )
        return f"https://127.0.0.1:{ports['fe']}/"

    async def test_client_with_certificate(self) -> None:
        """A client with a certificate: the server gets certlb's identity
        headers, none of those the client forged."""
        result = await curl(self.url(), "client1", *FORGED)
        headers = received(result.out)
        der = certificate("client1").public_bytes(Encoding.DER)
        self.assertEqual(
            headers["client-cert"], [":" + base64.b64encode(der).decode() + ":"]
        )
        # curl sends CA 1 after the client's certificate.
        ca = certificate("ca").public_bytes(Encoding.DER)
        self.assertEqual(
            headers["client-cert-chain"], [":" + base64.b64encode(ca).decode() + ":"]
        )
        self.assertEqual(
            headers["x-forwarded-client-cert"],
            [
                f"Hash={hashlib.sha256(der).hexdigest()};"
                f'Subject="{certificate("client1").subject.rfc4514_string()}"'
            ],
        )
        self.assertEqual(headers["x-ssl-error"], ["0"])
        self.assertNotIn("x-ssl_error", headers)
        self.assertNotIn("forged", result.out.decode())

    async def test_chained_client(self) -> None:
        """A client of an intermediate CA: Client-Cert-Chain carries the
        intermediate it sent."""
        result = await curl(self.url(), "chained")
        headers = received(result.out)
        intermediate = certificate("intermediate-ca").public_bytes(Encoding.DER)
        self.assertEqual(
            headers["client-cert-chain"],
            [":" + base64.b64encode(intermediate).decode() + ":"],
        )
        self.assertEqual(headers["x-ssl-error"], ["0"])

    async def test_client_let_in_despite_an_error(self) -> None:
        """An expired client let in by crt-ignore-err: no identity is vouched
        for, and the error is told in certlb's own header."""
        result = await curl(self.url(), "expired", *FORGED)
        headers = received(result.out)
        self.assertEqual(headers["x-ssl-error"], ["10"])
        for name in ("client-cert", "client-cert-chain", "x-forwarded-client-cert"):
            self.assertNotIn(name, headers)
        self.assertNotIn("forged", result.out.decode())

    async def test_client_without_certificate(self) -> None:
        """A client without a certificate: no identity header at all reaches
        the server, whatever it sent."""
        result = await curl(self.url(), None, *FORGED)
        headers = received(result.out)
        self.assertEqual(result.out.splitlines()[0], b"server s1", result)
        for name in (
            "client-cert",
            "client-cert-chain",
            "x-forwarded-client-cert",
            "x-ssl-error",
            "x-ssl_error",
        ):
            self.assertNotIn(name, headers)


STICKY = """\
    frontend fe
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.crt verify optional
     default_backend be
    backend be
     mode http
     balance roundrobin
     stick-table type string len 64 size 1k expire 10m
     stick on ssl_c_s_dn(CN)
     server s1 127.0.0.1:{s1}
     server s2 127.0.0.1:{s2}
     server s3 127.0.0.1:{s3}
"""


class StickinessTests(E2ETestCase):
    async def test_one_identity_one_server(self) -> None:
        """50 connections of one client certificate all reach the same
        server, while another certificate is balanced to another one and
        clients without a certificate are balanced over all."""
        ports = {name: self.start_backend(name) for name in ("s1", "s2", "s3")}
        text = STICKY
        for name, port in ports.items():
            text = text.replace("{" + name + "}", str(port))
        url = f"https://127.0.0.1:{self.start_certlb(text)['fe']}/"
        close = ("-H", "Connection: close")  # a new connection for each request

        def servers(output: bytes) -> list[str]:
            return [
                line for line in output.decode().splitlines() if line[:7] == "server "
            ]

        first = servers((await curl(url, "client1", *close)).out)
        other = servers((await curl(url, "client2", *close, url)).out)
        many = servers((await curl(url, "client1", *close, *[url] * 49)).out)
        anonymous = servers((await curl(url, None, *close, url, url)).out)
        self.assertEqual(len(many), 50)
        self.assertEqual(set(many), set(first))
        self.assertEqual(len(set(other)), 1)
        self.assertNotEqual(other, first)
        self.assertEqual(len(set(anonymous)), 3)
