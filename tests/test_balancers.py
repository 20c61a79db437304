"""The balancing algorithms, on servers and requests built by hand."""

from __future__ import annotations

import random
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from certlb.config import parse_config
from certlb.config.model import BALANCE_ALGORITHMS, Balance
from certlb.proxy.balancer import (
    Consistent,
    First,
    Hashing,
    LeastConn,
    MapBased,
    Random,
    RoundRobin,
    StaticRoundRobin,
    make_balancer,
    weighted_map,
)
from certlb.proxy.hashing import (
    Hash,
    HeaderKey,
    UriKey,
    UrlParamKey,
    avalanche,
    crc32,
    djb2,
    domain_part,
    no_hash,
    sdbm,
)
from certlb.proxy.runtime import build_backends
from certlb.proxy.servers import ServerState
from certlb.rules.acl import RuleError
from certlb.rules.context import ConnectionInfo, RequestContext
from certlb.rules.interfaces import IBalancer
from certlb.tls.state import ClientCertState

ARGUMENTS = {
    "hdr": Balance("hdr", "Host", ("use_domain_only",)),
    "url_param": Balance("url_param", "user"),
    "hash": Balance("hash", "hdr(x-user),lower"),
    "random": Balance("random", "3"),
    "uri": Balance("uri", None, ("len", "10", "depth", "2", "whole")),
}


def farm(*weights: int) -> list[ServerState]:
    """Servers s1, s2... of these weights, at 10.0.0.1, 10.0.0.2..."""
    return [
        ServerState(f"s{i}", f"10.0.0.{i}", 80, weight, backend="b")
        for i, weight in enumerate(weights, 1)
    ]


def request(
    target: str = "/",
    headers: Sequence[tuple[str, str]] = (),
    source: str = "192.0.2.1",
    tls: ClientCertState | None = None,
) -> RequestContext:
    """A GET of C{target} from C{source}, on TLS if C{tls} is given."""
    connection = ConnectionInfo((source, 40000), ("10.0.0.100", 443), "f", lambda: tls)
    return RequestContext("GET", target, "HTTP/1.1", list(headers), connection)


def balancer(algorithm: str, argument: str | None = None, *options: str) -> IBalancer:
    """The map-based balancer of C{balance ALGORITHM ...}."""
    return make_balancer(Balance(algorithm, argument, options))


def names(
    balancer: IBalancer,
    servers: Sequence[ServerState],
    contexts: Iterable[RequestContext | None],
) -> list[str]:
    """The names of the servers C{balancer} picks for each of C{contexts}."""
    return [balancer.pick(context, servers).name for context in contexts]


def shares(picked: Iterable[str]) -> dict[str, float]:
    """How often each name appears, as a fraction."""
    counts = Counter(picked)
    total = sum(counts.values())
    return {name: count / total for name, count in sorted(counts.items())}


class TestCase(SynchronousTestCase):
    def assertNear(self, actual: float, expected: float, tolerance: float) -> None:
        """Fail unless C{actual} is within C{tolerance} of C{expected}."""
        if abs(actual - expected) > tolerance:
            self.fail(f"{actual} is not within {tolerance} of {expected}")


class MakeBalancerTests(SynchronousTestCase):
    def test_every_algorithm(self) -> None:
        """Every algorithm a configuration may name gives an IBalancer that
        picks one of the servers given, with either hash method."""
        servers = farm(1, 2)
        for algorithm in BALANCE_ALGORITHMS:
            for method in ("map-based", "consistent"):
                balance = ARGUMENTS.get(algorithm, Balance(algorithm))
                balance = Balance(
                    balance.algorithm, balance.argument, balance.options, method
                )
                made = make_balancer(balance)
                self.assertTrue(verifyObject(IBalancer, made), algorithm)
                self.assertIn(made.pick(request(), servers), servers)
                self.assertIn(made.pick(None, servers), servers)

    def test_classes(self) -> None:
        """Each algorithm has its own class; the hashing ones share one, with
        a map or a ring as 'hash-type' says."""
        kinds = {
            "roundrobin": RoundRobin,
            "static-rr": StaticRoundRobin,
            "leastconn": LeastConn,
            "first": First,
            "random": Random,
            "source": Hashing,
        }
        for algorithm, kind in kinds.items():
            self.assertIsInstance(balancer(algorithm), kind)
        made = make_balancer(Balance("source", hash_method="consistent"))
        assert isinstance(made, Hashing)
        self.assertIsInstance(made.lookup, Consistent)
        made = balancer("source")
        assert isinstance(made, Hashing)
        self.assertIsInstance(made.lookup, MapBased)

    def test_random_draws(self) -> None:
        """'random(N)' draws N times; plain 'random' twice."""
        made = make_balancer(Balance("random", "5"))
        assert isinstance(made, Random)
        self.assertEqual(made.draws, 5)
        made = make_balancer(Balance("random", "2"))
        assert isinstance(made, Random)
        self.assertEqual(made.draws, 2)

    def test_bad_expression(self) -> None:
        """An expression that does not compile is a RuleError naming it."""
        error = self.assertRaises(RuleError, balancer, "hash", "nosuch")
        self.assertEqual(error.message, "unknown fetch 'nosuch'")

    def test_runtime_uses_the_configured_algorithm(self) -> None:
        """A backend at run time balances as its 'balance' line says."""
        config, problems = parse_config(
            "backend b\n  mode http\n  balance leastconn\n  server s1 10.0.0.1:80\n",
            "t.cfg",
            environ={},
        )
        self.assertEqual(problems, [])
        self.assertIsInstance(build_backends(config)["b"].balancer, LeastConn)


class HashFunctionTests(SynchronousTestCase):
    def test_sdbm(self) -> None:
        """sdbm gives HAProxy's values."""
        self.assertEqual(sdbm(b""), 0)
        self.assertEqual(sdbm(b"a"), 97)
        self.assertEqual(sdbm(b"www.example.com"), 2718216582)

    def test_djb2(self) -> None:
        """djb2 gives HAProxy's values."""
        self.assertEqual(djb2(b""), 5381)
        self.assertEqual(djb2(b"www.example.com"), 2843247409)

    def test_crc32(self) -> None:
        """crc32 is the usual CRC-32."""
        self.assertEqual(crc32(b"123456789"), 0xCBF43926)

    def test_none(self) -> None:
        """'none' reads the key as a decimal number, as HAProxy: the digits at
        the start, saturated to 64 bits, then the low 32 bits."""
        self.assertEqual(no_hash(b"42"), 42)
        self.assertEqual(no_hash(b"42abc"), 42)
        self.assertEqual(no_hash(b"+7"), 7)
        self.assertEqual(no_hash(b"-1"), 0xFFFFFFFF)
        self.assertEqual(no_hash(b"abc"), 0)
        self.assertEqual(no_hash(b""), 0)
        self.assertEqual(no_hash(b"4294967297"), 1)
        self.assertEqual(no_hash(b"9" * 30), 0xFFFFFFFF)

    def test_avalanche(self) -> None:
        """avalanche gives HAProxy's full_hash."""
        self.assertEqual(avalanche(0), 2874071335)
        self.assertEqual(avalanche(1), 881230262)
        self.assertEqual(avalanche(0xDEADBEEF), 4293978842)

    def test_hash_of_backend(self) -> None:
        """A backend hashes with its function, mixed with avalanche when
        asked, and by default with 'hash-type consistent', as HAProxy."""
        self.assertEqual(Hash.of(Balance("uri")), Hash("sdbm", False))
        self.assertEqual(
            Hash.of(Balance("uri", hash_method="consistent")), Hash("sdbm", True)
        )
        self.assertEqual(
            Hash.of(Balance("uri", hash_method="consistent", hash_function="djb2")),
            Hash("djb2", False),
        )
        self.assertEqual(
            Hash.of(Balance("uri", hash_function="crc32", avalanche=True)),
            Hash("crc32", True),
        )
        self.assertEqual(Hash("djb2", True)(b"x"), avalanche(djb2(b"x")))


class RoundRobinTests(SynchronousTestCase):
    def test_interleaved_by_weight(self) -> None:
        """Weights 3 and 1 give s1, s1, s2, s1, over and over."""
        self.assertEqual(
            names(RoundRobin(), farm(3, 1), [None] * 8),
            ["s1", "s1", "s2", "s1"] * 2,
        )

    def test_window(self) -> None:
        """Over a window of the total weight, each server gets its weight."""
        picked = names(RoundRobin(), farm(1, 2, 3), [None] * 60)
        self.assertEqual(Counter(picked), {"s1": 10, "s2": 20, "s3": 30})


class StaticRoundRobinTests(SynchronousTestCase):
    def test_weighted_map(self) -> None:
        """The map has each server weight/GCD times, spread out, ties in
        the order of the configuration."""
        s1, s2, s3 = farm(3, 1, 6)
        self.assertEqual(weighted_map([s1, s2]), (s1, s1, s2, s1))
        self.assertEqual(weighted_map([s3, s2]), (s3, s3, s3, s2, s3, s3, s3))
        self.assertEqual(
            [s.name for s in weighted_map(farm(2, 4))],
            [s.name for s in weighted_map(farm(1, 2))],
        )
        self.assertEqual(len(weighted_map(farm(2, 4))), 3)

    def test_rotation(self) -> None:
        """static-rr goes round the map, in proportion to the weights."""
        picked = names(StaticRoundRobin(), farm(3, 1), [None] * 8)
        self.assertEqual(picked, ["s1", "s1", "s2", "s1"] * 2)
        picked = names(StaticRoundRobin(), farm(1, 2, 3), [None] * 60)
        self.assertEqual(Counter(picked), {"s1": 10, "s2": 20, "s3": 30})

    def test_server_full(self) -> None:
        """A server missing from the list (full) is skipped; the others
        share its turns."""
        s1, _, s3 = farm(1, 1, 1)
        rr = StaticRoundRobin()
        picked = [rr.pick(None, [s1, s3]).name for _ in range(4)]
        self.assertEqual(Counter(picked), {"s1": 2, "s3": 2})


class LeastConnTests(SynchronousTestCase):
    def test_least_loaded(self) -> None:
        """The server with the fewest requests in flight gets the next."""
        servers = farm(1, 1, 1)
        for server, active in zip(servers, (3, 1, 2), strict=True):
            server.active = active
        self.assertEqual(LeastConn().pick(None, servers).name, "s2")

    def test_weight(self) -> None:
        """Load is relative to weight: (active + 1) / weight."""
        light, heavy = farm(1, 3)
        light.active, heavy.active = 1, 3  # 2/1 against 4/3
        self.assertIs(LeastConn().pick(None, [light, heavy]), heavy)
        light.active, heavy.active = 1, 6  # 2/1 against 7/3
        self.assertIs(LeastConn().pick(None, [light, heavy]), light)

    def test_idle_first(self) -> None:
        """A server with nothing in flight comes before any busy one,
        whatever the weights (as HAProxy ranks them)."""
        light, heavy = farm(1, 100)
        heavy.active = 1
        self.assertIs(LeastConn().pick(None, [light, heavy]), light)

    def test_ties_take_turns(self) -> None:
        """Equally loaded servers are chosen in turn."""
        picked = names(LeastConn(), farm(1, 1, 1), [None] * 6)
        self.assertEqual(picked, ["s1", "s2", "s3"] * 2)
        servers = farm(1, 1, 1)
        servers[0].active = 5
        picked = names(LeastConn(), servers, [None] * 4)
        self.assertEqual(picked, ["s2", "s3", "s2", "s3"])

    def test_requests_in_flight(self) -> None:
        """Requests that never end spread by weight."""
        servers, leastconn = farm(1, 2), LeastConn()
        for _ in range(30):
            leastconn.pick(None, servers).active += 1
        self.assertEqual([s.active for s in servers], [10, 20])


class FirstTests(SynchronousTestCase):
    def test_first_with_a_slot(self) -> None:
        """'first' takes the first server given, whatever the weights; when it
        is full (not given), the next."""
        s1, s2, s3 = farm(1, 10, 10)
        self.assertEqual(names(First(), [s1, s2, s3], [None] * 3), ["s1"] * 3)
        self.assertEqual(names(First(), [s2, s3], [None] * 3), ["s2"] * 3)


class RandomTests(TestCase):
    def test_weights(self) -> None:
        """With one draw, servers are chosen in proportion to their weights."""
        picker = Random(1, random.Random(1))
        got = shares(names(picker, farm(1, 3), [None] * 4000))
        self.assertNear(got["s1"], 0.25, 0.03)
        self.assertNear(got["s2"], 0.75, 0.03)

    def test_even_when_idle(self) -> None:
        """With two draws and no load, every server still gets its share."""
        got = shares(
            names(Random(2, random.Random(2)), farm(1, 1, 1, 1), [None] * 4000)
        )
        for share in got.values():
            self.assertNear(share, 0.25, 0.03)

    def test_least_loaded_of_the_draws(self) -> None:
        """The least loaded server of the draws wins: a busy server of two
        is chosen only when both draws fall on it."""
        busy, idle = farm(1, 1)
        busy.active = 10
        got = shares(names(Random(2, random.Random(3)), [busy, idle], [None] * 4000))
        self.assertNear(got["s1"], 0.25, 0.03)
        picked = Counter(
            names(Random(20, random.Random(3)), [busy, idle], [None] * 100)
        )
        self.assertEqual(picked, {"s2": 100})

    def test_load_relative_to_weight(self) -> None:
        """Load is compared relative to weight."""
        light, heavy = farm(1, 4)
        light.active, heavy.active = 1, 2
        picked = Counter(
            names(Random(50, random.Random(4)), [light, heavy], [None] * 50)
        )
        self.assertEqual(picked, {"s2": 50})

    def test_seeded(self) -> None:
        """The same seed gives the same choices."""
        servers = farm(1, 2, 3)
        first = names(Random(2, random.Random(5)), servers, [None] * 50)
        again = names(Random(2, random.Random(5)), servers, [None] * 50)
        self.assertEqual(first, again)
        self.assertEqual(set(first), {"s1", "s2", "s3"})


class SourceTests(SynchronousTestCase):
    def test_sticky(self) -> None:
        """A client always gets the same server; clients spread over all."""
        servers, source = farm(1, 1, 1), balancer("source")
        clients = [f"198.51.100.{i}" for i in range(60)]
        first = names(source, servers, [request(source=ip) for ip in clients])
        for _ in range(3):
            again = names(source, servers, [request(source=ip) for ip in clients])
            self.assertEqual(again, first)
        self.assertEqual(Counter(first), {"s1": 20, "s2": 20, "s3": 20})

    def test_address_is_the_key(self) -> None:
        """As HAProxy, an IPv4 address is its own hash: modulo the map."""
        servers = farm(1, 1, 1)
        # 192.0.2.1 is 0xC0000201: 3221225985 % 3 == 0
        self.assertEqual(balancer("source").pick(request(), servers).name, "s1")

    def test_ipv6(self) -> None:
        """IPv6 clients are tied to servers too."""
        servers, source = farm(1, 1, 1), balancer("source")
        clients = [request(source=f"2001:db8::{i:x}") for i in range(30)]
        first = names(source, servers, clients)
        self.assertEqual(names(source, servers, clients), first)
        self.assertEqual(set(first), {"s1", "s2", "s3"})

    def test_not_ip(self) -> None:
        """A client without an IP address is balanced round robin."""
        clients = [request(source="/run/certlb.sock")] * 4
        self.assertEqual(
            names(balancer("source"), farm(1, 1), clients), ["s1", "s2"] * 2
        )


class UriTests(TestCase):
    def key(self, target: str, *options: str) -> int | None:
        """The hash of C{target} for 'balance uri OPTIONS'."""
        made = balancer("uri", None, *options)
        assert isinstance(made, Hashing)
        return made.key(request(target))

    def test_path(self) -> None:
        """The URI is hashed up to its '?'."""
        self.assertEqual(self.key("/a/b?x=1"), sdbm(b"/a/b"))
        self.assertEqual(self.key("/a/b"), sdbm(b"/a/b"))

    def test_whole(self) -> None:
        """With 'whole', the query counts too."""
        self.assertEqual(self.key("/a/b?x=1", "whole"), sdbm(b"/a/b?x=1"))

    def test_len(self) -> None:
        """'len N' hashes the first N characters."""
        self.assertEqual(self.key("/abcdef?x", "len", "4"), sdbm(b"/abc"))
        self.assertEqual(self.key("/ab?xyz", "len", "5"), sdbm(b"/ab"))
        self.assertEqual(self.key("/ab?xyz", "whole", "len", "5"), sdbm(b"/ab?x"))

    def test_depth(self) -> None:
        """'depth N' hashes N directories: up to the slash after the Nth."""
        self.assertEqual(self.key("/a/b/c/d", "depth", "2"), sdbm(b"/a/b"))
        self.assertEqual(self.key("/a/b", "depth", "2"), sdbm(b"/a/b"))
        self.assertEqual(self.key("/a/b/", "depth", "2"), sdbm(b"/a/b"))
        self.assertEqual(self.key("/a/b/c?d/e", "depth", "3"), sdbm(b"/a/b/c"))
        self.assertEqual(self.key("/a?b/c/d", "whole", "depth", "2"), sdbm(b"/a?b/c"))

    def test_len_and_depth(self) -> None:
        """With 'len' and 'depth', the first limit reached counts."""
        self.assertEqual(self.key("/aaa/b/c", "len", "3", "depth", "2"), sdbm(b"/aa"))
        self.assertEqual(self.key("/a/b/cdef", "len", "30", "depth", "1"), sdbm(b"/a"))

    def test_hash_function(self) -> None:
        """The URI goes through the backend's hash function."""
        key = UriKey(Hash("crc32", True))(request("/x?y"))
        self.assertEqual(key, avalanche(crc32(b"/x")))

    def test_sticky(self) -> None:
        """The same path always reaches the same server, whatever the query;
        with 'depth 1', a whole directory does."""
        servers = farm(1, 1, 1, 1)
        uri = balancer("uri")
        targets = [f"/item/{i}" for i in range(40)]
        first = names(uri, servers, [request(t) for t in targets])
        again = names(uri, servers, [request(t + "?v=2") for t in targets])
        self.assertEqual(again, first)
        self.assertEqual(set(first), {"s1", "s2", "s3", "s4"})
        by_directory = balancer("uri", None, "depth", "1")
        picked = names(by_directory, servers, [request(t) for t in targets])
        self.assertEqual(len(set(picked)), 1)

    def test_map_weights(self) -> None:
        """Over many URIs, map-based hashing follows the weights."""
        got = shares(
            names(
                balancer("uri"),
                farm(1, 2, 3),
                [request(f"/p/{i}") for i in range(6000)],
            )
        )
        for name, expected in (("s1", 1 / 6), ("s2", 2 / 6), ("s3", 3 / 6)):
            self.assertNear(got[name], expected, 0.03)


class UrlParamTests(SynchronousTestCase):
    def key(self, target: str) -> int | None:
        return UrlParamKey("user", Hash())(request(target))

    def test_value(self) -> None:
        """The value of the first 'user=' of the query is hashed."""
        self.assertEqual(self.key("/?a=1&user=bob&c"), sdbm(b"bob"))
        self.assertEqual(self.key("/?user=bob&user=eve"), sdbm(b"bob"))
        self.assertEqual(self.key("/?userx=eve&user&user=bob"), sdbm(b"bob"))
        self.assertEqual(self.key("/?user="), sdbm(b""))

    def test_absent(self) -> None:
        """Without the parameter, or without a query, there is no key."""
        for target in ("/", "/?", "/?user", "/?xuser=bob", "/?User=bob", "/user=bob"):
            self.assertIsNone(self.key(target), target)

    def test_sticky(self) -> None:
        """A user always reaches the same server."""
        servers, by_user = farm(1, 1, 1), balancer("url_param", "user")
        users = [request(f"/a?x={i}&user=u{i % 30}") for i in range(90)]
        picked = names(by_user, servers, users)
        self.assertEqual(picked[:30] * 3, picked)
        self.assertEqual(set(picked), {"s1", "s2", "s3"})

    def test_round_robin_without(self) -> None:
        """Requests without the parameter are balanced round robin."""
        picked = names(
            balancer("url_param", "user"), farm(1, 1), [request("/?a=1")] * 4
        )
        self.assertEqual(picked, ["s1", "s2"] * 2)


class HeaderTests(SynchronousTestCase):
    def test_first_value(self) -> None:
        """The header's first value is hashed (as HAProxy); its name is
        matched in any case."""
        key = HeaderKey("x-user", Hash())
        headers = [("X-User", "bob, eve"), ("x-user", "ann")]
        self.assertEqual(key(request(headers=headers)), sdbm(b"bob"))

    def test_domain_part(self) -> None:
        """use_domain_only keeps the label before the last dot."""
        self.assertEqual(domain_part("haproxy.1wt.eu"), "1wt")
        self.assertEqual(domain_part("www.example.com"), "example")
        self.assertEqual(domain_part("example.com"), "example")
        self.assertEqual(domain_part("example.com:8443"), "example")
        self.assertEqual(domain_part("localhost"), "localhost")
        self.assertEqual(domain_part(".com"), ".com")

    def test_use_domain_only(self) -> None:
        """With use_domain_only, hosts of one domain reach the same server."""
        key = HeaderKey("host", Hash(), domain_only=True)
        self.assertEqual(
            key(request(headers=[("Host", "www.example.com")])), sdbm(b"example")
        )
        servers = farm(1, 1, 1)
        by_domain = balancer("hdr", "Host", "use_domain_only")
        hosts = [f"h{i}.site{i % 10}.com" for i in range(50)]
        picked = names(
            by_domain, servers, [request(headers=[("Host", h)]) for h in hosts]
        )
        self.assertEqual(picked[:10] * 5, picked)
        self.assertEqual(set(picked), {"s1", "s2", "s3"})

    def test_sticky(self) -> None:
        """The same header value always reaches the same server."""
        servers, by_header = farm(1, 1, 1), balancer("hdr", "X-User")
        users = [request(headers=[("x-user", f"user{i % 25}")]) for i in range(75)]
        picked = names(by_header, servers, users)
        self.assertEqual(picked[:25] * 3, picked)
        self.assertEqual(set(picked), {"s1", "s2", "s3"})

    def test_round_robin_without(self) -> None:
        """Without the header, or with an empty one, round robin."""
        contexts = [request(), request(headers=[("X-User", "")])] * 2
        self.assertEqual(
            names(balancer("hdr", "X-User"), farm(1, 1), contexts), ["s1", "s2"] * 2
        )


class ExpressionTests(SynchronousTestCase):
    def test_converters(self) -> None:
        """The expression's converters run before hashing: 'lower' makes
        BOB and bob one key."""
        servers, by_user = farm(1, 1, 1, 1), balancer("hash", "hdr(x-user),lower")
        users = [f"User{i}" for i in range(40)]
        lower = names(
            by_user, servers, [request(headers=[("X-User", u.lower())]) for u in users]
        )
        upper = names(
            by_user, servers, [request(headers=[("X-User", u.upper())]) for u in users]
        )
        self.assertEqual(lower, upper)
        self.assertEqual(set(lower), {"s1", "s2", "s3", "s4"})

    def test_last_header_value(self) -> None:
        """As any sample expression, hdr() gives its last value."""
        made = balancer("hash", "hdr(x-user)")
        assert isinstance(made, Hashing)
        key = made.key(request(headers=[("X-User", "a, b"), ("X-User", "c")]))
        self.assertEqual(key, sdbm(b"c"))

    def test_binary_forms(self) -> None:
        """Integers are hashed as 8 bytes, addresses as 4 or 16."""
        made = balancer("hash", "src_port")
        assert isinstance(made, Hashing)
        self.assertEqual(made.key(request()), sdbm((40000).to_bytes(8, "big")))
        made = balancer("hash", "src")
        assert isinstance(made, Hashing)
        self.assertEqual(made.key(request()), sdbm(bytes([192, 0, 2, 1])))

    def test_tls_sticky(self) -> None:
        """A TLS fact of the client's connection (here the SNI it sent) ties
        it to a server."""
        servers, by_sni = farm(1, 1, 1), balancer("hash", "ssl_fc_sni")
        clients = [
            request(source=f"192.0.2.{i}", tls=ClientCertState(sni=f"c{i % 20}.test"))
            for i in range(60)
        ]
        picked = names(by_sni, servers, clients)
        self.assertEqual(picked[:20] * 3, picked)
        self.assertEqual(set(picked), {"s1", "s2", "s3"})

    def test_round_robin_without_value(self) -> None:
        """Without a value (no TLS here), round robin."""
        self.assertEqual(
            names(balancer("hash", "ssl_fc_sni"), farm(1, 1), [request()] * 4),
            ["s1", "s2"] * 2,
        )

    def test_function_none(self) -> None:
        """With 'hash-type map-based none', a number is its own hash."""
        made = make_balancer(Balance("hash", "hdr(x-id)", hash_function="none"))
        servers = farm(1, 1, 1)
        ids = ["7", "8", "9", "10"]
        picked = names(made, servers, [request(headers=[("X-Id", i)]) for i in ids])
        self.assertEqual(picked, ["s2", "s3", "s1", "s2"])


class MapBasedTests(SynchronousTestCase):
    def test_key_modulo_total_weight(self) -> None:
        """The key, modulo the total weight, is a place in the weighted map."""
        servers = farm(3, 1)
        lookup = MapBased()
        picked = [lookup.find(key, servers).name for key in range(8)]
        self.assertEqual(picked, ["s1", "s1", "s2", "s1"] * 2)

    def test_same_servers_same_server(self) -> None:
        """Given the same servers (in a new list), a key keeps its server."""
        servers = farm(1, 2, 3)
        lookup = MapBased()
        first = [lookup.find(key, list(servers)).name for key in range(1000, 1100)]
        again = [lookup.find(key, list(servers)).name for key in range(1000, 1100)]
        self.assertEqual(first, again)

    def test_weight_change(self) -> None:
        """A server whose weight changed gets a new map."""
        s1, s2 = farm(1, 1)
        lookup = MapBased()
        self.assertEqual(lookup.find(1, [s1, s2]), s2)
        s1.weight = 3
        self.assertEqual(lookup.find(1, [s1, s2]), s1)


class ConsistentTests(TestCase):
    def test_removed_server_moves_only_its_keys(self) -> None:
        """When a server goes away, only its keys change server; the others
        keep theirs."""
        servers = farm(1, 1, 1, 1, 1)
        by_uri = make_balancer(Balance("uri", hash_method="consistent"))
        contexts = [request(f"/object/{i}") for i in range(2000)]
        before = names(by_uri, servers, contexts)
        self.assertEqual(set(before), {"s1", "s2", "s3", "s4", "s5"})
        after = names(by_uri, [s for s in servers if s.name != "s3"], contexts)
        for old, new in zip(before, after, strict=True):
            if old == "s3":
                self.assertNotEqual(new, "s3")
            else:
                self.assertEqual(new, old)
        moved = {new for old, new in zip(before, after, strict=True) if old == "s3"}
        self.assertGreater(len(moved), 1)

    def test_added_server_takes_only_keys(self) -> None:
        """A server that comes back takes keys only for itself."""
        servers = farm(1, 1, 1, 1)
        by_param = make_balancer(
            Balance("url_param", "id", hash_method="consistent", hash_function="crc32")
        )
        contexts = [request(f"/?id={i}") for i in range(1000)]
        fewer = names(by_param, servers[:3], contexts)
        more = names(by_param, servers, contexts)
        for old, new in zip(fewer, more, strict=True):
            self.assertIn(new, (old, "s4"))

    def test_weights(self) -> None:
        """A server of more weight gets more keys, roughly in proportion."""
        by_uri = make_balancer(Balance("uri", hash_method="consistent"))
        contexts = [request(f"/p/{i}") for i in range(6000)]
        got = shares(names(by_uri, farm(1, 3), contexts))
        self.assertNear(got["s1"], 0.25, 0.08)

    def test_ring_from_names(self) -> None:
        """The ring depends on the servers' names and weights, not on the
        objects or their order: another certlb with the same servers sends a
        key to the same server."""
        lookup = Consistent()
        one, other = farm(1, 2, 1), farm(1, 2, 1)
        for key in range(0, 2**32, 2**32 // 500):
            self.assertEqual(
                lookup.find(key, one).name, lookup.find(key, other[::-1]).name
            )

    def test_other_servers_do_not_matter(self) -> None:
        """A key's server depends only on the servers given now, not on
        those given before."""
        servers = farm(1, 2, 1, 3, 1)
        seasoned, fresh = Consistent(), Consistent()
        for key in range(0, 2**32, 2**32 // 100):
            seasoned.find(key, servers)
        now = [servers[0], servers[3], servers[4]]
        for key in range(7, 2**32, 2**32 // 1000):
            self.assertIs(seasoned.find(key, now), fresh.find(key, now))

    def test_full_server_gets_its_keys_back(self) -> None:
        """A server left out for a while (full) gets its keys back."""
        servers, lookup = farm(1, 1, 1), Consistent()
        keys = range(5, 2**32, 2**32 // 300)
        before = [lookup.find(key, servers) for key in keys]
        for key in keys:
            lookup.find(key, servers[1:])
        self.assertEqual([lookup.find(key, servers) for key in keys], before)


def check(text: str) -> list[str]:
    """Every problem of configuration C{text} (dedented, as C{t.cfg})."""
    _, problems = parse_config(textwrap.dedent(text), "t.cfg", environ={})
    return [str(p) for p in problems]


class CheckerTests(SynchronousTestCase):
    def test_unknown_fetch(self) -> None:
        """An unknown fetch in 'balance hash' is an error at its line."""
        self.assertEqual(
            check(
                """\
                global
                backend b
                  mode http
                  balance hash srcc,lower
                  server s1 10.0.0.1:80
                """
            ),
            [
                "t.cfg:4: error: backend 'b': 'balance hash srcc,lower': unknown "
                "fetch 'srcc'; did you mean 'src'?"
            ],
        )

    def test_unimplemented_fetch(self) -> None:
        """An HAProxy fetch certlb lacks says so."""
        self.assertEqual(
            check(
                "backend b\n  mode http\n  balance hash req.cook\n"
                "  server s1 10.0.0.1:80\n"
            ),
            [
                "t.cfg:3: error: backend 'b': 'balance hash req.cook': fetch "
                "'req.cook' is an HAProxy fetch that certlb does not implement yet"
            ],
        )

    def test_good_expression(self) -> None:
        """A good expression is no problem."""
        self.assertEqual(
            check(
                "backend b\n  mode http\n  balance hash req.hdr(host),lower\n"
                "  hash-type consistent djb2 avalanche\n  server s1 10.0.0.1:80\n"
            ),
            [],
        )
