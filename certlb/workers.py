"""Workers: one master process that listens, N worker processes that serve.

With C{nbproc N} or C{twistd certlb --workers N} (N > 1), the twistd process
becomes a master: it opens every listening socket itself (before twistd
drops its privileges), then starts N worker processes
(C{python -m certlb.worker}), each running the whole configuration on
duplicates of those sockets: the kernel hands each new connection to one
of them.  The master serves no request.  It relays the workers' log
events to its own log, starts a new worker in place of one that exits
(at once, then with a growing delay while they keep dying young), and on
SIGTERM or SIGINT stops them (each stops gracefully, as one process
does) and waits for them.

What a worker gets (see L{certlb.worker}):
  - file descriptor 0: a pipe from the master, on which the master writes
    one line of JSON (the configuration's files as the master read them,
    with every certificate, key, CA, CRL and map they name, and the
    sockets in the order of the binds) and
    which it keeps open: when it reads end-of-file, the master is gone and
    the worker stops;
  - 1: a pipe to the master for its log events, one JSON object a line;
  - 2: a pipe to the master for anything else it writes (a traceback at
    start-up), logged as a warning line by line;
  - 3 and up: the listening sockets.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet import error
from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

import certlb
from certlb.config.model import Bind, Config
from certlb.service import ListenError

log = Logger()

# A worker that lived this long is not crashing at start-up: when it dies,
# a new one starts at once.
STABLE = 10.0
# The longest wait before a new worker, for one that keeps dying young.
MAX_DELAY = 60.0
# After hard-stop-after, a worker still running is killed this much later.
KILL_MARGIN = 5.0
# The longest line of a worker's log relayed as it is.
MAX_LINE = 65536
# Twisted's listen() backlog, so that workers listen as one process does.
BACKLOG = 50
FIRST_FD = 3


def restart_delay(failures: int) -> float:
    """How long to wait before starting a worker again after C{failures}
    deaths in a row that each came soon after its start: 0, then 1, 2, 4,
    ... seconds, at most L{MAX_DELAY}."""
    if failures <= 0:
        return 0.0
    return float(min(MAX_DELAY, 2 ** (failures - 1)))


def open_sockets(config: Config) -> list[tuple[str, Bind, socket.socket]]:
    """Listen on every bind of every frontend, all or none, as the single
    process does (C{SO_REUSEADDR}, non-blocking, the same backlog).

    @raise ListenError: naming the frontend, the address and its line.
    """
    opened: list[tuple[str, Bind, socket.socket]] = []
    for frontend in config.frontends:
        for bind in frontend.binds:
            family = socket.AF_INET6 if isIPv6Address(bind.host) else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((bind.host, bind.port))
                sock.listen(BACKLOG)
                sock.setblocking(False)
            except OSError as e:
                sock.close()
                for _, _, other in opened:
                    other.close()
                raise ListenError.at(
                    frontend.name, bind, e.strerror or str(e)
                ) from None
            opened.append((frontend.name, bind, sock))
    return opened


def describe_end(reason: Failure | BaseException) -> str:
    """How a process ended, in words: C{exited with status 1}, C{was killed
    by signal 9 (SIGKILL)}."""
    value = reason.value if isinstance(reason, Failure) else reason
    number = getattr(value, "signal", None)
    if number is not None:
        try:
            name = f" ({signal.Signals(number).name})"
        except ValueError:
            name = ""
        return f"was killed by signal {number}{name}"
    return f"exited with status {getattr(value, 'exitCode', None)}"


class WorkerProcess(ProcessProtocol):
    """One run of one worker: what the master knows of it, and its pipes.

    @ivar number: which worker it is, from 1 (a new worker in place of a
        dead one takes its number).
    @ivar started: when it started, by the master's clock.
    """

    transport: Any

    def __init__(self, workers: WorkersService, number: int, message: bytes) -> None:
        self.workers = workers
        self.number = number
        self.message = message
        self.started = workers.reactor.seconds()
        self.pid: int | None = None
        self._buffers = {1: bytearray(), 2: bytearray()}
        self.ready = False  # it said it serves (its sockets adopted)

    def connectionMade(self) -> None:
        self.pid = self.transport.pid
        # Written once and kept open: its end-of-file tells the worker that
        # the master is gone.
        self.transport.writeToChild(0, self.message)
        self.message = b""

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        buffer = self._buffers.get(childFD)
        if buffer is None:
            return
        buffer += data
        end = buffer.rfind(b"\n")
        if end >= 0:
            lines = bytes(buffer[:end]).split(b"\n")
            del buffer[: end + 1]
            for line in lines:
                self._line(childFD, line)
        if len(buffer) > MAX_LINE:  # no line is that long: cut it
            self._line(childFD, bytes(buffer[:MAX_LINE]) + b" [cut]")
            buffer.clear()

    def _line(self, fd: int, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if fd == 1:
            try:
                record = json.loads(text)
                level = LogLevel.levelWithName(record["level"])
                namespace = str(record["namespace"])
                message = str(record["text"])
            except (ValueError, KeyError, TypeError, AttributeError):
                pass
            else:
                if record.get("ready") is True:
                    self.ready = self.workers.ever_ready = True
                self.workers.relay(self, level, namespace, message)
                return
        if text.strip():
            self.workers.relay(self, LogLevel.warn, "certlb.worker", text)

    def processExited(self, reason: Failure) -> None:
        # Not processEnded: that waits for every pipe to close, which a
        # process the worker started (a plugin's) may keep open.
        self.workers.ended(self, reason)

    def processEnded(self, reason: Failure) -> None:
        for fd, buffer in self._buffers.items():
            if buffer:
                self._line(fd, bytes(buffer))
                buffer.clear()

    def signal(self, name: str) -> None:
        """Send signal C{name} (C{"TERM"}, C{"KILL"}) unless it has ended."""
        with contextlib.suppress(error.ProcessExitedAlready):
            self.transport.signalProcess(name)


class WorkersService(Service):
    """The master: listens, and keeps C{count} worker processes running.

    @ivar workers: the worker processes running now, by number.
    @ivar sockets: the listening sockets, once started.
    """

    def __init__(
        self,
        config: Config,
        files: Mapping[str, bytes],
        count: int,
        reactor: Any,
        debug_rules: bool = False,
    ) -> None:
        self.config = config
        self.files = dict(files)
        self.count = count
        self.reactor = reactor
        self.debug_rules = debug_rules
        self.cwd = os.getcwd()
        self.sockets: list[tuple[str, Bind, socket.socket]] = []
        self.workers: dict[int, WorkerProcess] = {}
        self._failures: dict[int, int] = {}
        self._restarts: dict[int, IDelayedCall] = {}
        self._stopping = False
        self.ever_ready = False  # a worker has served: start-up works
        self._never_ready: set[int] = set()  # workers that died before serving
        self._stopped: Deferred[None] | None = None
        self._kill: IDelayedCall | None = None

    def privilegedStartService(self) -> None:
        self._listen()
        Service.privilegedStartService(self)

    def startService(self) -> None:
        if not self.sockets:
            self._listen()
        Service.startService(self)
        log.info(
            "starting {count} worker processes (nbproc/--workers)", count=self.count
        )
        for number in range(1, self.count + 1):
            self._spawn(number)

    def _listen(self) -> None:
        self.sockets = open_sockets(self.config)
        for frontend, _, sock in self.sockets:
            host, port = sock.getsockname()[:2]
            log.info(
                "frontend {frontend} listening on {host}:{port}",
                frontend=frontend,
                host=host,
                port=port,
            )

    def addresses(self) -> list[tuple[str, str, int]]:
        """C{(frontend, host, port)} of each listening socket."""
        return [(f, *s.getsockname()[:2]) for f, _, s in self.sockets]

    def message(self, number: int) -> bytes:
        """What worker C{number} reads on its descriptor 0."""
        return (
            json.dumps(
                {
                    "worker": number,
                    "config": list(self.config.files),
                    "files": {
                        path: base64.b64encode(data).decode("ascii")
                        for path, data in self.files.items()
                    },
                    "sockets": [FIRST_FD + i for i in range(len(self.sockets))],
                    "debug_rules": self.debug_rules,
                }
            ).encode()
            + b"\n"
        )

    def _spawn(self, number: int) -> None:
        self._restarts.pop(number, None)
        if self._stopping:
            return
        process = WorkerProcess(self, number, self.message(number))
        fds: dict[int, int | str] = {0: "w", 1: "r", 2: "r"}
        for i, (_, _, sock) in enumerate(self.sockets):
            fds[FIRST_FD + i] = sock.fileno()
        env = dict(os.environ)
        # The worker imports the certlb this process runs, wherever it is.
        root = os.path.dirname(os.path.dirname(os.path.abspath(certlb.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, env.get("PYTHONPATH")) if p
        )
        try:
            self.reactor.spawnProcess(
                process,
                sys.executable,
                [sys.executable, "-m", "certlb.worker", str(number)],
                env=env,
                path=self.cwd,
                childFDs=fds,
            )
        except Exception:
            log.failure("cannot start worker {number}", number=number)
            self._restart_later(number, process)
            return
        self.workers[number] = process
        log.info("worker {number} (pid {pid}) started", number=number, pid=process.pid)

    def relay(
        self, worker: WorkerProcess, level: LogLevel, namespace: str, text: str
    ) -> None:
        """Log a line a worker logged, as C{[worker N] ...} in this log."""
        log.observer(
            {
                "log_level": level,
                "log_namespace": namespace,
                "log_system": f"worker {worker.number}, {namespace}#{level.name}",
                "log_format": "{log_text}",
                "log_text": text,
                "log_time": self.reactor.seconds(),
                "log_logger": log,
                "log_source": None,
                "certlb_worker": worker.number,
                "certlb_worker_pid": worker.pid,
            }
        )

    def ended(self, worker: WorkerProcess, reason: Failure) -> None:
        """A worker process ended: start another unless certlb is stopping."""
        if self.workers.get(worker.number) is worker:
            del self.workers[worker.number]
        how = describe_end(reason)
        if self._stopping:
            log.info(
                "worker {number} (pid {pid}) {how}",
                number=worker.number,
                pid=worker.pid,
                how="stopped" if how == "exited with status 0" else how,
            )
            self._check_stopped()
            return
        # A worker that exits with an error before it serves (not one
        # killed by a signal) says the start-up itself fails.
        failed = getattr(reason.value, "exitCode", None) not in (None, 0)
        if failed and not worker.ready and not self.ever_ready:
            self._never_ready.add(worker.number)
            if len(self._never_ready) >= self.count:
                log.critical(
                    "no worker could start (worker {number} {how}; see its lines "
                    "above): certlb stops",
                    number=worker.number,
                    how=how,
                )
                self.reactor.stop()
                return
        self._restart_later(worker.number, worker, how)

    def _restart_later(
        self, number: int, worker: WorkerProcess, how: str | None = None
    ) -> None:
        if self.reactor.seconds() - worker.started >= STABLE:
            self._failures[number] = 0
        delay = restart_delay(self._failures.get(number, 0))
        self._failures[number] = self._failures.get(number, 0) + 1
        if how is not None:
            log.warn(
                "worker {number} (pid {pid}) {how}; starting a new one{when}",
                number=number,
                pid=worker.pid,
                how=how,
                when=f" in {delay:g}s" if delay else "",
            )
        self._restarts[number] = self.reactor.callLater(delay, self._spawn, number)

    def stopService(self) -> Deferred[None]:
        """Stop every worker (each stops gracefully) and wait for them."""
        Service.stopService(self)
        self._stopping = True
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()
        # The workers hold their own duplicates, and go on accepting during
        # their grace; once the last closes them, the port is closed.
        for _, _, sock in self.sockets:
            sock.close()
        self.sockets = []
        if not self.workers:
            return succeed(None)
        log.info("stopping {count} workers", count=len(self.workers))
        # Asked again (a second SIGTERM or Ctrl-C): no more waiting.
        for name in ("SIGTERM", "SIGINT") if self.reactor.running else ():
            with contextlib.suppress(ValueError):  # not in the main thread
                signal.signal(
                    getattr(signal, name),
                    lambda *_: self.reactor.callFromThread(self._kill_all),
                )
        self._stopped = Deferred()
        for worker in list(self.workers.values()):
            worker.signal("TERM")
        hard_stop_after = self.config.global_.hard_stop_after
        if hard_stop_after is not None:
            self._kill = self.reactor.callLater(
                hard_stop_after / 1000 + KILL_MARGIN, self._kill_all
            )
        return self._stopped

    def forward(self, name: str) -> None:
        """Send signal C{name} to every worker running."""
        for worker in list(self.workers.values()):
            worker.signal(name)

    def _kill_all(self) -> None:
        log.warn("killing {count} workers still running", count=len(self.workers))
        self.forward("KILL")

    def _check_stopped(self) -> None:
        if self.workers or self._stopped is None:
            return
        if self._kill is not None and self._kill.active():
            self._kill.cancel()
        done, self._stopped = self._stopped, None
        log.info("all workers stopped")
        done.callback(None)
