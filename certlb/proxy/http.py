"""HTTP/1.1 message pieces shared by both sides of the proxy.

Header lists are C{[(name, value), ...]} of bytes, in the order they came,
names as they were written; a proxy must keep repeated headers and their
order (RFC 9110, section 5.3).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import attrs

from certlb.rules.actions import LocalResponse

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
    404: b"Not Found", 405: b"Method Not Allowed",
    407: b"Proxy Authentication Required", 408: b"Request Timeout", 410: b"Gone",
    413: b"Payload Too Large", 421: b"Misdirected Request",
    422: b"Unprocessable Content", 425: b"Too Early", 429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout",
}  # fmt: skip

# Bodies of the answers certlb gives itself, like HAProxy's.
ERROR_TEXT = {
    400: "Your client sent a request that certlb could not read.",
    403: "Request forbidden by administrative rules.",
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


def without_hop_by_hop(headers: Headers) -> Headers:
    """C{headers} without the L{HOP_BY_HOP} ones (those a C{Connection}
    header names were dropped when the request arrived)."""
    return [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]


def drop_connection_named(head: RequestHead) -> None:
    """Drop the request headers that its C{Connection} header names (the
    client's own hop), before any rule runs: a header that a rule writes is
    then never dropped by the client's say."""
    drop = connection_tokens(head.headers) - PROTECTED - HOP_BY_HOP
    if drop:
        head.headers = [(n, v) for n, v in head.headers if n.lower() not in drop]


# Characters a Host header may not hold (HAProxy refuses them too): they
# would let a request pass a Host rule with one host and reach another.
_HOST_FORBIDDEN = frozenset(b",/?@#\\ \t")


def request_problem(head: RequestHead) -> str | None:
    """Why a request must be refused with 400 before any rule sees it, if so.

    A '#' in the target (a fragment is never sent: servers that strip it
    would serve a path that rules did not see), several different Host
    headers, a Host with a forbidden character, and an HTTP/1.1 request
    without Host (RFC 9112, 3.2).
    """
    if b"#" in head.target:
        return "a '#' in the request target"
    hosts = {v.strip() for n, v in head.headers if n.lower() == b"host"}
    if len(hosts) > 1:
        return "several different Host headers"
    if hosts and _HOST_FORBIDDEN.intersection(next(iter(hosts))):
        return "a forbidden character in the Host header"
    if not hosts and head.version == b"1.1":
        return "an HTTP/1.1 request without a Host header"
    return None


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


@functools.cache
def error_page(status: int) -> tuple[tuple[tuple[bytes, bytes], ...], bytes]:
    """The headers and body of certlb's own short page for C{status}."""
    reason = REASONS.get(status, b"Error")
    text = ERROR_TEXT.get(status, reason.decode())
    body = (
        f"<html><body><h1>{status} {reason.decode()}</h1>\n{text}\n</body></html>\n"
    ).encode()
    return ((b"Content-Type", b"text/html"), (b"Cache-Control", b"no-cache")), body


def local_response(response: LocalResponse, close: bool, head: bool = False) -> bytes:
    """The bytes of an answer certlb gives itself, framed with its length.

    @param head: the answer is to a HEAD request: its head only.
    """
    headers = list(response.headers)
    body = response.body
    if body is None:
        page_headers, body = error_page(response.status)
        headers += page_headers
    if response.status in (204, 304):
        body = b""
    else:
        headers.append((b"Content-Length", b"%d" % len(body)))
    if head:
        body = b""
    if close:
        headers.append((b"Connection", b"close"))
    reason = REASONS.get(response.status, b"Unknown")
    first = b"HTTP/1.1 %d %s" % (response.status, reason)
    return serialize_head(first, headers) + body


def error_response(status: int, close: bool) -> bytes:
    """A complete, short response that certlb sends itself."""
    return local_response(LocalResponse(status), close)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
