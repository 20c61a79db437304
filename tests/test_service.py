"""make_service: the service tree, listening all-or-nothing, and maxconn."""

from __future__ import annotations

import textwrap
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase

from certlb.config import Config, ConfigError, load_config, parse_config
from certlb.proxy.channel import FrontendFactory
from certlb.proxy.limits import ConnectionLimits
from certlb.service import ListenError, make_service
from tests.helpers import write_config

TWO_FRONTENDS = """\
    frontend tls
        mode http
        bind 127.0.0.1:8443 ssl crt ./server.pem ca-file ./ca.crt verify optional
        bind [::1]:8443 ssl crt ./server.pem
        maxconn 2
        default_backend be
    frontend plain
        mode http
        bind *:8080
        default_backend be
    backend be
        mode http
        server s1 127.0.0.1:80
"""


class _RefusingReactor(MemoryReactorClock):
    """Lets the first C{allowed} listens succeed, then refuses."""

    def __init__(self, allowed: int) -> None:
        super().__init__()
        self.allowed = allowed

    def listenTCP(self, port, factory, backlog=50, interface=""):
        if self.allowed == 0:
            raise CannotListenError(
                interface, port, OSError(98, "Address already in use")
            )
        self.allowed -= 1
        return super().listenTCP(port, factory, backlog, interface)


class ServiceTests(SynchronousTestCase):
    def load(self) -> Config:
        return load_config(write_config(self, TWO_FRONTENDS))

    def test_listens_on_every_bind(self) -> None:
        """Starting the service listens on each bind, TLS ones wrapped in TLS."""
        reactor = MemoryReactorClock()
        service = make_service(self.load(), reactor)
        service.privilegedStartService()
        service.startService()
        listened = [(port, interface) for port, _, _, interface in reactor.tcpServers]
        self.assertEqual(
            listened, [(8443, "127.0.0.1"), (8443, "::1"), (8080, "0.0.0.0")]
        )
        factories = [f.factory for _, f, _, _ in reactor.tcpServers]  # type: ignore[attr-defined]
        self.assertIsInstance(factories[0], TLSMemoryBIOFactory)
        self.assertIsInstance(factories[2], FrontendFactory)

    def test_tls_bind_refuses_over_limit(self) -> None:
        """A TLS bind at its maxconn refuses the next connection before TLS
        is set up for it, cleanly."""
        reactor = MemoryReactorClock()
        service = make_service(self.load(), reactor)
        service.startService()
        factory = reactor.tcpServers[0][1]
        address = IPv4Address("TCP", "192.0.2.1", 1234)
        self.assertIsNotNone(factory.buildProtocol(address))
        self.assertIsNotNone(factory.buildProtocol(address))
        self.assertIsNone(factory.buildProtocol(address))
        self.assertEqual(service.limits.count("tls"), 2)

    def test_start_without_privileged_start(self) -> None:
        """A service started with startService alone (as in an application of
        one's own) listens too, once."""
        reactor = MemoryReactorClock()
        service = make_service(self.load(), reactor)
        service.startService()
        self.assertEqual(len(reactor.tcpServers), 3)

    def test_stop_closes_ports(self) -> None:
        """Stopping the service stops listening."""
        reactor = MemoryReactorClock()
        service = make_service(self.load(), reactor)
        service.startService()
        self.successResultOf(service.stopService())
        self.assertEqual(service.listeners.ports, [])

    def test_all_or_nothing(self) -> None:
        """When one address cannot be bound, the ports already opened are
        closed, and the error names the frontend, address, line and cause."""
        reactor = _RefusingReactor(allowed=2)
        service = make_service(self.load(), reactor)
        with self.assertRaises(ListenError) as raised:
            service.privilegedStartService()
        message = str(raised.exception)
        self.assertIn("frontend 'plain' cannot listen on 0.0.0.0:8080", message)
        self.assertIn(".cfg:9)", message)
        self.assertIn("Address already in use", message)
        self.assertEqual(service.listeners.ports, [])

    def test_invalid_config_refused(self) -> None:
        """make_service checks a configuration built by hand as the loader would."""
        config, _ = parse_config(
            "frontend f\n mode http\n bind :80\n default_backend nope\n", "t.cfg", {}
        )
        with self.assertRaises(ConfigError) as raised:
            make_service(config, MemoryReactorClock())
        self.assertIn("default_backend 'nope'", str(raised.exception))

    def test_certificate_gone_since_check(self) -> None:
        """A certificate that disappears between checking and starting gives a
        ConfigError naming the bind line."""
        import os
        import shutil

        directory = self.mktemp()
        os.makedirs(directory)
        shutil.copy(write_config(self, TWO_FRONTENDS), os.path.join(directory, "c.cfg"))
        from tests.helpers import pki_files

        for name in ("server.pem", "ca.crt"):
            shutil.copy(pki_files()[name], directory)
        config = load_config(os.path.join(directory, "c.cfg"))
        os.remove(os.path.join(directory, "server.pem"))
        with self.assertRaises(ConfigError) as raised:
            make_service(config, MemoryReactorClock())
        self.assertIn("c.cfg:3: error: bind 127.0.0.1:8443:", str(raised.exception))
        self.assertIn("does not exist", str(raised.exception))


class _Port:
    def __init__(self) -> None:
        self.reading = True

    def stopReading(self) -> None:
        self.reading = False

    def startReading(self) -> None:
        self.reading = True


class LimitTests(SynchronousTestCase):
    def test_frontend_limit_pauses_its_ports(self) -> None:
        """At a frontend's maxconn its ports stop accepting; one connection
        closing lets them accept again."""
        limits = ConnectionLimits(None, {"fe": 2})
        port, other = _Port(), _Port()
        limits.add_port("fe", port)
        limits.add_port("other", other)
        self.assertTrue(limits.accept("fe"))
        self.assertTrue(port.reading)
        self.assertTrue(limits.accept("fe"))
        self.assertFalse(port.reading)
        self.assertTrue(other.reading)
        self.assertFalse(limits.accept("fe"))
        limits.closed("fe")
        self.assertTrue(port.reading)

    def test_stopped_port_not_resumed(self) -> None:
        """A port removed (it stopped listening) is not resumed when a
        connection closes."""
        limits = ConnectionLimits(None, {"fe": 1})
        port = _Port()
        limits.add_port("fe", port)
        limits.accept("fe")
        self.assertFalse(port.reading)
        limits.remove_port(port)
        limits.closed("fe")
        self.assertFalse(port.reading)

    def test_global_limit(self) -> None:
        """The global maxconn counts every frontend's connections."""
        limits = ConnectionLimits(2, {})
        a, b = _Port(), _Port()
        limits.add_port("a", a)
        limits.add_port("b", b)
        limits.accept("a")
        limits.accept("b")
        self.assertEqual((a.reading, b.reading), (False, False))
        self.assertFalse(limits.accept("b"))
        limits.closed("a")
        self.assertEqual((a.reading, b.reading), (True, True))

    def test_factory_refuses_over_limit(self) -> None:
        """A connection accepted over the limit is closed at once, and one that
        ends gives its place back."""
        config, _ = parse_config(
            textwrap.dedent(
                """\
                global
                    maxconn 1
                frontend fe
                    mode http
                    bind :80
                    default_backend be
                backend be
                    mode http
                    server s 10.0.0.1:80
                """
            ),
            "t.cfg",
            {},
        )
        reactor = MemoryReactorClock()
        service = make_service(config, reactor)
        service.startService()
        factory = reactor.tcpServers[0][1]
        address = IPv4Address("TCP", "192.0.2.1", 1234)
        first: Any = factory.buildProtocol(address)
        self.assertIsNotNone(first)
        self.assertIsNone(factory.buildProtocol(address))
        from twisted.internet.error import ConnectionDone
        from twisted.internet.testing import StringTransport
        from twisted.python.failure import Failure

        first.makeConnection(StringTransport())
        first.connectionLost(Failure(ConnectionDone()))
        self.assertIsNotNone(factory.buildProtocol(address))
