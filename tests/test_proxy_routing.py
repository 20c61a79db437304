"""Routing and balancing through the in-memory proxy: which server answers."""

from __future__ import annotations

from tests.proxy_harness import WITH_CERT, WITHOUT_CERT, ProxyTestCase, header


def _ok(body: bytes = b"ok") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class Phase2RoutingTests(ProxyTestCase):
    """The article's phase 2: a certificate decides the farm."""

    def test_with_certificate_goes_to_sharepoint(self) -> None:
        """A client that presented a certificate is sent to the sharepoint farm."""
        client = self.connect_client(WITH_CERT)
        client.get()
        self.assertEqual(self.pending_connections(), [("10.0.0.1", 80)])

    def test_without_certificate_goes_to_webmail(self) -> None:
        """A client without a certificate is sent to the default backend, webmail."""
        client = self.connect_client(WITHOUT_CERT)
        client.get()
        self.assertEqual(self.pending_connections(), [("10.0.0.3", 80)])

    def test_plain_connection_goes_to_default(self) -> None:
        """Without TLS at all, ssl_fc_has_crt has no value and the default applies."""
        client = self.connect_client(None)
        client.get()
        self.assertEqual(self.pending_connections(), [("10.0.0.3", 80)])

    def test_round_robin_alternates_on_one_connection(self) -> None:
        """Requests on one keep-alive connection alternate between the servers,
        and each server connection is kept for the next request."""
        client = self.connect_client(WITH_CERT)
        client.get()
        srv1 = self.accept()
        client.get(b"/wait")  # pipelined: waits for the first response
        self.assertEqual(self.pending_connections(), [])
        srv1.respond(_ok())
        srv2 = self.accept()
        srv2.respond(_ok())
        self.assertEqual((srv1.address, srv2.address), ("10.0.0.1:80", "10.0.0.2:80"))
        self.assertIn(b"GET /wait ", srv2.received())
        srv1.received()
        client.get(b"/third")
        client.get(b"/fourth")
        self.assertIn(b"GET /third ", srv1.received())
        srv1.respond(_ok())
        self.assertIn(b"GET /fourth ", srv2.received())
        srv2.respond(_ok())
        self.assertEqual(client.received().count(b"HTTP/1.1 200 OK"), 4)
        self.assertEqual(self.pending_connections(), [])
        self.assertEqual(len(self.reactor.tcpClients), 2)


class WeightTests(ProxyTestCase):
    config_text = """\
        frontend fe
            mode http
            bind :80
            default_backend be
        backend be
            mode http
            server heavy 10.0.0.1:80 weight 3
            server light 10.0.0.2:80
            server drained 10.0.0.3:80 weight 0
            server off 10.0.0.4:80 disabled
    """

    def test_weights_share_and_interleave(self) -> None:
        """Weight 3 against 1 gives 3 of every 4 requests, interleaved;
        weight 0 and disabled servers get none."""
        backend = self.frontend.default
        assert backend is not None
        picks = [backend.balancer.pick(None, backend.tier()).name for _ in range(8)]
        self.assertEqual(
            picks,
            ["heavy", "heavy", "light", "heavy", "heavy", "heavy", "light", "heavy"],
        )

    def test_server_down_is_skipped(self) -> None:
        """A server marked down is not chosen until it is up again."""
        backend = self.frontend.default
        assert backend is not None
        heavy = backend.servers[0]
        heavy.up = False
        self.assertEqual(
            {backend.balancer.pick(None, backend.tier()).name for _ in range(4)},
            {"light"},
        )
        heavy.up = True
        self.assertIn(
            "heavy",
            {backend.balancer.pick(None, backend.tier()).name for _ in range(4)},
        )


class NoServerTests(ProxyTestCase):
    config_text = """\
        frontend fe
            mode http
            bind :80
            use_backend empty if { ssl_fc_has_crt }
            use_backend off if { always_true }
        backend empty
            mode http
        backend off
            mode http
            server s1 10.0.0.1:80 disabled
    """

    def test_no_usable_server_is_503(self) -> None:
        """A backend whose servers are all disabled answers 503, and the client
        connection stays open for the next request."""
        client = self.connect_client(WITHOUT_CERT)
        client.get()
        response = client.received()
        self.assertStatus(response, 503)
        self.assertIn(b"No server is available", response)
        self.assertEqual(header(response, b"connection"), [])
        self.assertFalse(client.closed)
        self.assertEqual(self.pending_connections(), [])

    def test_backend_without_servers_is_503(self) -> None:
        """A backend with no server line answers 503."""
        client = self.connect_client(WITH_CERT)
        client.get()
        self.assertStatus(client.received(), 503)


class NoDefaultTests(ProxyTestCase):
    config_text = """\
        frontend fe
            mode http
            bind :80
            use_backend be if { ssl_fc_has_crt }
        backend be
            mode http
            server s1 10.0.0.1:80
    """

    def test_no_rule_matches_is_503(self) -> None:
        """Without default_backend, a request that matches no rule gets 503."""
        client = self.connect_client(WITHOUT_CERT)
        client.get()
        self.assertStatus(client.received(), 503)

    def test_rule_matches(self) -> None:
        """The same frontend forwards a request that matches its rule."""
        client = self.connect_client(WITH_CERT)
        client.get()
        self.assertEqual(self.pending_connections(), [("10.0.0.1", 80)])


class ConditionTests(ProxyTestCase):
    config_text = """\
        frontend fe
            mode http
            bind :80
            acl cert ssl_fc_has_crt
            acl never always_false
            use_backend a if never or ! cert
            use_backend b unless { always_false } cert
            default_backend c
        backend a
            mode http
            server a 10.0.0.1:80
        backend b
            mode http
            server b 10.0.0.2:80
        backend c
            mode http
            server c 10.0.0.3:80
    """

    def test_or_and_negation(self) -> None:
        """'never or ! cert' matches a client without a certificate."""
        self.connect_client(WITHOUT_CERT).get()
        self.assertEqual(self.pending_connections(), [("10.0.0.1", 80)])

    def test_unless(self) -> None:
        """'unless { always_false } cert' matches unless both terms do."""
        self.connect_client(WITH_CERT).get()
        self.assertEqual(self.pending_connections(), [("10.0.0.2", 80)])
