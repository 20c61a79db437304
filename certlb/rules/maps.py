"""Map files, and the converters that look values up in them.

C{map(FILE[,DEFAULT])} and C{map_MATCH[_OUTPUT](FILE[,DEFAULT])}, as in
HAProxy: the value is looked up among the keys of FILE with the match method
MATCH (C{str} when none is written), and the converter gives the value that
follows the key, as text, or as an integer or an address with the output
C{_int} or C{_ip}.  Without a match, it gives DEFAULT, or no value.

A map file is read when the configuration is loaded, never per request: one
key and one value per line, separated by spaces or tabs; blank lines and
lines starting with C{#} are skipped.  Its bytes are read as Latin-1, as
request text is, so that keys compare byte for byte.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from zope.interface import implementer

from certlb.config.sources import read_bytes
from certlb.rules.files import config_path
from certlb.rules.interfaces import IConverter

Convert = Callable[[Any], Any]
Lookup = Callable[[Any], Any]

# The match methods of map_MATCH, and the type of value each looks up.
MATCH_INPUTS = {
    "str": "str",
    "beg": "str",
    "sub": "str",
    "dir": "str",
    "dom": "str",
    "end": "str",
    "reg": "str",
    "int": "int",
    "ip": "ip",
}
OUTPUTS = ("str", "int", "ip")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")
_ENTRY = re.compile(r"([^ \t]+)[ \t]*(.*)", re.DOTALL)


def read_map(path: str) -> list[tuple[int, str, str]]:
    """The entries of a map file: (line number, key, value), in file order.

    @raise ValueError: the file cannot be read; the message says why.
    """
    try:
        data = read_bytes(path)
    except OSError as e:
        raise ValueError(f"cannot read map file {path}: {e.strerror}") from None
    entries = []
    for number, line in enumerate(data.decode("latin-1").split("\n"), start=1):
        line = line.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        entry = _ENTRY.fullmatch(line)
        assert entry is not None  # the line is not blank and starts with a key
        entries.append((number, entry[1], entry[2]))
    return entries


def parse_output(output: str, text: str) -> Any:
    """A map's value (or default) as the converter gives it.

    @raise ValueError: C{text} is not of type C{output}.
    """
    if output == "int":
        if _INTEGER.fullmatch(text) and _INT64_MIN <= int(text) <= _INT64_MAX:
            return int(text)
        raise ValueError(f"{text!r} is not an integer (a signed 64-bit one)")
    if output == "ip":
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise ValueError(f"{text!r} is not an IPv4 or IPv6 address") from None
    return text


def _parse_int_key(key: str) -> Callable[[int], bool]:
    low, colon, high = key.partition(":")
    bounds = (low, high) if colon else (low, low)
    if not all(_INTEGER.fullmatch(b) or (colon and not b) for b in bounds):
        raise ValueError(
            f"{key!r} is not an integer key; write a number (10) or a range "
            "(10:23, :5, 5:)"
        )
    first = int(bounds[0]) if bounds[0] else None
    last = int(bounds[1]) if bounds[1] else None
    return lambda value: (
        (first is None or value >= first) and (last is None or value <= last)
    )


def _ip_key(key: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(key, strict=False)
    except ValueError:
        raise ValueError(
            f"{key!r} is not an address or a network; write 10.0.0.1 or 10.0.0.0/8"
        ) from None


def _as_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _words(separator: str, key: str) -> str:
    return separator + key.strip(separator) + separator


Entries = Sequence[tuple[Any, Any]]


def _first(test: Callable[[Any, Any], bool], entries: Entries) -> Lookup:
    """The value of the first entry, in file order, whose key C{test} accepts."""

    def lookup(value: Any) -> Any:
        for key, result in entries:
            if test(key, value):
                return result
        return None

    return lookup


def _exact(entries: Entries) -> Lookup:
    table: dict[Any, Any] = {}
    for key, result in entries:
        table.setdefault(key, result)
    return table.get


def _longest_prefix(entries: Entries) -> Lookup:
    # As HAProxy's prefix tree: the longest key that starts the value wins.
    ordered = sorted(entries, key=lambda entry: -len(entry[0]))
    return _first(lambda key, value: value.startswith(key), ordered)


def _finest_network(entries: Entries) -> Lookup:
    ordered = sorted(entries, key=lambda entry: -entry[0].prefixlen)
    find = _first(lambda network, address: address in network, ordered)

    def lookup(value: Any) -> Any:
        address = _as_address(value)
        return None if address is None else find(address)

    return lookup


def _domain(separator: str) -> Callable[[Entries], Lookup]:
    def build(entries: Entries) -> Lookup:
        return _first(
            lambda key, value: key in _words(separator, value),
            [(_words(separator, key), result) for key, result in entries],
        )

    return build


def _regex(entries: Entries) -> Lookup:
    return _first(lambda key, value: key.search(value) is not None, entries)


def _compile_regex(key: str) -> re.Pattern[str]:
    try:
        return re.compile(key)
    except re.error as e:
        raise ValueError(f"bad regular expression {key!r}: {e}") from None


# match -> (how a key is read, how the entries become a lookup)
_MATCHES: dict[str, tuple[Callable[[str], Any], Callable[[Entries], Lookup]]] = {
    "str": (str, _exact),
    "beg": (str, _longest_prefix),
    "sub": (str, lambda entries: _first(lambda k, v: k in v, entries)),
    "end": (str, lambda entries: _first(lambda k, v: v.endswith(k), entries)),
    "dir": (str, _domain("/")),
    "dom": (str, _domain(".")),
    "reg": (_compile_regex, _regex),
    "int": (_parse_int_key, lambda entries: _first(lambda k, v: k(v), entries)),
    "ip": (_ip_key, _finest_network),
}


def load_map(path: str, match: str, output: str, name: str = "map") -> Lookup:
    """Read the map file at C{path} for C{match} and C{output}.

    @param name: the converter that reads it, for error messages.
    @return: a function from a value to the value of its entry, or None.
    @raise ValueError: the file cannot be read, or one of its lines is not
        right for the match or the output; the message gives its file:line.
    """
    read_key, build = _MATCHES[match]
    entries = []
    for number, key, value in read_map(path):
        where = f"map file {path}:{number}"
        try:
            read = read_key(key)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        try:
            entries.append((read, parse_output(output, value)))
        except ValueError as e:
            raise ValueError(
                f"{where}: {e}; '{name}' gives {_PLURALS[output]}: write one "
                "after the key"
            ) from None
    return build(entries)


_PLURALS = {"str": "text", "int": "integers", "ip": "addresses"}


def _type_name(output: str) -> str:
    return {"str": "text", "int": "an integer", "ip": "an address"}[output]


@implementer(IConverter)
@attrs.frozen
class MapConverter:
    """C{map_MATCH[_OUTPUT](FILE[,DEFAULT])}: the value a map file gives."""

    name: str
    match: str = attrs.field(validator=attrs.validators.in_(MATCH_INPUTS))
    output: str = attrs.field(validator=attrs.validators.in_(OUTPUTS))

    @property
    def input(self) -> str:
        return MATCH_INPUTS[self.match]

    def compile(self, args: tuple[str, ...]) -> Convert:
        if not 1 <= len(args) <= 2 or not args[0]:
            raise ValueError(
                f"'{self.name}' is written {self.name}(FILE) or "
                f"{self.name}(FILE,DEFAULT), as in {self.name}(users.map)"
            )
        default = None
        if len(args) == 2:
            try:
                default = parse_output(self.output, args[1])
            except ValueError as e:
                raise ValueError(
                    f"'{self.name}': the default value must be "
                    f"{_type_name(self.output)}: {e}"
                ) from None
        lookup = load_map(config_path(args[0]), self.match, self.output, self.name)
        if default is None:
            return lookup

        def convert(value: Any) -> Any:
            found = lookup(value)
            return default if found is None else found

        return convert


MAP_CONVERTERS: tuple[MapConverter, ...] = (
    MapConverter("map", "str", "str"),
    *(
        MapConverter(
            f"map_{match}" + ("" if output == "str" else f"_{output}"), match, output
        )
        for match in MATCH_INPUTS
        for output in OUTPUTS
    ),
)
