"""Parse sample expressions, ACL definitions and conditions.

Grammar (HAProxy's)::

    condition  := ("if" | "unless") group (("or" | "||") group)*
    group      := term+
    term       := "!"? (ACL-NAME | "{" acl-body "}")
    acl-body   := expression flag* pattern*
    expression := fetch ("(" args ")")? ("," converter ("(" args ")")?)*
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from certlb.config.errors import Location
from certlb.config.lexer import Word
from certlb.config.model import AclDef, AclTerm, Condition, SampleExpression

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
ACL_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")

# flag -> does it take an argument
ACL_FLAGS = {"-i": False, "-n": False, "-m": True, "-f": True, "-M": False, "-u": True}


class SyntaxProblem(Exception):
    """A word does not fit the grammar; carries the word's location."""

    def __init__(self, location: Location, message: str) -> None:
        super().__init__(message)
        self.location = location
        self.message = message


def _is(word: Word, text: str) -> bool:
    return word.text == text and not word.literal


def parse_expression(word: Word) -> SampleExpression:
    """Parse a sample expression such as C{req.hdr(host),lower}."""
    text = word.text
    calls: list[tuple[str, tuple[str, ...]]] = []
    i = 0
    while True:
        match = _NAME.match(text, i)
        if match is None:
            raise SyntaxProblem(
                word.location,
                f"{text!r} is not a sample expression: expected a fetch or "
                f"converter name at {text[i:]!r}",
            )
        name = match.group()
        i = match.end()
        args: tuple[str, ...] = ()
        if i < len(text) and text[i] == "(":
            args, i = _arguments(word, i + 1)
        calls.append((name, args))
        if i == len(text):
            break
        if text[i] != ",":
            raise SyntaxProblem(
                word.location,
                f"in {text!r}: expected ',' before {text[i:]!r} (converters are "
                "chained with commas, as in hdr(host),lower)",
            )
        i += 1
    (fetch, fetch_args), converters = calls[0], tuple(calls[1:])
    return SampleExpression(fetch, fetch_args, converters, word.location)


_ESCAPES = {"\\": "\\", " ": " ", '"': '"', "'": "'", "r": "\r", "n": "\n", "t": "\t"}


def _arguments(word: Word, i: int) -> tuple[tuple[str, ...], int]:
    """Read comma-separated arguments up to the closing parenthesis."""
    text = word.text
    args: list[str] = []
    current: list[str] = []
    depth = 0
    quote: str | None = None
    while i < len(text):
        c = text[i]
        if quote:
            # As HAProxy: nothing is escaped between single quotes; between
            # double quotes, a backslash escapes only these.
            escaped = _ESCAPES.get(text[i + 1 : i + 2]) if c == "\\" else None
            if quote == '"' and escaped is not None:
                current.append(escaped)
                i += 2
                continue
            if c == quote:
                quote = None
            else:
                current.append(c)
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
            current.append(c)
        elif c == ")" and depth:
            depth -= 1
            current.append(c)
        elif c == ")":
            args.append("".join(current))
            return (tuple(args) if args != [""] else ()), i + 1
        elif c == ",":
            args.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    raise SyntaxProblem(
        word.location, f"in {text!r}: missing ')' to close the argument list"
    )


def parse_acl_body(name: str | None, words: Sequence[Word], at: Location) -> AclDef:
    """Parse C{expression [flags] [patterns]} into an L{AclDef}."""
    if not words:
        raise SyntaxProblem(
            at, "an ACL needs a fetch, as in 'ssl_fc_has_crt' or 'path /login'"
        )
    expression = parse_expression(words[0])
    flags: list[str] = []
    i = 1
    while i < len(words) and words[i].text.startswith("-") and not words[i].literal:
        flag = words[i].text
        if flag == "--":
            i += 1
            break
        if flag not in ACL_FLAGS:
            raise SyntaxProblem(
                words[i].location,
                f"unknown ACL flag {flag!r}; the flags are "
                f"{', '.join(sorted(ACL_FLAGS))} and '--' before a pattern "
                "that starts with '-'",
            )
        flags.append(flag)
        if ACL_FLAGS[flag]:
            if i + 1 >= len(words):
                raise SyntaxProblem(words[i].location, f"ACL flag {flag} needs a value")
            flags.append(words[i + 1].text)
            i += 1
        i += 1
    patterns = tuple(w.text for w in words[i:])
    return AclDef(name, expression, tuple(flags), patterns, at)


def parse_condition(words: Sequence[Word]) -> Condition:
    """Parse C{if|unless ...} (C{words[0]} is the keyword)."""
    keyword = words[0]
    groups: list[tuple[AclTerm, ...]] = []
    terms: list[AclTerm] = []
    negated = False
    separator = keyword
    i = 1

    def close_group(at: Word) -> None:
        if negated:
            raise SyntaxProblem(at.location, "'!' must be followed by an ACL")
        if not terms:
            raise SyntaxProblem(
                at.location,
                f"empty condition after '{keyword.text}'"
                if not groups
                else f"nothing after {at.text!r}"
                if at is separator
                else f"nothing between {separator.text!r} and {at.text!r}",
            )
        groups.append(tuple(terms))
        terms.clear()

    while i < len(words):
        word = words[i]
        text = word.text
        if text.startswith("!") and not word.literal:
            # Every leading '!' negates, as in HAProxy: '!a', '!!a', '!{'.
            bangs = len(text) - len(text.lstrip("!"))
            negated ^= bangs % 2 == 1
            text = text[bangs:]
            if not text:
                i += 1
                continue
        if word.literal:
            pass
        elif text.lower() in ("or", "||") and text == word.text:
            close_group(word)
            separator = word
            i += 1
            continue
        if text == "{" and not word.literal:
            end = next(
                (j for j in range(i + 1, len(words)) if _is(words[j], "}")), None
            )
            if end is None:
                raise SyntaxProblem(
                    word.location, "'{' opens an anonymous ACL that no '}' closes"
                )
            body = parse_acl_body(None, words[i + 1 : end], word.location)
            terms.append(AclTerm(negated, anonymous=body, location=word.location))
            negated = False
            i = end
        elif text == "}" and not word.literal:
            raise SyntaxProblem(word.location, "'}' without a matching '{'")
        else:
            if not ACL_NAME.match(text):
                raise SyntaxProblem(word.location, f"{text!r} is not an ACL name")
            terms.append(AclTerm(negated, name=text, location=word.location))
            negated = False
        i += 1
    close_group(words[-1])
    return Condition(keyword.text == "unless", tuple(groups), keyword.location)
