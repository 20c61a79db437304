"""certlb: a programmable mTLS load balancer for Twisted.

The public API::

    from certlb import load_config, make_service
    config = load_config("etc/phase2.cfg")
    service = make_service(config, reactor)
    service.setServiceParent(application)
"""

from certlb._version import __version__
from certlb.config import ConfigError, load_config, parse_config
from certlb.service import ListenError, make_service

__all__ = [
    "ConfigError",
    "ListenError",
    "__version__",
    "load_config",
    "make_service",
    "parse_config",
]
