"""The article's phases 3, 4 and 5 from etc/, end to end, with real curl.

Each phase runs from its file in etc/ with only the addresses changed: the
frontend on a free port, servers srv1..srv6 started here (each answers with
its name, the request line and the headers it got).  Clients: none, client1
(CA 1), client3 (CA 2), expired, revoked, untrusted; with TLS 1.3 and 1.2.
"""

from __future__ import annotations

import os
import re

from tests.e2e import ClientResult, E2ETestCase, curl

ETC = os.path.join(os.path.dirname(__file__), "..", "etc")
PAGES = ("/", "/certexpired.html", "/certrevoked.html", "/othererrors.html")


class ArticleTestCase(E2ETestCase):
    phase = ""

    def setUp(self) -> None:
        with open(os.path.join(ETC, f"{self.phase}.cfg"), encoding="utf-8") as f:
            text = f.read()
        ports = {f"800{n}": str(self.start_backend(f"srv{n}")) for n in range(1, 7)}
        text = text.replace("127.0.0.1:8443", "127.0.0.1:0")
        text = re.sub(
            r"127\.0\.0\.1:(800[1-6])", lambda m: f"127.0.0.1:{ports[m.group(1)]}", text
        )
        port = self.start_certlb(text)["ssltests"]
        self.base = f"https://127.0.0.1:{port}"

    async def get(
        self, client: str | None, path: str, tls12: bool = False
    ) -> ClientResult:
        extra = ["-i"]
        if tls12:
            extra += ["--tlsv1.2", "--tls-max", "1.2"]
        return await curl(self.base + path, client, *extra)

    def outcome(self, result: ClientResult) -> str:
        """'refused', 'SERVER' (who answered) or '302 LOCATION'."""
        if result.code != 0:
            return "refused"
        head, _, body = result.out.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1].decode()
        if status.startswith("3"):
            location = re.search(rb"(?im)^location: (.*)\r$", head)
            assert location is not None, head
            return f"{status} {location.group(1).decode()}"
        assert status == "200", result
        return body.split(b"\n", 1)[0].decode().removeprefix("server ")

    async def outcomes(self, client: str | None, tls12: bool = False) -> dict[str, str]:
        return {p: self.outcome(await self.get(client, p, tls12)) for p in PAGES}

    def farm(self, outcomes: dict[str, str], servers: set[str]) -> None:
        """Every page was answered by one of C{servers}."""
        self.assertTrue(set(outcomes.values()) <= servers, outcomes)


class Phase3Tests(ArticleTestCase):
    """crt-ignore-err 10: expired clients reach a help page; others as phase 2."""

    phase = "phase3"

    async def test_no_certificate(self) -> None:
        """A client without a certificate gets webmail."""
        self.farm(await self.outcomes(None), {"srv3", "srv4"})

    async def test_valid(self) -> None:
        """A valid client gets sharepoint, with TLS 1.3 and 1.2."""
        self.farm(await self.outcomes("client1"), {"srv1", "srv2"})
        self.farm(await self.outcomes("client1", tls12=True), {"srv1", "srv2"})

    async def test_expired(self) -> None:
        """An expired client is let in, sent to /certexpired.html, which the
        static farm serves."""
        for tls12 in (False, True):
            outcomes = await self.outcomes("expired", tls12)
            self.assertEqual(outcomes["/"], "302 /certexpired.html")
            self.assertEqual(outcomes["/othererrors.html"], "302 /certexpired.html")
            self.assertIn(outcomes["/certexpired.html"], ("srv5", "srv6"))

    async def test_revoked_without_crl(self) -> None:
        """Phase 3 has no CRL: a revoked client looks valid."""
        self.farm(await self.outcomes("revoked"), {"srv1", "srv2"})

    async def test_other_errors_refused(self) -> None:
        """Only error 10 is ignored: an untrusted client, and a CA 2 client
        (ca.crt holds CA 1 only), are refused in the handshake."""
        for client in ("untrusted", "client3", "selfsigned"):
            result = await self.get(client, "/")
            self.assertNotEqual(result.code, 0, result)
            self.assertIn(b"alert unknown ca", result.err)


class Phase4Tests(ArticleTestCase):
    """crt-ignore-err all and a CRL: as published, the static farm loops."""

    phase = "phase4"

    async def test_no_certificate_and_valid(self) -> None:
        """Webmail without a certificate, sharepoint with a valid one."""
        self.farm(await self.outcomes(None), {"srv3", "srv4"})
        self.farm(await self.outcomes("client1"), {"srv1", "srv2"})

    async def test_expired_loops(self) -> None:
        """As the configuration says (not as the article describes): an
        expired client goes to /certexpired.html, from there to
        /othererrors.html, and back."""
        outcomes = await self.outcomes("expired")
        self.assertEqual(
            outcomes,
            {
                "/": "302 /certexpired.html",
                "/certexpired.html": "302 /othererrors.html",
                "/certrevoked.html": "302 /certexpired.html",
                "/othererrors.html": "302 /certexpired.html",
            },
        )

    async def test_revoked_loops(self) -> None:
        """A revoked client (error 23, found with the CRL) is sent between
        /certrevoked.html and /othererrors.html."""
        for tls12 in (False, True):
            outcomes = await self.outcomes("revoked", tls12)
            self.assertEqual(outcomes["/"], "302 /certrevoked.html")
            self.assertEqual(outcomes["/certrevoked.html"], "302 /othererrors.html")
            self.assertEqual(outcomes["/othererrors.html"], "302 /certrevoked.html")

    async def test_other_errors_loop_on_themselves(self) -> None:
        """An untrusted client is let in and sent to /othererrors.html, which
        redirects to itself."""
        for client in ("untrusted", "client3"):
            outcomes = await self.outcomes(client)
            self.assertEqual(outcomes["/"], "302 /othererrors.html")
            self.assertEqual(outcomes["/othererrors.html"], "302 /othererrors.html")


class Phase5Tests(ArticleTestCase):
    """Two CAs, named ACLs, and the error in an X-Ssl-Error header."""

    phase = "phase5"

    async def header_at(self, client: str, path: str) -> list[bytes]:
        result = await self.get(client, path)
        self.assertEqual(result.code, 0, result)
        _, _, body = result.out.partition(b"\r\n\r\n")
        return re.findall(rb"(?im)^x-ssl-error: (.*)$", body)

    async def test_no_certificate_and_valid(self) -> None:
        """Webmail without a certificate; sharepoint for clients of either CA."""
        self.farm(await self.outcomes(None), {"srv3", "srv4"})
        self.farm(await self.outcomes("client1"), {"srv1", "srv2"})
        self.farm(await self.outcomes("client3", tls12=True), {"srv1", "srv2"})

    async def test_each_error_has_its_page_and_header(self) -> None:
        """Expired, revoked and untrusted clients are each sent to their own
        page, which the static farm serves with the X-Ssl-Error header."""
        for client, page, header in (
            ("expired", "/certexpired.html", b"10"),
            ("revoked", "/certrevoked.html", b"23"),
            ("untrusted", "/othererrors.html", b"other"),
        ):
            outcomes = await self.outcomes(client)
            self.assertEqual(outcomes["/"], f"302 {page}", client)
            self.assertIn(outcomes[page], ("srv5", "srv6"), client)
            self.assertEqual(await self.header_at(client, page), [header], client)
