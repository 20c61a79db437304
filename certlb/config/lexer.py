"""Split HAProxy-style configuration text into lines of words.

The rules are HAProxy's: words are separated by spaces or tabs; C{#} starts a
comment; a backslash escapes the next character (C{\\ }, C{\\#}, C{\\\\},
C{\\'}, C{\\"}, C{\\r}, C{\\n}, C{\\t}, C{\\xHH}; any other backslash is kept, so
regular expressions read as written); text in single quotes is taken as it
is; text in double quotes has its escapes and its environment variables
(C{$NAME}, C{${NAME}}) expanded.  Braces, C{!} and C{||} are ordinary words
here; the parser gives them meaning, unless they were quoted (an opening brace in
quotes is a word, not a brace).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

import attrs

from certlb.config.errors import WARNING, Location, Problem

_SIMPLE_ESCAPES = {" ": " ", "#": "#", "\\": "\\", "'": "'", '"': '"', "$": "$"}
_CONTROL_ESCAPES = {"r": "\r", "n": "\n", "t": "\t"}
_ENV_NAME = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)")


@attrs.frozen
class Word:
    """One word of a configuration line.

    @ivar text: the word after quotes and escapes are resolved.
    @ivar location: where the word starts.
    @ivar literal: true when any part of it was quoted or escaped, so that
        a quoted opening brace is text, not a brace.
    """

    text: str
    location: Location
    literal: bool = False

    def __str__(self) -> str:
        return self.text


@attrs.frozen
class Line:
    """The words of one configuration line that has any."""

    words: tuple[Word, ...]

    @property
    def location(self) -> Location:
        return self.words[0].location


def tokenize(
    text: str,
    filename: str,
    environ: Mapping[str, str],
    problems: list[Problem],
) -> Iterator[Line]:
    """Yield each line of C{text} that holds words.

    Problems (an unterminated quote, a bad escape) are appended to
    C{problems}; the line is still yielded with what could be read.
    """
    # Lines end at "\n" only (as for HAProxy), so that line numbers match
    # what editors show even with form feeds or Unicode separators.
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.removesuffix("\r")
        words = _split(raw, filename, number, environ, problems)
        if words:
            yield Line(tuple(words))


def _split(
    raw: str,
    filename: str,
    number: int,
    environ: Mapping[str, str],
    problems: list[Problem],
) -> list[Word]:
    words: list[Word] = []
    current: list[str] = []
    start: int | None = None
    literal = False
    quote: str | None = None
    quote_column = 0
    i = 0
    n = len(raw)

    def here(column: int) -> Location:
        return Location(filename, number, column + 1)

    def finish() -> None:
        nonlocal current, start, literal
        if start is not None:
            words.append(Word("".join(current), here(start), literal))
        current, start, literal = [], None, False

    while i < n:
        c = raw[i]
        if quote == "'":
            if c == "'":
                quote = None
            else:
                current.append(c)
            i += 1
            continue
        if c == "\\":
            # A backslash that ends the line escapes nothing: no empty word.
            if start is None and i + 1 < n:
                start = i
            literal = True
            i = _escape(raw, i, current, here, problems)
            continue
        if quote == '"':
            if c == '"':
                quote = None
                i += 1
            elif c == "$":
                i = _expand(raw, i, current, environ, here, problems)
            else:
                current.append(c)
                i += 1
            continue
        if c in " \t":
            finish()
        elif c == "#":
            break
        elif c in "'\"":
            if start is None:
                start = i
            literal = True
            quote = c
            quote_column = i
        else:
            if start is None:
                start = i
            current.append(c)
        i += 1
    if quote is not None:
        problems.append(
            Problem(
                here(quote_column),
                f"unterminated {quote} quote; close it with {quote} "
                "before the end of the line",
            )
        )
    finish()
    return words


def _escape(
    raw: str,
    i: int,
    current: list[str],
    here: Callable[[int], Location],
    problems: list[Problem],
) -> int:
    """Resolve the backslash escape at C{raw[i]}; return the next index."""
    if i + 1 >= len(raw):
        problems.append(
            Problem(
                here(i),
                "a backslash ends the line; certlb, like HAProxy, has no line "
                "continuation: put the whole statement on one line",
            )
        )
        return i + 1
    nxt = raw[i + 1]
    if nxt in _SIMPLE_ESCAPES:
        current.append(_SIMPLE_ESCAPES[nxt])
        return i + 2
    if nxt in _CONTROL_ESCAPES:
        current.append(_CONTROL_ESCAPES[nxt])
        return i + 2
    if nxt == "x":
        digits = raw[i + 2 : i + 4]
        if len(digits) == 2 and all(d in "0123456789abcdefABCDEF" for d in digits):
            current.append(chr(int(digits, 16)))
            return i + 4
        problems.append(
            Problem(
                here(i),
                f"bad escape {raw[i : i + 4]!r}: \\x needs two hexadecimal digits, "
                "as in \\x20",
            )
        )
        return i + 2
    # Kept as written, so that regular expressions such as ^/a\.html$ work.
    current.append("\\" + nxt)
    return i + 2


def _expand(
    raw: str,
    i: int,
    current: list[str],
    environ: Mapping[str, str],
    here: Callable[[int], Location],
    problems: list[Problem],
) -> int:
    """Expand the environment variable at C{raw[i]} (a C{$}); return the next index."""
    match = _ENV_NAME.match(raw, i + 1)
    if match is None:
        current.append("$")
        return i + 1
    name = match.group(1) or match.group(2)
    if name not in environ:
        problems.append(
            Problem(
                here(i),
                f"environment variable {name} is not set; it expands to an "
                "empty string",
                WARNING,
            )
        )
    current.append(environ.get(name, ""))
    return match.end()
