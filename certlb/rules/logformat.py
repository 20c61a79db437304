"""HAProxy's custom log-format strings (section 8.2.6), compiled once.

A log-format string is text with items: C{%%} (a percent sign), C{%[expr]}
(a sample expression: a fetch and its converters) and aliases such as C{%ci}
(the client's address).  Flags in braces before an item change how it is
written: C{%{+Q}[...]} quotes it, C{+E} escapes C{"}, C{\\} and C{]} with a
backslash, C{+X} writes integers and addresses in hexadecimal, C{+M} writes
C{-} for a missing or empty value.  C{%{...}o} sets the flags of every item
after it.

The string is parsed and its expressions compiled by L{compile_log_format};
per request, L{LogFormat} renders it in one of three ways, as HAProxy does:

    - L{LogFormat.render}: as for a response body (C{http-request return}):
      a sample without a value is written as nothing;
    - L{LogFormat.render_header}: as for a header value or a redirection:
      the same, then every character that a header value may not hold is
      written C{%XX} (see L{header_value});
    - L{LogFormat.render_log}: as for a log line: a missing or empty value
      is written C{-} (unless quoted).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

import attrs

from certlb.config.conditions import SyntaxProblem, parse_expression
from certlb.config.errors import Location, closest
from certlb.config.lexer import Word
from certlb.rules.acl import RuleError, compile_expression
from certlb.rules.converters import to_text
from certlb.rules.interfaces import IRequestContext
from certlb.rules.record import RECORD_ALIASES

__all__ = ["LogFormat", "compile_log_format", "header_value"]

# Bytes that an HTTP header value may not hold (RFC 9110's field-vchar, SP,
# HTAB and obs-text are allowed), as HAProxy's http_encode_map; characters
# beyond Latin-1 are written as their UTF-8 bytes so that the value always
# encodes to Latin-1.
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f\u0100-\U0010ffff]")


def header_value(text: str) -> str:
    """C{text} made safe for an HTTP header value: CR, LF, NUL, the other
    control characters but tab, and DEL become C{%XX}, as HAProxy writes
    them in header values built from log-format strings."""
    if _FORBIDDEN.search(text) is None:
        return text
    return _FORBIDDEN.sub(_percent, text)


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def log_safe(text: str) -> str:
    """C{text} with its control characters written C{#XX}, as HAProxy
    writes them in logs."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: f"#{ord(m.group()):02X}", text)


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8"))


@attrs.frozen
class Flags:
    """The flags of one item.

    @ivar mandatory: write C{-} for a missing or empty value; C{None} leaves
        it to the way the string is rendered (yes for logs, no elsewhere).
    """

    quote: bool = False
    hexadecimal: bool = False
    escape: bool = False
    mandatory: bool | None = None


_FLAG_NAMES = {"Q": "quote", "X": "hexadecimal", "E": "escape", "M": "mandatory"}
_FLAGS_LATER = ("bin", "json", "cbor")
_ESCAPED = re.compile(r'["\\\]]')
_SPACES = re.compile("( +)")


def _finish(text: str | None, flags: Flags, mandatory: bool) -> str:
    """Apply C{E}, C{Q} and C{M} to an item's text (None: no value)."""
    if text and flags.escape:
        text = _ESCAPED.sub(r"\\\g<0>", text)
    if flags.quote:
        return f'"{text or ""}"'
    if not text:
        return "-" if mandatory else ""
    return text


def _ip_hex(address: str) -> str:
    """An address as HAProxy's C{+X}: its bytes in upper-case hexadecimal."""
    try:
        return ipaddress.ip_address(address).packed.hex().upper()
    except ValueError:
        return address


def _int_hex(number: int) -> str:
    return f"{number & 0xFFFFFFFFFFFFFFFF:X}" if number < 0 else f"{number:X}"


@attrs.frozen
class _Literal:
    """Text as written; C{separator}: a run of spaces, written once in a
    log line, and only after an item that wrote something (as HAProxy
    does: a field without a value and its space go away together)."""

    text: str
    separator: bool = False

    def render(self, context: IRequestContext, mandatory: bool) -> str:
        return self.text


@attrs.frozen
class _Sample:
    """C{%[expression]}: the value of a sample expression, as text."""

    sample: Callable[[IRequestContext], Any]
    output: str
    flags: Flags

    def render(self, context: IRequestContext, mandatory: bool) -> str:
        value = self.sample(context)
        if value is None:
            text = None
        elif self.flags.hexadecimal and self.output == "int":
            text = _int_hex(int(value))
        elif self.flags.hexadecimal and self.output == "ip":
            text = _ip_hex(to_text(value))
        else:
            text = to_text(value)
        flags = self.flags
        if flags.mandatory is not None:
            mandatory = flags.mandatory
        return _finish(text, flags, mandatory)


@attrs.frozen
class _Alias:
    """C{%ci} and its kind: an address, a port, or text."""

    kind: str
    value: Callable[[IRequestContext], Any]
    flags: Flags

    def render(self, context: IRequestContext, mandatory: bool) -> str:
        if self.kind == "omit":
            return ""
        value = self.value(context)
        flags = self.flags
        if flags.mandatory is not None:
            mandatory = flags.mandatory
        if value is None:
            return _finish(None, flags, mandatory)
        if self.kind == "port":
            # HAProxy writes ports bare: never quoted nor escaped.
            return f"{value:04X}" if flags.hexadecimal else str(value)
        if self.kind == "int" and flags.hexadecimal:
            return _finish(_int_hex(value), flags, mandatory)
        if self.kind == "ip" and flags.hexadecimal:
            return _ip_hex(value)
        return _finish(to_text(value), flags, mandatory)


def _tls(field: str) -> Callable[[IRequestContext], Any]:
    def value(context: IRequestContext) -> Any:
        tls = context.connection.tls
        return None if tls is None else getattr(tls, field)

    return value


def _frontend_transport(context: IRequestContext) -> str:
    connection = context.connection
    return connection.frontend + ("" if connection.tls is None else "~")


# alias -> (kind, value)
ALIASES: dict[str, tuple[str, Callable[[IRequestContext], Any]]] = {
    "ci": ("ip", lambda context: context.connection.source[0]),
    "cp": ("port", lambda context: context.connection.source[1]),
    "fi": ("ip", lambda context: context.connection.destination[0]),
    "fp": ("port", lambda context: context.connection.destination[1]),
    "f": ("text", lambda context: context.connection.frontend),
    "ft": ("text", _frontend_transport),
    "sslc": ("text", _tls("cipher")),
    "sslv": ("text", _tls("protocol")),
    **RECORD_ALIASES,
}

# HAProxy's other aliases: an error that says so, with the sample expression
# to write instead where certlb has its fetch.
ALIASES_LATER: dict[str, str | None] = {
    **dict.fromkeys(
        """
        H ID T Td Th Ti Tl Tq Tu U bi bp hrl hsl lc OG pid rt si sp trg trl
        """.split()
    ),
}

_Item = _Literal | _Sample | _Alias


@attrs.frozen
class LogFormat:
    """A compiled log-format string.

    @ivar text: the string as written.
    @ivar constant: the text it always renders to when it has no item but
        C{%%} (C{None} otherwise): a caller may compute it once.
    """

    text: str
    items: tuple[_Item, ...]
    location: Location
    constant: str | None

    def render(self, context: IRequestContext) -> str:
        """The text for C{context}; a sample without a value is written as
        nothing (unless its item says C{+M})."""
        return "".join(item.render(context, False) for item in self.items)

    def render_header(self, context: IRequestContext) -> str:
        """The text for C{context}, made safe for a header value (see
        L{header_value}), as HAProxy renders C{add-header}, C{set-header}
        and C{redirect} values."""
        return header_value(self.render(context))

    def render_log(self, context: IRequestContext) -> str:
        """The text for C{context} as HAProxy's C{log-format} writes it: a
        missing or empty value is C{-} (C{""} when quoted), and control
        characters (a certificate's fields may hold CR and LF) are written
        C{#XX}, so that no value can add a log line."""
        out = []
        after_space = True
        for item in self.items:
            if isinstance(item, _Literal) and item.separator:
                if not after_space:
                    out.append(" ")
                    after_space = True
                continue
            text = item.render(context, True)
            if text:
                out.append(log_safe(text))
                after_space = False
        return "".join(out)


def compile_log_format(text: str, location: Location) -> LogFormat:
    """Parse a log-format string and compile its sample expressions.

    @param location: where the string was written, for errors and for the
        sample expressions it holds.
    @raise RuleError: the string is malformed, or names an unknown alias,
        flag, fetch or converter; the message quotes the string and gives
        the column of the item at fault.
    """
    return _Parser(text, location).parse()


@attrs.define
class _Parser:
    text: str
    location: Location
    items: list[_Item] = attrs.Factory(list)
    literal: list[str] = attrs.Factory(list)
    defaults: Flags = Flags()

    def error(self, column: int, message: str) -> RuleError:
        return RuleError(
            self.location,
            f"in log-format '{self.text}' at column {column + 1}: {message}",
        )

    def parse(self) -> LogFormat:
        text = self.text
        i = 0
        while i < len(text):
            percent = text.find("%", i)
            if percent < 0:
                self.literal.append(text[i:])
                break
            self.literal.append(text[i:percent])
            i = self.item(percent)
        self.flush()
        items = tuple(self.items)
        literals = [item.text for item in items if isinstance(item, _Literal)]
        constant = "".join(literals) if len(literals) == len(items) else None
        return LogFormat(text, items, self.location, constant)

    def flush(self) -> None:
        if self.literal:
            joined = "".join(self.literal)
            for part in _SPACES.split(joined):
                if part:
                    self.items.append(_Literal(part, part.startswith(" ")))
            self.literal.clear()

    def item(self, start: int) -> int:
        """Read the item at C{start} (a '%'); return where the text goes on."""
        text = self.text
        i = start + 1
        if i == len(text):
            raise self.error(
                start, "a lone '%' ends the string; write '%%' for a percent sign"
            )
        if text[i] == "%":
            self.literal.append("%")
            return i + 1
        flags = self.defaults
        if text[i] == "{":
            end = text.find("}", i)
            if end < 0:
                raise self.error(start, "'%{' opens flags that no '}' closes")
            flags = self.flags(start, text[i + 1 : end], flags)
            i = end + 1
        if i < len(text) and text[i] == "(":
            raise self.error(
                start,
                "named items such as %(name)[...] are only useful with json or "
                "cbor encoding, which certlb does not implement yet",
            )
        if i < len(text) and text[i] == "[":
            close = _closing_bracket(text, i + 1)
            if close is None:
                raise self.error(start, "'%[' has no closing ']'")
            self.flush()
            self.items.append(self.sample(start, text[i + 1 : close], flags))
            return close + 1
        j = i
        while j < len(text) and text[j].isascii() and text[j].isalnum():
            j += 1
        if j == i:
            raise self.error(
                start,
                "'%' must be followed by an alias (as in %ci), a sample "
                "expression in brackets (as in %[src]) or flags in braces; "
                "write '%%' for a percent sign",
            )
        alias = text[i:j]
        if alias == "o":
            self.defaults = flags
            return j
        self.flush()
        self.items.append(self.alias(start, alias, flags))
        return j

    def flags(self, start: int, written: str, flags: Flags) -> Flags:
        changes: dict[str, bool] = {}
        for entry in written.split(","):
            if not entry:
                continue
            sign, name = entry[0], entry[1:]
            if sign not in "+-":
                raise self.error(
                    start,
                    f"flag {entry!r} needs a sign: '+{entry}' to set it, "
                    f"'-{entry}' to clear it",
                )
            if name in _FLAGS_LATER:
                raise self.error(
                    start,
                    f"flag '{name}' is an HAProxy flag that certlb does not "
                    "implement yet",
                )
            if name not in _FLAG_NAMES:
                close = name.upper() if name.upper() in _FLAG_NAMES else None
                raise self.error(
                    start,
                    f"unknown flag {name!r}"
                    + (f" (did you mean '{close}'?)" if close else "")
                    + "; the flags are Q (quote), X (hexadecimal), E (escape) "
                    "and M (- for a missing value)",
                )
            changes[_FLAG_NAMES[name]] = sign == "+"
        return attrs.evolve(flags, **changes)

    def sample(self, start: int, written: str, flags: Flags) -> _Sample:
        if not written.strip():
            raise self.error(
                start, "empty sample expression '%[]'; write a fetch, as in %[src]"
            )
        try:
            expression = parse_expression(Word(written, self.location))
            sample, output = compile_expression(expression)
        except SyntaxProblem as e:
            raise self.error(start, e.message) from None
        except RuleError as e:
            raise self.error(start, e.message) from None
        return _Sample(sample, output, flags)

    def alias(self, start: int, alias: str, flags: Flags) -> _Alias:
        known = ALIASES.get(alias)
        if known is not None:
            kind, value = known
            return _Alias(kind, value, flags)
        if alias in ALIASES_LATER:
            instead = ALIASES_LATER[alias]
            raise self.error(
                start,
                f"alias '%{alias}' is an HAProxy alias that certlb does not "
                "implement yet" + (f"; write {instead} instead" if instead else ""),
            )
        names = ", ".join(f"%{name}" for name in ALIASES)
        close = closest(alias, ALIASES)
        hint = f" (did you mean '%{close}'?)" if close else ""
        raise self.error(
            start,
            f"unknown alias '%{alias}'{hint}; the aliases are {names}, and "
            "%[fetch] writes any fetch",
        )


def _closing_bracket(text: str, i: int) -> int | None:
    """The index of the ']' that ends a sample expression starting at C{i}:
    the first one outside parentheses and quotes."""
    depth = 0
    quote: str | None = None
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif c == "]" and not depth:
            return i
        i += 1
    return None
