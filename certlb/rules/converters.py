"""Built-in converters, and the casts between sample types.

A converter is compiled once, when the configuration is loaded, into a
function from a value to a value; it returns None when the value cannot be
converted (the sample then has no value).  Before a converter runs, the value
is cast to the type the converter takes, with HAProxy's rules (an integer
given to C{hex} is its 8 bytes, big-endian; text given to C{add} is read as a
number).  A cast that HAProxy does not allow (binary to integer, say) is an
error when the configuration is loaded.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable
from typing import Any

import attrs
from zope.interface import implementer

from certlb.rules.interfaces import IConverter
from certlb.tls.verify_codes import VERIFY_CODES

Value = Any
Convert = Callable[[Value], Value]

TYPES = ("bool", "int", "str", "ip", "bin")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_DECIMAL = re.compile(r"[+-]?[0-9]+")


def to_text(value: Value) -> str:
    """A sample as text, as HAProxy casts it: a boolean is 1 or 0, binary
    data is read as Latin-1 up to its first NUL byte."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, bytes):
        return value.partition(b"\0")[0].decode("latin-1")
    return str(value)


def to_bytes(text: str) -> bytes:
    """Text (decoded as Latin-1 from the wire) back into its bytes."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def text_to_int(text: str) -> int | None:
    """The integer a text writes in decimal, or None when it writes none."""
    if not _DECIMAL.fullmatch(text):
        return None
    return _clamp(int(text))


def _clamp(number: int) -> int:
    """HAProxy's integers are signed 64-bit; arithmetic saturates."""
    return max(INT64_MIN, min(INT64_MAX, number))


def _int_to_bytes(number: int) -> bytes:
    return (number & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


def _ip_to_bytes(text: str) -> bytes | None:
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:
        return None


def _ip_to_int(text: str) -> int | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        return None if mapped is None else int(mapped)
    return int(address)


def _text_to_ip(text: str) -> str | None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text


def _text_to_bool(text: str) -> bool | None:
    number = text_to_int(text)
    return None if number is None else number != 0


# (from, to) -> cast; a pair that is absent cannot be cast (HAProxy refuses
# it when the configuration is loaded).
_CASTS: dict[tuple[str, str], Convert] = {
    ("bool", "int"): int,
    ("bool", "str"): to_text,
    ("bool", "bin"): lambda value: _int_to_bytes(int(value)),
    ("int", "bool"): bool,
    ("int", "str"): to_text,
    ("int", "bin"): _int_to_bytes,
    ("int", "ip"): lambda value: str(ipaddress.IPv4Address(value & 0xFFFFFFFF)),
    ("str", "bool"): _text_to_bool,
    ("str", "int"): text_to_int,
    ("str", "ip"): _text_to_ip,
    ("str", "bin"): to_bytes,
    ("ip", "int"): _ip_to_int,
    ("ip", "str"): to_text,
    ("ip", "bin"): _ip_to_bytes,
    ("bin", "str"): to_text,
}


def cast(source: str, target: str) -> Convert | None:
    """The function that casts a value of type C{source} to C{target}, or
    None when no cast is needed (same type, or a type certlb does not know,
    as a plugin's).

    @raise ValueError: HAProxy does not cast C{source} to C{target}.
    """
    if source == target or source not in TYPES or target not in TYPES:
        return None
    function = _CASTS.get((source, target))
    if function is None:
        raise ValueError(f"a value of type {source} cannot be cast to {target}")
    return function


def _no_args(name: str, args: tuple[str, ...]) -> None:
    if args:
        raise ValueError(f"'{name}' takes no arguments, but was given {len(args)}")


@implementer(IConverter)
@attrs.frozen
class Converter:
    """A converter that takes no arguments: a name, types and a function."""

    name: str
    input: str
    output: str
    function: Convert

    def compile(self, args: tuple[str, ...]) -> Convert:
        _no_args(self.name, args)
        return self.function


@implementer(IConverter)
@attrs.frozen
class ArithmeticConverter:
    """C{add(N)} and C{sub(N)}: integer arithmetic with a constant, which
    saturates at the bounds of a signed 64-bit integer, as HAProxy's."""

    name: str
    sign: int
    input: str = "int"
    output: str = "int"

    def compile(self, args: tuple[str, ...]) -> Convert:
        example = f"{self.name}(1)"
        if len(args) != 1:
            raise ValueError(
                f"'{self.name}' takes one integer argument, as in {example}, "
                f"but was given {len(args)}"
            )
        if not _DECIMAL.fullmatch(args[0]):
            raise ValueError(
                f"'{self.name}' needs an integer, as in {example}, not {args[0]!r}"
                " (certlb does not support variables here yet)"
            )
        operand = self.sign * int(args[0])
        return lambda value: _clamp(value + operand)


def _hex(data: bytes) -> str:
    return data.hex().upper()


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _x509_v_err_str(code: int) -> str:
    known = VERIFY_CODES.get(code)
    return str(code) if known is None else known[0]


BUILTIN_CONVERTERS: tuple[IConverter, ...] = (
    Converter("lower", "str", "str", str.lower),
    Converter("upper", "str", "str", str.upper),
    Converter("hex", "bin", "str", _hex),
    Converter("base64", "bin", "str", _base64),
    Converter("x509_v_err_str", "int", "str", _x509_v_err_str),
    ArithmeticConverter("add", +1),
    ArithmeticConverter("sub", -1),
)

CONVERTERS: dict[str, IConverter] = {c.name: c for c in BUILTIN_CONVERTERS}

# HAProxy's names that certlb knows but does not implement yet: using one is
# an error that says so, rather than "unknown".
CONVERTERS_LATER = frozenset(
    """
    digest sha1 sha2 regsub url_enc field bytes map map_str map_beg map_sub
    map_reg map_ip json
    """.split()
)
