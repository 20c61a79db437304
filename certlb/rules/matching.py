"""ACL match methods (HAProxy's C{-m}), compiled once into functions.

A matcher takes a sample value and says whether any pattern matches it.  When
no C{-m} is given, the method follows the fetch's output type: C{bool} for
booleans, C{int} for integers, C{str} (exact) for strings, C{ip} for addresses,
C{bin} (hexadecimal patterns) for binary data.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from zope.interface import implementer

from certlb.rules.converters import to_bytes, to_text
from certlb.rules.interfaces import IMatcher

Matcher = Callable[[Any], bool]

STRING_METHODS = ("str", "beg", "end", "sub", "reg", "dir", "dom", "len")
METHODS = ("found", "bool", "int", "ip", "bin", *STRING_METHODS)
DEFAULT_METHOD = {"bool": "bool", "int": "int", "str": "str", "ip": "ip", "bin": "bin"}
_OPERATORS: dict[str, Callable[[int, int], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def compile_matcher(method: str, patterns: Sequence[str], ignore_case: bool) -> Matcher:
    """Compile C{patterns} for C{method} into one function.

    @raise ValueError: an unknown method, or a pattern that the method cannot
        read; the message names the pattern.
    """
    if method in ("found", "bool"):
        if patterns:
            raise ValueError(
                f"match method '{method}' takes no pattern, but was given "
                f"{patterns[0]!r}; remove the patterns or choose another -m method"
            )
        if method == "found":
            return lambda value: value is not None
        return _true
    if method == "int":
        return _int_matcher(_int_tests(patterns))
    if method == "len":
        test = _int_matcher(_int_tests(patterns))
        return lambda value: value is not None and test(len(as_text(value)))
    if method == "ip":
        return _ip_matcher(patterns)
    if method == "bin":
        return _bin_matcher(patterns)
    if method in STRING_METHODS:
        return _string_matcher(method, patterns, ignore_case)
    raise ValueError(
        f"unknown match method '{method}'; the methods are {', '.join(METHODS)}"
    )


def _true(value: Any) -> bool:
    """The C{bool} method: a true boolean, a non-zero number or text of one."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(_DECIMAL.fullmatch(value)) and int(value) != 0
    return bool(value)


def as_text(value: Any) -> str:
    """A sample as text, cast as HAProxy casts it (a boolean is 1 or 0)."""
    return to_text(value)


def _int_tests(patterns: Sequence[str]) -> list[Callable[[int], bool]]:
    tests: list[Callable[[int], bool]] = []
    pending: Callable[[int, int], bool] | None = None
    pending_name = ""
    for pattern in patterns:
        if pattern in _OPERATORS:
            if pending is not None:
                raise ValueError(f"operator '{pending_name}' needs a number after it")
            pending, pending_name = _OPERATORS[pattern], pattern
            continue
        if pending is not None:
            tests.append(_compare(pending, _integer(pattern)))
            pending = None
            continue
        low_text, colon, high_text = pattern.partition(":")
        if colon:
            low = _integer(low_text) if low_text else None
            high = _integer(high_text) if high_text else None
            tests.append(_within(low, high))
        else:
            tests.append(_compare(operator.eq, _integer(pattern)))
    if pending is not None:
        raise ValueError(f"operator '{pending_name}' needs a number after it")
    return tests


def _compare(op: Callable[[int, int], bool], bound: int) -> Callable[[int], bool]:
    return lambda value: op(value, bound)


def _within(low: int | None, high: int | None) -> Callable[[int], bool]:
    return lambda value: (
        (low is None or value >= low) and (high is None or value <= high)
    )


_DECIMAL = re.compile(r"[+-]?[0-9]+")


def _integer(text: str) -> int:
    if _DECIMAL.fullmatch(text):
        return int(text)
    raise ValueError(
        f"{text!r} is not an integer pattern; write a number (10), a range "
        "(10:23, :5, 5:) or an operator and a number (gt 5)"
    )


def _int_matcher(tests: list[Callable[[int], bool]]) -> Matcher:
    def match(value: Any) -> bool:
        if value is None:
            return False
        if not isinstance(value, int):
            text = as_text(value)
            if not _DECIMAL.fullmatch(text):
                return False
            value = int(text)
        return any(test(value) for test in tests)

    return match


def _ip_matcher(patterns: Sequence[str]) -> Matcher:
    networks = []
    for pattern in patterns:
        try:
            networks.append(ipaddress.ip_network(pattern, strict=False))
        except ValueError:
            raise ValueError(
                f"{pattern!r} is not an address or a network; write 10.0.0.1 or "
                "10.0.0.0/8"
            ) from None

    def match(value: Any) -> bool:
        if value is None:
            return False
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in networks)

    return match


def _bin_matcher(patterns: Sequence[str]) -> Matcher:
    """HAProxy's C{bin}: the sample's bytes are those a pattern writes in
    hexadecimal (C{ssl_c_serial 0A1B}); text is compared by its bytes."""
    wanted = set()
    for pattern in patterns:
        try:
            wanted.add(bytes.fromhex(pattern))
        except ValueError:
            raise ValueError(
                f"{pattern!r} is not binary data in hexadecimal; write an even "
                "number of hexadecimal digits, as in 0A1B2C"
            ) from None

    def match(value: Any) -> bool:
        if value is None:
            return False
        if not isinstance(value, bytes):
            value = to_bytes(as_text(value))
        return value in wanted

    return match


def _string_matcher(method: str, patterns: Sequence[str], ignore_case: bool) -> Matcher:
    fold: Callable[[str], str] = str.lower if ignore_case else (lambda s: s)
    if method == "reg":
        try:
            regexes = [
                re.compile(p, re.IGNORECASE if ignore_case else 0) for p in patterns
            ]
        except re.error as e:
            raise ValueError(f"bad regular expression {e.pattern!r}: {e}") from None
        return lambda value: (
            value is not None and any(r.search(as_text(value)) for r in regexes)
        )
    wanted = [fold(p) for p in patterns]
    if method == "str":
        exact = frozenset(wanted)
        return lambda value: value is not None and fold(as_text(value)) in exact
    if method == "beg":
        prefixes = tuple(wanted)
        return lambda value: (
            value is not None and fold(as_text(value)).startswith(prefixes)
        )
    if method == "end":
        suffixes = tuple(wanted)
        return lambda value: (
            value is not None and fold(as_text(value)).endswith(suffixes)
        )
    if method == "sub":
        return lambda value: (
            value is not None and any(w in fold(as_text(value)) for w in wanted)
        )
    separator = "/" if method == "dir" else "."
    pieces = [separator + w.strip(separator) + separator for w in wanted]
    return lambda value: (
        value is not None
        and any(
            p in separator + fold(as_text(value)).strip(separator) + separator
            for p in pieces
        )
    )


@implementer(IMatcher)
@attrs.frozen
class MatchMethod:
    """A built-in match method, as the registry of methods names it."""

    name: str

    def compile(self, patterns: Sequence[str], ignore_case: bool) -> Matcher:
        return compile_matcher(self.name, patterns, ignore_case)


MATCHERS: dict[str, IMatcher] = {name: MatchMethod(name) for name in METHODS}
