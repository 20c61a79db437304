"""The twistd plugin: C{twistd [-n] certlb --config FILE [--config FILE...]}."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from twisted.application.service import IService, MultiService
from twisted.logger import Logger
from twisted.python import usage

from certlb._version import __version__
from certlb.config import ConfigError, check_config, load_config
from certlb.config.backend_keywords import MAX_WORKERS
from certlb.config.sources import recording
from certlb.report import print_problems
from certlb.service import ListenError, make_service

log = Logger()


class Options(usage.Options):
    synopsis = (
        "--config FILE [--config FILE ...] [--workers N] [--check] [--debug-rules]"
    )
    longdesc = (
        "Run certlb, a TLS-terminating HTTP load balancer that verifies client "
        "certificates, with an HAProxy-style configuration.  Several "
        "configuration files are read in order, as one.  Relative file names "
        "in a configuration (crt, ca-file) are relative to that file's "
        "directory.  See certlb(1) and certlb.cfg(5)."
    )
    optFlags: ClassVar[list[list[str | None]]] = [
        [
            "check",
            "c",
            "Check the configuration, print every problem, and exit: "
            "0 when it can run, 1 otherwise.",
        ],
        [
            "debug-rules",
            None,
            "Log the rule trace of every request (which rules matched and "
            "why, the backend chosen) at debug level, to twistd's log and to "
            "the frontend's log targets whose level lets debug through.  "
            "Never sent to clients.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["config"] = []
        self["workers"] = None

    def opt_workers(self, count: str) -> None:
        """Run N worker processes under a master process (overrides nbproc)."""
        if not (count.isascii() and count.isdigit()) or not (
            1 <= int(count) <= MAX_WORKERS
        ):
            raise usage.UsageError(
                f"--workers takes a whole number from 1 to {MAX_WORKERS}, not {count!r}"
            )
        self["workers"] = int(count)

    def opt_version(self) -> None:
        """Print certlb's version and exit."""
        print(f"certlb {__version__}")
        sys.exit(0)

    def opt_config(self, path: str) -> None:
        """Read this configuration file (repeat for several; read in order)."""
        self["config"].append(path)

    opt_f = opt_config

    def postOptions(self) -> None:
        if not self["config"]:
            raise usage.UsageError("give a configuration file: --config FILE")
        if self["check"]:
            _, problems = check_config(self["config"])
            sys.exit(print_problems(problems, self["config"], sys.stdout))


class _ReportListenError(MultiService):
    """Reports a port that cannot be bound as a message, not a traceback.

    The error still propagates as an exception: twistd then removes its PID
    file and, when it runs in the background, tells the command that started
    it (which a SystemExit would leave waiting).  In the foreground, the
    message alone is printed.
    """

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except ListenError as e:
            log.critical("certlb cannot start: {why}", why=str(e))
            _print_without_traceback(ListenError)
            raise


def _print_without_traceback(kind: type[BaseException]) -> None:
    """Let an uncaught C{kind} end the process with its message only."""
    previous = sys.excepthook

    def hook(type_: type[BaseException], value: BaseException, tb: Any) -> None:
        if issubclass(type_, kind):
            print(f"certlb: {value}", file=sys.stderr)
        else:
            previous(type_, value, tb)

    sys.excepthook = hook


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    # Every file the configuration names is read once, here (as root if
    # twistd starts so): workers get these contents, not the disk's.
    with recording() as files:
        try:
            config = load_config(*options["config"])
        except ConfigError as e:
            print_problems(e.problems, options["config"], sys.stderr)
            raise SystemExit(1) from None
        for warning in config.warnings:
            log.warn("{problem}", problem=str(warning))
        # Built also for workers: it checks what the configuration names (the
        # certificates, the plugins), so that their errors stop the start-up.
        service: Any = make_service(config, reactor)
    top = _ReportListenError()
    workers = options["workers"] or config.global_.nbproc or 1
    if workers > 1:
        from certlb.workers import WorkersService

        if options["debug-rules"]:
            log.info("rule tracing is on (--debug-rules) in every worker")
        WorkersService(
            config, files, workers, reactor, debug_rules=options["debug-rules"]
        ).setServiceParent(top)
        return top
    if options["debug-rules"]:
        from certlb.rules.trace import enable_tracing

        enable_tracing(config, service.frontends)
        log.info(
            "rule tracing is on (--debug-rules): each request's trace is "
            "logged at debug level"
        )
    service.setServiceParent(top)
    return top
