"""What hashing balancers hash: HAProxy's hash functions, and the keys a
request gives (its source, its URI, a query parameter, a header, any
expression)."""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Callable
from typing import Any

import attrs

from certlb.config.conditions import parse_expression
from certlb.config.errors import Location
from certlb.config.lexer import Word
from certlb.config.model import NOWHERE, Balance
from certlb.rules.acl import compile_expression
from certlb.rules.converters import cast, to_bytes, to_text
from certlb.rules.fetches import header_values
from certlb.rules.interfaces import IRequestContext

MASK32 = 0xFFFFFFFF


# -- hash functions ---------------------------------------------------------


def sdbm(data: bytes) -> int:
    """The sdbm hash, on 32 bits, as HAProxy's C{hash_sdbm}."""
    h = 0
    for c in data:
        h = (c + (h << 6) + (h << 16) - h) & MASK32
    return h


def djb2(data: bytes) -> int:
    """Dan Bernstein's djb2 hash, on 32 bits, as HAProxy's C{hash_djb2}."""
    h = 5381
    for c in data:
        h = ((h << 5) + h + c) & MASK32
    return h


def crc32(data: bytes) -> int:
    """The CRC-32 of Ethernet, gzip and PNG (HAProxy's C{hash_crc32})."""
    return zlib.crc32(data)


def no_hash(data: bytes) -> int:
    """C{hash-type ... none}: the key is already a hash, written in decimal.

    As HAProxy's C{read_int64}: an optional sign and the digits at the
    start (none gives 0), saturated to a signed 64-bit integer, then its low
    32 bits.  C{"42abc"} gives 42, C{"-1"} gives 0xFFFFFFFF.
    """
    text = data.decode("latin-1")
    sign = 1
    if text[:1] in ("-", "+"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    digits = text[: len(text) - len(text.lstrip("0123456789"))].lstrip("0")
    # Twenty digits are past the bounds already (and int() refuses a
    # thousand-digit header).
    number = sign * int(digits[:20] or "0")
    number = max(-(2**63), min(2**63 - 1, number))
    return number & MASK32


def avalanche(h: int) -> int:
    """Bob Jenkins' full avalanche of a 32-bit integer, then HAProxy's
    multiplication by a large prime (C{full_hash}): mixes every input bit
    into every output bit."""
    h = ((h + 0x7ED55D16) + (h << 12)) & MASK32
    h = (h ^ 0xC761C23C) ^ (h >> 19)
    h = ((h + 0x165667B1) + (h << 5)) & MASK32
    h = ((h + 0xD3A2646C) ^ (h << 9)) & MASK32
    h = ((h + 0xFD7046C5) + (h << 3)) & MASK32
    h = (h ^ 0xB55A4F09) ^ (h >> 16)
    return (h * 3221225473) & MASK32


HASH_FUNCTIONS: dict[str, Callable[[bytes], int]] = {
    "sdbm": sdbm,
    "djb2": djb2,
    "crc32": crc32,
    "none": no_hash,
}


@attrs.frozen
class Hash:
    """A C{hash-type}'s function and modifier: from key bytes to 32 bits.

    @ivar function: a name of L{HASH_FUNCTIONS}.
    @ivar avalanche: mix the result with L{avalanche}.
    """

    function: str = attrs.field(
        default="sdbm", validator=attrs.validators.in_(HASH_FUNCTIONS)
    )
    avalanche: bool = False

    @classmethod
    def of(cls, balance: Balance) -> Hash:
        """The hash of a backend.  As HAProxy, C{hash-type consistent} with
        no function hashes with sdbm and avalanche: certlb's configuration
        does not tell that from C{consistent sdbm}, which therefore gets
        avalanche too."""
        mix = balance.avalanche or (
            balance.hash_method == "consistent" and balance.hash_function == "sdbm"
        )
        return cls(balance.hash_function, mix)

    def __call__(self, data: bytes) -> int:
        h = HASH_FUNCTIONS[self.function](data)
        return avalanche(h) if self.avalanche else h


# -- keys: what a request is hashed on ---------------------------------------

Key = Callable[[IRequestContext], int | None]


@attrs.frozen
class SourceKey:
    """C{balance source}: the client's IP address.

    As HAProxy, the hash function is not used: the address's 32-bit words
    are XOR'ed (an IPv4 address is its own number), then mixed if the
    C{hash-type} says C{avalanche}.  A client that is not on IP has no key.
    """

    mix: bool = False

    def __call__(self, context: IRequestContext) -> int | None:
        try:
            packed = ipaddress.ip_address(context.connection.source[0]).packed
        except (TypeError, ValueError, IndexError):
            return None
        h = 0
        for i in range(0, len(packed), 4):
            h ^= int.from_bytes(packed[i : i + 4], "big")
        return avalanche(h) if self.mix else h


@attrs.frozen
class UriKey:
    """C{balance uri [whole] [len N] [depth N]}: the request target as sent,
    up to its C{?} unless C{whole}.

    @ivar length: hash at most this many characters (0: no limit).
    @ivar depth: hash at most this many directories: stop before the
        slash after the C{depth}th (0: no limit).
    """

    hasher: Hash
    whole: bool = False
    length: int = 0
    depth: int = 0

    def __call__(self, context: IRequestContext) -> int | None:
        target: str = context.target
        if not self.whole:
            target = target.partition("?")[0]
        if self.length:
            target = target[: self.length]
        if self.depth:
            start = 0
            for _ in range(self.depth + 1):
                slash = target.find("/", start)
                if slash < 0:
                    break
                start = slash + 1
            else:
                target = target[: start - 1]
        return self.hasher(to_bytes(target))


@attrs.frozen
class UrlParamKey:
    """C{balance url_param NAME}: the value of the first C{NAME=} of the
    query string (its name matched exactly, its value as written, empty
    included).  Without it there is no key."""

    name: str
    hasher: Hash

    def __call__(self, context: IRequestContext) -> int | None:
        query: str | None = context.query
        if query is None:
            return None
        for parameter in query.split("&"):
            name, equals, value = parameter.partition("=")
            if equals and name == self.name:
                return self.hasher(to_bytes(value))
        return None


@attrs.frozen
class HeaderKey:
    """C{balance hdr(NAME) [use_domain_only]}: the first value of the header
    (as HAProxy: values are separated by commas).  Without one, or when it
    is empty, there is no key.

    @ivar name: the header's name, in lower case.
    @ivar domain_only: hash only the label before the last dot, as HAProxy:
        C{1wt} of C{haproxy.1wt.eu}, C{example} of C{example.com}; a value
        without such a dot is hashed whole.
    """

    name: str
    hasher: Hash
    domain_only: bool = False

    def __call__(self, context: IRequestContext) -> int | None:
        values = header_values(context.headers, self.name)
        if not values or not values[0]:
            return None
        value = values[0]
        if self.domain_only:
            value = domain_part(value)
        return self.hasher(to_bytes(value))


def domain_part(host: str) -> str:
    """The main part of a domain name, for C{use_domain_only}."""
    last = host.rfind(".")
    if last <= 0:
        return host
    return host[host.rfind(".", 0, last) + 1 : last]


@attrs.frozen
class ExpressionKey:
    """C{balance hash EXPR}: the value of a sample expression, as bytes
    (strings as sent, integers as 8 bytes big-endian, addresses as 4 or 16
    bytes), or as text for C{hash-type ... none}.  Without a value there is
    no key.

    @ivar sample: the compiled expression.
    @ivar convert: casts its value to C{bin} (or C{str}), or None.
    """

    sample: Callable[[IRequestContext], Any]
    convert: Callable[[Any], Any] | None
    hasher: Hash

    @classmethod
    def compile(
        cls, text: str, hasher: Hash, location: Location = NOWHERE
    ) -> ExpressionKey:
        """Compile the expression C{text}, e.g. C{hdr(host),lower}.

        @raise certlb.config.conditions.SyntaxProblem: it is not an expression.
        @raise certlb.rules.acl.RuleError: unknown fetch or converter, or bad
            arguments.
        """
        sample, output = compile_expression(parse_expression(Word(text, location)))
        convert = cast(output, "str" if hasher.function == "none" else "bin")
        return cls(sample, convert, hasher)

    def __call__(self, context: IRequestContext) -> int | None:
        value = self.sample(context)
        if value is not None and self.convert is not None:
            value = self.convert(value)
        if value is None:
            return None
        if not isinstance(value, bytes):
            value = to_bytes(to_text(value))
        return self.hasher(value)
