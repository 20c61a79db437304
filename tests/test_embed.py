"""certlb embedded in an application: a configuration built in Python, the
live state read from Python, and examples/embed.tac, end to end."""

from __future__ import annotations

import os

from twisted.application.service import IService, IServiceCollection, loadApplication
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from certlb import (
    Backend,
    Bind,
    CertlbService,
    Config,
    Frontend,
    Server,
    UseBackend,
    make_service,
)
from tests.e2e import E2ETestCase, curl, reactor
from tests.helpers import pki_dir, pki_files

EXAMPLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "embed.tac"
)


class _Connections(Resource):
    """A server that answers with certlb's open connections, as Python sees
    them while the request is under way."""

    isLeaf = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.service: CertlbService | None = None

    def render_GET(self, request: Request) -> bytes:
        assert self.service is not None
        lines = [f"server {self.name}"]
        for connection in self.service.connections():
            tls = connection.tls
            subject = None if tls is None or tls.peer is None else tls.peer.subject
            lines.append(
                f"{connection.frontend} {connection.peer[0]} "
                f"verify={None if tls is None else tls.verify} "
                f"subject={None if subject is None else subject.rfc2253}"
            )
        return ("\n".join(lines) + "\n").encode()


class HandBuiltTests(E2ETestCase):
    """A Config made of Python objects, run by make_service on 127.0.0.1."""

    async def test_routes_by_certificate_and_shows_connections(self) -> None:
        """Requests go where the configuration built in Python says, and the
        live state lists each connection with its certificate."""
        app, public = _Connections("app1"), _Connections("public1")
        files = pki_files()
        config = Config(
            frontends=[
                Frontend(
                    "www",
                    binds=[
                        Bind(
                            "127.0.0.1",
                            0,
                            ssl=True,
                            crt=files["server.pem"],
                            ca_file=files["ca.crt"],
                            verify="optional",
                        )
                    ],
                    use_backends=[
                        UseBackend("app", "if { ssl_c_used } { ssl_c_verify 0 }")
                    ],
                    default_backend="public",
                )
            ],
            backends=[
                Backend(
                    "app",
                    servers=[
                        Server("app1", "127.0.0.1", self.start_backend("", Site(app)))
                    ],
                ),
                Backend(
                    "public",
                    servers=[
                        Server(
                            "public1", "127.0.0.1", self.start_backend("", Site(public))
                        )
                    ],
                ),
            ],
        )
        service = make_service(config, reactor)
        app.service = public.service = service
        service.startService()
        self.addCleanup(service.stopService)
        [(frontend, host, port)] = service.addresses()
        self.assertEqual((frontend, host), ("www", "127.0.0.1"))
        url = f"https://127.0.0.1:{port}/"

        valid = await curl(url, "client1")
        self.assertEqual(valid.code, 0, valid)
        self.assertIn(b"server app1\n", valid.out)
        self.assertIn(
            b"www 127.0.0.1 verify=0 subject=CN=certlb client1 client", valid.out
        )
        anonymous = await curl(url)
        self.assertIn(b"server public1\n", anonymous.out)
        self.assertIn(b"www 127.0.0.1 verify=0 subject=None", anonymous.out)
        self.assertEqual(
            [(s.name, s.up, s.active) for s in service.backends["app"].servers],
            [("app1", True, 0)],
        )


class EmbedExampleTests(E2ETestCase):
    """examples/embed.tac, loaded as twistd -y would, started and stopped."""

    def setenv(self, **values: str) -> None:
        for name, value in values.items():
            self.addCleanup(_restore, name, os.environ.get(name))
            os.environ[name] = value

    async def test_example_runs(self) -> None:
        """The example's application starts, answers through certlb with
        what the client's certificate was, logs the live state, and stops."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.setenv(
            CERTLB_EMBED_PORT="0",
            CERTLB_EMBED_APP_PORT=str(self.free_port()),
            CERTLB_EMBED_PKI=pki_dir(),
            CERTLB_EMBED_REPORT="60",
        )
        application = loadApplication(EXAMPLE, "python")
        top = IService(application)
        [lb] = [
            s for s in IServiceCollection(application) if isinstance(s, CertlbService)
        ]
        top.startService()
        stopped = False

        async def stop() -> None:
            if not stopped:
                await top.stopService()

        self.addCleanup(stop)
        [(_, _, port)] = lb.addresses()
        url = f"https://127.0.0.1:{port}"

        hello = await curl(f"{url}/", "client1")
        self.assertEqual(hello.out, b"hello certlb client1 client (ssl_c_verify=0)\n")
        status = await curl(f"{url}/status", "client2")
        self.assertIn(b": UP, 1 active", status.out)
        self.assertIn(b"CN=certlb client2 client", status.out)
        refused = await curl(
            f"{url}/", "expired", "-o", "/dev/null", "-w", "%{http_code}"
        )
        self.assertEqual(refused.out, b"403")

        logged = "\n".join(formatEvent(e) for e in events)
        self.assertIn("server app/app1 127.0.0.1:", logged)

        await top.stopService()
        stopped = True
        self.assertFalse(top.running)
        self.assertEqual(lb.addresses(), [])
        closed = await curl(f"{url}/", "client1")
        self.assertNotEqual(closed.code, 0)


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
