"""A worker process: C{python -m certlb.worker N}, started by the master
(L{certlb.workers}), never by hand.

It reads, on its descriptor 0, one line of JSON from the master: the
configuration's file names, the content of every file the master read for
it (configuration, certificates, keys, CAs, CRLs, maps), and the
descriptors of the listening sockets, one per bind in the configuration's
order.  It runs that configuration as the single process
does, adopting the sockets instead of listening, writes its log events to
descriptor 1 (one JSON object a line: C{level}, C{namespace}, C{text}),
and stops gracefully on SIGTERM, on SIGINT, or when descriptor 0 reaches
end-of-file (the master is gone).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet import error
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    eventAsText,
    globalLogBeginner,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from certlb.config import load_config
from certlb.config.errors import ConfigError
from certlb.config.model import Config
from certlb.config.sources import use_snapshot
from certlb.report import print_problems
from certlb.service import ListenError, make_service

log = Logger(namespace="certlb.worker")


def read_message(fd: int = 0) -> dict[str, Any]:
    """The master's line of JSON, read before anything else."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            raise SystemExit("certlb.worker: no message from the master on stdin")
        data += chunk
    message: dict[str, Any] = json.loads(data)
    return message


def load_snapshot(message: dict[str, Any]) -> Config:
    """The configuration as the master read it: its files, and every file
    it names, come from the master's message (read with the master's
    privileges; a file changed since does not change a worker).

    @raise ConfigError: as L{load_config}.
    """
    use_snapshot(
        {path: base64.b64decode(data) for path, data in message.pop("files").items()}
    )
    return load_config(*message["config"])


@implementer(ILogObserver)
class ToMaster:
    """Writes each log event as a line of JSON on a descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __call__(self, event: LogEvent) -> None:
        level = event.get("log_level")
        record = {
            "level": getattr(level, "name", "info"),
            "namespace": event.get("log_namespace", "log_legacy"),
            "text": eventAsText(
                event, includeTimestamp=False, includeSystem=False
            ).rstrip("\n"),
        }
        if event.get("certlb_ready"):
            record["ready"] = True
        data = json.dumps(record).encode() + b"\n"
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            pass  # the master is gone: the worker is stopping


@implementer(IReadDescriptor)
class MasterPipe:
    """Descriptor 0, whose end-of-file says the master is gone."""

    def __init__(self, fd: int, gone: Any) -> None:
        self.fd = fd
        self.gone = gone

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "master pipe"

    def doRead(self) -> Any:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        return None if data else error.ConnectionDone()

    def connectionLost(self, reason: Failure) -> None:
        self.gone()


class Worker:
    """Runs one worker's service on a reactor, and stops it once."""

    def __init__(self, message: dict[str, Any], reactor: Any) -> None:
        self.reactor = reactor
        self.number = int(message["worker"])
        self.config = load_snapshot(message)
        try:
            self.service: Any = make_service(self.config, reactor)
        finally:
            use_snapshot(None)  # read; not kept for the life of the worker
        self.service.listeners.descriptors = [int(fd) for fd in message["sockets"]]
        if message.get("debug_rules"):
            from certlb.rules.trace import enable_tracing

            enable_tracing(self.config, self.service.frontends)
        self.code = 0
        self._stopping = False

    def start(self) -> None:
        for name in ("SIGTERM", "SIGINT"):
            number = getattr(signal, name)
            if signal.getsignal(number) is not signal.SIG_IGN:  # as twistd
                signal.signal(number, self._signalled)
        for name in ("SIGHUP", "SIGUSR1", "SIGUSR2"):  # the master's business
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        self.reactor.addReader(MasterPipe(0, self._master_gone))
        try:
            self.service.startService()
        except ListenError as e:
            log.critical(
                "worker {number} cannot start: {why}", number=self.number, why=e
            )
            self.code = 1
            self.stop()
            return
        except Exception:
            log.failure("worker {number} cannot start", number=self.number)
            self.code = 1
            self.stop()
            return
        self.reactor.addSystemEventTrigger(
            "before", "shutdown", self.service.stopService
        )
        log.info("worker {number} serves", number=self.number, certlb_ready=True)

    def _signalled(self, number: int, frame: Any) -> None:
        self.reactor.callFromThread(self.stop)

    def _master_gone(self) -> None:
        if self._stopping:
            return  # the reactor is shutting down: it disconnects every reader
        log.warn(
            "the master process is gone: worker {number} stops", number=self.number
        )
        self.stop()

    def stop(self) -> None:
        if not self._stopping:
            self._stopping = True
            self.reactor.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Run a worker: the master's message from descriptor 0, logs to 1."""
    message = read_message(0)
    globalLogBeginner.beginLoggingTo([ToMaster(1)], redirectStandardIO=True)
    from twisted.internet import reactor

    try:
        worker = Worker(message, reactor)
    except ConfigError as e:
        print_problems(e.problems, message["config"], sys.stderr)
        raise SystemExit(1) from None
    reactor.callWhenRunning(worker.start)
    reactor.run()
    sys.exit(worker.code)


if __name__ == "__main__":
    main()
