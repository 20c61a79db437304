"""Certificate fields passed to servers, end to end: real certlb, real curl."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes, serialization

from tests.e2e import E2ETestCase, curl
from tests.test_cert_fetches import rich_client

CONFIG = """\
    frontend ft
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.crt verify optional
     http-request set-header X-SSL-Client-CN %[ssl_c_s_dn(cn)]
     http-request set-header X-SSL-Client-Serial %[ssl_c_serial,hex]
     http-request set-header X-SSL-Client-SHA1 %[ssl_c_sha1,hex]
     http-request set-header X-SSL-Client-OU %[ssl_c_s_dn(OU,2)]
     http-request set-header X-SSL-Client-DNS %[ssl_c_san(DNS)]
     http-request set-header X-SSL-Server-CN %[ssl_f_s_dn(CN)]
     http-request set-header X-SSL-Resumed %[ssl_fc_is_resumed]
     default_backend app

    backend app
     mode http
     server app 127.0.0.1:{app}
"""


class IdentityHeaderTests(E2ETestCase):
    """http-request set-header with certificate fields reaches the server."""

    def setUp(self) -> None:
        port = self.start_certlb(CONFIG.format(app=self.start_backend("app")))["ft"]
        self.url = f"https://127.0.0.1:{port}/"

    def client_files(self) -> list[str]:
        """curl arguments presenting the rich client's certificate."""
        identity = rich_client()
        directory = self.mktemp()
        os.makedirs(directory)
        cert, key = (os.path.join(directory, n) for n in ("rich.crt", "rich.key"))
        with open(cert, "wb") as f:
            f.write(identity.certificate.public_bytes(serialization.Encoding.PEM))
        with open(key, "wb") as f:
            f.write(identity.key_pem())
        return ["--cert", cert, "--key", key]

    async def test_certificate_fields_reach_the_server(self) -> None:
        """The client's CN, serial, SHA-1, second OU and last DNS name, and
        certlb's own CN, arrive as headers."""
        certificate = rich_client().certificate
        result = await curl(self.url, None, *self.client_files())
        self.assertEqual(result.code, 0, result)
        lines = result.out.decode().splitlines()
        sha1 = certificate.fingerprint(hashes.SHA1()).hex().upper()
        for expected in [
            "X-Ssl-Client-Cn: certlb rich client",
            "X-Ssl-Client-Serial: 80123456",
            f"X-Ssl-Client-Sha1: {sha1}",
            "X-Ssl-Client-Ou: admins",
            "X-Ssl-Client-Dns: alt.example.com",
            "X-Ssl-Server-Cn: certlb test server",
            "X-Ssl-Resumed: 0",
        ]:
            self.assertIn(expected.lower(), [line.lower() for line in lines], result)

    async def test_without_certificate(self) -> None:
        """Without a client certificate the client fields are empty; the
        server's are still there."""
        result = await curl(self.url)
        self.assertEqual(result.code, 0, result)
        lines = [line.lower().rstrip() for line in result.out.decode().splitlines()]
        self.assertIn("x-ssl-server-cn: certlb test server", lines)
        self.assertNotIn("x-ssl-client-cn: certlb rich client", lines)
        client = [line for line in lines if line.startswith("x-ssl-client-")]
        self.assertEqual([line.partition(":")[2].strip() for line in client], [""] * 5)
