"""Built-in sample fetches and converters, and the registries that name them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from zope.interface import implementer

from certlb.rules.interfaces import IConverter, IFetch, IRequestContext

Value = Any
FetchFunction = Callable[[IRequestContext], Value]


def _no_args(name: str) -> Callable[[tuple[str, ...]], None]:
    def check(args: tuple[str, ...]) -> None:
        if args:
            raise ValueError(f"'{name}' takes no arguments, but was given {len(args)}")

    return check


@implementer(IFetch)
@attrs.frozen
class Fetch:
    """A fetch that takes no arguments: a name, a type and a function."""

    name: str
    output: str
    function: FetchFunction

    def compile(self, args: tuple[str, ...]) -> FetchFunction:
        _no_args(self.name)(args)
        return self.function


@implementer(IConverter)
@attrs.frozen
class Converter:
    """A converter that takes no arguments."""

    name: str
    input: str
    output: str
    function: Callable[[Value], Value]

    def compile(self, args: tuple[str, ...]) -> Callable[[Value], Value]:
        _no_args(self.name)(args)
        return self.function


def _has_crt(context: IRequestContext) -> bool | None:
    tls = context.connection.tls
    return None if tls is None else tls.has_crt


BUILTIN_FETCHES: tuple[IFetch, ...] = (
    Fetch("always_true", "bool", lambda context: True),
    Fetch("always_false", "bool", lambda context: False),
    Fetch("ssl_fc_has_crt", "bool", _has_crt),
)

BUILTIN_CONVERTERS: tuple[IConverter, ...] = (
    Converter("lower", "str", "str", str.lower),
    Converter("upper", "str", "str", str.upper),
)

FETCHES: dict[str, IFetch] = {f.name: f for f in BUILTIN_FETCHES}
CONVERTERS: dict[str, IConverter] = {c.name: c for c in BUILTIN_CONVERTERS}
