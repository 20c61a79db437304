"""The keywords of persistence: C{stick-table} and C{stick}."""

from __future__ import annotations

import re

from certlb.config.addresses import parse_duration
from certlb.config.conditions import SyntaxProblem, parse_expression
from certlb.config.errors import suggest
from certlb.config.lexer import Word
from certlb.config.model import (
    STICK_RULE_KINDS,
    STICK_TABLE_TYPES,
    StickRule,
    StickTable,
)
from certlb.config.syntax import Context, condition, integer

_SIZE = re.compile(r"(\d+)([kmg]?)")
_SIZE_FACTORS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
# HAProxy's stick-table options that keep data certlb does not use yet.
_LATER = ("store", "peers", "srvkey", "write-to", "recv-only")


def stick_table(ctx: Context) -> None:
    """C{stick-table type T [len N] size N [expire T] [nopurge]}."""
    settings: dict[str, object] = {"location": ctx.keyword.location}
    i = 1
    while i < len(ctx.words):
        word = ctx.words[i]
        if word.text == "nopurge":
            settings["nopurge"] = True
            i += 1
            continue
        if word.text in _LATER:
            raise SyntaxProblem(
                word.location,
                f"stick-table '{word.text}' is an HAProxy option that certlb does "
                "not implement yet: its tables keep the server of each key only",
            )
        if word.text not in ("type", "len", "size", "expire"):
            raise SyntaxProblem(
                word.location,
                f"unexpected {word.text!r} in 'stick-table'; it takes type, len, "
                "size, expire and nopurge"
                + suggest(word.text, ("type", "len", "size", "expire", "nopurge")),
            )
        value = ctx.arg(i + 1, f"a value for '{word.text}'")
        if word.text == "type":
            if value.text not in STICK_TABLE_TYPES:
                raise SyntaxProblem(
                    value.location,
                    f"{value.text!r} is not a stick-table type; use one of "
                    f"{', '.join(STICK_TABLE_TYPES)}"
                    + suggest(value.text, STICK_TABLE_TYPES),
                )
            settings["type"] = value.text
        elif word.text == "len":
            settings["length"] = integer(value, "len", 1, 65536)
        elif word.text == "size":
            settings["size"] = _size(value)
        else:
            try:
                settings["expire"] = parse_duration(value.text)
            except ValueError as e:
                raise SyntaxProblem(value.location, str(e)) from None
        i += 2
    for needed in ("type", "size"):
        if needed not in settings:
            raise SyntaxProblem(
                ctx.keyword.location,
                f"'stick-table' needs '{needed}', as in 'stick-table type string "
                "size 100k expire 30m'",
            )
    ctx.draft.stick_table = StickTable(**settings)  # type: ignore[arg-type]


def _size(word: Word) -> int:
    match = _SIZE.fullmatch(word.text.lower())
    if match is None or int(match.group(1)) == 0:
        raise SyntaxProblem(
            word.location,
            f"{word.text!r} is not a table size; write a number of entries, "
            "with k, m or g for 1024, 1024² or 1024³ times as many, as in 100k",
        )
    return int(match.group(1)) * _SIZE_FACTORS[match.group(2)]


def stick(ctx: Context) -> None:
    """C{stick on|match|store-request EXPR [table NAME] [if|unless COND]}."""
    kind = ctx.arg(1, "on, match or store-request, as in 'stick on src'")
    if kind.text not in STICK_RULE_KINDS:
        later = kind.text == "store-response"
        raise SyntaxProblem(
            kind.location,
            "'stick store-response' is an HAProxy rule that certlb does not "
            "implement yet"
            if later
            else f"'stick {kind.text}': use stick on, stick match or stick "
            "store-request" + suggest(kind.text, STICK_RULE_KINDS),
        )
    word = ctx.arg(2, "an expression, as in 'stick on src'")
    expression = parse_expression(word)
    table: str | None = None
    index = 3
    if index < len(ctx.words) and ctx.words[index].text == "table":
        table = ctx.arg(index + 1, "a backend name after 'table'").text
        index += 2
    ctx.draft.stick_rules.append(
        StickRule(kind.text, expression, table, condition(ctx, index), kind.location)
    )
