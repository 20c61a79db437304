"""The configuration model: frozen values, built by the parser or by hand.

Nothing here knows about sockets or the reactor.  Every object carries the
L{Location} it was read from, so that later checks can name the file and line.
Times are in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from attrs import validators as v

from certlb.config import validators as valid
from certlb.config.addresses import format_address
from certlb.config.errors import Location, Problem

VERIFY_MODES = ("none", "optional", "required")
SERVER_VERIFY_MODES = ("none", "required")
TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")
BALANCE_ALGORITHMS = (
    "roundrobin", "static-rr", "leastconn", "first", "source", "uri",
    "url_param", "hdr", "random", "hash",
)  # fmt: skip
# The algorithms that tie a request to a server by what it carries.
# 'option httplog': HAProxy's HTTP log format (its manual, 8.2.3).
HTTPLOG_FORMAT = (
    "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc "
    "%ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r"
)
HASHING_ALGORITHMS = ("source", "uri", "url_param", "hdr", "hash")
HASH_METHODS = ("map-based", "consistent")
HASH_FUNCTIONS = ("sdbm", "djb2", "crc32", "none")
ON_ERROR_MODES = ("fastinter", "fail-check", "sudden-death", "mark-down")
# How often TLS binds get new session-ticket keys, by default: an hour, in ms.
TICKET_KEY_LIFETIME = 3_600_000
INIT_STATES = ("fully-up", "up", "down", "fully-down")
RETRY_ON_EVENTS = (
    "none", "conn-failure", "empty-response", "junk-response", "response-timeout",
    "all-retryable-errors",
)  # fmt: skip
STICK_TABLE_TYPES = ("ip", "ipv6", "integer", "string", "binary")
STICK_RULE_KINDS = ("on", "match", "store-request")
RETRY_ON_STATUSES = (401, 403, 404, 408, 421, 425, 429, 500, 501, 502, 503, 504)
NOWHERE = Location("<python>", 0)


T = TypeVar("T")


def _expression(value: SampleExpression | str | None) -> SampleExpression | None:
    """A sample expression, or its text (as in C{hdr(host),lower})."""
    return SampleExpression.parse(value) if isinstance(value, str) else value


def _condition(value: Condition | str | None) -> Condition | None:
    """A condition, or its text (as in C{if { ssl_c_verify 0 }})."""
    return Condition.parse(value) if isinstance(value, str) else value


def _optional_condition(
    instance: object, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if not (value is None or isinstance(value, Condition)):
        want = "a Condition, its text (as in 'if { ssl_c_verify 0 }') or None"
        valid.fail(instance, attribute, value, want, TypeError)


def _retry_on(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    known = (*RETRY_ON_EVENTS, *RETRY_ON_STATUSES)
    if not isinstance(value, frozenset) or not value <= frozenset(known):
        valid.fail(
            instance, attribute, value, "a set of " + ", ".join(map(repr, known))
        )


@attrs.frozen
class SampleExpression:
    """A fetch followed by converters, as in C{hdr(host),lower}.

    @ivar fetch: the fetch name, e.g. C{ssl_fc_has_crt}.
    @ivar args: the fetch's arguments, as written.
    @ivar converters: C{(name, args)} pairs applied in order.
    """

    fetch: str = attrs.field(validator=valid.nonempty)
    args: tuple[str, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(str, "a tuple of strings"),
    )
    converters: tuple[tuple[str, tuple[str, ...]], ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(tuple, "a tuple of (name, args)"),
    )
    location: Location = attrs.field(default=NOWHERE, validator=valid.location)

    @classmethod
    def parse(cls, text: str) -> SampleExpression:
        """The expression C{text}, as a configuration writes it
        (C{hdr(host),lower}).

        @raise ValueError: it is not an expression.
        """
        from certlb.config.conditions import parse_expression

        words = _words(text, "an expression")
        if len(words) != 1:
            raise ValueError(f"{text!r} is not one expression")
        return _parsed(text, parse_expression, words[0])

    def __str__(self) -> str:
        def call(name: str, args: tuple[str, ...]) -> str:
            return f"{name}({','.join(args)})" if args else name

        return ",".join(
            [call(self.fetch, self.args)] + [call(n, a) for n, a in self.converters]
        )


@attrs.frozen
class AclDef:
    """An ACL: a sample expression tested against patterns.

    @ivar name: the ACL's name, or C{None} for an anonymous ACL written in
        braces inside a condition.
    @ivar flags: the flags as written (C{-i}, C{-m beg}, ...), in order.
    @ivar patterns: the values to match, as written (an integer operator such
        as C{gt} is the first pattern).
    """

    name: str | None = attrs.field(validator=valid.optional_text)
    expression: SampleExpression = attrs.field(
        converter=_expression,
        validator=valid.of_type(SampleExpression, "an expression"),
    )
    flags: tuple[str, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(str, "a tuple of strings"),
    )
    patterns: tuple[str, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(str, "a tuple of strings"),
    )
    location: Location = attrs.field(default=NOWHERE, validator=valid.location)

    @classmethod
    def parse(cls, name: str | None, text: str) -> AclDef:
        """The ACL C{name} (C{None}: anonymous) that C{text} defines, as an
        C{acl} line writes it after the name (C{ssl_c_verify 0}, C{path -m
        beg /api}).

        @raise ValueError: C{text} is not an ACL.
        """
        from certlb.config.conditions import parse_acl_body

        return _parsed(text, parse_acl_body, name, _words(text, "an ACL"), NOWHERE)


@attrs.frozen
class AclTerm:
    """One term of a condition: a named or an anonymous ACL, maybe negated."""

    negated: bool
    name: str | None = None
    anonymous: AclDef | None = None
    location: Location = NOWHERE

    def __attrs_post_init__(self) -> None:
        if (self.name is None) == (self.anonymous is None):
            raise ValueError("an ACL term has either a name or an anonymous ACL")


@attrs.frozen
class Condition:
    """C{if}/C{unless} followed by OR'ed groups of AND'ed terms.

    @ivar unless: true for C{unless}: the rule applies when the terms do not
        match.
    @ivar groups: the alternatives; within one, every term must match.
    """

    unless: bool
    groups: tuple[tuple[AclTerm, ...], ...]
    location: Location = NOWHERE

    @classmethod
    def parse(cls, text: str) -> Condition:
        """The condition C{text}, as a rule writes it after its action:
        C{if { ssl_c_verify 0 }}, C{unless valid || local}; a text that does
        not begin with C{if} or C{unless} is taken as after an C{if}.

        @raise ValueError: C{text} is not a condition.
        """
        from certlb.config.conditions import parse_condition
        from certlb.config.lexer import Word

        words = _words(text, "a condition")
        if words[0].text not in ("if", "unless") or words[0].literal:
            words = [Word("if", NOWHERE), *words]
        return _parsed(text, parse_condition, words)


ALL_ERRORS = "all"


def _words(text: str, what: str) -> list[Any]:
    """The words of C{text}, read as on a configuration line."""
    from certlb.config.lexer import tokenize

    problems: list[Problem] = []
    lines = (
        list(tokenize(text, NOWHERE.file, {}, problems))
        if isinstance(text, str)
        else []
    )
    if problems or len(lines) != 1:
        why = f": {problems[0].message}" if problems else ""
        raise ValueError(f"{text!r} is not {what}{why}")
    return list(lines[0].words)


def _parsed(text: str, parse: Callable[..., T], *args: Any) -> T:
    """C{parse(*args)}, its syntax errors raised as C{ValueError}."""
    from certlb.config.conditions import SyntaxProblem

    try:
        return parse(*args)
    except SyntaxProblem as e:
        raise ValueError(f"{text!r}: {e.message}") from None


@attrs.frozen
class Bind:
    """A listening address of a frontend, with its TLS settings.

    File paths are absolute once parsed (relative ones are resolved against
    the configuration file's directory).

    @ivar crt_ignore_err: verification error codes let through at depth 0
        (the client's certificate), or L{ALL_ERRORS}.
    @ivar ca_ignore_err: the same at depth > 0 (the CAs of its chain).
    @ivar crl_file: a PEM of CRLs; when given, revocation is checked for the
        whole chain.
    """

    host: str = attrs.field(converter=valid.any_host, validator=valid.text)
    port: int = attrs.field(validator=valid.port)
    ssl: bool = attrs.field(default=False, validator=valid.flag)
    crt: str | None = attrs.field(
        default=None, converter=valid.as_path, validator=valid.optional_path
    )
    ca_file: str | None = attrs.field(
        default=None, converter=valid.as_path, validator=valid.optional_path
    )
    verify: str = attrs.field(default="none", validator=valid.one_of(VERIFY_MODES))
    crt_ignore_err: frozenset[int] | str = attrs.field(
        default=frozenset(), converter=valid.error_codes, validator=valid.ignored_errors
    )
    ca_ignore_err: frozenset[int] | str = attrs.field(
        default=frozenset(), converter=valid.error_codes, validator=valid.ignored_errors
    )
    crl_file: str | None = attrs.field(
        default=None, converter=valid.as_path, validator=valid.optional_path
    )
    location: Location = attrs.field(default=NOWHERE, validator=valid.location)

    @property
    def address(self) -> str:
        """The address as a user would write it, IPv6 in brackets."""
        return format_address(self.host, self.port)


@attrs.frozen
class Server:
    """A server of a backend.

    Times are in milliseconds.  C{check_port} and C{check_addr} send health
    checks elsewhere than the traffic; C{fastinter} and C{downinter} default
    to C{inter}.

    TLS towards the server (C{ssl}): file paths are absolute once parsed.

    @ivar verify: C{none} or C{required}; C{None} when not written, which
        means C{required}, as in HAProxy.
    @ivar sni: the expression whose value is sent as SNI, per request.
    @ivar verifyhost: the name the certificate must hold when no SNI is sent.
    @ivar check_sni: the SNI of health checks.
    @ivar ssl_min_ver: C{TLSv1.2} or C{TLSv1.3}; C{ssl_max_ver} likewise.
    """

    name: str = attrs.field(validator=valid.nonempty)
    host: str = attrs.field(validator=valid.host)
    port: int = attrs.field(validator=valid.port)
    check: bool = attrs.field(default=False, validator=valid.flag)
    weight: int = attrs.field(default=1, validator=valid.integer(0, 256))
    disabled: bool = attrs.field(default=False, validator=valid.flag)
    backup: bool = attrs.field(default=False, validator=valid.flag)
    maxconn: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    check_ssl: bool = attrs.field(default=False, validator=valid.flag)
    inter: int = attrs.field(default=2000, validator=valid.integer(1))
    fastinter: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    downinter: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    rise: int = attrs.field(default=2, validator=valid.integer(1))
    fall: int = attrs.field(default=3, validator=valid.integer(1))
    check_port: int | None = attrs.field(
        default=None, validator=valid.integer(1, 65535, optional=True)
    )
    check_addr: str | None = attrs.field(default=None, validator=valid.optional_text)
    init_state: str | None = attrs.field(
        default=None, validator=valid.one_of(INIT_STATES, optional=True)
    )
    observe: str | None = attrs.field(
        default=None, validator=valid.one_of(("layer4", "layer7"), optional=True)
    )
    error_limit: int = attrs.field(default=10, validator=valid.integer(1))
    on_error: str = attrs.field(
        default="fail-check", validator=valid.one_of(ON_ERROR_MODES)
    )
    ssl: bool = attrs.field(default=False, validator=valid.flag)
    verify: str | None = attrs.field(
        default=None, validator=valid.one_of(SERVER_VERIFY_MODES, optional=True)
    )
    ca_file: str | None = attrs.field(
        default=None, converter=valid.as_path, validator=valid.optional_path
    )
    crl_file: str | None = attrs.field(
        default=None, converter=valid.as_path, validator=valid.optional_path
    )
    crt: str | None = attrs.field(
        default=None, converter=valid.as_path, validator=valid.optional_path
    )
    sni: SampleExpression | None = attrs.field(
        default=None,
        converter=_expression,
        validator=valid.of_type(SampleExpression, "an expression", optional=True),
    )
    verifyhost: str | None = attrs.field(default=None, validator=valid.optional_text)
    check_sni: str | None = attrs.field(default=None, validator=valid.optional_text)
    ssl_min_ver: str | None = attrs.field(
        default=None, validator=valid.one_of(TLS_VERSIONS, optional=True)
    )
    ssl_max_ver: str | None = attrs.field(
        default=None, validator=valid.one_of(TLS_VERSIONS, optional=True)
    )
    location: Location = NOWHERE

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    @property
    def verifies(self) -> bool:
        """Whether the server's certificate is verified (C{verify required},
        written or by default)."""
        return self.verify != "none"


@attrs.frozen
class Timeouts:
    """The timeouts of a proxy, in milliseconds; C{None} means certlb's default."""

    connect: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    client: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    server: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    http_request: int | None = attrs.field(
        default=None, validator=valid.positive_or_none
    )
    http_keep_alive: int | None = attrs.field(
        default=None, validator=valid.positive_or_none
    )
    queue: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    check: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    tunnel: int | None = attrs.field(default=None, validator=valid.positive_or_none)


@attrs.frozen
class HttpCheck:
    """C{option httpchk} and C{http-check expect}: what a health check sends
    and what it must get back.

    @ivar expect: C{status}, C{rstatus}, C{string} or C{rstring}, or C{None}
        for HAProxy's default (a 2xx or 3xx status).
    @ivar negate: C{http-check expect !...}: the check passes when the
        expectation fails.
    """

    method: str = attrs.field(default="OPTIONS", validator=valid.nonempty)
    uri: str = attrs.field(default="/", validator=valid.nonempty)
    version: str = attrs.field(default="HTTP/1.0", validator=valid.nonempty)
    host: str | None = attrs.field(default=None, validator=valid.optional_text)
    expect: str | None = attrs.field(
        default=None,
        validator=valid.one_of(
            ("status", "rstatus", "string", "rstring"), optional=True
        ),
    )
    pattern: str = attrs.field(default="", validator=valid.text)
    negate: bool = attrs.field(default=False, validator=valid.flag)


@attrs.frozen
class Balance:
    """C{balance} and C{hash-type}: how a backend chooses its servers.

    @ivar argument: the header of C{hdr(NAME)}, the parameter of
        C{url_param}, the expression of C{hash}, the draws of C{random}.
    @ivar options: C{whole}, C{len N}, C{depth N} (uri), C{use_domain_only}
        (hdr), as written.
    """

    algorithm: str = attrs.field(
        default="roundrobin", validator=v.in_(BALANCE_ALGORITHMS)
    )
    argument: str | None = None
    options: tuple[str, ...] = ()
    hash_method: str = attrs.field(default="map-based", validator=v.in_(HASH_METHODS))
    hash_function: str = attrs.field(default="sdbm", validator=v.in_(HASH_FUNCTIONS))
    avalanche: bool = False
    location: Location = attrs.field(default=NOWHERE, eq=False)


@attrs.frozen
class ForwardFor:
    """C{option forwardfor}: tell servers the client's address in a header."""

    header: str = attrs.field(default="X-Forwarded-For", validator=valid.nonempty)
    except_network: str | None = attrs.field(default=None, validator=valid.network)
    if_none: bool = attrs.field(default=False, validator=valid.flag)


@attrs.frozen
class UseBackend:
    """C{use_backend NAME [if|unless COND]}."""

    backend: str = attrs.field(validator=valid.nonempty)
    condition: Condition | None = attrs.field(
        default=None, converter=_condition, validator=_optional_condition
    )
    location: Location = attrs.field(default=NOWHERE, validator=valid.location)


REDIRECT_KINDS = ("location", "prefix", "scheme")
REDIRECT_CODES = (301, 302, 303, 307, 308)


@attrs.frozen
class Redirect:
    """C{redirect} and C{http-request redirect}: answer with a redirection.

    @ivar kind: C{location} (the target is the new URL), C{prefix} (it goes
        before the request's path) or C{scheme} (it replaces the scheme).
    @ivar log_format: the target is a log-format string (C{http-request
        redirect}); for the C{redirect} keyword it is taken as written.
    @ivar set_cookie: C{NAME[=value]} to set; C{clear_cookie} to clear.
    """

    kind: str = attrs.field(validator=v.in_(REDIRECT_KINDS))
    target: str
    code: int = attrs.field(default=302, validator=v.in_(REDIRECT_CODES))
    drop_query: bool = False
    append_slash: bool = False
    keep_query: bool = False
    set_cookie: str | None = None
    clear_cookie: str | None = None
    log_format: bool = False
    condition: Condition | None = None
    location: Location = NOWHERE


HEADER_ACTIONS = ("add-header", "set-header", "del-header")


@attrs.frozen
class HeaderRule:
    """C{http-request add-header|set-header|del-header}, and C{reqadd}.

    @ivar value: the value, a log-format string when C{log_format} (C{None}
        for C{del-header}).
    """

    action: str = attrs.field(validator=v.in_(HEADER_ACTIONS))
    name: str
    value: str | None = None
    log_format: bool = True
    condition: Condition | None = None
    location: Location = NOWHERE


@attrs.frozen
class Deny:
    """C{http-request deny [deny_status N]}."""

    status: int = 403
    condition: Condition | None = None
    location: Location = NOWHERE


@attrs.frozen
class Return:
    """C{http-request return}: answer without contacting a server.

    @ivar body: the body: a log-format string when C{log_format}; C{file}
        names a file whose content is the body instead.
    @ivar headers: C{(name, log-format value)} pairs.
    """

    status: int = 200
    content_type: str | None = None
    body: str | None = None
    log_format: bool = False
    file: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    condition: Condition | None = None
    location: Location = NOWHERE


_WORDS = "a tuple of words (str), as written after the name"


@attrs.frozen
class PluginAction:
    """C{http-request NAME ARGS [if|unless COND]}, NAME an action of a plugin
    (an L{certlb.rules.interfaces.IRequestActionType}).

    @ivar args: the words after the name, up to C{if}/C{unless}.
    """

    name: str = attrs.field(validator=valid.nonempty)
    args: tuple[str, ...] = attrs.field(
        default=(), converter=valid.as_tuple, validator=valid.items(str, _WORDS)
    )
    condition: Condition | None = attrs.field(
        default=None, converter=_condition, validator=_optional_condition
    )
    location: Location = NOWHERE


RequestRule = Redirect | HeaderRule | Deny | Return | PluginAction


@attrs.frozen
class PluginUse:
    """C{balance NAME ARGS} or C{option NAME ARGS}, NAME of a plugin (an
    L{certlb.rules.interfaces.IBalancerType} or
    L{certlb.rules.interfaces.IHealthCheckType})."""

    name: str = attrs.field(validator=valid.nonempty)
    args: tuple[str, ...] = attrs.field(
        default=(), converter=valid.as_tuple, validator=valid.items(str, _WORDS)
    )
    location: Location = NOWHERE


XFCC_MODES = ("sanitize", "sanitize-set", "forward", "append")
XFCC_FIELDS = ("Hash", "Cert", "Chain", "Subject", "URI", "DNS")


@attrs.frozen
class IdentityHeaders:
    """How a frontend tells servers who the client is, in the standard
    headers.

    @ivar client_cert: C{option client-cert-headers}: RFC 9440's
        C{Client-Cert} and C{Client-Cert-Chain}.
    @ivar xfcc: C{option forwarded-client-cert MODE}: what becomes of the
        C{X-Forwarded-Client-Cert} header (C{None}: it is removed).
    @ivar xfcc_fields: the fields of the element certlb writes.
    """

    client_cert: bool = attrs.field(default=False, validator=valid.flag)
    xfcc: str | None = attrs.field(
        default=None, validator=valid.one_of(XFCC_MODES, optional=True)
    )
    xfcc_fields: tuple[str, ...] = attrs.field(
        default=("Hash", "Cert", "Subject", "URI", "DNS"),
        converter=valid.as_tuple,
        validator=valid.subset(XFCC_FIELDS),
    )

    @property
    def adds_headers(self) -> bool:
        """Whether requests get headers telling the client's certificate."""
        return self.client_cert or self.xfcc in ("sanitize-set", "append")


LOG_FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
    "uucp", "cron", "auth2", "ftp", "ntp", "audit", "alert", "cron2",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
LOG_LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
LOG_FORMATS = ("rfc3164", "rfc5424", "short", "raw")
LOG_KINDS = ("stdout", "stderr", "udp", "unix")


@attrs.frozen
class LogTarget:
    """A C{log} line: where a proxy's log lines go, and how they are written.

    @ivar kind: C{stdout}, C{stderr}, C{udp} (a syslog server) or C{unix} (a
        datagram socket such as C{/dev/log}).
    @ivar address: the target as the line wrote it.
    @ivar host: the syslog server's address (C{udp}).
    @ivar port: the syslog server's port (C{udp}).
    @ivar path: the socket's path (C{unix}).
    @ivar length: the longest line sent, in bytes; longer ones are cut.
    @ivar level: the least severe level sent (C{None}: every level).
    @ivar minlevel: the most severe level sent: more severe lines are sent
        at this level (C{None}: as they are).
    """

    kind: str = attrs.field(validator=valid.one_of(LOG_KINDS))
    address: str = attrs.field(validator=valid.nonempty)
    facility: str = attrs.field(validator=valid.one_of(LOG_FACILITIES))
    format: str = attrs.field(default="rfc3164", validator=valid.one_of(LOG_FORMATS))
    host: str | None = attrs.field(default=None, validator=valid.optional_text)
    port: int = attrs.field(default=514, validator=valid.port)
    path: str | None = attrs.field(default=None, validator=valid.optional_text)
    length: int = attrs.field(default=1024, validator=valid.integer(80, 65535))
    level: str | None = attrs.field(
        default=None, validator=valid.one_of(LOG_LEVELS, optional=True)
    )
    minlevel: str | None = attrs.field(
        default=None, validator=valid.one_of(LOG_LEVELS, optional=True)
    )
    location: Location = attrs.field(default=NOWHERE, validator=valid.location)


_RULES = "a tuple of request rules (Redirect, HeaderRule, Deny, Return, ...)"


@attrs.frozen
class Frontend:
    """A proxy that accepts connections (a C{frontend}, or a C{listen}).

    @ivar http_request: C{http-request} rules, in order.
    @ivar reqadd: C{reqadd} lines, evaluated after them.
    @ivar redirects: C{redirect} rules, evaluated last.
    @ivar listen: this is the front of a C{listen} section, whose rules run
        once for both its sides.
    @ivar grace: at a stop, how long it keeps accepting connections, in
        milliseconds.
    @ivar log_format: the access log line, a log-format string (from
        C{option httplog} or C{log-format}); C{None}: no access log.
    @ivar logs: where its log lines go (C{log} lines, C{log global} having
        been replaced by the global section's); none: to twistd's log.
    """

    name: str = attrs.field(validator=valid.nonempty)
    binds: tuple[Bind, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(Bind, "a tuple of Bind"),
    )
    acls: tuple[AclDef, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(AclDef, "a tuple of AclDef"),
    )
    http_request: tuple[RequestRule, ...] = attrs.field(
        default=(), converter=valid.as_tuple, validator=valid.items(RequestRule, _RULES)
    )
    reqadd: tuple[HeaderRule, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(HeaderRule, "a tuple of HeaderRule"),
    )
    redirects: tuple[Redirect, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(Redirect, "a tuple of Redirect"),
    )
    listen: bool = attrs.field(default=False, validator=valid.flag)
    use_backends: tuple[UseBackend, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(UseBackend, "a tuple of UseBackend"),
    )
    default_backend: str | None = attrs.field(
        default=None, validator=valid.optional_text
    )
    default_backend_location: Location = attrs.field(
        default=NOWHERE, validator=valid.location
    )
    mode: str = attrs.field(default="http", validator=valid.one_of(("http",)))
    timeouts: Timeouts = attrs.field(
        default=Timeouts(), validator=valid.of_type(Timeouts, "a Timeouts")
    )
    maxconn: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    http_server_close: bool = attrs.field(default=False, validator=valid.flag)
    forwardfor: ForwardFor | None = attrs.field(
        default=None,
        validator=valid.of_type(ForwardFor, "a ForwardFor", optional=True),
    )
    grace: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    identity: IdentityHeaders = attrs.field(
        default=IdentityHeaders(),
        validator=valid.of_type(IdentityHeaders, "an IdentityHeaders"),
    )
    log_format: str | None = attrs.field(default=None, validator=valid.optional_text)
    log_format_location: Location = attrs.field(
        default=NOWHERE, validator=valid.location
    )
    logs: tuple[LogTarget, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(LogTarget, "a tuple of LogTarget"),
    )
    location: Location = attrs.field(default=NOWHERE, validator=valid.location)


@attrs.frozen
class StickTable:
    """C{stick-table}: what a backend remembers of its clients' servers.

    @ivar type: how keys are compared: C{ip}, C{ipv6}, C{integer}, C{string}
        or C{binary}.
    @ivar length: the longest C{string} key, the size of a C{binary} one,
        in bytes.
    @ivar size: the most entries it holds.
    @ivar expire: how long an entry lasts since it was last stored or
        matched, in milliseconds (C{None}: until the table is full).
    @ivar nopurge: when full, new keys are not stored, rather than the
        least recently used entries dropped.
    """

    type: str = attrs.field(validator=valid.one_of(STICK_TABLE_TYPES))
    size: int = attrs.field(validator=valid.integer(1))
    length: int = attrs.field(default=32, validator=valid.integer(1))
    expire: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    nopurge: bool = attrs.field(default=False, validator=valid.flag)
    location: Location = attrs.field(default=NOWHERE, validator=valid.location)


@attrs.frozen
class StickRule:
    """C{stick on|match|store-request EXPR [table NAME] [if|unless COND]}.

    @ivar table: the backend whose table it uses (C{None}: its own).
    """

    kind: str = attrs.field(validator=valid.one_of(STICK_RULE_KINDS))
    expression: SampleExpression = attrs.field(
        converter=_expression,
        validator=valid.of_type(SampleExpression, "an expression"),
    )
    table: str | None = attrs.field(default=None, validator=valid.optional_text)
    condition: Condition | None = attrs.field(
        default=None, converter=_condition, validator=_optional_condition
    )
    location: Location = attrs.field(default=NOWHERE, validator=valid.location)


@attrs.frozen
class Backend:
    """A farm of servers (a C{backend}, or a C{listen}).

    @ivar http_check: set by C{option httpchk}: health checks are HTTP
        requests (else TCP connections).
    @ivar retries: how many times a failed attempt is tried again.
    @ivar redispatch: C{option redispatch [N]}: every Nth retry goes to
        another server (negative: the Nth before the last; C{None}: never).
    @ivar retry_on: the failures worth a retry (C{retry-on}).
    @ivar plugin_balance: C{balance NAME}, NAME a plugin's algorithm (which
        replaces C{balance}).
    @ivar plugin_options: its C{option NAME} lines whose NAME is none of
        certlb's options, in order: the last is a plugin's health check,
        which replaces the TCP, TLS or HTTP check of servers with C{check}
        (the checker reports the others).
    """

    name: str = attrs.field(validator=valid.nonempty)
    servers: tuple[Server, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(Server, "a tuple of Server"),
    )
    acls: tuple[AclDef, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(AclDef, "a tuple of AclDef"),
    )
    http_request: tuple[RequestRule, ...] = attrs.field(
        default=(), converter=valid.as_tuple, validator=valid.items(RequestRule, _RULES)
    )
    reqadd: tuple[HeaderRule, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(HeaderRule, "a tuple of HeaderRule"),
    )
    redirects: tuple[Redirect, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(Redirect, "a tuple of Redirect"),
    )
    balance: Balance = attrs.field(
        default=Balance(), validator=valid.of_type(Balance, "a Balance")
    )
    mode: str = attrs.field(default="http", validator=valid.one_of(("http",)))
    timeouts: Timeouts = attrs.field(
        default=Timeouts(), validator=valid.of_type(Timeouts, "a Timeouts")
    )
    http_server_close: bool = attrs.field(default=False, validator=valid.flag)
    forwardfor: ForwardFor | None = attrs.field(
        default=None,
        validator=valid.of_type(ForwardFor, "a ForwardFor", optional=True),
    )
    http_check: HttpCheck | None = attrs.field(
        default=None, validator=valid.of_type(HttpCheck, "an HttpCheck", optional=True)
    )
    allbackups: bool = attrs.field(default=False, validator=valid.flag)
    retries: int = attrs.field(default=3, validator=valid.integer(0))
    redispatch: int | None = attrs.field(
        default=None, validator=valid.of_type(int, "an integer", optional=True)
    )
    retry_on: frozenset[str | int] = attrs.field(
        default=frozenset({"conn-failure"}),
        converter=valid.as_frozenset,
        validator=_retry_on,
    )
    stick_table: StickTable | None = attrs.field(
        default=None,
        validator=valid.of_type(StickTable, "a StickTable", optional=True),
    )
    stick_rules: tuple[StickRule, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(StickRule, "a tuple of StickRule"),
    )
    plugin_balance: PluginUse | None = attrs.field(
        default=None, validator=valid.of_type(PluginUse, "a PluginUse", optional=True)
    )
    plugin_options: tuple[PluginUse, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(PluginUse, "a tuple of PluginUse"),
    )
    location: Location = NOWHERE

    @property
    def plugin_check(self) -> PluginUse | None:
        """The plugin's health check the servers with C{check} get, if any."""
        return self.plugin_options[-1] if self.plugin_options else None


@attrs.frozen
class Global:
    """The C{global} section.

    @ivar hard_stop_after: at a stop, the longest certlb waits for requests
        in flight, in milliseconds (C{None}: as long as they last).
    @ivar grace: at a stop, how long frontends without a C{grace} of their
        own go on accepting connections, in milliseconds.
    @ivar logs: its C{log} lines, which C{log global} in a proxy refers to.
    @ivar plugin_dirs: C{plugin-dir} lines: directories whose modules are
        searched for plugins too (absolute paths).
    @ivar nbproc: C{nbproc}: how many worker processes C{twistd certlb} runs
        (C{None}: not given, one process and no master; C{--workers}
        overrides it).
    @ivar ticket_key_lifetime: C{tune.ssl.ticket-key-lifetime}: how often,
        in milliseconds, each TLS bind gets new session-ticket keys (0:
        never, they live as long as the process).
    """

    maxconn: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    hard_stop_after: int | None = attrs.field(
        default=None, validator=valid.positive_or_none
    )
    grace: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    logs: tuple[LogTarget, ...] = ()
    plugin_dirs: tuple[str, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(str, "a tuple of directory names"),
    )
    nbproc: int | None = attrs.field(default=None, validator=valid.positive_or_none)
    ticket_key_lifetime: int = attrs.field(
        default=TICKET_KEY_LIFETIME, validator=valid.integer(0)
    )


@attrs.frozen
class Config:
    """A whole configuration: what C{load_config} returns."""

    frontends: tuple[Frontend, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(Frontend, "a tuple of Frontend"),
    )
    backends: tuple[Backend, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(Backend, "a tuple of Backend"),
    )
    global_: Global = attrs.field(
        default=Global(), validator=valid.of_type(Global, "a Global")
    )
    files: tuple[str, ...] = attrs.field(
        default=(),
        converter=valid.as_tuple,
        validator=valid.items(str, "a tuple of file names"),
    )
    warnings: tuple[Problem, ...] = attrs.field(default=(), eq=False)

    def backend(self, name: str) -> Backend | None:
        """The backend called C{name}, if there is one."""
        for backend in self.backends:
            if backend.name == name:
                return backend
        return None
