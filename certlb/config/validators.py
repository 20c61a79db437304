"""Validators and converters of the configuration model, for models built
by hand: each error names the class, the field and the value at fault (the
parser checks words itself, with file and line, before it builds these)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import attrs

from certlb.config.errors import Location

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def fail(
    instance: object,
    attribute: attrs.Attribute[Any],
    value: object,
    want: str,
    error: type[Exception] = ValueError,
) -> NoReturn:
    raise error(
        f"{type(instance).__name__}.{attribute.name} must be {want}, not {value!r}"
    )


def integer(low: int, high: int | None = None, optional: bool = False) -> Validator:
    """An C{int} (not a C{bool}) from C{low} to C{high}, or C{None} if
    C{optional}."""
    want = f"an integer >= {low}"
    if high is not None:
        want = f"an integer from {low} to {high}"
    want += " or None" if optional else ""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            fail(instance, attribute, value, want, TypeError)
        if value < low or (high is not None and value > high):
            fail(instance, attribute, value, want)

    return check


def of_type(kind: Any, want: str, optional: bool = False) -> Validator:
    """An instance of C{kind} (a class or a union), or C{None} if C{optional}."""
    want += " or None" if optional else ""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not (isinstance(value, kind) or (value is None and optional)):
            fail(instance, attribute, value, want, TypeError)

    return check


def one_of(choices: tuple[object, ...], optional: bool = False) -> Validator:
    want = "one of " + ", ".join(map(repr, choices)) + (" or None" if optional else "")

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not (value in choices or (value is None and optional)):
            fail(instance, attribute, value, want)

    return check


def items(kind: Any, want: str) -> Validator:
    """A tuple (or frozenset) whose every item is an instance of C{kind}."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, (tuple, frozenset)):
            fail(instance, attribute, value, want, TypeError)
        for item in value:
            if not isinstance(item, kind):
                fail(instance, attribute, value, f"{want} ({item!r} is not)", TypeError)

    return check


def nonempty(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        fail(instance, attribute, value, "a non-empty string")


def as_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    """Lists (and other sequences) become tuples; anything else is left to
    the validator to refuse."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return value  # type: ignore[return-value]


def as_path(value: str | os.PathLike[str] | None) -> str | None:
    """A file name: a C{str} or a C{pathlib.Path}."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def any_host(value: str) -> str:
    """C{*} and the empty address mean every IPv4 address, as in a C{bind} line."""
    return "0.0.0.0" if value in ("*", "") else value


def error_codes(value: Iterable[int] | str) -> frozenset[int] | str:
    """Verification error codes as any collection of numbers, or C{"all"}."""
    if isinstance(value, (list, tuple, set)):
        return frozenset(value)
    return value  # type: ignore[return-value]


def ignored_errors(
    instance: object, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if value == "all":
        return
    want = "'all' or a set of verification error codes (integers from 1 up)"
    if not isinstance(value, frozenset):
        fail(instance, attribute, value, want, TypeError)
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in value):
        fail(instance, attribute, value, want, TypeError)
    if any(code < 1 for code in value):
        fail(instance, attribute, value, want)


port = integer(0, 65535)
positive_or_none = integer(1, optional=True)
flag = of_type(bool, "True or False")
text = of_type(str, "a string")
optional_text = of_type(str, "a string", optional=True)
optional_path = of_type(str, "a file name (a str or a pathlib.Path)", optional=True)
location = of_type(Location, "a Location")


def host(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value or value.split() != [value]:
        fail(instance, attribute, value, "an IP address or a host name")


def as_frozenset(value: Iterable[Any]) -> frozenset[Any]:
    """Lists, tuples and sets become frozen sets."""
    if isinstance(value, (list, tuple, set)):
        return frozenset(value)
    return value  # type: ignore[return-value]


def subset(choices: tuple[str, ...]) -> Validator:
    """A tuple of some of C{choices}."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, tuple) or not set(value) <= set(choices):
            fail(instance, attribute, value, f"a tuple of some of {choices!r}")

    return check


def network(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    try:
        ipaddress.ip_network(value, strict=False)
    except (TypeError, ValueError):
        fail(instance, attribute, value, "a network, as in '10.0.0.0/8', or None")
