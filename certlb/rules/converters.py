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
import hashlib
import ipaddress
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

import attrs
from zope.interface import implementer

from certlb.rules.interfaces import IConverter
from certlb.rules.maps import MAP_CONVERTERS
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


def _integer_arg(
    name: str, text: str, what: str, example: str, variables: bool = False
) -> int:
    """An integer argument, or a ValueError that shows how to write one.

    @param variables: HAProxy takes a variable there too, as certlb does not.
    """
    if not _DECIMAL.fullmatch(text):
        raise ValueError(
            f"'{name}' needs {what}, as in {example}, not {text!r}"
            + (" (certlb does not support variables here yet)" if variables else "")
        )
    return int(text)


def _arg_count(
    name: str, args: tuple[str, ...], low: int, high: int, usage: str
) -> None:
    if not low <= len(args) <= high:
        raise ValueError(
            f"'{name}' is written {usage}, but was given {len(args)} arguments"
        )


@implementer(IConverter)
@attrs.frozen
class DigestConverter:
    """C{digest(ALGORITHM)}: a message digest of the bytes, as bytes, with
    any OpenSSL digest name that Python's C{hashlib} knows (sha256, md5,
    sha3-256, ...)."""

    name: str = "digest"
    input: str = "bin"
    output: str = "bin"

    def compile(self, args: tuple[str, ...]) -> Convert:
        _arg_count(self.name, args, 1, 1, "digest(ALGORITHM), as in digest(sha256)")
        return _digest(args[0])


@implementer(IConverter)
@attrs.frozen
class Sha2Converter:
    """C{sha2([BITS])}: the SHA-2 digest of the bytes, of 224, 256 (the
    default), 384 or 512 bits."""

    name: str = "sha2"
    input: str = "bin"
    output: str = "bin"

    def compile(self, args: tuple[str, ...]) -> Convert:
        _arg_count(self.name, args, 0, 1, "sha2 or sha2(BITS)")
        bits = 256
        if args:
            bits = _integer_arg(self.name, args[0], "a number of bits", "sha2(512)")
        if bits not in (224, 256, 384, 512):
            raise ValueError(
                f"'sha2' makes digests of 224, 256, 384 or 512 bits, not {bits}"
            )
        return _digest(f"sha{bits}")


def _digest(algorithm: str) -> Convert:
    try:
        # An extendable-output function (shake128) has no fixed size.
        known = hashlib.new(algorithm).digest_size > 0
    except ValueError:
        known = False
    if not known:
        raise ValueError(
            f"unknown digest algorithm {algorithm!r}; write an OpenSSL digest "
            "name such as sha256, sha512, sha3-256 or md5"
        )
    return lambda data: hashlib.new(algorithm, data).digest()


@implementer(IConverter)
@attrs.frozen
class BytesConverter:
    """C{bytes(OFFSET[,LENGTH])}: a slice of the bytes.  An offset at or
    beyond the end gives empty bytes; a length beyond it, the rest."""

    name: str = "bytes"
    input: str = "bin"
    output: str = "bin"

    def compile(self, args: tuple[str, ...]) -> Convert:
        _arg_count(self.name, args, 1, 2, "bytes(OFFSET) or bytes(OFFSET,LENGTH)")
        offset = _integer_arg(
            self.name, args[0], "an offset of 0 or more", "bytes(2)", variables=True
        )
        if offset < 0:
            raise ValueError(f"'bytes' needs an offset of 0 or more, not {offset}")
        if len(args) == 1:
            return lambda data: data[offset:]
        length = _integer_arg(
            self.name, args[1], "a length of 1 or more", "bytes(2,4)", variables=True
        )
        if length <= 0:
            raise ValueError(f"'bytes' needs a length of 1 or more, not {length}")
        return lambda data: data[offset : offset + length]


@implementer(IConverter)
@attrs.frozen
class FieldConverter:
    """C{field(INDEX,DELIMITERS[,COUNT])}: the INDEXth field of the text
    (1-based; negative counts from the end), split at any of the delimiter
    characters; COUNT fields from there (towards the start for a negative
    index), 0 for all of them.  No value when there is no such field."""

    name: str = "field"
    input: str = "str"
    output: str = "str"

    def compile(self, args: tuple[str, ...]) -> Convert:
        usage = "field(INDEX,DELIMITERS) or field(INDEX,DELIMITERS,COUNT)"
        _arg_count(self.name, args, 2, 3, usage)
        index = _integer_arg(self.name, args[0], "a field number", "field(2,/)")
        if index == 0:
            raise ValueError(
                "'field' counts fields from 1 (or from -1, the last): 0 is no field"
            )
        if not args[1]:
            raise ValueError("'field' needs at least one delimiter, as in field(2,/)")
        count = 1
        if len(args) == 3:
            count = _integer_arg(
                self.name, args[2], "a number of fields", "field(2,/,3)"
            )
        splitter = re.compile("|".join(map(re.escape, args[1])))
        return lambda text: _field(splitter, text, index, count)


def _field(splitter: re.Pattern[str], text: str, index: int, count: int) -> str | None:
    # Spans of the fields, empty ones included; as in HAProxy, a negative
    # COUNT takes every field, as 0 does.
    delimiters = [m.start() for m in splitter.finditer(text)]
    starts = [0, *(d + 1 for d in delimiters)]
    ends = [*delimiters, len(text)]
    n = len(starts)
    if index > 0:
        first = index - 1
        if first >= n:
            return None
        last = n - 1 if count <= 0 else min(first + count, n) - 1
    else:
        last = n + index
        if last < 0:
            return None
        first = 0 if count <= 0 else max(last - count + 1, 0)
    return text[starts[first] : ends[last]]


# RFC 3986's unreserved characters; url_enc escapes every other byte.
_UNRESERVED = "-._~"


@implementer(IConverter)
@attrs.frozen
class UrlEncConverter:
    """C{url_enc([query])}: the text percent-encoded for a query string."""

    name: str = "url_enc"
    input: str = "str"
    output: str = "str"

    def compile(self, args: tuple[str, ...]) -> Convert:
        _arg_count(self.name, args, 0, 1, "url_enc or url_enc(query)")
        if args and args[0] not in ("", "query"):
            raise ValueError(
                f"'url_enc' knows only the encoding type 'query', not {args[0]!r}"
            )
        return lambda text: urllib.parse.quote(to_bytes(text), safe=_UNRESERVED)


@implementer(IConverter)
@attrs.frozen
class RegsubConverter:
    """C{regsub(REGEX,SUBST[,FLAGS])}: the text with the first match of REGEX
    (every match with flag C{g}; case-insensitive with flag C{i}) replaced
    by SUBST, in which C{\\1} ... C{\\9} are the groups, C{\\0} the match."""

    name: str = "regsub"
    input: str = "str"
    output: str = "str"

    def compile(self, args: tuple[str, ...]) -> Convert:
        _arg_count(
            self.name, args, 2, 3, "regsub(REGEX,SUBST) or regsub(REGEX,SUBST,FLAGS)"
        )
        flags = args[2] if len(args) == 3 else ""
        for flag in flags:
            if flag not in "ig":
                raise ValueError(
                    f"'regsub' has no flag {flag!r}: its flags are i (ignore "
                    "case) and g (replace every match)"
                )
        try:
            regex = re.compile(args[0], re.IGNORECASE if "i" in flags else 0)
        except re.error as e:
            raise ValueError(
                f"'regsub': bad regular expression {args[0]!r}: {e}"
            ) from None
        expand = compile_substitution(args[1])
        count = 0 if "g" in flags else 1
        return lambda text: regex.sub(expand, text, count)


_SUBSTITUTION = re.compile(r"\\(?:([0-9])|x([0-9A-Fa-f]{2})|(.))|([^\\]+)|(\\)", re.S)


def compile_substitution(template: str) -> Callable[[re.Match[str]], str]:
    """HAProxy's substitution syntax: C{\\N} is group N (empty when it did
    not take part), C{\\xHH} a byte, a backslash before any other character
    is dropped.

    @raise ValueError: a lone backslash at the end, or C{\\x} without two
        hexadecimal digits.
    """
    parts: list[str | int] = []
    for m in _SUBSTITUTION.finditer(template):
        group, hex_byte, other, literal, lone = m.groups()
        if lone is not None or (other == "x" and hex_byte is None):
            raise ValueError(
                f"'regsub': in {template!r}, a backslash must be followed by a "
                "digit (a group), x and two hexadecimal digits, or the "
                "character it escapes"
            )
        if group is not None:
            parts.append(int(group))
        elif hex_byte is not None:
            parts.append(chr(int(hex_byte, 16)))
        else:
            parts.append(other if literal is None else literal)

    def expand(match: re.Match[str]) -> str:
        out: list[str] = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            elif part <= (match.re.groups):
                out.append(match.group(part) or "")
        return "".join(out)

    return expand


def _hex(data: bytes) -> str:
    return data.hex().upper()


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


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
    Converter("sha1", "bin", "bin", _sha1),
    DigestConverter(),
    Sha2Converter(),
    BytesConverter(),
    FieldConverter(),
    UrlEncConverter(),
    RegsubConverter(),
    *MAP_CONVERTERS,
)

CONVERTERS: dict[str, IConverter] = {c.name: c for c in BUILTIN_CONVERTERS}

# HAProxy's names that certlb knows but does not implement yet: using one is
# an error that says so, rather than "unknown".
CONVERTERS_LATER = frozenset({"json"})
