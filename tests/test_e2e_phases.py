"""The article's phases 1 and 2, end to end: real certlb, real curl and openssl."""

from __future__ import annotations

from tests.e2e import E2ETestCase, curl, s_client

PHASE1 = """\
    frontend ft_ssltests
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.crt verify required
     default_backend ssltests

    backend ssltests
     mode http
     server s1 127.0.0.1:{s1} check
     server s2 127.0.0.1:{s2} check
"""

PHASE2 = """\
    frontend ssltests
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.crt verify optional
     use_backend sharepoint if {{ ssl_fc_has_crt }} # the article's comment
     default_backend webmail

    backend sharepoint
     mode http
     server srv1 127.0.0.1:{srv1} check
     server srv2 127.0.0.1:{srv2} check

    backend webmail
     mode http
     server srv3 127.0.0.1:{srv3} check
     server srv4 127.0.0.1:{srv4} check
"""


class Phase1Tests(E2ETestCase):
    """verify required: only clients with a valid certificate get in."""

    def setUp(self) -> None:
        ports = {name: self.start_backend(name) for name in ("s1", "s2")}
        self.port = self.start_certlb(PHASE1.format(**ports))["ft_ssltests"]
        self.url = f"https://127.0.0.1:{self.port}/"

    async def test_valid_certificate_served(self) -> None:
        """A client with a valid certificate is served by the farm."""
        result = await curl(self.url, "client1")
        self.assertEqual(result.code, 0, result)
        self.assertRegex(result.out, rb"^server s[12]\n")

    async def test_no_certificate_refused(self) -> None:
        """A client without a certificate is refused during the handshake."""
        result = await curl(self.url)
        self.assertNotEqual(result.code, 0, result)
        self.assertIn(b"alert certificate required", result.err)
        self.assertEqual(result.out, b"")

    async def test_expired_refused(self) -> None:
        """A client with an expired certificate is refused, with the alert
        that says so."""
        result = await curl(self.url, "expired")
        self.assertNotEqual(result.code, 0, result)
        self.assertIn(b"alert certificate expired", result.err)

    async def test_unknown_ca_refused(self) -> None:
        """A certificate from an unknown CA, or a self-signed one, is refused."""
        for client in ("untrusted", "selfsigned"):
            result = await curl(self.url, client)
            self.assertNotEqual(result.code, 0, result)
            self.assertIn(b"alert unknown ca", result.err, client)

    async def test_openssl_s_client(self) -> None:
        """The article's own test: openssl s_client with client1's certificate
        gets an answer; without one the handshake fails."""
        result = await s_client(self.port, "client1")
        self.assertIn(b"server s", result.out, result)
        self.assertIn(b"Verification: OK", result.out)
        result = await s_client(self.port)
        self.assertIn(b"alert certificate required", result.out + result.err)
        self.assertNotIn(b"server s", result.out)

    async def test_round_robin(self) -> None:
        """Requests on one kept-alive connection alternate between s1 and s2."""
        result = await curl(self.url, "client1", self.url, self.url, self.url)
        self.assertEqual(result.code, 0, result)
        served = [
            line for line in result.out.split(b"\n") if line.startswith(b"server")
        ]
        self.assertEqual(served, [b"server s1", b"server s2"] * 2)


class Phase2Tests(E2ETestCase):
    """verify optional: the certificate chooses the farm."""

    def setUp(self) -> None:
        ports = {n: self.start_backend(n) for n in ("srv1", "srv2", "srv3", "srv4")}
        self.port = self.start_certlb(PHASE2.format(**ports))["ssltests"]
        self.url = f"https://127.0.0.1:{self.port}/"

    async def test_no_certificate_goes_to_webmail(self) -> None:
        """A client without a certificate is served by webmail (srv3, srv4)."""
        result = await curl(self.url, None, self.url)
        self.assertEqual(result.code, 0, result)
        self.assertIn(b"server srv3\n", result.out)
        self.assertIn(b"server srv4\n", result.out)

    async def test_certificate_goes_to_sharepoint(self) -> None:
        """Clients with valid certificates are served by sharepoint (srv1, srv2)."""
        for client in ("client1", "client2"):
            result = await curl(self.url, client)
            self.assertEqual(result.code, 0, result)
            self.assertRegex(result.out, rb"^server srv[12]\n")

    async def test_expired_refused(self) -> None:
        """A client with an expired certificate is refused, as in phase 1."""
        result = await curl(self.url, "expired")
        self.assertNotEqual(result.code, 0, result)
        self.assertIn(b"alert certificate expired", result.err)

    async def test_not_yet_valid_refused(self) -> None:
        """A certificate that is not yet valid is refused too."""
        result = await curl(self.url, "notyetvalid")
        self.assertNotEqual(result.code, 0, result)
        self.assertIn(b"alert", result.err)

    async def test_ca2_client_refused_with_ca_crt(self) -> None:
        """A client of CA 2 is refused: ca.crt trusts CA 1 only."""
        result = await curl(self.url, "client3")
        self.assertNotEqual(result.code, 0, result)
        self.assertIn(b"alert unknown ca", result.err)

    async def test_headers_reach_server(self) -> None:
        """The server sees the client's request headers."""
        result = await curl(self.url, "client1", "-H", "X-Test: hello")
        self.assertIn(b"X-Test: hello", result.out)
