"""Balancing algorithms: which server of a backend gets the next request.

L{make_balancer} builds the L{IBalancer} of a backend's C{balance} and
C{hash-type} lines, with HAProxy's semantics.  A balancer is given only the
servers that may take the request now (see L{IBalancer.pick}); HAProxy's
hashing maps cover every server that is up in the serving tier, full or not,
so here a server at its C{maxconn} drops out of the map until it has a free
slot again.  Given the same servers, a hashing balancer always gives the same
server for the same key.
"""

from __future__ import annotations

import math
import random
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Iterable, Sequence
from itertools import accumulate
from typing import TypeVar

import attrs
from zope.interface import implementer

from certlb.config.model import Balance, PluginUse
from certlb.proxy.hashing import (
    ExpressionKey,
    Hash,
    HeaderKey,
    Key,
    SourceKey,
    UriKey,
    UrlParamKey,
    avalanche,
)
from certlb.proxy.servers import ServerState
from certlb.rules.interfaces import IBalancer, IRequestContext
from certlb.rules.registry import build

MASK32 = 0xFFFFFFFF
# Points of a server on a consistent-hashing ring, per unit of weight
# (HAProxy's BE_WEIGHT_SCALE).
POINTS_PER_WEIGHT = 16
# Server lists whose map or ring is kept; a backend sees few distinct lists
# (servers reaching maxconn, going down), so a handful covers them.
CACHED_LISTS = 16


# -- server maps --------------------------------------------------------------

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


def _cached(cache: dict[_K, _V], key: _K, build: Callable[[], _V]) -> _V:
    """C{cache[key]}, built first if need be; a full cache starts afresh."""
    found = cache.get(key)
    if found is None:
        if len(cache) >= CACHED_LISTS:
            cache.clear()
        found = cache[key] = build()
    return found


def _identity(servers: Sequence[ServerState]) -> tuple[tuple[ServerState, int], ...]:
    """What a map or ring of C{servers} depends on."""
    return tuple((server, server.weight) for server in servers)


def weighted_map(servers: Sequence[ServerState]) -> tuple[ServerState, ...]:
    """Each server as many times as its weight (divided by the weights' GCD),
    spread out rather than in runs, as HAProxy's map: weights 3 and 1 give
    a, a, b, a."""
    divisor = math.gcd(*(server.weight for server in servers)) or 1
    slots = [
        ((2 * i + 1) / (2 * (server.weight // divisor)), order, server)
        for order, server in enumerate(servers)
        for i in range(server.weight // divisor)
    ]
    slots.sort(key=lambda slot: slot[:2])
    return tuple(server for _, _, server in slots)


@attrs.define(eq=False)
class MapBased:
    """C{hash-type map-based}: the key modulo the total weight, over the
    weighted map of the servers.  Smooth and proportional to weight, but
    when a server comes or goes most keys change server."""

    _maps: dict[Hashable, tuple[ServerState, ...]] = attrs.Factory(dict)

    def find(self, key: int, servers: Sequence[ServerState]) -> ServerState:
        table = _cached(self._maps, _identity(servers), lambda: weighted_map(servers))
        return table[key % len(table)]


def ring_points(name: str, weight: int) -> list[int]:
    """The places of server C{name} on a consistent-hashing ring: as many as
    its weight says, drawn from its name alone, so that they stay put when
    other servers come, go or change weight."""
    seed = zlib.crc32(name.encode("utf-8"))
    return [
        avalanche(zlib.crc32(i.to_bytes(4, "big"), seed))
        for i in range(weight * POINTS_PER_WEIGHT)
    ]


@attrs.define(eq=False)
class Consistent:
    """C{hash-type consistent}: a ring of points, many per server; a key goes
    to the server of the closest point.  When a server goes away only its
    keys move (to its neighbours on the ring); the spread is less even than
    a map's.  A server's points come from its name (HAProxy's come from its
    id), so the ring is the same for every certlb with the same servers.

    One ring holds the points of every server seen (by name and weight);
    a lookup skips those of servers not given, which gives the server that
    a ring of the given servers alone would give, without building a ring
    for each list of servers.
    """

    _known: set[tuple[str, int]] = attrs.Factory(set)
    _keys: list[int] = attrs.Factory(list)
    _owners: list[tuple[str, int]] = attrs.Factory(list)

    def _grow(self, servers: Iterable[tuple[str, int]]) -> None:
        self._known.update(servers)
        ring = sorted(
            (point, name, weight)
            for name, weight in self._known
            for point in ring_points(name, weight)
        )
        self._keys = [point for point, _, _ in ring]
        self._owners = [(name, weight) for _, name, weight in ring]

    def find(self, key: int, servers: Sequence[ServerState]) -> ServerState:
        given = {(server.name, server.weight): server for server in servers}
        if not given.keys() <= self._known:
            self._grow(given)
        keys, owners, size = self._keys, self._owners, len(self._keys)
        start = bisect_left(keys, key)
        after = next(
            i % size for i in range(start, start + size) if owners[i % size] in given
        )
        before = next(
            i % size
            for i in range(start - 1, start - 1 - size, -1)
            if owners[i % size] in given
        )
        # As HAProxy, the closer point wins, the one before on a tie.
        if (key - keys[before]) & MASK32 <= (keys[after] - key) & MASK32:
            return given[owners[before]]
        return given[owners[after]]


# -- balancers ----------------------------------------------------------------


@implementer(IBalancer)
@attrs.define(eq=False)
class RoundRobin:
    """Smooth weighted round robin: each server in turn, in proportion to weight.

    Over any window of (sum of weights) requests, each server gets its
    weight's share, and servers are interleaved rather than chosen in runs
    (a server of weight 3 next to one of weight 1 goes a, a, b, a — not
    a, a, a, b).
    """

    _current: dict[ServerState, int] = attrs.Factory(dict)

    def pick(
        self, context: IRequestContext | None, servers: Sequence[ServerState]
    ) -> ServerState:
        current = self._current
        best = servers[0]
        total = 0
        for server in servers:
            value = current.get(server, 0) + server.weight
            current[server] = value
            total += server.weight
            if value > current[best]:
                best = server
        current[best] -= total
        return best


@implementer(IBalancer)
@attrs.define(eq=False)
class StaticRoundRobin:
    """C{static-rr}: the servers' weighted map (see L{weighted_map}), in turn."""

    _maps: dict[Hashable, tuple[ServerState, ...]] = attrs.Factory(dict)
    _next: int = 0

    def pick(
        self, context: IRequestContext | None, servers: Sequence[ServerState]
    ) -> ServerState:
        table = _cached(self._maps, _identity(servers), lambda: weighted_map(servers))
        index = self._next % len(table)
        self._next = index + 1
        return table[index]


@implementer(IBalancer)
@attrs.define(eq=False)
class LeastConn:
    """C{leastconn}: the server with the fewest requests in flight for its
    weight, as HAProxy ranks them: by (active + 1) / weight, and 0 for a
    server with none.  Among equals, the one chosen longest ago (or never),
    so that they take turns."""

    _chosen: dict[ServerState, int] = attrs.Factory(dict)
    _count: int = 0

    def pick(
        self, context: IRequestContext | None, servers: Sequence[ServerState]
    ) -> ServerState:
        chosen = self._chosen
        best = servers[0]
        for server in servers[1:]:
            load = (server.active + 1 if server.active else 0) * best.weight
            best_load = (best.active + 1 if best.active else 0) * server.weight
            if load < best_load or (
                load == best_load and chosen.get(server, 0) < chosen.get(best, 0)
            ):
                best = server
        self._count += 1
        chosen[best] = self._count
        return best


@implementer(IBalancer)
@attrs.define(eq=False)
class First:
    """C{first}: the first server, in configuration order, with a free slot
    (the servers given all have one); weights do not count."""

    def pick(
        self, context: IRequestContext | None, servers: Sequence[ServerState]
    ) -> ServerState:
        return servers[0]


@implementer(IBalancer)
@attrs.define(eq=False)
class Random:
    """C{random(DRAWS)}: draw servers at random, in proportion to their
    weights, C{draws} times, and keep the least loaded for its weight (the
    first drawn among equals): the "power of two choices".

    @ivar rng: the source of randomness (a seeded one in tests).
    """

    draws: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    rng: random.Random = attrs.Factory(random.Random)

    def pick(
        self, context: IRequestContext | None, servers: Sequence[ServerState]
    ) -> ServerState:
        bounds = list(accumulate(server.weight for server in servers))
        best: ServerState | None = None
        for _ in range(self.draws):
            server = servers[bisect_right(bounds, self.rng.randrange(bounds[-1]))]
            if (
                best is None
                or server.active * best.weight < best.active * server.weight
            ):
                best = server
        assert best is not None
        return best


@implementer(IBalancer)
@attrs.define(eq=False)
class Hashing:
    """C{source}, C{uri}, C{url_param}, C{hdr} and C{hash}: the server is
    chosen by a hash of what the request carries, so that the same key goes
    to the same server while the servers stay the same.  A request without
    a key is balanced round robin, as HAProxy does.

    @ivar key: the 32-bit hash of a request's key, or None without one.
    @ivar lookup: from a hash to a server: L{MapBased} or L{Consistent}.
    """

    key: Key
    lookup: MapBased | Consistent
    fallback: RoundRobin = attrs.Factory(RoundRobin)

    def pick(
        self, context: IRequestContext | None, servers: Sequence[ServerState]
    ) -> ServerState:
        if len(servers) == 1:
            return servers[0]
        key = None if context is None else self.key(context)
        if key is None:
            return self.fallback.pick(context, servers)
        return self.lookup.find(key, servers)


def _uri_key(balance: Balance, hasher: Hash) -> UriKey:
    options = list(balance.options)
    settings = {"len": 0, "depth": 0}
    for i, option in enumerate(options):
        if option in settings and i + 1 < len(options):
            settings[option] = int(options[i + 1])
    return UriKey(hasher, "whole" in options, settings["len"], settings["depth"])


def make_balancer(balance: Balance, plugin: PluginUse | None = None) -> IBalancer:
    """The balancer of a backend's C{balance} and C{hash-type} lines, or of
    a plugin's algorithm (C{balance NAME}, NAME a plugin's).

    @raise certlb.rules.acl.RuleError: the expression of C{balance hash}
        cannot be compiled, or the plugin refuses its arguments (the
        configuration checker reports both first).
    """
    if plugin is not None:
        balancer: IBalancer = build(
            "balancer", plugin.name, plugin.args, plugin.location, IBalancer
        )
        return balancer
    algorithm = balance.algorithm
    if algorithm == "roundrobin":
        return RoundRobin()
    if algorithm == "static-rr":
        return StaticRoundRobin()
    if algorithm == "leastconn":
        return LeastConn()
    if algorithm == "first":
        return First()
    if algorithm == "random":
        return Random(int(balance.argument or "2"))
    hasher = Hash.of(balance)
    key: Key
    if algorithm == "source":
        key = SourceKey(hasher.avalanche)
    elif algorithm == "uri":
        key = _uri_key(balance, hasher)
    elif algorithm == "url_param":
        key = UrlParamKey(balance.argument or "", hasher)
    elif algorithm == "hdr":
        domain_only = "use_domain_only" in balance.options
        key = HeaderKey((balance.argument or "").lower(), hasher, domain_only)
    elif algorithm == "hash":
        key = ExpressionKey.compile(balance.argument or "", hasher)
    else:
        raise ValueError(f"unknown balance algorithm {algorithm!r}")
    lookup = Consistent() if balance.hash_method == "consistent" else MapBased()
    return Hashing(key, lookup)
