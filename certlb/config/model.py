"""The configuration model: frozen values, built by the parser or by hand.

Nothing here knows about sockets or the reactor.  Every object carries the
L{Location} it was read from, so that later checks can name the file and line.
Times are in milliseconds.
"""

from __future__ import annotations

import attrs
from attrs import validators as v

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
INIT_STATES = ("fully-up", "up", "down", "fully-down")
RETRY_ON_EVENTS = (
    "none", "conn-failure", "empty-response", "junk-response", "response-timeout",
    "all-retryable-errors",
)  # fmt: skip
STICK_TABLE_TYPES = ("ip", "ipv6", "integer", "string", "binary")
STICK_RULE_KINDS = ("on", "match", "store-request")
RETRY_ON_STATUSES = (401, 403, 404, 408, 421, 425, 429, 500, 501, 502, 503, 504)
NOWHERE = Location("<python>", 0)


def _port(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"{attribute.name} must be within 0-65535, not {value}")


def _positive_or_none(
    instance: object, attribute: attrs.Attribute, value: int | None
) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive, not {value}")


@attrs.frozen
class SampleExpression:
    """A fetch followed by converters, as in C{hdr(host),lower}.

    @ivar fetch: the fetch name, e.g. C{ssl_fc_has_crt}.
    @ivar args: the fetch's arguments, as written.
    @ivar converters: C{(name, args)} pairs applied in order.
    """

    fetch: str
    args: tuple[str, ...] = ()
    converters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    location: Location = NOWHERE

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

    name: str | None
    expression: SampleExpression
    flags: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    location: Location = NOWHERE


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


ALL_ERRORS = "all"


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

    host: str
    port: int = attrs.field(validator=_port)
    ssl: bool = False
    crt: str | None = None
    ca_file: str | None = None
    verify: str = attrs.field(default="none", validator=v.in_(VERIFY_MODES))
    crt_ignore_err: frozenset[int] | str = frozenset()
    ca_ignore_err: frozenset[int] | str = frozenset()
    crl_file: str | None = None
    location: Location = NOWHERE

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

    name: str
    host: str
    port: int = attrs.field(validator=_port)
    check: bool = False
    weight: int = attrs.field(default=1, validator=[v.ge(0), v.le(256)])
    disabled: bool = False
    backup: bool = False
    maxconn: int | None = attrs.field(default=None, validator=_positive_or_none)
    check_ssl: bool = False
    inter: int = attrs.field(default=2000, validator=v.ge(1))
    fastinter: int | None = attrs.field(default=None, validator=_positive_or_none)
    downinter: int | None = attrs.field(default=None, validator=_positive_or_none)
    rise: int = attrs.field(default=2, validator=v.ge(1))
    fall: int = attrs.field(default=3, validator=v.ge(1))
    check_port: int | None = None
    check_addr: str | None = None
    init_state: str | None = attrs.field(
        default=None, validator=v.optional(v.in_(INIT_STATES))
    )
    observe: str | None = attrs.field(
        default=None, validator=v.optional(v.in_(("layer4", "layer7")))
    )
    error_limit: int = attrs.field(default=10, validator=v.ge(1))
    on_error: str = attrs.field(default="fail-check", validator=v.in_(ON_ERROR_MODES))
    ssl: bool = False
    verify: str | None = attrs.field(
        default=None, validator=v.optional(v.in_(SERVER_VERIFY_MODES))
    )
    ca_file: str | None = None
    crl_file: str | None = None
    crt: str | None = None
    sni: SampleExpression | None = None
    verifyhost: str | None = None
    check_sni: str | None = None
    ssl_min_ver: str | None = attrs.field(
        default=None, validator=v.optional(v.in_(TLS_VERSIONS))
    )
    ssl_max_ver: str | None = attrs.field(
        default=None, validator=v.optional(v.in_(TLS_VERSIONS))
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

    connect: int | None = attrs.field(default=None, validator=_positive_or_none)
    client: int | None = attrs.field(default=None, validator=_positive_or_none)
    server: int | None = attrs.field(default=None, validator=_positive_or_none)
    http_request: int | None = attrs.field(default=None, validator=_positive_or_none)
    http_keep_alive: int | None = attrs.field(default=None, validator=_positive_or_none)
    queue: int | None = attrs.field(default=None, validator=_positive_or_none)
    check: int | None = attrs.field(default=None, validator=_positive_or_none)
    tunnel: int | None = attrs.field(default=None, validator=_positive_or_none)


@attrs.frozen
class HttpCheck:
    """C{option httpchk} and C{http-check expect}: what a health check sends
    and what it must get back.

    @ivar expect: C{status}, C{rstatus}, C{string} or C{rstring}, or C{None}
        for HAProxy's default (a 2xx or 3xx status).
    @ivar negate: C{http-check expect !...}: the check passes when the
        expectation fails.
    """

    method: str = "OPTIONS"
    uri: str = "/"
    version: str = "HTTP/1.0"
    host: str | None = None
    expect: str | None = None
    pattern: str = ""
    negate: bool = False


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

    header: str = "X-Forwarded-For"
    except_network: str | None = None
    if_none: bool = False


@attrs.frozen
class UseBackend:
    """C{use_backend NAME [if|unless COND]}."""

    backend: str
    condition: Condition | None = None
    location: Location = NOWHERE


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


RequestRule = Redirect | HeaderRule | Deny | Return


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

    client_cert: bool = False
    xfcc: str | None = attrs.field(
        default=None, validator=v.optional(v.in_(XFCC_MODES))
    )
    xfcc_fields: tuple[str, ...] = ("Hash", "Cert", "Subject", "URI", "DNS")


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

    kind: str = attrs.field(validator=v.in_(LOG_KINDS))
    address: str
    facility: str = attrs.field(validator=v.in_(LOG_FACILITIES))
    format: str = attrs.field(default="rfc3164", validator=v.in_(LOG_FORMATS))
    host: str | None = None
    port: int = 514
    path: str | None = None
    length: int = attrs.field(default=1024, validator=[v.ge(80), v.le(65535)])
    level: str | None = attrs.field(
        default=None, validator=v.optional(v.in_(LOG_LEVELS))
    )
    minlevel: str | None = attrs.field(
        default=None, validator=v.optional(v.in_(LOG_LEVELS))
    )
    location: Location = NOWHERE


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

    name: str
    binds: tuple[Bind, ...] = ()
    acls: tuple[AclDef, ...] = ()
    http_request: tuple[RequestRule, ...] = ()
    reqadd: tuple[HeaderRule, ...] = ()
    redirects: tuple[Redirect, ...] = ()
    listen: bool = False
    use_backends: tuple[UseBackend, ...] = ()
    default_backend: str | None = None
    default_backend_location: Location = NOWHERE
    mode: str = attrs.field(default="http", validator=v.in_(("http",)))
    timeouts: Timeouts = Timeouts()
    maxconn: int | None = attrs.field(default=None, validator=_positive_or_none)
    http_server_close: bool = False
    forwardfor: ForwardFor | None = None
    grace: int | None = attrs.field(default=None, validator=_positive_or_none)
    identity: IdentityHeaders = IdentityHeaders()
    log_format: str | None = None
    log_format_location: Location = NOWHERE
    logs: tuple[LogTarget, ...] = ()
    location: Location = NOWHERE


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

    type: str = attrs.field(validator=v.in_(STICK_TABLE_TYPES))
    size: int = attrs.field(validator=v.ge(1))
    length: int = attrs.field(default=32, validator=v.ge(1))
    expire: int | None = attrs.field(default=None, validator=_positive_or_none)
    nopurge: bool = False
    location: Location = NOWHERE


@attrs.frozen
class StickRule:
    """C{stick on|match|store-request EXPR [table NAME] [if|unless COND]}.

    @ivar table: the backend whose table it uses (C{None}: its own).
    """

    kind: str = attrs.field(validator=v.in_(STICK_RULE_KINDS))
    expression: SampleExpression
    table: str | None = None
    condition: Condition | None = None
    location: Location = NOWHERE


@attrs.frozen
class Backend:
    """A farm of servers (a C{backend}, or a C{listen}).

    @ivar http_check: set by C{option httpchk}: health checks are HTTP
        requests (else TCP connections).
    @ivar retries: how many times a failed attempt is tried again.
    @ivar redispatch: C{option redispatch [N]}: every Nth retry goes to
        another server (negative: the Nth before the last; C{None}: never).
    @ivar retry_on: the failures worth a retry (C{retry-on}).
    """

    name: str
    servers: tuple[Server, ...] = ()
    acls: tuple[AclDef, ...] = ()
    http_request: tuple[RequestRule, ...] = ()
    reqadd: tuple[HeaderRule, ...] = ()
    redirects: tuple[Redirect, ...] = ()
    balance: Balance = Balance()
    mode: str = attrs.field(default="http", validator=v.in_(("http",)))
    timeouts: Timeouts = Timeouts()
    http_server_close: bool = False
    forwardfor: ForwardFor | None = None
    http_check: HttpCheck | None = None
    allbackups: bool = False
    retries: int = attrs.field(default=3, validator=v.ge(0))
    redispatch: int | None = None
    retry_on: frozenset[str | int] = frozenset({"conn-failure"})
    stick_table: StickTable | None = None
    stick_rules: tuple[StickRule, ...] = ()
    location: Location = NOWHERE


@attrs.frozen
class Global:
    """The C{global} section.

    @ivar hard_stop_after: at a stop, the longest certlb waits for requests
        in flight, in milliseconds (C{None}: as long as they last).
    @ivar grace: at a stop, how long frontends without a C{grace} of their
        own go on accepting connections, in milliseconds.
    @ivar logs: its C{log} lines, which C{log global} in a proxy refers to.
    """

    maxconn: int | None = attrs.field(default=None, validator=_positive_or_none)
    hard_stop_after: int | None = attrs.field(default=None, validator=_positive_or_none)
    grace: int | None = attrs.field(default=None, validator=_positive_or_none)
    logs: tuple[LogTarget, ...] = ()


@attrs.frozen
class Config:
    """A whole configuration: what C{load_config} returns."""

    frontends: tuple[Frontend, ...] = ()
    backends: tuple[Backend, ...] = ()
    global_: Global = Global()
    files: tuple[str, ...] = ()
    warnings: tuple[Problem, ...] = attrs.field(default=(), eq=False)

    def backend(self, name: str) -> Backend | None:
        """The backend called C{name}, if there is one."""
        for backend in self.backends:
            if backend.name == name:
                return backend
        return None
