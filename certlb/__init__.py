"""certlb: a programmable mTLS load balancer for Twisted.

The public API::

    from certlb import load_config, make_service
    config = load_config("etc/phase2.cfg")
    service = make_service(config, reactor)
    service.setServiceParent(application)

A configuration can also be built from Python objects, checked as a file
is (C{make_service} raises L{ConfigError} with every problem)::

    from certlb import Backend, Bind, Config, Frontend, Server, UseBackend
    config = Config(
        frontends=[
            Frontend(
                "www",
                binds=[Bind("127.0.0.1", 8443, ssl=True, crt="server.pem",
                            ca_file="ca.crt", verify="optional")],
                use_backends=[UseBackend("app", "if { ssl_c_verify 0 }")],
                default_backend="public",
            )
        ],
        backends=[
            Backend("app", servers=[Server("app1", "127.0.0.1", 8080)]),
            Backend("public", servers=[Server("pub1", "127.0.0.1", 8081)]),
        ],
    )

The running service's state (servers, connections and their certificates)
is described on L{certlb.service.CertlbService}; C{examples/embed.tac} runs
certlb next to another Twisted service.

Importing C{certlb} or C{certlb.config} does not import the reactor or any
networking code; C{make_service} brings those in when first used.
"""

from __future__ import annotations

from typing import Any

from certlb._version import __version__
from certlb.config import ConfigError, load_config, parse_config
from certlb.config.model import (
    AclDef,
    Backend,
    Bind,
    Condition,
    Config,
    ForwardFor,
    Frontend,
    Global,
    HttpCheck,
    SampleExpression,
    Server,
    Timeouts,
    UseBackend,
)

__all__ = [
    "AclDef",
    "Backend",
    "Bind",
    "CertlbService",
    "ClientConnection",
    "Condition",
    "Config",
    "ConfigError",
    "ForwardFor",
    "Frontend",
    "Global",
    "HttpCheck",
    "ListenError",
    "SampleExpression",
    "Server",
    "Timeouts",
    "UseBackend",
    "__version__",
    "load_config",
    "make_service",
    "parse_config",
]

_SERVICE = ("make_service", "ListenError", "CertlbService", "ClientConnection")


def __getattr__(name: str) -> Any:
    if name in _SERVICE:
        from certlb import service

        return getattr(service, name)
    raise AttributeError(f"module 'certlb' has no attribute {name!r}")
