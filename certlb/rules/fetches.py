"""Built-in sample fetches, ACL derivatives, and the registries that name them.

A fetch is compiled once, when the configuration is loaded: its arguments are
checked then, and the function it returns reads the request each time it is
called (rules may add headers that later fetches must see).  The converter
registry lives in L{certlb.rules.converters}; it is re-exported here so that
both registries are found in one place.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from zope.interface import implementer

from certlb.rules.cert_fetches import CERTIFICATE_FETCHES
from certlb.rules.converters import (
    BUILTIN_CONVERTERS,
    CONVERTERS,
    CONVERTERS_LATER,
    Converter,
)
from certlb.rules.interfaces import IFetch, IRequestContext

__all__ = [
    "ACL_DERIVATIVES",
    "BUILTIN_CONVERTERS",
    "BUILTIN_FETCHES",
    "CONVERTERS",
    "CONVERTERS_LATER",
    "FETCHES",
    "FETCHES_LATER",
    "AclDerivative",
    "Converter",
    "Fetch",
    "HeaderCountFetch",
    "HeaderFetch",
    "TlsFetch",
    "header_values",
]

Value = Any
FetchFunction = Callable[[IRequestContext], Value]
ValuesFunction = Callable[[IRequestContext], Sequence[Value]]


def _no_args(name: str, args: tuple[str, ...]) -> None:
    if args:
        raise ValueError(f"'{name}' takes no arguments, but was given {len(args)}")


@implementer(IFetch)
@attrs.frozen
class Fetch:
    """A fetch that takes no arguments: a name, a type and a function."""

    name: str
    output: str
    function: FetchFunction
    multiple: bool = False
    scope: str = "request"

    def compile(self, args: tuple[str, ...]) -> FetchFunction:
        _no_args(self.name, args)
        return self.function


@implementer(IFetch)
@attrs.frozen
class TlsFetch:
    """A fact of the connection's L{ClientCertState}; no value without TLS.

    @ivar field: the attribute of L{certlb.tls.state.ClientCertState} read.
    """

    name: str
    output: str
    field: str
    multiple: bool = False
    scope: str = "connection"

    def compile(self, args: tuple[str, ...]) -> FetchFunction:
        _no_args(self.name, args)
        get = operator.attrgetter(self.field)

        def fetch(context: IRequestContext) -> Value:
            tls = context.connection.tls
            return None if tls is None else get(tls)

        return fetch


_OCCURRENCE = re.compile(r"[+-]?[0-9]+")


@implementer(IFetch)
@attrs.frozen
class HeaderFetch:
    """C{hdr([name[,occ]])}: the comma-separated values of a request header.

    Every value of every header called C{name} (any case), or of every header
    without a name; C{occ} keeps one: 1 is the first, -1 the last.  An ACL
    tries every value; a sample expression takes the last.
    """

    name: str
    output: str = "str"
    multiple: bool = True
    scope: str = "request"

    def compile(self, args: tuple[str, ...]) -> ValuesFunction:
        if len(args) > 2:
            raise ValueError(
                f"'{self.name}' takes at most 2 arguments, a header name and an "
                f"occurrence, as in {self.name}(host,1), but was given {len(args)}"
            )
        wanted = args[0].lower() if args else ""
        occurrence = 0
        if len(args) == 2:
            if not _OCCURRENCE.fullmatch(args[1]):
                raise ValueError(
                    f"'{self.name}' occurrence {args[1]!r} is not a number; write "
                    "1 for the first value, 2 for the second, -1 for the last"
                )
            occurrence = int(args[1])
        if occurrence == 0:
            return lambda context: header_values(context.headers, wanted)
        index = occurrence - 1 if occurrence > 0 else occurrence

        def fetch(context: IRequestContext) -> Sequence[str]:
            values = header_values(context.headers, wanted)
            try:
                return (values[index],)
            except IndexError:
                return ()

        return fetch


@implementer(IFetch)
@attrs.frozen
class HeaderCountFetch:
    """C{hdr_cnt([name])}: how many comma-separated values a header has (of
    every header, without a name); 0 when it is absent."""

    name: str
    output: str = "int"
    multiple: bool = False
    scope: str = "request"

    def compile(self, args: tuple[str, ...]) -> FetchFunction:
        if len(args) > 1:
            raise ValueError(
                f"'{self.name}' takes at most 1 argument, a header name, as in "
                f"{self.name}(host), but was given {len(args)}"
            )
        wanted = args[0].lower() if args else ""
        return lambda context: len(header_values(context.headers, wanted))


def header_values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    """The comma-separated values of the headers called C{name}, in order.

    Names are compared in any case (C{name} is given in lower case); an empty
    C{name} means every header.  As HAProxy: a comma inside double quotes
    does not separate values, spaces and tabs around a value are dropped, and
    empty values count.
    """
    values: list[str] = []
    for header, value in headers:
        if not name or header.lower() == name:
            values.extend(split_values(value))
    return values


def split_values(value: str) -> list[str]:
    """A header value split at the commas outside of quoted strings."""
    if '"' not in value:
        return [part.strip(" \t") for part in value.split(",")]
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for i, c in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if c == "\\":
                escaped = True
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == ",":
            parts.append(value[start:i].strip(" \t"))
            start = i + 1
    parts.append(value[start:].strip(" \t"))
    return parts


BUILTIN_FETCHES: tuple[IFetch, ...] = (
    Fetch("always_true", "bool", lambda context: True),
    Fetch("always_false", "bool", lambda context: False),
    TlsFetch("ssl_fc_has_crt", "bool", "has_crt"),
    TlsFetch("ssl_c_used", "bool", "used"),
    TlsFetch("ssl_c_verify", "int", "verify"),
    TlsFetch("ssl_c_err", "int", "crt_err"),
    TlsFetch("ssl_c_ca_err", "int", "ca_err"),
    TlsFetch("ssl_c_ca_err_depth", "int", "ca_err_depth"),
    TlsFetch("ssl_fc_sni", "str", "sni"),
    TlsFetch("ssl_fc_protocol", "str", "protocol"),
    TlsFetch("ssl_fc_cipher", "str", "cipher"),
    TlsFetch("ssl_fc_is_resumed", "bool", "resumed"),
    *CERTIFICATE_FETCHES,
    Fetch("method", "str", lambda context: context.method),
    Fetch("url", "str", lambda context: context.target),
    Fetch("path", "str", lambda context: context.path),
    Fetch("query", "str", lambda context: context.query),
    HeaderFetch("hdr"),
    HeaderFetch("req.hdr"),
    HeaderCountFetch("hdr_cnt"),
    HeaderCountFetch("req.hdr_cnt"),
    Fetch("src", "ip", lambda context: context.connection.source[0]),
    Fetch("src_port", "int", lambda context: context.connection.source[1]),
    Fetch("dst", "ip", lambda context: context.connection.destination[0]),
    Fetch("dst_port", "int", lambda context: context.connection.destination[1]),
)

FETCHES: dict[str, IFetch] = {f.name: f for f in BUILTIN_FETCHES}


@attrs.frozen
class AclDerivative:
    """An ACL keyword made of a fetch and a match method (C{path_beg} is
    C{path -m beg}).  It exists only in ACLs, without converters or C{-m}."""

    name: str
    fetch: str
    method: str


ACL_DERIVATIVES: dict[str, AclDerivative] = {
    f"{fetch}_{method}": AclDerivative(f"{fetch}_{method}", fetch, method)
    for fetch in ("path", "url", "hdr")
    for method in ("beg", "end", "sub", "reg", "dir", "dom", "len")
}

# HAProxy's names that certlb knows but does not implement yet: using one is
# an error that says so, rather than "unknown".
FETCHES_LATER = frozenset(
    """
    ssl_fc
    url_param hdr_val req.cook cook base base_beg base_sub req_ssl_sni http_auth
    nbsrv srv_is_up be_id fe_id
    """.split()
)
