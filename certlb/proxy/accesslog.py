"""Access log lines: one per request, for frontends with C{option httplog}
or a C{log-format}, sent at info level to the frontend's C{log} targets, or
when it has none, written in the C{certlb.access} namespace (so that
twistd's C{--logfile} and C{--syslog} take them)."""

from __future__ import annotations

from twisted.logger import Logger

from certlb.proxy.runtime import FrontendRuntime
from certlb.rules.interfaces import IRequestContext

access_log = Logger(namespace="certlb.access")
log = Logger()


def write_access_line(frontend: FrontendRuntime, context: IRequestContext) -> None:
    """Write the line of the request C{context}, whose C{record} is complete,
    if C{frontend} has a log format.  A line that cannot be rendered (a
    plugin fetch that fails) is logged as such; the request is not affected."""
    log_format = frontend.log_format
    if log_format is None:
        return
    try:
        line = log_format.render_log(context)
    except Exception:
        log.failure(
            "frontend {frontend}: cannot write an access log line",
            frontend=frontend.name,
        )
        return
    if frontend.log_writers:
        for writer in frontend.log_writers:
            writer.send(line)
        return
    access_log.info("{line}", line=line, frontend=frontend.name)
