"""Persistence: stick tables, stick rules, their configuration, and requests
that keep to their server."""

from __future__ import annotations

import textwrap

from twisted.trial.unittest import SynchronousTestCase

from certlb.config import parse_config
from certlb.config.model import StickTable
from certlb.proxy.stick import StickTableRuntime
from tests.proxy_harness import ProxyTestCase, head_and_body

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def table(kind: str = "string", **settings: object) -> StickTableRuntime:
    return StickTableRuntime(StickTable(kind, **settings), "bk")  # type: ignore[arg-type]


class TableTests(SynchronousTestCase):
    def test_store_and_lookup(self) -> None:
        """A stored key gives its server back; another key gives none."""
        t = table(size=10)
        t.store("alice", "s1", 0)
        self.assertEqual(t.lookup("alice", 1), "s1")
        self.assertIsNone(t.lookup("bob", 1))

    def test_expire_since_last_use(self) -> None:
        """An entry lasts C{expire} since it was last stored or matched."""
        t = table(size=10, expire=10_000)
        t.store("alice", "s1", 0)
        self.assertEqual(t.lookup("alice", 9), "s1")
        self.assertEqual(t.lookup("alice", 18), "s1")
        self.assertIsNone(t.lookup("alice", 28))
        self.assertEqual(len(t), 0)

    def test_size_drops_least_recently_used(self) -> None:
        """A full table drops the entry used least recently."""
        t = table(size=2)
        t.store("a", "s1", 0)
        t.store("b", "s2", 1)
        t.lookup("a", 2)
        t.store("c", "s1", 3)
        self.assertEqual((t.lookup("a", 4), t.lookup("b", 4)), ("s1", None))
        self.assertEqual(len(t), 2)

    def test_nopurge(self) -> None:
        """With C{nopurge}, a full table stores no new key."""
        t = table(size=1, nopurge=True)
        t.store("a", "s1", 0)
        t.store("b", "s2", 1)
        self.assertEqual((t.lookup("a", 2), t.lookup("b", 2)), ("s1", None))
        t.store("a", "s2", 3)
        self.assertEqual(t.lookup("a", 4), "s2")

    def test_expired_entries_make_room(self) -> None:
        """Expired entries go first when a key is stored."""
        t = table(size=1, expire=1000, nopurge=True)
        t.store("a", "s1", 0)
        t.store("b", "s2", 5)
        self.assertEqual(t.lookup("b", 5), "s2")

    def test_key_types(self) -> None:
        """Values become keys of the table's type, or none."""
        self.assertEqual(table(length=3, size=1).key("abcdef"), "abc")
        self.assertEqual(table("binary", length=4, size=1).key(b"ab"), b"ab\0\0")
        self.assertEqual(table("integer", size=1).key("42"), 42)
        self.assertIsNone(table("integer", size=1).key("x"))
        ip = table("ip", size=1)
        self.assertEqual(ip.key("::ffff:10.0.0.1"), ip.key("10.0.0.1"))
        self.assertIsNone(ip.key("2001:db8::1"))
        self.assertIsNone(ip.key("nonsense"))
        ipv6 = table("ipv6", size=1)
        self.assertEqual(ipv6.key("10.0.0.1"), ipv6.key("::ffff:10.0.0.1"))
        self.assertIsNone(table(size=1).key(None))


def problems(text: str) -> list[str]:
    _, found = parse_config(textwrap.dedent(text), "t.cfg", {})
    return [str(p) for p in found]


class ConfigurationTests(SynchronousTestCase):
    def test_parsed(self) -> None:
        """stick-table and stick land in the backend."""
        config, found = parse_config(
            "backend b\n  mode http\n"
            "  stick-table type ip size 1m expire 30m nopurge\n"
            "  stick on src if { src 10.0.0.0/8 }\n"
            "  stick match hdr(x-user) table b\n"
            "  stick store-request hdr(x-user)\n"
            "  server s 10.0.0.1:80\n",
            "t.cfg",
            {},
        )
        self.assertEqual(found, [])
        backend = config.backends[0]
        stick_table = backend.stick_table
        assert stick_table is not None
        self.assertEqual(
            (stick_table.type, stick_table.size, stick_table.expire),
            ("ip", 1 << 20, 1_800_000),
        )
        self.assertTrue(stick_table.nopurge)
        self.assertEqual(
            [(r.kind, r.expression.fetch, r.table) for r in backend.stick_rules],
            [
                ("on", "src", None),
                ("match", "hdr", "b"),
                ("store-request", "hdr", None),
            ],
        )
        self.assertIsNotNone(backend.stick_rules[0].condition)

    def test_errors(self) -> None:
        """Bad stick-table and stick lines are errors naming what is wrong."""
        for line, message in {
            "stick-table type str size 10": "'str' is not a stick-table type; use "
            "one of ip, ipv6, integer, string, binary; did you mean 'string'?",
            "stick-table type ip": "'stick-table' needs 'size', as in 'stick-table "
            "type string size 100k expire 30m'",
            "stick-table type ip size ten": "'ten' is not a table size; write a "
            "number of entries, with k, m or g for 1024, 1024² or 1024³ times as "
            "many, as in 100k",
            "stick-table type ip size 1 store gpc0": "stick-table 'store' is an "
            "HAProxy option that certlb does not implement yet: its tables keep "
            "the server of each key only",
            "stick-table type ip size 1 expire soon": "'soon' is not a duration; "
            "write a number with an optional unit us, ms, s, m, h or d, as in 5s "
            "(no unit means milliseconds)",
            "stick mach src": "'stick mach': use stick on, stick match or stick "
            "store-request; did you mean 'match'?",
            "stick store-response src": "'stick store-response' is an HAProxy rule "
            "that certlb does not implement yet",
            "stick on": "'stick on' needs an expression, as in 'stick on src'",
            "stick on src foo": "unexpected 'foo': 'stick' takes a condition after "
            "'if' or 'unless'",
        }.items():
            found = problems(f"backend b\n  mode http\n  {line}\n  server s h:80\n")
            self.assertEqual(found, [f"t.cfg:3: error: {message}"], line)

    def test_table_needed(self) -> None:
        """A stick rule needs a table: its backend's, or one it names."""
        text = (
            "backend b\n  mode http\n  stick on src\n  stick match src table c\n"
            "  stick match src table a\n  server s h:80\n"
            "backend a\n  mode http\n  server s h:80\n"
        )
        self.assertEqual(
            problems(text),
            [
                "t.cfg:3: error: 'stick on': backend 'b' has no stick-table; add "
                "one, as in 'stick-table type string size 100k expire 30m', or "
                "name another backend's with 'table NAME'",
                "t.cfg:4: error: 'stick match': there is no backend 'c'",
                "t.cfg:5: error: 'stick match': backend 'a' has no stick-table",
            ],
        )

    def test_expression_compiled(self) -> None:
        """An unknown fetch in a stick rule is an error at its line."""
        found = problems(
            "backend b\n  mode http\n  stick-table type ip size 10\n"
            "  stick on srcip\n  server s h:80\n"
        )
        self.assertEqual(len(found), 1)
        self.assertTrue(
            found[0].startswith("t.cfg:4: error: unknown fetch 'srcip'"), found
        )

    def test_not_in_frontend(self) -> None:
        """stick-table and stick belong in backends and listen sections."""
        found = problems(
            "frontend f\n  mode http\n  bind :80\n  stick-table type ip size 1\n"
        )
        self.assertIn("t.cfg:4: error: 'stick-table'", found[0])


CONFIG = """\
    frontend fe
        mode http
        bind :80
        default_backend be
    backend be
        mode http
        balance roundrobin
        option http-server-close
        stick-table type string size 100 expire 10m
        stick on hdr(x-user) if { hdr(x-user) -m found }
        server s1 10.0.0.1:80
        server s2 10.0.0.2:80
        server s3 10.0.0.3:80
"""


class StickyRequestTests(ProxyTestCase):
    config_text = CONFIG

    def serve(self, user: bytes) -> str:
        """One request of C{user}; the server it went to."""
        client = self.connect_client()
        client.get(headers=b"X-User: " + user + b"\r\n" if user else b"")
        server = self.accept()
        server.respond(OK)
        head, _ = head_and_body(client.received())
        self.assertIn(b" 200 ", head[0])
        return server.host

    def test_same_identity_same_server(self) -> None:
        """Requests of one identity keep to the server that served the first,
        while requests without one are balanced."""
        first = self.serve(b"alice")
        self.assertEqual({self.serve(b"alice") for _ in range(10)}, {first})
        self.assertEqual(len({self.serve(b"") for _ in range(3)}), 3)

    def test_identities_spread(self) -> None:
        """Different identities are balanced, each then keeping its server."""
        servers = {user: self.serve(user) for user in (b"a", b"b", b"c")}
        self.assertEqual(len(set(servers.values())), 3)
        for user, server in servers.items():
            self.assertEqual(self.serve(user), server)

    def test_down_server_not_followed(self) -> None:
        """When an identity's server is down, the request is balanced
        elsewhere and the identity keeps to its new server."""
        first = self.serve(b"alice")
        backend = self.frontend.default
        assert backend is not None
        down = next(s for s in backend.servers if s.host == first)
        down.up = False
        second = self.serve(b"alice")
        self.assertNotEqual(second, first)
        down.up = True
        self.assertEqual(self.serve(b"alice"), second)

    def test_entries_expire(self) -> None:
        """After C{expire} without a request, the identity is balanced anew."""
        first = self.serve(b"alice")
        self.reactor.advance(601)
        self.assertNotEqual(self.serve(b"alice"), first)

    def test_drained_server_keeps_its_clients(self) -> None:
        """A server drained with weight 0 still gets the identities stuck to
        it, as in HAProxy; new ones go elsewhere."""
        first = self.serve(b"alice")
        backend = self.frontend.default
        assert backend is not None
        drained = next(s for s in backend.servers if s.host == first)
        drained.weight = 0
        self.assertEqual(self.serve(b"alice"), first)
        self.assertNotEqual(self.serve(b"bob"), first)


class FullServerTests(ProxyTestCase):
    config_text = CONFIG.replace(
        "server s1 10.0.0.1:80", "server s1 10.0.0.1:80 maxconn 1"
    )

    def test_busy_server_keeps_the_entry(self) -> None:
        """A request whose server is at its maxconn is served elsewhere, and
        the identity stays stuck to its server for the next requests."""
        alice = b"X-User: alice\r\n"
        first = self.connect_client()
        first.get(headers=alice)
        server = self.accept()
        self.assertEqual(server.host, "10.0.0.1")
        server.respond(OK)  # stored: alice is on s1
        busy = self.connect_client(port=50001)
        busy.get(headers=alice)
        held = self.accept()
        self.assertEqual(held.host, "10.0.0.1")  # s1 now has its one slot taken
        second = self.connect_client(port=50002)
        second.get(headers=alice)
        elsewhere = self.accept()
        self.assertNotEqual(elsewhere.host, "10.0.0.1")
        elsewhere.respond(OK)
        held.respond(OK)
        third = self.connect_client(port=50003)
        third.get(headers=alice)
        self.assertEqual(self.accept().host, "10.0.0.1")
