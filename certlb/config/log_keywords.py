"""The C{log} keyword: C{log global}, C{no log}, and log targets."""

from __future__ import annotations

import ipaddress

from certlb.config.addresses import parse_address
from certlb.config.conditions import SyntaxProblem
from certlb.config.errors import WARNING
from certlb.config.lexer import Word
from certlb.config.model import LOG_FACILITIES, LOG_FORMATS, LOG_LEVELS, LogTarget
from certlb.config.syntax import Context, integer

_USAGE = (
    "a target and a facility, as in 'log 127.0.0.1:514 local0', "
    "'log stdout format raw local0' or 'log global'"
)
# HAProxy's other formats, which certlb does not write.
_OTHER_FORMATS = ("local", "iso", "timed", "priority")


def log(ctx: Context) -> None:
    """C{log global}, C{no log}, and C{log TARGET [len N] [format F]
    FACILITY [LEVEL [MINLEVEL]]}."""
    if ctx.negate:
        ctx.no_more(1)
        ctx.draft.no_log = True
        ctx.draft.logs = []
        ctx.draft.log_global = False
        return
    first = ctx.arg(1, _USAGE)
    if first.text == "global":
        ctx.no_more(2)
        if ctx.section == "global":
            raise SyntaxProblem(
                first.location,
                "'log global' refers to the global section's logs: it belongs in "
                "defaults, frontend, listen or backend sections",
            )
        ctx.draft.no_log = False
        ctx.draft.log_global = True
        return
    target = parse_log_target(ctx)
    if ctx.section == "backend":
        ctx.problem(
            first.location,
            "'log' has no effect in a backend section: access lines are written "
            "with the frontend's log lines; put it in the frontend, listen, "
            "defaults or global section",
            WARNING,
        )
    ctx.draft.no_log = False
    ctx.draft.logs.append(target)


def parse_log_target(ctx: Context) -> LogTarget:
    """Read the words of a C{log TARGET ...} line into a L{LogTarget}."""
    first = ctx.words[1]
    kind, host, port, path = _target(first)
    length, log_format = 1024, "rfc3164"
    i = 2
    while i < len(ctx.words) and ctx.words[i].text in ("len", "format", "sample"):
        word = ctx.words[i]
        value = ctx.arg(i + 1, f"a value after '{word.text}'")
        if word.text == "len":
            length = integer(value, "'log ... len'", 80, 65535)
        elif word.text == "format":
            log_format = _format(value)
        else:
            raise SyntaxProblem(
                word.location,
                "'log ... sample' (sending one line in N) is not implemented "
                "yet; remove 'sample RANGES:SIZE' to send every line",
            )
        i += 2
    facility = ctx.arg(
        i, f"a facility after the target, one of {_names(LOG_FACILITIES)}"
    )
    _choice(facility, "facility", LOG_FACILITIES)
    level = minlevel = None
    if i + 1 < len(ctx.words):
        level = _choice(ctx.words[i + 1], "level", LOG_LEVELS)
    if i + 2 < len(ctx.words):
        minlevel = _choice(ctx.words[i + 2], "minimum level", LOG_LEVELS)
    ctx.no_more(i + 3)
    return LogTarget(
        kind=kind,
        address=first.text,
        facility=facility.text,
        format=log_format,
        host=host,
        port=port,
        path=path,
        length=length,
        level=level,
        minlevel=minlevel,
        location=first.location,
    )


def _target(word: Word) -> tuple[str, str | None, int, str | None]:
    """The kind, host, port and path of a log target."""
    text = word.text
    if text in ("stdout", "stderr"):
        return text, None, 514, None
    prefix, at, rest = text.partition("@")
    if not at:
        prefix, rest = "", text
    if prefix == "unix" or (not prefix and rest.startswith("/")):
        if not rest.startswith("/"):
            raise SyntaxProblem(
                word.location,
                f"log target {text!r}: give the socket's absolute path, as in "
                "'/dev/log'",
            )
        return "unix", None, 514, rest
    if prefix not in ("", "udp", "udp4", "udp6", "ipv4", "ipv6"):
        raise SyntaxProblem(
            word.location,
            f"log target {text!r}: '{prefix}@' targets are not implemented; "
            "certlb sends to stdout, stderr, a UDP syslog server (ADDRESS[:PORT]) "
            "or a unix datagram socket (/dev/log)",
        )
    try:
        # A bare IPv6 address has no port, whatever its last colon says.
        host, port = str(ipaddress.IPv6Address(rest)), None
    except ValueError:
        host, port = "", None
    try:
        if not host:
            host, port = parse_address(rest, "log target")
    except ValueError as e:
        raise SyntaxProblem(word.location, str(e)) from None
    if port == 0:
        raise SyntaxProblem(
            word.location,
            f"log target {text!r}: port 0 is not a syslog server's; give a port "
            "from 1 to 65535, or none for 514",
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise SyntaxProblem(
            word.location,
            f"log target {text!r}: {host!r} is not an IP address; write the "
            "syslog server's address, as in 127.0.0.1:514",
        ) from None
    if not rest or rest.startswith("*") or (rest[0] == ":" and rest.count(":") == 1):
        raise SyntaxProblem(
            word.location,
            f"log target {text!r} has no address; write one, as in 127.0.0.1:514",
        )
    return "udp", host, 514 if port is None else port, None


def _format(word: Word) -> str:
    if word.text in LOG_FORMATS:
        return word.text
    if word.text in _OTHER_FORMATS:
        raise SyntaxProblem(
            word.location,
            f"log format {word.text!r} is not implemented yet; use one of "
            f"{_names(LOG_FORMATS)}",
        )
    raise SyntaxProblem(
        word.location,
        f"unknown log format {word.text!r}; use one of {_names(LOG_FORMATS)}",
    )


def _choice(word: Word, what: str, names: tuple[str, ...]) -> str:
    if word.text not in names:
        raise SyntaxProblem(
            word.location,
            f"unknown log {what} {word.text!r}; use one of {_names(names)}",
        )
    return word.text


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names)
