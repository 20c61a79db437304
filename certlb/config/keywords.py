"""The keywords of each section, and what each one does to its section.

A handler reads the words of one line into the L{Draft} of its section; it
raises L{SyntaxProblem} for a line it cannot read, or adds a L{Problem} to
C{ctx.problems} and carries on when the rest of the line is still usable.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from certlb.config import (
    backend_keywords,
    identity_keywords,
    log_keywords,
    request_rules,
    stick_keywords,
)
from certlb.config.addresses import parse_address, parse_duration
from certlb.config.conditions import (
    ACL_NAME,
    SyntaxProblem,
    parse_acl_body,
)
from certlb.config.errors import WARNING, suggest
from certlb.config.lexer import Word
from certlb.config.model import (
    ALL_ERRORS,
    HTTPLOG_FORMAT,
    VERIFY_MODES,
    Bind,
    ForwardFor,
    PluginUse,
    UseBackend,
)
from certlb.config.syntax import Context, Keyword, condition, integer, no_effect_in
from certlb.tls.verify_codes import VERIFY_CODE_NUMBERS, VERIFY_CODES

PROXY_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")
SECTION_NAMES = {
    "g": "global", "d": "defaults", "f": "frontend", "l": "listen", "b": "backend",
}  # fmt: skip


def _mode(ctx: Context) -> None:
    mode = ctx.arg(1, "a mode, as in 'mode http'")
    if mode.text == "tcp":
        raise SyntaxProblem(
            mode.location,
            "certlb proxies HTTP only: 'mode tcp' is not supported; use 'mode http'",
        )
    if mode.text != "http":
        raise SyntaxProblem(
            mode.location, f"unknown mode {mode.text!r}; use 'mode http'"
        )
    ctx.no_more(2)


BIND_OPTIONS = (
    "ssl", "crt", "ca-file", "verify", "crt-ignore-err", "ca-ignore-err", "crl-file",
)  # fmt: skip
BIND_OPTIONS_LATER = frozenset(
    """
    alpn npn ciphers ciphersuites curves ecdhe ssl-min-ver ssl-max-ver
    no-sslv3 no-tlsv10 no-tlsv11 no-tlsv12 no-tlsv13 force-tlsv12
    force-tlsv13 strict-sni no-ca-names ca-verify-file ca-sign-file crt-list
    generate-certificates allow-0rtt no-tls-tickets prefer-client-ciphers
    name id accept-proxy accept-netscaler-cip transparent v4v6 v6only
    interface defer-accept tfo process thread maxconn backlog mss nice
    namespace level mode user group uid gid severity-output expose-fd proto
    quic-cc-algo
    """.split()
)


def _error_codes(word: Word) -> frozenset[int] | str:
    """Read C{all}, or a comma-separated list of verification error numbers
    or C{X509_V_ERR_*} names."""
    if word.text == ALL_ERRORS:
        return ALL_ERRORS
    codes = set()
    errors = {name: code for name, code in VERIFY_CODE_NUMBERS.items() if code}
    for item in word.text.split(","):
        if item == ALL_ERRORS:
            raise SyntaxProblem(
                word.location, "'all' already means every error: write it alone"
            )
        if not item:
            raise SyntaxProblem(
                word.location,
                f"{word.text!r} has an empty item: remove the extra comma",
            )
        if item.isdigit() and int(item) in VERIFY_CODES and int(item) != 0:
            codes.add(int(item))
        elif item in errors:
            codes.add(errors[item])
        else:
            hint = "" if item.isdigit() else suggest(item.upper(), errors)
            raise SyntaxProblem(
                word.location,
                f"{item!r} is not a certificate verification error; write 'all', "
                "numbers such as 10,23 or names such as "
                "X509_V_ERR_CERT_HAS_EXPIRED (certlb.cfg(5) lists them)" + hint,
            )
    return frozenset(codes)


def _bind(ctx: Context) -> None:
    address = ctx.arg(1, "an address, as in 'bind 127.0.0.1:8443 ssl crt server.pem'")
    options: dict[str, str | bool | frozenset[int]] = {}
    i = 2
    while i < len(ctx.words):
        word = ctx.words[i]
        name = word.text
        if name == "ssl":
            options["ssl"] = True
        elif name in ("crt", "ca-file", "crl-file"):
            options[name] = ctx.path(ctx.arg(i + 1, "a file name"))
            i += 1
        elif name in ("crt-ignore-err", "ca-ignore-err"):
            what = "'all', or error codes or names separated by commas"
            codes = _error_codes(ctx.arg(i + 1, what))
            before = options.get(name, frozenset())
            # Given twice, the lists add up, as in HAProxy.
            if codes == ALL_ERRORS or before == ALL_ERRORS:
                options[name] = ALL_ERRORS
            else:
                assert isinstance(before, frozenset) and isinstance(codes, frozenset)
                options[name] = before | codes
            i += 1
        elif name == "verify":
            mode = ctx.arg(i + 1, "one of none, optional, required")
            if mode.text not in VERIFY_MODES:
                raise SyntaxProblem(
                    mode.location,
                    f"unknown verify mode {mode.text!r}; use none, optional or "
                    "required",
                )
            options["verify"] = mode.text
            i += 1
        elif name in BIND_OPTIONS_LATER:
            raise SyntaxProblem(
                word.location,
                f"bind option '{name}' is an HAProxy option that certlb does not "
                "implement yet",
            )
        else:
            known = [*BIND_OPTIONS, *sorted(BIND_OPTIONS_LATER)]
            raise SyntaxProblem(
                word.location, f"unknown bind option '{name}'" + suggest(name, known)
            )
        i += 1
    for text in address.text.split(","):
        try:
            host, port = parse_address(text, "bind address")
        except ValueError as e:
            raise SyntaxProblem(address.location, str(e)) from None
        if port is None:
            raise SyntaxProblem(
                address.location,
                f"bind address {text!r} has no port; write it as "
                f"{text or '*'}:PORT, as in *:443",
            )
        ctx.draft.binds.append(
            Bind(
                host=host,
                port=port,
                ssl=bool(options.get("ssl", False)),
                crt=_str_or_none(options.get("crt")),
                ca_file=_str_or_none(options.get("ca-file")),
                verify=str(options.get("verify", "none")),
                crt_ignore_err=_codes(options.get("crt-ignore-err")),
                ca_ignore_err=_codes(options.get("ca-ignore-err")),
                crl_file=_str_or_none(options.get("crl-file")),
                location=address.location,
            )
        )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _codes(value: object) -> frozenset[int] | str:
    if value == ALL_ERRORS or isinstance(value, frozenset):
        return value
    return frozenset()


def _default_backend(ctx: Context) -> None:
    name = ctx.arg(1, "a backend name")
    ctx.no_more(2)
    ctx.draft.default_backend = name.text
    ctx.draft.default_backend_location = name.location


def _use_backend(ctx: Context) -> None:
    name = ctx.arg(1, "a backend name, as in 'use_backend app if { ssl_fc_has_crt }'")
    rule = condition(ctx, 2)
    ctx.draft.use_backends.append(UseBackend(name.text, rule, name.location))


def _maxconn(ctx: Context) -> None:
    value = ctx.arg(1, "a number of connections")
    ctx.no_more(2)
    ctx.draft.maxconn = integer(value, "maxconn", 1, 10_000_000)


TIMEOUTS = {
    "connect": "dlb",
    "client": "dfl",
    "server": "dlb",
    "http-request": "dfl",
    "http-keep-alive": "dfl",
    "queue": "dlb",
    "check": "dlb",
    "tunnel": "dlb",
}
TIMEOUTS_LATER = frozenset("client-fin server-fin tarpit".split())


def _timeout(ctx: Context) -> None:
    which = ctx.arg(1, f"what to time, one of {', '.join(TIMEOUTS)}")
    value = ctx.arg(2, "a duration, as in 5s")
    ctx.no_more(3)
    if which.text in TIMEOUTS_LATER:
        raise SyntaxProblem(
            which.location,
            f"'timeout {which.text}' is an HAProxy timeout that certlb does not "
            "implement yet",
        )
    if which.text not in TIMEOUTS:
        raise SyntaxProblem(
            which.location,
            f"unknown timeout '{which.text}'" + suggest(which.text, list(TIMEOUTS)),
        )
    try:
        ms = parse_duration(value.text)
    except ValueError as e:
        raise SyntaxProblem(value.location, str(e)) from None
    if ctx.section[0] not in TIMEOUTS[which.text]:
        ctx.problem(
            which.location,
            f"'timeout {which.text}' has no effect in a {ctx.section} section; "
            f"it belongs in {_section_list(TIMEOUTS[which.text])} sections",
            WARNING,
        )
    elif which.text == "tunnel":
        ctx.problem(
            which.location,
            "'timeout tunnel' has no effect: certlb opens no tunnels (it refuses "
            "CONNECT and protocol upgrades such as WebSocket)",
            WARNING,
        )
    ctx.draft.timeouts[which.text.replace("-", "_")] = ms


def _option(ctx: Context) -> None:
    name = ctx.arg(1, "an option name, as in 'option forwardfor'")
    handler = OPTIONS.get(name.text)
    if handler is None and ctx.section[0] in "dlb":
        # A plugin's health check, or a mistake: the checker tells which.
        kept = [u for u in ctx.draft.plugin_options if u.name != name.text]
        if not ctx.negate:
            args = tuple(w.text for w in ctx.words[2:])
            kept.append(PluginUse(name.text, args, name.location))
        ctx.draft.plugin_options = kept
        return
    if handler is None:
        raise SyntaxProblem(
            name.location,
            f"unknown or unsupported option '{name.text}'"
            + suggest(name.text, list(OPTIONS)),
        )
    handler(ctx)


def _option_http_server_close(ctx: Context) -> None:
    ctx.no_more(2)
    ctx.draft.http_server_close = not ctx.negate


def _option_http_keep_alive(ctx: Context) -> None:
    ctx.no_more(2)
    ctx.draft.http_server_close = ctx.negate


def _option_forwardfor(ctx: Context) -> None:
    if ctx.negate:
        ctx.no_more(2)
        ctx.draft.forwardfor = None
        return
    header, network, if_none = "X-Forwarded-For", None, False
    i = 2
    while i < len(ctx.words):
        word = ctx.words[i]
        if word.text == "header":
            header = ctx.arg(i + 1, "a header name").text
            i += 1
        elif word.text == "except":
            network = ctx.arg(i + 1, "a network, as in 10.0.0.0/8").text
            _check_network(ctx.words[i + 1])
            i += 1
        elif word.text == "if-none":
            if_none = True
        else:
            raise SyntaxProblem(
                word.location,
                f"unknown 'option forwardfor' argument {word.text!r}; it takes "
                "'except NETWORK', 'header NAME' and 'if-none'",
            )
        i += 1
    ctx.draft.forwardfor = ForwardFor(header, network, if_none)


def _option_httplog(ctx: Context) -> None:
    if len(ctx.words) > 2 and ctx.words[2].text == "clf" and not ctx.negate:
        raise SyntaxProblem(
            ctx.words[2].location,
            "'option httplog clf' (the Common Log Format) is not implemented "
            "yet; write 'option httplog', or a 'log-format' string",
        )
    ctx.no_more(2)
    no_effect_in(ctx, "backend", "defaults, frontend or listen")
    if ctx.negate:
        ctx.draft.log_format = None
    else:
        ctx.draft.log_format = HTTPLOG_FORMAT
        ctx.draft.log_format_location = ctx.words[1].location


def _log_format(ctx: Context) -> None:
    text = ctx.arg(1, "a log-format string, as in 'log-format \"%ci:%cp %ST %{+Q}r\"'")
    if len(ctx.words) > 2:
        raise SyntaxProblem(
            ctx.words[2].location,
            "'log-format' takes one string: put it in double quotes, as in "
            "'log-format \"%ci:%cp %ST\"'",
        )
    ctx.draft.log_format = text.text
    ctx.draft.log_format_location = text.location


def _check_network(word: Word) -> None:
    try:
        ipaddress.ip_network(word.text, strict=False)
    except ValueError:
        raise SyntaxProblem(
            word.location, f"{word.text!r} is not a network; write it as 10.0.0.0/8"
        ) from None


OPTIONS: dict[str, Callable[[Context], None]] = {
    "http-server-close": _option_http_server_close,
    "http-keep-alive": _option_http_keep_alive,
    "forwardfor": _option_forwardfor,
    "httplog": _option_httplog,
    "httpchk": backend_keywords.option_httpchk,
    "redispatch": backend_keywords.option_redispatch,
    "allbackups": backend_keywords.option_allbackups,
    "client-cert-headers": identity_keywords.option_client_cert_headers,
    "forwarded-client-cert": identity_keywords.option_forwarded_client_cert,
}


def _acl(ctx: Context) -> None:
    name = ctx.arg(1, "a name and a fetch, as in 'acl has_cert ssl_fc_has_crt'")
    if not ACL_NAME.match(name.text):
        raise SyntaxProblem(
            name.location,
            f"{name.text!r} is not a valid ACL name: use letters, digits, '-', "
            "'_', '.' and ':'",
        )
    ctx.draft.acls.append(parse_acl_body(name.text, ctx.words[2:], name.location))


def _section_list(sections: str) -> str:
    return " or ".join(SECTION_NAMES[s] for s in sections)


KEYWORDS: dict[str, Keyword] = {
    "mode": Keyword("dflb", _mode),
    "bind": Keyword("fl", _bind),
    "server": Keyword("lb", backend_keywords.server),
    "default_backend": Keyword("dfl", _default_backend),
    "use_backend": Keyword("fl", _use_backend),
    "balance": Keyword("dlb", backend_keywords.balance),
    "hash-type": Keyword("dlb", backend_keywords.hash_type),
    "http-check": Keyword("dlb", backend_keywords.http_check),
    "retries": Keyword("dlb", backend_keywords.retries),
    "retry-on": Keyword("dlb", backend_keywords.retry_on),
    "stick-table": Keyword("lb", stick_keywords.stick_table),
    "stick": Keyword("lb", stick_keywords.stick),
    "grace": Keyword("gdfl", backend_keywords.grace),
    "hard-stop-after": Keyword("g", backend_keywords.hard_stop_after),
    "nbproc": Keyword("g", backend_keywords.nbproc),
    "nbthread": Keyword("g", backend_keywords.nbproc),
    "plugin-dir": Keyword("g", backend_keywords.plugin_dir),
    "tune.ssl.ticket-key-lifetime": Keyword("g", backend_keywords.ticket_key_lifetime),
    "maxconn": Keyword("gdfl", _maxconn),
    "timeout": Keyword("dflb", _timeout),
    "option": Keyword("dflb", _option),
    "acl": Keyword("flb", _acl),
    "http-request": Keyword("flb", request_rules.http_request),
    "reqadd": Keyword("flb", request_rules.reqadd),
    "redirect": Keyword("flb", request_rules.redirect),
    "log-format": Keyword("dfl", _log_format),
    "log": Keyword("gdflb", log_keywords.log),
}

_LATER = "'{name}' is an HAProxy keyword that certlb does not implement yet"
UNSUPPORTED: dict[str, str] = {
    name: _LATER
    for name in frozenset(
        """
        reqrep reqdel rspadd http-response http-after-response
        tcp-request tcp-response stick-store persist
        cookie errorfile errorloc monitor-uri stats capture
        unique-id-format unique-id-header fullconn dispatch
        http-reuse compression filter use-server force-persist
        ignore-persist block rate-limit default-server server-template
        email-alert cpu-map ssl-default-bind-options
        ssl-default-bind-ciphers ssl-default-bind-ciphersuites
        ssl-default-server-options tune.ssl.default-dh-param crt-base
        ca-base description
        """.split()
    )
}
UNSUPPORTED.update(
    {
        "daemon": "'{name}': twistd runs certlb in the background unless it is "
        "given -n (--nodaemon); remove '{name}'",
        "user": "'{name}': give twistd --uid instead; remove '{name}'",
        "group": "'{name}': give twistd --gid instead; remove '{name}'",
        "uid": "'{name}': give twistd --uid instead; remove '{name}'",
        "gid": "'{name}': give twistd --gid instead; remove '{name}'",
        "pidfile": "'{name}': give twistd --pidfile instead; remove '{name}'",
        "chroot": "'{name}': give twistd --chroot instead; remove '{name}'",
    }
)
