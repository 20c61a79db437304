"""Persistence: stick tables and the C{stick} rules that read and fill them.

A table maps a key (a client address, a certificate's serial, a header...)
to the server that served it.  It holds at most C{size} entries, the least
recently used going first (unless C{nopurge}), and an entry lasts C{expire}
since it was last stored or matched.  Times are the reactor's, in seconds.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import attrs

from certlb.config.model import AclDef, StickRule, StickTable
from certlb.rules.acl import compile_condition, compile_expression
from certlb.rules.converters import text_to_int, to_bytes, to_text
from certlb.rules.interfaces import ICondition, IRequestContext


def _ip(value: Any, version: int) -> Hashable | None:
    try:
        address = ipaddress.ip_address(to_text(value))
    except ValueError:
        return None
    if version == 6:
        if address.version == 4:
            return ipaddress.IPv6Address(f"::ffff:{address}")
        return address
    if address.version == 6:
        return address.ipv4_mapped  # None for a true IPv6 address
    return address


def _integer(value: Any) -> Hashable | None:
    if isinstance(value, int):
        return int(value)
    return text_to_int(to_text(value))


@attrs.define(eq=False)
class StickTableRuntime:
    """A stick table: keys to server names, bounded in size and in time."""

    spec: StickTable
    name: str
    _entries: OrderedDict[Hashable, tuple[str, float | None]] = attrs.Factory(
        OrderedDict
    )

    def key(self, value: Any) -> Hashable | None:
        """C{value} as a key of this table's type, or None when it is none
        (an IPv6 address in an C{ip} table, text in an C{integer} one)."""
        if value is None:
            return None
        kind, length = self.spec.type, self.spec.length
        if kind == "ip":
            return _ip(value, 4)
        if kind == "ipv6":
            return _ip(value, 6)
        if kind == "integer":
            return _integer(value)
        if kind == "string":
            return to_text(value)[:length]
        data = value if isinstance(value, bytes) else to_bytes(to_text(value))
        return data[:length].ljust(length, b"\0")

    def lookup(self, key: Hashable, now: float) -> str | None:
        """The server stored for C{key}, which counts as a use of the entry."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        server, expires = entry
        if expires is not None and expires <= now:
            del self._entries[key]
            return None
        self._touch(key, server, now)
        return server

    def store(self, key: Hashable, server: str, now: float) -> None:
        """Remember that C{server} serves C{key}."""
        entries = self._entries
        while entries:
            _, (_, expires) = next(iter(entries.items()))
            if expires is None or expires > now:
                break
            entries.popitem(last=False)
        if key not in entries and len(entries) >= self.spec.size:
            if self.spec.nopurge:
                return
            entries.popitem(last=False)
        self._touch(key, server, now)

    def _touch(self, key: Hashable, server: str, now: float) -> None:
        expire = self.spec.expire
        self._entries[key] = (server, None if expire is None else now + expire / 1000)
        self._entries.move_to_end(key)

    def __len__(self) -> int:
        return len(self._entries)


@attrs.frozen
class _Rule:
    kind: str
    sample: Callable[[IRequestContext], Any]
    table: StickTableRuntime
    condition: ICondition | None


@attrs.frozen
class Stickiness:
    """What the C{stick} rules of a request say: the server its key was
    stored with, if any, and the keys to store the server it gets under."""

    server: str | None
    stores: tuple[tuple[StickTableRuntime, Hashable], ...]


@attrs.define(eq=False)
class Persistence:
    """The C{stick} rules of a backend, compiled."""

    rules: Sequence[_Rule]

    @classmethod
    def compile(
        cls,
        rules: Sequence[StickRule],
        acls: Mapping[str, Sequence[AclDef]],
        tables: Mapping[str, StickTableRuntime],
        backend: str,
    ) -> Persistence:
        return cls(
            [
                _Rule(
                    rule.kind,
                    compile_expression(rule.expression)[0],
                    tables[rule.table or backend],
                    compile_condition(rule.condition, acls) if rule.condition else None,
                )
                for rule in rules
            ]
        )

    def evaluate(self, context: IRequestContext, now: float) -> Stickiness:
        """Run the rules, in order: the first C{match} or C{on} whose key is
        in its table gives the server; each C{on} or C{store-request} gives
        a key to store (the first per table)."""
        server: str | None = None
        stores: dict[int, tuple[StickTableRuntime, Hashable]] = {}
        for rule in self.rules:
            if rule.condition is not None and not rule.condition.matches(context):
                continue
            key = rule.table.key(rule.sample(context))
            if key is None:
                continue
            if server is None and rule.kind in ("on", "match"):
                server = rule.table.lookup(key, now)
            if rule.kind in ("on", "store-request"):
                stores.setdefault(id(rule.table), (rule.table, key))
        return Stickiness(server, tuple(stores.values()))
