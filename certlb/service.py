"""C{make_service}: a configuration becomes a tree of Twisted services."""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from certlb.config.checker import check
from certlb.config.errors import ERROR, ConfigError, Problem
from certlb.config.model import Bind, Config
from certlb.proxy.channel import FrontendFactory
from certlb.proxy.engine import Engine
from certlb.proxy.limits import ConnectionLimits, LimitedFactory
from certlb.proxy.resource import FrontendResource
from certlb.proxy.runtime import FrontendRuntime, build_runtime
from certlb.tls.pem import PemError
from certlb.tls.server import ServerTLS
from certlb.tls.state import VerifyPolicy

log = Logger()


class ListenError(Exception):
    """A frontend could not listen on one of its addresses; nothing was started."""


class ListenerService(Service):
    """Listens on every bind of every frontend, all or none.

    Ports are opened in C{privilegedStartService} (so that twistd can bind
    ports below 1024 before dropping privileges), or in C{startService} when
    the service is started directly.  If one address cannot be bound, the
    ports already opened are closed again and L{ListenError} is raised.
    """

    def __init__(
        self,
        listeners: list[tuple[Bind, str, Any]],
        reactor: Any,
        limits: ConnectionLimits,
    ) -> None:
        self.listeners = listeners
        self.reactor = reactor
        self.limits = limits
        self.ports: list[tuple[str, Bind, Any]] = []

    def privilegedStartService(self) -> None:
        self._listen()
        Service.privilegedStartService(self)

    def startService(self) -> None:
        if not self.ports:
            self._listen()
        Service.startService(self)

    def _listen(self) -> None:
        opened: list[tuple[str, Bind, Any]] = []
        for bind, frontend, factory in self.listeners:
            try:
                port = self.reactor.listenTCP(bind.port, factory, interface=bind.host)
            except CannotListenError as e:
                for _, _, started in opened:
                    started.stopListening()
                why = getattr(e.socketError, "strerror", None) or str(e.socketError)
                raise ListenError(
                    f"frontend '{frontend}' cannot listen on {bind.address} "
                    f"({bind.location}): {why}"
                ) from None
            opened.append((frontend, bind, port))
            self.limits.add_port(frontend, port)
        self.ports = opened
        for frontend, _, port in opened:
            address = port.getHost()
            log.info(
                "frontend {frontend} listening on {host}:{port}",
                frontend=frontend,
                host=address.host,
                port=address.port,
            )

    def stopService(self) -> Deferred[Any]:
        Service.stopService(self)
        ports, self.ports = self.ports, []
        for _, _, port in ports:
            self.limits.remove_port(port)
        return gatherResults([maybeDeferred(p.stopListening) for _, _, p in ports])

    def addresses(self) -> list[tuple[str, str, int]]:
        """C{(frontend, host, port)} of each open port (useful with port 0)."""
        return [(f, p.getHost().host, p.getHost().port) for f, _, p in self.ports]


class CertlbService(MultiService):
    """The whole of certlb: listeners, and what they share.

    @ivar frontends: the run-time frontends by name, with their backends and
        servers (whose C{up} state health checks set).
    """

    def __init__(self, config: Config, reactor: Any) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.frontends: dict[str, FrontendRuntime] = build_runtime(config)
        self.engine = Engine(reactor)
        self.limits = ConnectionLimits(
            config.global_.maxconn,
            {f.name: f.maxconn for f in config.frontends if f.maxconn is not None},
        )
        listeners = []
        for frontend in config.frontends:
            factory: Any = FrontendFactory(
                self.frontends[frontend.name], self.engine, self.limits
            )
            for bind in frontend.binds:
                if bind.ssl:
                    factory_for_bind = TLSMemoryBIOFactory(
                        _server_tls(bind, frontend.name), False, factory
                    )
                else:
                    factory_for_bind = factory
                limited = LimitedFactory(self.limits, frontend.name, factory_for_bind)
                listeners.append((bind, frontend.name, limited))
        self.listeners = ListenerService(listeners, reactor, self.limits)
        self.listeners.setServiceParent(self)

    def resource(self, frontend: str) -> FrontendResource:
        """A twisted.web resource forwarding requests through C{frontend}'s
        rules, balancer and servers, for mounting in a C{Site} of your own."""
        return FrontendResource(self.frontends[frontend], self.engine)

    def stopService(self) -> Deferred[Any]:
        d: Deferred[Any] = maybeDeferred(super().stopService)
        d.addBoth(_pass_after(self.engine.pool.close))
        return d


def _pass_after(action: Any) -> Any:
    def run(result: object) -> object:
        action()
        return result

    return run


def _server_tls(bind: Bind, frontend: str) -> ServerTLS:
    assert bind.crt is not None
    try:
        return ServerTLS.for_bind(
            bind.crt,
            bind.ca_file,
            bind.verify,
            f"{frontend} {bind.address}",
            VerifyPolicy(bind.crt_ignore_err, bind.ca_ignore_err),
            bind.crl_file,
        )
    except PemError as e:
        raise ConfigError(
            [Problem(bind.location, f"bind {bind.address}: {e}")]
        ) from None


def make_service(config: Config, reactor: Any) -> CertlbService:
    """Build certlb's service tree for C{config}.

    The configuration is checked first, so that one built in Python gets the
    same errors as one read from a file.  Nothing listens until the service
    is started.

    @param reactor: the reactor to listen, connect and time with.
    @raise ConfigError: the configuration has errors.
    """
    problems = [p for p in check(config) if p.severity == ERROR]
    if problems:
        raise ConfigError(problems)
    return CertlbService(config, reactor)
