"""Keywords about servers: C{server} and its options, health checks,
balancing, retries.
"""

from __future__ import annotations

import ipaddress
import os
import re

import attrs

from certlb.config.addresses import parse_address, parse_duration
from certlb.config.conditions import SyntaxProblem, parse_expression
from certlb.config.errors import WARNING, suggest
from certlb.config.lexer import Word
from certlb.config.model import (
    BALANCE_ALGORITHMS,
    HASH_FUNCTIONS,
    HASH_METHODS,
    INIT_STATES,
    ON_ERROR_MODES,
    RETRY_ON_EVENTS,
    RETRY_ON_STATUSES,
    SERVER_VERIFY_MODES,
    TLS_VERSIONS,
    HttpCheck,
    PluginUse,
    Server,
)
from certlb.config.syntax import Context, integer, no_effect_in

SERVER_FLAGS = (
    "check", "check-ssl", "backup", "disabled", "enabled", "ssl", "no-ssl",
    "no-check-ssl",
)  # fmt: skip
SERVER_VALUES = (
    "weight", "maxconn", "inter", "fastinter", "downinter", "rise", "fall",
    "port", "addr", "init-state", "observe", "error-limit", "on-error",
    "verify", "ca-file", "crl-file", "crt", "sni", "verifyhost", "check-sni",
    "ssl-min-ver", "ssl-max-ver",
)  # fmt: skip
SERVER_FILES = {"ca-file": "ca_file", "crl-file": "crl_file", "crt": "crt"}
# HAProxy's versions, oldest first; certlb speaks TLS 1.2 and 1.3 only.
HAPROXY_TLS_VERSIONS = ("SSLv3", "TLSv1.0", "TLSv1.1", *TLS_VERSIONS)
SERVER_OPTIONS_LATER = frozenset(
    """
    minconn maxqueue on-marked-down on-marked-up slowstart
    agent-check agent-port agent-inter cookie track send-proxy send-proxy-v2
    resolvers init-addr id redir source pool-max-conn pool-purge-delay alpn
    proto
    """.split()
)


def _duration(word: Word, allow_zero: bool = False) -> int:
    try:
        return parse_duration(word.text, allow_zero)
    except ValueError as e:
        raise SyntaxProblem(word.location, str(e)) from None


def _choice(word: Word, what: str, choices: tuple[str, ...]) -> str:
    if word.text not in choices:
        raise SyntaxProblem(
            word.location,
            f"{word.text!r} is not {'an' if what[0] in 'aeiou' else 'a'} {what}; "
            f"use one of {', '.join(choices)}" + suggest(word.text, choices),
        )
    return word.text


def server(ctx: Context) -> None:
    """C{server NAME ADDRESS:PORT [options]}."""
    name = ctx.arg(1, "a name and an address, as in 'server s1 10.0.0.1:80'")
    address = ctx.arg(2, "an address, as in 'server s1 10.0.0.1:80'")
    try:
        host, port = parse_address(address.text, "server address")
    except ValueError as e:
        raise SyntaxProblem(address.location, str(e)) from None
    if port is None:
        raise SyntaxProblem(
            address.location,
            f"server address {address.text!r} has no port; write "
            f"{address.text}:PORT, as in {address.text}:80",
        )
    options: dict[str, object] = {}
    i = 3
    while i < len(ctx.words):
        word = ctx.words[i]
        option = word.text
        if option in SERVER_FLAGS:
            if option == "enabled":
                options["disabled"] = False
            elif option.startswith("no-"):
                # Cancels the option before it on the line.
                options[option[3:].replace("-", "_")] = False
            else:
                options[option.replace("-", "_")] = True
        elif option in SERVER_FILES:
            path = ctx.path(ctx.arg(i + 1, f"a file name for '{option}'"))
            options[SERVER_FILES[option]] = path
            i += 1
        elif option in SERVER_VALUES:
            value = ctx.arg(i + 1, f"a value for '{option}'")
            options.update(_server_value(option, value))
            i += 1
        elif option in SERVER_OPTIONS_LATER:
            raise SyntaxProblem(
                word.location,
                f"server option '{option}' is an HAProxy option that certlb "
                "does not implement yet",
            )
        else:
            known = [*SERVER_FLAGS, *SERVER_VALUES, *SERVER_OPTIONS_LATER]
            raise SyntaxProblem(
                word.location,
                f"unknown server option '{option}'" + suggest(option, known),
            )
        i += 1
    ctx.draft.servers.append(
        Server(name.text, host, port, location=name.location, **options)  # type: ignore[arg-type]
    )


def _server_value(option: str, value: Word) -> dict[str, object]:
    if option == "weight":
        return {"weight": integer(value, "weight", 0, 256)}
    if option == "maxconn":
        # As in HAProxy, 0 means no limit.
        return {"maxconn": integer(value, "maxconn", 0, 10_000_000) or None}
    if option == "error-limit":
        return {"error_limit": integer(value, option, 1, 10_000_000)}
    if option in ("rise", "fall"):
        return {option: integer(value, option, 1, 1000)}
    if option in ("inter", "fastinter", "downinter"):
        return {option: _duration(value)}
    if option == "port":
        return {"check_port": integer(value, "port", 1, 65535)}
    if option == "addr":
        if _is_ipv6(value.text):
            # No port can follow: a bare IPv6 address is not ambiguous here.
            return {"check_addr": value.text}
        try:
            host, port = parse_address(value.text, "check address")
        except ValueError as e:
            raise SyntaxProblem(value.location, str(e)) from None
        if port is not None:
            raise SyntaxProblem(
                value.location,
                "'addr' takes an address alone; give the port with 'port'",
            )
        return {"check_addr": host}
    if option == "init-state":
        return {"init_state": _choice(value, "initial state", INIT_STATES)}
    if option == "observe":
        return {"observe": _choice(value, "mode to observe", ("layer4", "layer7"))}
    if option == "verify":
        return {"verify": _choice(value, "server verify mode", SERVER_VERIFY_MODES)}
    if option == "sni":
        # Compiled by the checker, which knows the fetches.
        return {"sni": parse_expression(value)}
    if option in ("verifyhost", "check-sni"):
        return {option.replace("-", "_"): value.text}
    if option in ("ssl-min-ver", "ssl-max-ver"):
        return {option.replace("-", "_"): _tls_version(value)}
    assert option == "on-error"
    return {"on_error": _choice(value, "mode for on-error", ON_ERROR_MODES)}


def _tls_version(word: Word) -> str:
    version = _choice(word, "TLS version", HAPROXY_TLS_VERSIONS)
    if version not in TLS_VERSIONS:
        raise SyntaxProblem(
            word.location,
            f"certlb does not speak {version}, which is no longer safe; use "
            + " or ".join(TLS_VERSIONS),
        )
    return version


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def balance(ctx: Context) -> None:
    """C{balance ALGORITHM [arguments]}."""
    word = ctx.arg(1, "an algorithm, as in 'balance roundrobin'")
    text = word.text
    name, paren, rest = text.partition("(")
    argument: str | None = None
    if paren:
        if not rest.endswith(")") or name not in ("hdr", "random"):
            raise SyntaxProblem(
                word.location,
                f"{text!r}: only hdr(NAME) and random(DRAWS) take an argument in "
                "parentheses",
            )
        argument = rest[:-1]
    if name not in BALANCE_ALGORITHMS and not paren:
        # A plugin's algorithm, or a mistake: the checker tells which.
        args = tuple(w.text for w in ctx.words[2:])
        ctx.draft.plugin_balance = PluginUse(name, args, word.location)
        return
    ctx.draft.plugin_balance = None
    options = [w.text for w in ctx.words[2:]]
    where = word
    if name == "hdr":
        if not argument:
            raise SyntaxProblem(
                word.location, "'balance hdr' needs a header: hdr(NAME)"
            )
        _only(ctx, options, ("use_domain_only",))
    elif name == "random":
        if argument is not None:
            integer(Word(argument, word.location), "random's draws", 1, 100)
        else:
            argument = "2"
        _only(ctx, options, ())
    elif name == "url_param":
        if not options:
            raise SyntaxProblem(word.location, "'balance url_param' needs a parameter")
        argument, options = options[0], options[1:]
        _only(ctx, options, (), start=3)
    elif name == "hash":
        if not options:
            raise SyntaxProblem(
                word.location, "'balance hash' needs an expression, as in 'hash src'"
            )
        expression = ctx.words[2]
        parse_expression(expression)  # the checker compiles it
        where = expression
        argument, options = expression.text, options[1:]
        _only(ctx, options, (), start=3)
    elif name == "uri":
        _uri_options(ctx, options)
    else:
        _only(ctx, options, ())
    ctx.draft.balance = attrs.evolve(
        ctx.draft.balance,
        algorithm=name,
        argument=argument,
        options=tuple(options),
        location=where.location,
    )


def _only(
    ctx: Context, options: list[str], allowed: tuple[str, ...], start: int = 2
) -> None:
    """Refuse the C{options} not C{allowed}; they are C{ctx.words[start:]}."""
    for index, option in enumerate(options):
        if option not in allowed:
            raise SyntaxProblem(
                ctx.words[start + index].location,
                f"unexpected {option!r} after '{ctx.words[1].text}'"
                + (f"; it takes {', '.join(allowed)}" if allowed else ""),
            )


def _uri_options(ctx: Context, options: list[str]) -> None:
    i = 0
    while i < len(options):
        if options[i] == "whole":
            i += 1
        elif options[i] in ("len", "depth") and i + 1 < len(options):
            integer(ctx.words[3 + i], f"uri {options[i]}", 1, 10_000)
            i += 2
        else:
            raise SyntaxProblem(
                ctx.words[2 + i].location,
                f"unexpected {options[i]!r} after 'uri'; it takes whole, len N "
                "and depth N",
            )


def hash_type(ctx: Context) -> None:
    """C{hash-type map-based|consistent [FUNCTION] [avalanche]}."""
    method = _choice(ctx.arg(1, "map-based or consistent"), "hash method", HASH_METHODS)
    function, avalanche = "sdbm", False
    for word in ctx.words[2:]:
        if word.text == "avalanche":
            avalanche = True
        elif word.text in HASH_FUNCTIONS:
            function = word.text
        else:
            _choice(word, "hash function", (*HASH_FUNCTIONS, "avalanche"))
    ctx.draft.balance = attrs.evolve(
        ctx.draft.balance,
        hash_method=method,
        hash_function=function,
        avalanche=avalanche,
    )


def _backend_option(ctx: Context) -> None:
    """Warn of a backend's option in a frontend, where it does nothing."""
    no_effect_in(ctx, "frontend", "defaults or listen or backend")


def option_httpchk(ctx: Context) -> None:
    """C{option httpchk [METHOD] [URI] [VERSION] [HOST]}: HTTP health checks."""
    _backend_option(ctx)
    if ctx.negate:
        ctx.no_more(2)
        ctx.draft.http_check = None
        ctx.draft.httpchk = False
        ctx.draft.expect_location = None
        return
    ctx.draft.httpchk = True
    words = [w.text for w in ctx.words[2:]]
    if len(words) > 4:
        raise SyntaxProblem(
            ctx.words[6].location, "'option httpchk' takes METHOD URI VERSION HOST"
        )
    if len(words) == 1:
        words = ["OPTIONS", *words]
    method, uri, version, host = (*words, None, None, None, None)[:4]
    if method is not None and not re.fullmatch(r"[A-Z]+", method):
        raise SyntaxProblem(ctx.words[2].location, f"{method!r} is not an HTTP method")
    old = ctx.draft.http_check or HttpCheck()
    ctx.draft.http_check = HttpCheck(
        method or "OPTIONS",
        uri or "/",
        version or "HTTP/1.0",
        host,
        old.expect,
        old.pattern,
        old.negate,
    )


def http_check(ctx: Context) -> None:
    """C{http-check expect [!] status|rstatus|string|rstring PATTERN}."""
    action = ctx.arg(1, "'expect'")
    if action.text != "expect":
        raise SyntaxProblem(
            action.location,
            f"'http-check {action.text}' is an HAProxy form that certlb does not "
            "implement yet; it has 'http-check expect'",
        )
    i = 2
    negate = ctx.arg(i, "what to expect").text == "!"
    if negate:
        i += 1
    kind = ctx.arg(i, "status, rstatus, string or rstring")
    _choice(kind, "kind of expectation", ("status", "rstatus", "string", "rstring"))
    pattern = ctx.arg(i + 1, "a pattern")
    ctx.no_more(i + 2)
    if kind.text.startswith("r"):
        try:
            re.compile(pattern.text)
        except re.error as e:
            raise SyntaxProblem(
                pattern.location, f"bad regular expression {pattern.text!r}: {e}"
            ) from None
    elif kind.text == "status":
        for status in pattern.text.split(","):
            if not re.fullmatch(r"\d{3}(-\d{3})?", status):
                raise SyntaxProblem(
                    pattern.location,
                    f"{pattern.text!r}: 'status' takes statuses and ranges, as in "
                    "200, 200,204 or 200-399",
                )
    old = ctx.draft.http_check or HttpCheck()
    ctx.draft.http_check = HttpCheck(
        old.method, old.uri, old.version, old.host, kind.text, pattern.text, negate
    )
    ctx.draft.expect_location = ctx.keyword.location


def retries(ctx: Context) -> None:
    """C{retries N}."""
    value = ctx.arg(1, "a number of retries")
    ctx.no_more(2)
    ctx.draft.retries = integer(value, "retries", 0, 1000)


def retry_on(ctx: Context) -> None:
    """C{retry-on EVENT...}: what failures are retried (not cumulative)."""
    events: set[str | int] = set()
    for word in ctx.words[1:]:
        if word.text == "none" and len(ctx.words) > 2:
            raise SyntaxProblem(
                word.location, "retry-on 'none' means never retry: write it alone"
            )
        if word.text.isdigit() and int(word.text) in RETRY_ON_STATUSES:
            events.add(int(word.text))
        elif word.text in RETRY_ON_EVENTS:
            events.add(word.text)
        elif word.text == "0rtt-rejected":
            continue  # certlb accepts no early data: nothing to retry
        else:
            raise SyntaxProblem(
                word.location,
                f"retry-on {word.text!r}: use none, conn-failure, empty-response, "
                "junk-response, response-timeout, all-retryable-errors or one of "
                f"the statuses {', '.join(map(str, RETRY_ON_STATUSES))}"
                + suggest(word.text, RETRY_ON_EVENTS),
            )
    if len(ctx.words) < 2:
        raise SyntaxProblem(ctx.keyword.location, "'retry-on' needs at least one event")
    if "all-retryable-errors" in events:
        events |= {"conn-failure", "empty-response", "junk-response",
                   "response-timeout", 500, 502, 503, 504}  # fmt: skip
        events.discard("all-retryable-errors")
    if "none" in events:
        events = set()
    ctx.draft.retry_on = frozenset(events)


def option_redispatch(ctx: Context) -> None:
    """C{[no] option redispatch [INTERVAL]}."""
    _backend_option(ctx)
    if ctx.negate:
        ctx.no_more(2)
        ctx.draft.redispatch = None
        return
    interval = -1
    if len(ctx.words) > 2:
        word = ctx.words[2]
        if not re.fullmatch(r"-?\d+", word.text):
            raise SyntaxProblem(
                word.location, f"{word.text!r} is not an interval; give a number"
            )
        interval = int(word.text)
        ctx.no_more(3)
    ctx.draft.redispatch = interval if interval else None


def option_allbackups(ctx: Context) -> None:
    """C{[no] option allbackups}."""
    _backend_option(ctx)
    ctx.no_more(2)
    ctx.draft.allbackups = not ctx.negate


def grace(ctx: Context) -> None:
    """C{grace TIME}: at a stop, keep accepting for so long."""
    value = ctx.arg(1, "a duration, as in 10s")
    ctx.no_more(2)
    ctx.draft.grace = _duration(value)


def plugin_dir(ctx: Context) -> None:
    """C{plugin-dir DIR} (global): search the modules of DIR for plugins."""
    word = ctx.arg(1, "a directory of plugin modules")
    ctx.no_more(2)
    directory = os.path.abspath(ctx.path(word))
    if not os.path.isdir(directory):
        raise SyntaxProblem(
            word.location, f"plugin-dir {directory!r} is not a directory"
        )
    ctx.draft.plugin_dirs.append(directory)


def hard_stop_after(ctx: Context) -> None:
    """C{hard-stop-after TIME} (global)."""
    value = ctx.arg(1, "a duration, as in 30s")
    ctx.no_more(2)
    ctx.draft.hard_stop_after = _duration(value)


def ticket_key_lifetime(ctx: Context) -> None:
    """C{tune.ssl.ticket-key-lifetime TIME} (global): how often each TLS bind
    gets new session-ticket keys; 0: never."""
    value = ctx.arg(1, "a duration, as in 1h, or 0 for never")
    ctx.no_more(2)
    lifetime = _duration(value, allow_zero=True)
    if 0 < lifetime < 1000:
        raise SyntaxProblem(
            value.location,
            f"{value.text!r}: new ticket keys that often would end most "
            "sessions before they are resumed; give at least 1s (or 0 for never)",
        )
    ctx.draft.ticket_key_lifetime = lifetime


MAX_WORKERS = 1024


def nbproc(ctx: Context) -> None:
    """C{nbproc N} (global): run N worker processes; C{nbthread N} is read as
    C{nbproc N}, with a warning, since certlb's workers are processes."""
    name = ctx.keyword.text
    value = ctx.arg(1, "a number of worker processes")
    ctx.no_more(2)
    ctx.draft.nbproc = integer(value, name, 1, MAX_WORKERS)
    if name == "nbthread":
        ctx.problem(
            ctx.keyword.location,
            f"'nbthread {value.text}' starts {value.text} worker processes, as "
            f"'nbproc {value.text}' does: certlb's workers are processes, not "
            "threads, each with its own health checks, stick tables and "
            f"connection limits; write 'nbproc {value.text}' to say so",
            WARNING,
        )
