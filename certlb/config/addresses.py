"""Parse C{ADDR:PORT} as HAProxy writes addresses, and durations."""

from __future__ import annotations

import ipaddress
import re

_DURATION = re.compile(r"^(\d+)(us|ms|s|m|h|d)?$")
_UNITS_MS = {
    "us": 0.001,
    "ms": 1,
    None: 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
}


def parse_address(text: str, what: str) -> tuple[str, int | None]:
    """Split C{text} into host and port.

    Accepts C{1.2.3.4:80}, C{*:80}, C{:80} (every IPv4 address), C{[::1]:80},
    C{::1:80} (the last colon separates the port), C{name:80}, and a host
    without a port (the port is then C{None}).

    @raise ValueError: with a message that says what to write.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{what} {text!r}: missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{what} {text!r}: expected ':PORT' after ']'")
        port_text = rest[1:] if rest else None
        _check_ipv6(host, what, text)
    elif text.count(":") > 1:
        host, _, port_text = text.rpartition(":")
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            _check_ipv6(host, what, text)
        else:
            raise ValueError(
                f"{what} {text!r} is ambiguous: write the IPv6 address in brackets, "
                f"as in [{text}]:PORT"
            )
    elif ":" in text:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, None
    if host in ("", "*"):
        host = "0.0.0.0"
    if port_text is None:
        return host, None
    return host, parse_port(port_text, what, text)


def format_address(host: str, port: int) -> str:
    """C{host:port} as a user writes it, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_port(port_text: str, what: str, text: str) -> int:
    """Parse a port number, naming C{text} when it is not one."""
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(
            f"{what} {text!r}: {port_text!r} is not a port; give a number "
            "from 1 to 65535 (or 0, on a bind line, for any free port)"
        )
    return int(port_text)


def _check_ipv6(host: str, what: str, text: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise ValueError(f"{what} {text!r}: {host!r} is not an IPv6 address") from None


def parse_duration(text: str, allow_zero: bool = False) -> int:
    """Parse an HAProxy duration (C{5s}, C{100ms}, C{2m}, C{300} = ms) into ms.

    @param allow_zero: take C{0} (with any unit) as 0 rather than an error.

    @raise ValueError: naming the text and the units that exist.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration; write a number with an optional unit "
            "us, ms, s, m, h or d, as in 5s (no unit means milliseconds)"
        )
    value = int(match.group(1)) * _UNITS_MS[match.group(2)]
    if value == 0 and allow_zero:
        return 0
    if value <= 0:
        raise ValueError(f"{text!r}: a timeout must be longer than zero")
    return max(1, int(value))
