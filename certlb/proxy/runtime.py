"""The run-time form of a configuration: frontends and backends, rules compiled.

Built once, at start-up, from a L{Config}; per request nothing is parsed or
compiled again.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from certlb.config.model import (
    Backend,
    Config,
    ForwardFor,
    Frontend,
    IdentityHeaders,
    Timeouts,
)
from certlb.proxy.balancer import make_balancer
from certlb.proxy.identity import certificate_headers, forged
from certlb.proxy.logtargets import LogWriter
from certlb.proxy.servers import ServerState
from certlb.proxy.stick import Persistence, StickTableRuntime
from certlb.rules.acl import acls_by_name, compile_condition
from certlb.rules.actions import RuleSet, compile_rules
from certlb.rules.interfaces import IBalancer, ICondition, IRequestContext
from certlb.rules.logformat import LogFormat, compile_log_format
from certlb.rules.registry import active, build, for_config
from certlb.rules.trace import use_backend_label

# certlb's timeouts when the configuration gives none, in seconds.  HAProxy
# waits forever; a daemon facing the Internet should not.
DEFAULT_TIMEOUTS = {
    "connect": 5.0,
    "client": 60.0,
    "server": 60.0,
    "http_request": 30.0,
}


def _seconds(timeouts: Timeouts, name: str) -> float:
    value: int | None = getattr(timeouts, name)
    return DEFAULT_TIMEOUTS[name] if value is None else value / 1000


@attrs.frozen
class ForwardedFor:
    """C{option forwardfor}, compiled: the header, and who not to add it for."""

    header: bytes
    except_network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    if_none: bool

    @classmethod
    def compile(cls, option: ForwardFor) -> ForwardedFor:
        network = (
            ipaddress.ip_network(option.except_network, strict=False)
            if option.except_network
            else None
        )
        return cls(option.header.encode("latin-1"), network, option.if_none)

    def applies_to(self, host: str) -> bool:
        if self.except_network is None:
            return True
        try:
            return ipaddress.ip_address(host) not in self.except_network
        except ValueError:
            return True


@attrs.define(eq=False)
class BackendRuntime:
    """A backend ready to serve: rules, servers, balancer, timeouts (seconds).

    @ivar spec: its configuration (health checks, retries).
    @ivar persistence: its C{stick} rules, if any.
    @ivar plugin_check: with C{option NAME} of a plugin's health check, what
        builds the check of a server (from an L{ICheckTarget}).
    @ivar waiting: the requests waiting for a server with a free slot
        (C{maxconn}), first come first served.
    """

    name: str
    rules: RuleSet
    servers: list[ServerState]
    balancer: IBalancer
    connect_timeout: float
    server_timeout: float
    server_close: bool
    forwardfor: ForwardedFor | None
    spec: Backend
    queue_timeout: float
    allbackups: bool = False
    persistence: Persistence | None = None
    plugin_check: Callable[[Any], Any] | None = None
    waiting: deque[Any] = attrs.Factory(deque)
    _waking: bool = False

    @classmethod
    def build(
        cls, backend: Backend, tables: Mapping[str, StickTableRuntime] | None = None
    ) -> BackendRuntime:
        """Compile C{backend}, whose C{stick} rules use C{tables} by name."""
        servers = [ServerState.from_spec(s, backend.name) for s in backend.servers]
        connect = _seconds(backend.timeouts, "connect")
        queue = backend.timeouts.queue
        return cls(
            name=backend.name,
            rules=compile_rules(backend),
            servers=servers,
            balancer=make_balancer(backend.balance, backend.plugin_balance),
            connect_timeout=connect,
            server_timeout=_seconds(backend.timeouts, "server"),
            server_close=backend.http_server_close,
            forwardfor=ForwardedFor.compile(backend.forwardfor)
            if backend.forwardfor
            else None,
            spec=backend,
            # HAProxy's default: as long as a connection may take.
            queue_timeout=connect if queue is None else queue / 1000,
            allbackups=backend.allbackups,
            persistence=Persistence.compile(
                backend.stick_rules,
                acls_by_name(backend.acls),
                tables or {},
                backend.name,
            )
            if backend.stick_rules
            else None,
            plugin_check=build("check", use.name, use.args, use.location)
            if (use := backend.plugin_check) is not None
            else None,
        )

    def tier(self) -> list[ServerState]:
        """The usable servers that serve now: the active ones, or without any,
        the backups (only the first unless C{option allbackups})."""
        active = [s for s in self.servers if s.usable and not s.backup]
        if active:
            return active
        backups = [s for s in self.servers if s.usable and s.backup]
        return backups if self.allbackups else backups[:1]

    def free(self) -> list[ServerState]:
        """The servers that serve now and can take one more request."""
        return [s for s in self.tier() if s.has_slot]

    def wake(self) -> None:
        """Give free slots to the requests waiting, first come first served,
        after a server finished a request or changed state; when no server
        is left to serve, they get their 503 at once."""
        if self._waking:
            return  # the loop below is running further up the stack
        self._waking = True
        try:
            while self.waiting and (self.free() or not self.tier()):
                self.waiting.popleft().dequeued()
        finally:
            self._waking = False

    def counts(self) -> tuple[int, int]:
        """How many active and backup servers are usable."""
        active = sum(1 for s in self.servers if s.usable and not s.backup)
        backup = sum(1 for s in self.servers if s.usable and s.backup)
        return active, backup


@attrs.define(eq=False)
class FrontendRuntime:
    """A frontend ready to route: its request rules, C{use_backend} rules,
    then the default backend.

    @ivar listen: the front of a C{listen} section, whose rules also serve as
        its backend's.
    @ivar log_format: the access log line written for each request, or
        C{None} for none.
    @ivar log_writers: where its access lines go (its C{log} lines); none:
        to twistd's log.
    @ivar route_labels: how traces name its C{use_backend} rules, in order.
    @ivar tracer: with rule tracing on (C{--debug-rules}), what starts the
        trace of each request (a L{certlb.rules.trace.LiveTrace}); else None.
    """

    name: str
    rules: RuleSet
    routes: Sequence[tuple[ICondition | None, BackendRuntime]]
    default: BackendRuntime | None
    client_timeout: float
    http_request_timeout: float
    keep_alive_timeout: float
    server_close: bool
    forwardfor: ForwardedFor | None
    maxconn: int | None
    listen: bool = False
    identity: IdentityHeaders = attrs.Factory(IdentityHeaders)
    forged: frozenset[str] = frozenset()
    log_format: LogFormat | None = None
    log_writers: Sequence[LogWriter] = ()
    route_labels: Sequence[str] = ()
    tracer: Any = None

    def route(self, context: IRequestContext) -> BackendRuntime | None:
        """The backend for a request: the first rule that matches, or the default."""
        if context.trace is not None:
            return self._traced_route(context, context.trace)
        for condition, backend in self.routes:
            if condition is None or condition.matches(context):
                return backend
        return self.default

    def _traced_route(
        self, context: IRequestContext, trace: Callable[[str], None]
    ) -> BackendRuntime | None:
        """L{route}, saying which rules were tried and which one chose."""
        for index, (condition, backend) in enumerate(self.routes):
            label = (
                self.route_labels[index]
                if index < len(self.route_labels)
                else f"use_backend {backend.name}"
            )
            if condition is None:
                trace(f"{label}: chosen (no condition)")
                return backend
            if condition.matches(context):
                trace(f"{label}: condition true, chosen")
                return backend
            trace(f"{label}: condition false, skipped")
        if self.default is None:
            trace("no use_backend rule matched and there is no default_backend")
        else:
            name = self.default.name
            trace(f"default_backend {name}: chosen (no use_backend matched)")
        return self.default

    @classmethod
    def build(
        cls,
        frontend: Frontend,
        backends: dict[str, BackendRuntime],
        from_certificates: frozenset[str],
    ) -> FrontendRuntime:
        """Compile C{frontend} over C{backends}.

        @param from_certificates: the headers that rules set from the
            client's certificate, which no client may send.
        """
        named = acls_by_name(frontend.acls)
        routes = [
            (
                compile_condition(rule.condition, named) if rule.condition else None,
                backends[rule.backend],
            )
            for rule in frontend.use_backends
        ]
        timeouts = frontend.timeouts
        http_request = _seconds(timeouts, "http_request")
        keep_alive = (
            timeouts.http_keep_alive / 1000
            if timeouts.http_keep_alive is not None
            else http_request
        )
        return cls(
            name=frontend.name,
            rules=compile_rules(frontend),
            routes=routes,
            default=backends[frontend.default_backend]
            if frontend.default_backend
            else None,
            client_timeout=_seconds(timeouts, "client"),
            http_request_timeout=http_request,
            keep_alive_timeout=keep_alive,
            server_close=frontend.http_server_close,
            forwardfor=ForwardedFor.compile(frontend.forwardfor)
            if frontend.forwardfor
            else None,
            maxconn=frontend.maxconn,
            listen=frontend.listen,
            identity=frontend.identity,
            forged=forged(frontend.identity, from_certificates),
            log_format=compile_log_format(
                frontend.log_format, frontend.log_format_location
            )
            if frontend.log_format is not None
            else None,
            route_labels=[use_backend_label(rule) for rule in frontend.use_backends],
        )

    def backend_rules(self, backend: BackendRuntime) -> RuleSet | None:
        """The rules of C{backend} still to run for a request routed there
        (none when it is this listen section's own side)."""
        if self.listen and backend.name == self.name:
            return None
        return backend.rules


def build_backends(config: Config) -> dict[str, BackendRuntime]:
    """Compile every backend of a checked configuration, by name."""
    tables = {
        b.name: StickTableRuntime(b.stick_table, b.name)
        for b in config.backends
        if b.stick_table is not None
    }
    with active(for_config(config.global_.plugin_dirs)):
        return {b.name: BackendRuntime.build(b, tables) for b in config.backends}


def build_runtime(
    config: Config, backends: dict[str, BackendRuntime] | None = None
) -> dict[str, FrontendRuntime]:
    """Compile every frontend of a checked configuration, by name, over
    C{backends} (by default, compiled afresh)."""
    if backends is None:
        backends = build_backends(config)
    from_certificates = certificate_headers(config)
    with active(for_config(config.global_.plugin_dirs)):
        return {
            f.name: FrontendRuntime.build(f, backends, from_certificates)
            for f in config.frontends
        }
