"""What an access log says of one request: its dates, timers, status, bytes,
server, termination state and counters, and the log-format aliases that
write them (HAProxy's, section 8.2.6)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from certlb.rules.interfaces import IRequestContext

__all__ = ["RECORD_ALIASES", "RequestRecord", "log_date"]

_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def log_date(seconds: float) -> str:
    """A date as HAProxy's logs write it, in local time with milliseconds:
    C{27/Nov/2026:02:00:00.123} (months in English, whatever the locale)."""
    whole = int(seconds)
    ms = round((seconds - whole) * 1000)
    if ms == 1000:
        whole, ms = whole + 1, 0
    t = time.localtime(whole)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{ms:03d}"
    )


def _ms(start: float | None, end: float | None) -> int:
    """Milliseconds from C{start} to C{end}; -1 when a step did not happen."""
    if start is None or end is None:
        return -1
    return max(0, round((end - start) * 1000))


class RequestRecord:
    """One request as the access log sees it, filled in as it goes.

    Dates are the reactor's seconds; C{None} where a step did not happen.

    @ivar accepted: when the connection was accepted, or, for a later
        request on a kept-alive connection, when the response before it ended.
    @ivar started: when the first byte of the request head arrived.
    @ivar received: when the request head was complete (C{None}: never).
    @ivar assigned: when a server was given the request (out of the queue).
    @ivar connected: when the connection to the server was ready.
    @ivar responded: when the server's response head arrived.
    @ivar ended: when the exchange ended (the last byte sent, or the cut).
    @ivar status: the status sent to the client, -1 before any.
    @ivar bytes_out: bytes written to the client: response head and body.
    @ivar backend: the backend's name (the frontend's before one is chosen).
    @ivar server: the server's name, C{None} when no server was chosen.
    @ivar cause: the first character of the termination state: C{-}, C{C},
        C{S}, C{P}, C{L}, C{I}, C{c} or C{s} (section 8.5).
    @ivar stage: the second one: C{R}, C{Q}, C{C}, C{H}, C{D} or C{-}.
    @ivar retries: attempts made again; C{redispatched}: on another server.
    @ivar actconn: connections on the process when the line was written;
        C{feconn} on the frontend, C{beconn} requests on the backend (being
        served or waiting), C{srvconn} on the server, C{backend_queue}
        waiting in the backend's queue.
    @ivar request_line: the request line, e.g. C{GET / HTTP/1.1}.
    """

    __slots__ = (
        "accepted", "actconn", "assigned", "backend", "backend_queue", "beconn",
        "bytes_out", "cause", "connected", "ended", "feconn", "received",
        "redispatched", "request_line", "responded", "retries", "server",
        "srvconn", "stage", "started", "status",
    )  # fmt: skip

    def __init__(
        self,
        accepted: float,
        started: float,
        received: float | None,
        request_line: str,
    ) -> None:
        self.accepted = min(accepted, started)
        self.started = started
        self.received = received
        self.request_line = request_line
        self.assigned: float | None = None
        self.connected: float | None = None
        self.responded: float | None = None
        self.ended: float | None = None
        self.status = -1
        self.bytes_out = 0
        self.backend = ""
        self.server: str | None = None
        self.cause = "-"
        self.stage = "-"
        self.retries = 0
        self.redispatched = False
        self.actconn = self.feconn = self.beconn = self.srvconn = 0
        self.backend_queue = 0

    @property
    def termination(self) -> str:
        """HAProxy's C{%tsc}: cause, stage, and C{--} for the cookie
        persistence certlb does not have."""
        return self.cause + self.stage + "--"

    def timers(self) -> dict[str, int]:
        """TR, Tw, Tc, Tr, Ta and Tt in milliseconds, -1 for a step that did
        not happen (Tw, Tc and Tr when certlb answered itself)."""
        return {
            "TR": _ms(self.started, self.received),
            "Tw": _ms(self.received, self.assigned),
            "Tc": _ms(self.assigned, self.connected),
            "Tr": _ms(self.connected, self.responded),
            "Ta": _ms(self.started, self.ended),
            "Tt": _ms(self.accepted, self.ended),
        }


def _field(read: Callable[[RequestRecord], Any]) -> Callable[[IRequestContext], Any]:
    def value(context: IRequestContext) -> Any:
        record = getattr(context, "record", None)
        return None if record is None else read(record)

    return value


def _timer(name: str) -> Callable[[IRequestContext], Any]:
    return _field(lambda record: record.timers()[name])


def _request_line(record: RequestRecord) -> str:
    """The request line, with what a log line must not hold written #XX, as
    HAProxy writes it."""
    line = record.request_line
    if all(" " <= c < "\x7f" and c not in '"#' for c in line):
        return line
    return "".join(
        c if " " <= c < "\x7f" and c not in '"#' else f"#{ord(c) & 0xFF:02X}"
        for c in line
    )


def _retries(record: RequestRecord) -> str:
    return ("+" if record.redispatched else "") + str(record.retries)


def _query(context: IRequestContext) -> str | None:
    query = context.query
    return None if query is None else "?" + query


# alias -> (kind, value); kind "omit": written as nothing, not even '-'.
RECORD_ALIASES: dict[str, tuple[str, Callable[[IRequestContext], Any]]] = {
    "t": ("text", _field(lambda r: log_date(r.accepted))),
    "tr": ("text", _field(lambda r: log_date(r.started))),
    "Ts": ("int", _field(lambda r: int(r.accepted))),
    "ms": ("text", _field(lambda r: f"{int(r.accepted * 1000) % 1000:03d}")),
    "b": ("text", _field(lambda r: r.backend)),
    "s": ("text", _field(lambda r: r.server or "<NOSRV>")),
    **{name: ("int", _timer(name)) for name in ("TR", "Tw", "Tc", "Tr", "Ta", "Tt")},
    "ST": ("int", _field(lambda r: r.status)),
    "B": ("int", _field(lambda r: r.bytes_out)),
    "ts": ("text", _field(lambda r: r.cause + r.stage)),
    "tsc": ("text", _field(lambda r: r.termination)),
    "ac": ("int", _field(lambda r: r.actconn)),
    "fc": ("int", _field(lambda r: r.feconn)),
    "bc": ("int", _field(lambda r: r.beconn)),
    "sc": ("int", _field(lambda r: r.srvconn)),
    "rc": ("text", _field(_retries)),
    "sq": ("int", _field(lambda r: 0)),
    "bq": ("int", _field(lambda r: r.backend_queue)),
    "r": ("text", _field(_request_line)),
    "HM": ("text", lambda context: context.method),
    "HU": ("text", lambda context: context.target),
    "HP": ("text", lambda context: context.target.partition("?")[0]),
    "HPO": ("text", lambda context: context.path),
    "HQ": ("text", _query),
    "HV": ("text", lambda context: context.version),
    # No capture: certlb has no 'capture' keyword (yet).
    "CC": ("text", lambda context: None),
    "CS": ("text", lambda context: None),
    "hr": ("omit", lambda context: None),
    "hs": ("omit", lambda context: None),
}
