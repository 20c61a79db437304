"""certlb demo: the newcomer's first run."""

from __future__ import annotations

import os
import socket
import sys

from twisted.internet import defer, protocol
from twisted.trial.unittest import SkipTest, SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from certlb.config import load_config
from certlb.demo import SAMPLE_SERVERS, EchoResource, instructions, prepare
from tests.e2e import E2ETestCase, reactor, run


class DemoFilesTests(SynchronousTestCase):
    def test_prepare_writes_a_valid_configuration(self) -> None:
        """The demo's directory holds a PKI and a configuration that loads
        without a single problem."""
        directory = self.mktemp()
        path = prepare(directory)
        config = load_config(path)
        self.assertEqual(config.warnings, ())
        for name in ("server.pem", "ca.crt", "ca.pem", "client1.crt", "expired.key"):
            self.assertTrue(os.path.exists(os.path.join(directory, name)), name)
        self.assertEqual(
            sorted(s.port for b in config.backends for s in b.servers),
            sorted(port for _, port in SAMPLE_SERVERS),
        )

    def test_etc_demo_is_the_demo(self) -> None:
        """etc/demo.cfg is the configuration the demo runs."""
        here = os.path.dirname(__file__)
        with open(os.path.join(here, "..", "etc", "demo.cfg"), encoding="utf-8") as f:
            etc = f.read()
        directory = self.mktemp()
        with open(prepare(directory), encoding="utf-8") as f:
            self.assertEqual(f.read(), etc)

    def test_instructions_name_the_files(self) -> None:
        """The printed commands use the demo's directory."""
        text = instructions("/tmp/d")
        self.assertIn("--cert /tmp/d/client1.crt --key /tmp/d/client1.key", text)
        self.assertIn("https://127.0.0.1:8444/", text)

    def test_echo_server(self) -> None:
        """A sample server answers with its name and the headers it received."""
        request = DummyRequest([b""])
        request.requestHeaders.addRawHeader(b"x-forwarded-for", b"127.0.0.1")
        body = EchoResource("app1").render(request)  # type: ignore[arg-type]
        self.assertTrue(body.startswith(b"server app1\nGET "), body)
        self.assertIn(b"X-Forwarded-For: 127.0.0.1\n", body)


class _Demo(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.output = b""
        self.running: defer.Deferred[None] = defer.Deferred()
        self.ended: defer.Deferred[None] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if b"Stop with Ctrl-C" in self.output and not self.running.called:
            self.running.callback(None)

    errReceived = outReceived

    def processEnded(self, reason: object) -> None:
        if not self.running.called:
            self.running.errback(Exception(self.output.decode()))
        self.ended.callback(None)


class DemoRunTests(E2ETestCase):
    async def test_demo_commands_do_what_they_say(self) -> None:
        """'certlb demo' starts, and its curl commands give the outcomes it
        announces."""
        for port in (8443, 8444, *(p for _, p in SAMPLE_SERVERS)):
            with socket.socket() as s:
                # As Twisted's listening ports do, so that connections left
                # in TIME_WAIT by an earlier run do not count as busy.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    raise SkipTest(
                        f"port {port}, which the demo uses, is busy"
                    ) from None
        directory = os.path.abspath(self.mktemp())
        demo = _Demo()
        process = reactor.spawnProcess(
            demo,
            sys.executable,
            [sys.executable, "-m", "certlb.cli", "demo", "--dir", directory],
            env=dict(os.environ),
        )
        self.addCleanup(lambda: demo.ended)
        self.addCleanup(process.signalProcess, "TERM")
        await demo.running

        def args(url: str, client: str | None) -> list[str]:
            files = ["--cacert", os.path.join(directory, "ca.crt")]
            if client:
                files += ["--cert", os.path.join(directory, f"{client}.crt")]
                files += ["--key", os.path.join(directory, f"{client}.key")]
            return ["-sSL", *files, url]

        public = await run("curl", args("https://127.0.0.1:8443/", None))
        self.assertTrue(public.out.startswith(b"server public1\n"), public)
        app = await run("curl", args("https://127.0.0.1:8443/", "client1"))
        self.assertRegex(app.out, rb"^server app[12]\n")
        self.assertIn(b"X-Forwarded-For: 127.0.0.1", app.out)
        expired = await run("curl", args("https://127.0.0.1:8443/", "expired"))
        self.assertTrue(
            expired.out.startswith(b"server static1\nGET /certexpired.html "), expired
        )
        self.assertIn(b"X-Ssl-Error: 10\n", expired.out)
        self.assertIn(b"X-Ssl-Error-Name: X509_V_ERR_CERT_HAS_EXPIRED\n", expired.out)
        revoked = await run("curl", args("https://127.0.0.1:8443/", "revoked"))
        self.assertIn(b"GET /certrevoked.html ", revoked.out)
        self.assertIn(b"X-Ssl-Error: 23\n", revoked.out)
        untrusted = await run("curl", args("https://127.0.0.1:8443/", "untrusted"))
        self.assertIn(b"GET /othererrors.html ", untrusted.out)
        required = await run("curl", args("https://127.0.0.1:8444/", None))
        self.assertIn(b"alert certificate required", required.err)
        expired = await run("curl", args("https://127.0.0.1:8444/", "expired"))
        self.assertIn(b"alert certificate expired", expired.err)
        self.assertIn(b"frontend demo listening on 127.0.0.1:8443", demo.output)
