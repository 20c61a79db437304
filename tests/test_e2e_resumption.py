"""Resumed TLS sessions end to end: real certlb, real C{openssl s_client}
saving its session and offering it again, by ticket and by session ID."""

from __future__ import annotations

import os

from tests.e2e import E2ETestCase, require, run
from tests.helpers import pki_files

CONFIG = """\
    frontend ft
     mode http
     bind 127.0.0.1:0 ssl {tls}
     http-request set-header X-SSL-Client-CN %[ssl_c_s_dn(cn)]
     http-request set-header X-SSL-Resumed %[ssl_fc_is_resumed]
     http-request set-header X-SSL-Has-Crt %[ssl_fc_has_crt]
     http-request set-header X-SSL-Used %[ssl_c_used]
     http-request set-header X-SSL-Verify %[ssl_c_verify]
     default_backend app

    backend app
     mode http
     server app 127.0.0.1:{app}
"""
TLS = "crt ./server.pem ca-file ./ca.crt verify optional crt-ignore-err 10"
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


class ResumptionTests(E2ETestCase):
    """A client's identity survives the resumption of its TLS session."""

    def setUp(self) -> None:
        require("openssl")
        port = self.start_certlb(CONFIG.format(tls=TLS, app=self.start_backend("app")))[
            "ft"
        ]
        self.port = port
        directory = self.mktemp()
        os.makedirs(directory)
        self.session = os.path.join(directory, "session.pem")

    async def connect(self, client: str, *extra: str) -> dict[str, str]:
        """Connect with C{openssl s_client} presenting C{client}'s
        certificate, send one request, and return the X-SSL-* headers the
        server received, and whether s_client says it reused its session."""
        files = pki_files()
        args = ["s_client", "-connect", f"127.0.0.1:{self.port}"]
        args += ["-CAfile", files["ca.crt"], "-servername", "localhost"]
        args += ["-verify_return_error", "-ign_eof"]
        args += ["-cert", files[f"{client}.crt"], "-key", files[f"{client}.key"]]
        result = await run("openssl", [*args, *extra], stdin=REQUEST)
        self.assertEqual(result.code, 0, result)
        text = result.out.decode("latin-1")
        headers = {}
        for line in text.splitlines():
            name, colon, value = line.partition(":")
            if colon and name.lower().startswith("x-ssl-"):
                headers[name.lower()] = value.strip()
        headers["s_client"] = "Reused" if "\nReused, " in text else "New"
        return headers

    async def assert_resumed(
        self, client: str, cn: str, verify: str, *extra: str
    ) -> None:
        first = await self.connect(client, "-sess_out", self.session, *extra)
        second = await self.connect(client, "-sess_in", self.session, *extra)
        expected = {
            "x-ssl-client-cn": cn,
            "x-ssl-resumed": "0",
            "x-ssl-has-crt": "1",
            "x-ssl-used": "1",
            "x-ssl-verify": verify,
            "s_client": "New",
        }
        self.assertEqual(first, expected)
        self.assertEqual(
            second,
            {
                **expected,
                "x-ssl-resumed": "1",
                "x-ssl-has-crt": "0",
                "s_client": "Reused",
            },
        )

    async def test_tls13_ticket(self) -> None:
        """A TLS 1.3 session resumed from its ticket keeps the client's CN,
        ssl_c_used 1 and ssl_c_verify 0; ssl_fc_has_crt is 0."""
        await self.assert_resumed("client1", "certlb client1 client", "0", "-tls1_3")

    async def test_tls12_ticket(self) -> None:
        """A TLS 1.2 session resumed from its ticket keeps the client's
        identity."""
        await self.assert_resumed("client1", "certlb client1 client", "0", "-tls1_2")

    async def test_tls12_session_id(self) -> None:
        """A TLS 1.2 session resumed by session ID (no ticket) keeps the
        client's identity."""
        await self.assert_resumed(
            "client1", "certlb client1 client", "0", "-tls1_2", "-no_ticket"
        )

    async def test_ignored_error_kept(self) -> None:
        """An expired client let through by crt-ignore-err 10 still has
        ssl_c_verify 10 on its resumed session (TLS 1.3 ticket and TLS 1.2
        session ID)."""
        await self.assert_resumed("expired", "certlb expired client", "10", "-tls1_3")
        await self.assert_resumed(
            "expired", "certlb expired client", "10", "-tls1_2", "-no_ticket"
        )
