"""C{HealthCheckService}: the health checks of every backend, as a service."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
from twisted.application.service import Service
from zope.interface import implementer

from certlb.config.errors import RuleError
from certlb.config.model import Server
from certlb.health.checks import ConnectCheck
from certlb.health.monitor import ServerMonitor
from certlb.proxy.runtime import BackendRuntime
from certlb.rules.interfaces import ICheckTarget, IHealthCheck
from certlb.tls.client import UpstreamTLS


@implementer(ICheckTarget)
@attrs.frozen
class CheckTarget:
    """The server a plugin's health check checks (see L{ICheckTarget})."""

    name: str
    host: str
    port: int
    timeout: float
    reactor: Any
    tls: Any = None


def server_check(
    spec: Server,
    backend: BackendRuntime,
    reactor: Any,
    tls: UpstreamTLS | None = None,
) -> IHealthCheck:
    """The check of a server: a plugin's (C{option NAME}) or certlb's own."""
    if backend.plugin_check is None:
        return connect_check(spec, backend, reactor, tls)
    plan = _CheckPlan.of(spec, backend, tls)
    target = CheckTarget(
        f"{backend.name}/{spec.name}",
        plan.host,
        plan.port,
        plan.connect_timeout + (plan.read_timeout or 0),
        reactor,
        plan.tls.connector(plan.tls.check_sni) if plan.tls is not None else None,
    )
    use = backend.spec.plugin_check
    assert use is not None
    try:
        check = backend.plugin_check(target)
    except Exception as e:
        raise RuleError(
            use.location,
            f"option '{use.name}' failed to build the check of server "
            f"{target.name}: {type(e).__name__}: {e}",
        ) from None
    if not IHealthCheck.providedBy(check):
        raise RuleError(
            use.location,
            f"option '{use.name}' built {check!r} for server {target.name}, "
            "which does not provide IHealthCheck",
        )
    return check


@attrs.frozen
class _CheckPlan:
    """Where a server's checks go, over what, and how long they may take.

    Without C{timeout check}, a check may take C{inter} in all; with it, the
    connection may take C{timeout connect} (at most C{inter}) and the
    response C{timeout check}, as in HAProxy.  Checks go over TLS with
    C{check-ssl}, and for a server with C{ssl} unless they go elsewhere
    (C{addr}, C{port}), with the server's TLS settings (C{tls}, built from
    C{spec} when not given).

    @ivar tls: the TLS settings when the checks go over TLS, else None.
    """

    host: str
    port: int
    connect_timeout: float
    read_timeout: float | None
    tls: UpstreamTLS | None

    @classmethod
    def of(
        cls, spec: Server, backend: BackendRuntime, tls: UpstreamTLS | None
    ) -> _CheckPlan:
        timeouts = backend.spec.timeouts
        elsewhere = spec.check_port is not None or spec.check_addr is not None
        over_tls = spec.check_ssl or (spec.ssl and not elsewhere)
        if over_tls and tls is None:
            tls = UpstreamTLS.for_server(spec)
        if timeouts.check is None:
            connect, read = spec.inter / 1000, None
        else:
            connect = min(spec.inter, timeouts.connect or spec.inter) / 1000
            read = timeouts.check / 1000
        return cls(
            spec.check_addr or spec.host,
            spec.check_port or spec.port,
            connect,
            read,
            tls if over_tls else None,
        )


def connect_check(
    spec: Server,
    backend: BackendRuntime,
    reactor: Any,
    tls: UpstreamTLS | None = None,
) -> ConnectCheck:
    """The TCP, TLS or HTTP check C{spec} and its backend describe (see
    L{_CheckPlan} for where it goes and how long it may take)."""
    plan = _CheckPlan.of(spec, backend, tls)
    return ConnectCheck(
        reactor,
        plan.host,
        plan.port,
        timeout=plan.connect_timeout,
        read_timeout=plan.read_timeout,
        http=backend.spec.http_check,
        tls=plan.tls is not None,
        client_tls=plan.tls,
    )


class HealthCheckService(Service):
    """Checks every server with C{check} of C{backends}, with C{reactor}'s
    connections and clock.

    Servers take their initial state (C{init-state}) when this is built, so
    before any request; checks run while the service runs.  The first checks
    of a backend are spread evenly over its shortest interval, so as not to
    hit all servers at once.

    @ivar monitors: one L{ServerMonitor} per checked server.
    """

    def __init__(self, backends: Iterable[BackendRuntime], reactor: Any) -> None:
        self.monitors = [
            ServerMonitor.watch(
                server,
                backend,
                server_check(server.spec, backend, reactor, server.tls),
                reactor,
            )
            for backend in backends
            for server in backend.servers
            if server.spec is not None and server.spec.check and not server.disabled
        ]

    def startService(self) -> None:
        Service.startService(self)
        by_backend: dict[str, list[ServerMonitor]] = {}
        for monitor in self.monitors:
            by_backend.setdefault(monitor.backend.name, []).append(monitor)
        for monitors in by_backend.values():
            spread = min(m.spec.inter for m in monitors) / 1000
            for i, monitor in enumerate(monitors):
                monitor.start(spread * i / len(monitors))

    def stopService(self) -> None:
        Service.stopService(self)
        for monitor in self.monitors:
            monitor.stop()
