"""HTTP/1.1 message pieces shared by both sides of the proxy.

Header lists are C{[(name, value), ...]} of bytes, in the order they came,
names as they were written; a proxy must keep repeated headers and their
order (RFC 9110, section 5.3).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

Headers = list[tuple[bytes, bytes]]

# RFC 9110, 7.6.1: these describe one connection and are never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

REASONS = {
    100: b"Continue", 101: b"Switching Protocols", 200: b"OK", 201: b"Created",
    202: b"Accepted", 204: b"No Content", 206: b"Partial Content",
    301: b"Moved Permanently", 302: b"Found", 303: b"See Other",
    304: b"Not Modified", 307: b"Temporary Redirect", 308: b"Permanent Redirect",
    400: b"Bad Request", 401: b"Unauthorized", 403: b"Forbidden",
    404: b"Not Found", 405: b"Method Not Allowed", 408: b"Request Timeout",
    413: b"Payload Too Large", 431: b"Request Header Fields Too Large",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout",
}  # fmt: skip

# Bodies of the answers certlb gives itself, like HAProxy's.
ERROR_TEXT = {
    400: "Your client sent a request that certlb could not read.",
    405: "certlb does not tunnel CONNECT requests.",
    408: "Your client did not send a complete request in time.",
    431: "The request line and headers are too large.",
    500: "certlb met an internal error; its log says more.",
    501: "certlb forwards request bodies with no transfer coding but chunked.",
    502: "The server could not be reached or gave an invalid or incomplete response.",
    503: "No server is available to handle this request.",
    504: "The server did not respond in time.",
}

# The most a message head may take, as with HAProxy's and nginx's buffers.
MAX_HEAD_BYTES = 65536
MAX_HEADERS = 100


class StallGuard:
    """Bounds what llhttp keeps without calling back.

    llhttp holds an unfinished header line (or trailer) without a word:
    count the bytes fed since the last callback, and say when they pass
    L{MAX_HEAD_BYTES}.  Parser callbacks add to C{progress}.
    """

    __slots__ = ("_mark", "_stalled", "progress")

    def __init__(self) -> None:
        self.progress = 0
        self._mark = 0
        self._stalled = 0

    def before(self) -> None:
        """Call before feeding the parser."""
        self._mark = self.progress

    def over(self, fed: int) -> bool:
        """Call after feeding C{fed} bytes: whether too much is held back."""
        if self.progress != self._mark:
            self._stalled = 0
            return False
        self._stalled += fed
        return self._stalled > MAX_HEAD_BYTES


# Framing of a message body.
NO_BODY = "none"
LENGTH = "length"
CHUNKED = "chunked"
UNTIL_CLOSE = "close"


@attrs.define(slots=True)
class RequestHead:
    """A request line and headers, as the client sent them.

    @ivar version: C{b"1.1"} or C{b"1.0"}.
    @ivar framing: how the body is delimited: L{NO_BODY}, L{LENGTH} or
        L{CHUNKED}.
    @ivar keep_alive: whether the client wants the connection kept open.
    """

    method: bytes
    target: bytes
    version: bytes
    headers: Headers
    framing: str = NO_BODY
    length: int | None = None
    keep_alive: bool = True


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    """The lower-cased tokens of every C{Connection} header."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return tokens


# Headers that a Connection header may not remove: the message's length (its
# removal would let a body be read as another request) and its host.
PROTECTED = frozenset({b"content-length", b"host"})


def end_to_end(headers: Headers) -> Headers:
    """C{headers} without hop-by-hop ones, nor those that C{Connection} names
    (except L{PROTECTED} ones)."""
    drop = HOP_BY_HOP | (connection_tokens(headers) - PROTECTED)
    return [(n, v) for n, v in headers if n.lower() not in drop]


def body_framing(headers: Headers) -> tuple[str, int | None, bytes]:
    """How a message with these (already validated) headers frames its body.

    @return: the framing, the length (for L{LENGTH}), and the transfer
        codings other than the final C{chunked}, comma-separated (C{b""} for
        none).  With codings but no final C{chunked}, the body lasts until
        the connection closes (RFC 9112, 6.3).
    """
    length: int | None = None
    codings: list[bytes] = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"transfer-encoding":
            codings += [c.strip().lower() for c in value.split(b",") if c.strip()]
        elif lower == b"content-length":
            length = int(value.strip())
    if codings:
        if codings[-1] == b"chunked":
            return CHUNKED, None, b", ".join(codings[:-1])
        return UNTIL_CLOSE, None, b", ".join(codings)
    if length is None:
        return NO_BODY, None, b""
    return (LENGTH, length, b"") if length else (NO_BODY, 0, b"")


def serialize_head(first_line: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The bytes of a message head: first line, headers, empty line."""
    parts = [first_line]
    for name, value in headers:
        parts.append(name + b": " + value)
    parts.append(b"\r\n")
    return b"\r\n".join(parts)


def error_response(status: int, close: bool) -> bytes:
    """A complete, short response that certlb sends itself."""
    reason = REASONS.get(status, b"Error")
    text = ERROR_TEXT.get(status, reason.decode())
    body = (
        f"<html><body><h1>{status} {reason.decode()}</h1>\n{text}\n</body></html>\n"
    ).encode()
    headers = [
        (b"Content-Type", b"text/html"),
        (b"Content-Length", str(len(body)).encode()),
        (b"Cache-Control", b"no-cache"),
    ]
    if close:
        headers.append((b"Connection", b"close"))
    return serialize_head(b"HTTP/1.1 %d %s" % (status, reason), headers) + body


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
