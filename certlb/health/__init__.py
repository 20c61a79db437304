"""Health checks: which servers may get requests.

L{HealthCheckService} checks every server that says C{check}, at the
intervals of its configuration, and turns it DOWN or UP; the very next
request sees the change.  See L{certlb.health.monitor.initial_health} for
the state a server starts in.
"""

from certlb.health.service import HealthCheckService

__all__ = ["HealthCheckService"]
