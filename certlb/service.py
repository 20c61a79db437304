"""C{make_service}: a configuration becomes a tree of Twisted services."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from twisted.application.service import MultiService, Service
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    gatherResults,
    maybeDeferred,
    succeed,
)
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from certlb.config.checker import check
from certlb.config.errors import ERROR, ConfigError, Problem, RuleError
from certlb.config.model import Bind, Config, Frontend
from certlb.health import HealthCheckService
from certlb.proxy.channel import FrontendFactory
from certlb.proxy.engine import Engine
from certlb.proxy.limits import ConnectionLimits, LimitedFactory
from certlb.proxy.logtargets import LogTargetsService
from certlb.proxy.resource import FrontendResource
from certlb.proxy.runtime import (
    BackendRuntime,
    FrontendRuntime,
    build_backends,
    build_runtime,
)
from certlb.tls import transport
from certlb.tls.pem import PemError
from certlb.tls.server import ServerTLS
from certlb.tls.state import ClientCertState, VerifyPolicy
from certlb.tls.tickets import TicketKeyRotation
from certlb.tls.transport import TLSPort

log = Logger()


class ListenError(Exception):
    """A frontend could not listen on one of its addresses; nothing was started."""

    @classmethod
    def at(cls, frontend: str, bind: Bind, why: str) -> ListenError:
        """The error of C{frontend}'s C{bind}, naming its line."""
        return cls(
            f"frontend '{frontend}' cannot listen on {bind.address} "
            f"({bind.location}): {why}"
        )


class ListenerService(Service):
    """Listens on every bind of every frontend, all or none.

    Ports are opened in C{privilegedStartService} (so that twistd can bind
    ports below 1024 before dropping privileges), or in C{startService} when
    the service is started directly.  If one address cannot be bound, the
    ports already opened are closed again and L{ListenError} is raised.

    Each listener is C{(bind, frontend name, factory, tls)}: with C{tls}, a
    L{ServerTLS}, its connections speak TLS, run by OpenSSL on the socket
    (L{certlb.tls.transport}) on Twisted's POSIX reactors and by Twisted's
    L{TLSMemoryBIOFactory} on others.  Every factory is wrapped in the
    connection limits, outside TLS.

    @ivar descriptors: listening sockets opened by another process (a
        worker's master, see L{certlb.workers}), one per bind in the order of
        the configuration: when it is not C{None}, each bind adopts its
        socket instead of listening, and a bind without one is a
        L{ListenError}.
    """

    descriptors: list[int] | None = None

    def __init__(
        self,
        listeners: list[tuple[Bind, str, Any, ServerTLS | None]],
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
        for index, (bind, frontend, factory, tls) in enumerate(self.listeners):
            try:
                port = self._open(index, bind, frontend, factory, tls)
            except CannotListenError as e:
                for _, _, started in opened:
                    started.stopListening()
                why = getattr(e.socketError, "strerror", None) or str(e.socketError)
                raise ListenError.at(frontend, bind, why) from None
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

    def _open(
        self,
        index: int,
        bind: Bind,
        frontend: str,
        factory: Any,
        tls: ServerTLS | None,
    ) -> Any:
        on_socket = tls is not None and transport.supported(self.reactor)
        if tls is not None and not on_socket:
            factory = TLSMemoryBIOFactory(tls, False, factory)
        factory = LimitedFactory(self.limits, frontend, factory)
        if self.descriptors is None:
            if on_socket:
                return TLSPort.listen(self.reactor, bind.port, factory, tls, bind.host)
            return self.reactor.listenTCP(bind.port, factory, interface=bind.host)
        if index >= len(self.descriptors):
            raise CannotListenError(
                bind.host, bind.port, "no socket was passed for this address"
            )
        try:
            # The port keeps a duplicate of the descriptor; ours is closed.
            with socket.socket(fileno=self.descriptors[index]) as passed:
                passed.setblocking(False)
                if on_socket:
                    return TLSPort.adopt(
                        self.reactor, passed.fileno(), passed.family, factory, tls
                    )
                return self.reactor.adoptStreamPort(
                    passed.fileno(), passed.family, factory
                )
        except OSError as e:
            raise CannotListenError(bind.host, bind.port, e) from None

    def stopService(self) -> Deferred[Any]:
        Service.stopService(self)
        return self.stop_listening(lambda frontend: True)

    def stop_listening(self, which: Callable[[str], bool]) -> Deferred[Any]:
        """Close the ports of the frontends C{which} says."""
        closing = [p for p in self.ports if which(p[0])]
        self.ports = [p for p in self.ports if not which(p[0])]
        for _, _, port in closing:
            self.limits.remove_port(port)
        return gatherResults([maybeDeferred(p.stopListening) for _, _, p in closing])

    def addresses(self) -> list[tuple[str, str, int]]:
        """C{(frontend, host, port)} of each open port (useful with port 0)."""
        return [(f, p.getHost().host, p.getHost().port) for f, _, p in self.ports]


class ClientConnection(NamedTuple):
    """A client connection open now, as L{CertlbService.connections} gives it.

    @ivar frontend: the name of the frontend that accepted it.
    @ivar peer: the client's C{(address, port)}.
    @ivar tls: what its client certificate was (the facts that rules and
        fetches such as C{ssl_c_verify} see); C{None} over plain TCP, and
        while its TLS handshake is under way.
    """

    frontend: str
    peer: tuple[str, int]
    tls: ClientCertState | None


class CertlbService(MultiService):
    """The whole of certlb: listeners, and what they share.

    Add it to an C{Application} or a C{MultiService} of your own; its state
    can be read from Python while it runs (from the reactor's thread), and
    is not to be changed but through the configuration:

      - C{service.backends[NAME].servers}: each server's L{ServerState}, in
        configuration order: C{name}, C{address}, C{up} (what health checks
        last said; servers without C{check} stay up), C{usable} (up, not
        C{disabled}, of some weight), C{active} (requests sent to it and not
        finished), and for a checked server C{monitor.health}, HAProxy's
        health counter (UP from C{rise}, at most C{rise + fall - 1}).
      - L{connections}: each open client connection with its certificate
        state, a L{ClientCertState}.
      - L{addresses}: where each frontend listens (useful with port 0).

    Inside a request, a rule written in Python reads the same certificate
    state as C{context.connection.tls} (its L{IRequestContext}).

    @ivar config: the configuration it runs.
    @ivar frontends: the run-time frontends by name, with their backends and
        servers.
    @ivar backends: the run-time backends (L{BackendRuntime}) by name: their
        C{servers}, and C{waiting}, the requests queued for a free server
        (C{maxconn}).
    @ivar health: the health checks of every backend's servers.
    @ivar logs: the writers of the frontends' log targets.
    @ivar limits: the connections open per frontend and in all
        (C{limits.count(frontend)}, C{limits.count_all()}).
    @ivar listeners: the listening ports.
    """

    def __init__(self, config: Config, reactor: Any) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.backends: dict[str, BackendRuntime] = build_backends(config)
        self.frontends: dict[str, FrontendRuntime] = build_runtime(
            config, self.backends
        )
        self.logs = LogTargetsService(
            (t for f in config.frontends for t in f.logs), reactor
        )
        self.logs.setServiceParent(self)
        for frontend in config.frontends:
            self.frontends[frontend.name].log_writers = [
                self.logs.writers[t] for t in frontend.logs
            ]
        self.engine = Engine(reactor)
        self.limits = ConnectionLimits(
            config.global_.maxconn,
            {f.name: f.maxconn for f in config.frontends if f.maxconn is not None},
        )
        listeners = []
        self.factories: dict[str, FrontendFactory] = {}
        for frontend in config.frontends:
            factory: Any = FrontendFactory(
                self.frontends[frontend.name], self.engine, self.limits
            )
            self.factories[frontend.name] = factory
            for bind in frontend.binds:
                tls = _server_tls(bind, frontend.name) if bind.ssl else None
                listeners.append((bind, frontend.name, factory, tls))
        self.health = HealthCheckService(self.backends.values(), reactor)
        self.health.setServiceParent(self)
        self.listeners = ListenerService(listeners, reactor, self.limits)
        self.listeners.setServiceParent(self)
        self.tickets = TicketKeyRotation(
            (
                (f"{name} {bind.address}", tls)
                for bind, name, _, tls in listeners
                if tls is not None
            ),
            config.global_.ticket_key_lifetime / 1000,
            reactor,
        )
        self.tickets.setServiceParent(self)

    def connections(self) -> Iterator[ClientConnection]:
        """Each client connection open now, with its certificate state."""
        for name, factory in self.factories.items():
            for channel in list(factory.channels):
                info = channel.connection
                if info is not None:
                    done = _handshake_done(channel.transport)
                    yield ClientConnection(
                        name, info.source, info.tls if done else None
                    )

    def addresses(self) -> list[tuple[str, str, int]]:
        """C{(frontend, host, port)} of each port it listens on, once started
        (the port the system chose, for a bind on port 0)."""
        return self.listeners.addresses()

    def resource(self, frontend: str) -> FrontendResource:
        """A twisted.web resource forwarding requests through C{frontend}'s
        rules, balancer and servers, for mounting in a C{Site} of your own."""
        return FrontendResource(self.frontends[frontend], self.engine)

    def stopService(self) -> Deferred[Any]:
        """Stop gracefully, as HAProxy does on a soft stop.

        Each frontend goes on accepting connections for its C{grace}, then
        stops listening and closes its client connections as they become
        idle, each after the requests already begun on it are answered.
        Once no connection is left, or C{hard-stop-after} has passed (and
        what is left is cut), the rest stops: health checks, connections to
        servers.
        """
        hard_stop_after = self.config.global_.hard_stop_after
        log.info(
            "certlb is stopping: {connections} client connections open{limit}",
            connections=sum(len(f.channels) for f in self.factories.values()),
            limit=f", at most {hard_stop_after / 1000:g}s more (hard-stop-after)"
            if hard_stop_after
            else "",
        )
        self._graces: list[tuple[IDelayedCall, Deferred[None]]] = []
        drained: Deferred[Any] = DeferredList(
            [
                self._stop_frontend(f).addErrback(
                    _log_failure, f"internal error while stopping frontend {f.name}"
                )
                for f in self.config.frontends
            ]
        )
        if hard_stop_after is not None:
            timer = self.reactor.callLater(hard_stop_after / 1000, self._hard_stop)
            drained.addBoth(_pass_after(lambda: _cancel(timer)))
        drained.addErrback(_log_failure, "internal error while stopping")
        drained.addBoth(lambda _: super(CertlbService, self).stopService())
        drained.addBoth(_pass_after(self.engine.pool.close))
        return drained

    def _stop_frontend(self, frontend: Frontend) -> Deferred[Any]:
        grace = frontend.grace or self.config.global_.grace
        if grace:
            log.info(
                "frontend {frontend} accepts connections {seconds}s more (grace)",
                frontend=frontend.name,
                seconds=f"{grace / 1000:g}",
            )
            d: Deferred[Any] = Deferred()
            call = self.reactor.callLater(grace / 1000, d.callback, None)
            self._graces.append((call, d))
        else:
            d = succeed(None)
        factory = self.factories[frontend.name]
        d.addCallback(
            lambda _: self.listeners.stop_listening(lambda name: name == frontend.name)
        )
        d.addCallback(lambda _: factory.drain())
        return d

    def _hard_stop(self) -> None:
        """C{hard-stop-after} has passed: stop listening, cut every connection."""
        for call, d in self._graces:
            if call.active():
                call.cancel()
                d.callback(None)
        left = [f for f in self.factories.values() if f.channels]
        log.warn(
            "hard-stop-after: cutting {connections} client connections still open",
            connections=sum(len(f.channels) for f in left),
        )
        for factory in left:
            factory.abort()


def _handshake_done(transport: Any) -> bool:
    """Whether a connection's certificate state is final: its TLS handshake
    is over (the client's Finished came), or it is not TLS.

    (The state is kept from its first reading on: reading it earlier would
    keep what the handshake had not yet found.)
    """
    finished = getattr(transport.getHandle(), "get_peer_finished", None)
    return finished is None or finished() is not None


def _cancel(call: IDelayedCall) -> None:
    if call.active():
        call.cancel()


def _log_failure(failure: Any, why: str) -> None:
    log.failure(why, failure)


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
    same errors as one read from a file (and its warnings are logged).
    Nothing listens until the service is started.

    @param reactor: the reactor to listen, connect and time with.
    @raise ConfigError: the configuration has errors.
    """
    found = check(config)
    problems = [p for p in found if p.severity == ERROR]
    if problems:
        raise ConfigError(problems)
    if not config.files:
        # Built in Python: no loader has reported its warnings.
        for problem in found:
            log.warn("{problem}", problem=problem)
    try:
        return CertlbService(config, reactor)
    except RuleError as e:  # a plugin that fails on a server (a health check)
        raise ConfigError([Problem(e.location, e.message)]) from None
