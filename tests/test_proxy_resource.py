"""The twisted.web front door behaves as certlb's own listeners do.

Each class below runs the shared behavioural tests of the proxy through
twisted.web's C{Site} serving L{FrontendResource}, instead of certlb's own
HTTP/1.1 channel: one engine, two front doors, the same outcomes.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from certlb.config import parse_config
from certlb.service import make_service
from tests import test_proxy_http as http
from tests import test_proxy_routing as routing
from tests.proxy_harness import ProxyTestCase, header


class ResourcePhase2RoutingTests(routing.Phase2RoutingTests):
    door = "resource"


class ResourceWeightTests(routing.WeightTests):
    door = "resource"


class ResourceNoServerTests(routing.NoServerTests):
    door = "resource"


class ResourceNoDefaultTests(routing.NoDefaultTests):
    door = "resource"


class ResourceConditionTests(routing.ConditionTests):
    door = "resource"


class ResourceForwardingTests(http.ForwardingTests):
    door = "resource"


class ResourceBodyTests(http.BodyTests):
    door = "resource"


class ResourceErrorTests(http.ErrorTests):
    door = "resource"


class ResourceTimeoutTests(http.TimeoutTests):
    door = "resource"


class ResourceForwardForTests(http.ForwardForTests):
    door = "resource"


class ResourceOnlyTests(ProxyTestCase):
    """What is particular to the twisted.web front door."""

    config_text = http.ONE_BACKEND
    door = "resource"

    def test_spooled_body_forwarded(self) -> None:
        """A body that twisted.web has read whole reaches the server with its
        length."""
        client = self.connect_client()
        client.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        sent = self.accept().received()
        self.assertEqual(header(sent, b"content-length"), [b"5"])
        self.assertTrue(sent.endswith(b"\r\n\r\nhello"))

    def test_server_header_is_the_servers(self) -> None:
        """The client sees the server's own Server header, not twisted.web's."""
        client = self.connect_client()
        client.get()
        self.accept().respond(
            b"HTTP/1.1 200 OK\r\nServer: backend/1\r\nContent-Length: 0\r\n\r\n"
        )
        self.assertEqual(header(client.received(), b"server"), [b"backend/1"])

    def test_no_default_content_type(self) -> None:
        """No Content-Type is added that the server did not send."""
        client = self.connect_client()
        client.get()
        self.accept().respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual(header(client.received(), b"content-type"), [])

    def test_connect_refused(self) -> None:
        """CONNECT is answered 405, as certlb's own listeners answer it."""
        client = self.connect_client()
        client.send(b"CONNECT example:443 HTTP/1.1\r\nHost: example:443\r\n\r\n")
        self.assertStatus(client.received(), 405)
        self.assertEqual(self.pending_connections(), [])

    def test_mounted_from_service(self) -> None:
        """C{CertlbService.resource(name)} gives the resource of a frontend."""
        config, _ = parse_config(
            "frontend fe\n mode http\n bind :80\n default_backend be\n"
            "backend be\n mode http\n server s 10.0.0.1:80\n",
            "t.cfg",
            {},
        )
        service = make_service(config, MemoryReactorClock())
        resource = service.resource("fe")
        self.assertEqual(resource.frontend.name, "fe")
        self.assertIs(resource.engine, service.engine)
