"""Access log lines end to end: curl with a client certificate, certlb in
this process."""

from __future__ import annotations

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher

from tests.e2e import E2ETestCase, curl

CONFIG = """\
    frontend plain
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.crt verify optional
     option httplog
     default_backend be
    frontend custom
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.crt verify optional
     log-format "%ci %ft %b/%s %ST %tsc %{+Q}[ssl_c_s_dn(cn)] %[ssl_c_verify] %{+Q}r"
     default_backend be
    backend be
     mode http
     server s1 127.0.0.1:{port}
"""


class AccessLogTests(E2ETestCase):
    async def test_lines(self) -> None:
        """curl with a client certificate: the 'option httplog' line, and a
        log-format line with the certificate's CN and verification result."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        ports = self.start_certlb(
            CONFIG.replace("{port}", str(self.start_backend("s1")))
        )
        for name in ("plain", "custom"):
            result = await curl(f"https://127.0.0.1:{ports[name]}/hello", "client1")
            self.assertEqual(result.code, 0, result)
        lines = [
            formatEvent(e) for e in events if e.get("log_namespace") == "certlb.access"
        ]
        self.assertEqual(len(lines), 2, lines)
        self.assertRegex(
            lines[0],
            r"^127\.0\.0\.1:\d+ \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\] plain~ "
            r"be/s1 \d+/\d+/\d+/\d+/\d+ 200 \d+ - - ---- \d+/1/1/1/0 0/0 "
            r'"GET /hello HTTP/1\.1"$',
        )
        self.assertEqual(
            lines[1],
            '127.0.0.1 custom~ be/s1 200 ---- "certlb client1 client" 0 '
            '"GET /hello HTTP/1.1"',
        )
