"""certlb: a programmable mTLS load balancer for Twisted.

The public API::

    from certlb import load_config, make_service
    config = load_config("etc/phase2.cfg")
    service = make_service(config, reactor)
    service.setServiceParent(application)

Importing C{certlb} or C{certlb.config} does not import the reactor or any
networking code; C{make_service} brings those in when first used.
"""

from __future__ import annotations

from typing import Any

from certlb._version import __version__
from certlb.config import ConfigError, load_config, parse_config

__all__ = [
    "ConfigError",
    "ListenError",
    "__version__",
    "load_config",
    "make_service",
    "parse_config",
]


def __getattr__(name: str) -> Any:
    if name in ("make_service", "ListenError"):
        from certlb import service

        return getattr(service, name)
    raise AttributeError(f"module 'certlb' has no attribute {name!r}")
