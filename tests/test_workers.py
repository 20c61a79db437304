"""Workers without processes or sockets: the nbproc keyword, the --workers
option, and the master's bookkeeping (start, relay, restart with back-off,
stop) on a fake process reactor."""

from __future__ import annotations

import base64
import json
import os
import sys
from typing import Any

from twisted.internet.error import ConnectionDone, ProcessDone, ProcessTerminated
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import (
    ILogObserver,
    Logger,
    LogLevel,
    formatEvent,
    globalLogPublisher,
)
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from certlb import tap
from certlb.config import check_config, parse_config
from certlb.config.model import Bind, Config, Global
from certlb.config.sources import read_bytes, recording, use_snapshot
from certlb.proxy.limits import ConnectionLimits
from certlb.service import CertlbService, ListenError, ListenerService
from certlb.tls.client import build_client_context
from certlb.tls.server import build_context
from certlb.worker import MasterPipe, ToMaster, load_snapshot
from certlb.workers import (
    KILL_MARGIN,
    MAX_DELAY,
    MAX_LINE,
    STABLE,
    WorkerProcess,
    WorkersService,
    describe_end,
    restart_delay,
)
from tests.helpers import pki_files, write_config

SERVED = """\
frontend fe
    mode http
    bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.crt verify optional
    default_backend be
backend be
    mode http
    server s1 127.0.0.1:8080
"""


PLAIN = SERVED.replace(" ssl crt ./server.pem ca-file ./ca.crt verify optional", "")


def only_messages(problems: list[Any]) -> list[str]:
    return [str(p) for p in problems]


READY = (
    b'{"level": "info", "namespace": "certlb.worker", "text": "serves", '
    b'"ready": true}\n'
)


class KeywordTests(SynchronousTestCase):
    def parse(self, global_lines: str) -> tuple[Config, list[str]]:
        text = f"global\n{global_lines}{PLAIN}"
        config, problems = parse_config(text, "t.cfg")
        return config, only_messages(problems)

    def test_nbproc(self) -> None:
        """'nbproc N' in global lands in Global.nbproc, without a problem."""
        config, problems = self.parse("    nbproc 4\n")
        self.assertEqual(problems, [])
        self.assertEqual(config.global_, Global(nbproc=4))

    def test_not_given(self) -> None:
        """Without nbproc, Global.nbproc is None: one process, no master."""
        config, _ = self.parse("")
        self.assertIsNone(config.global_.nbproc)

    def test_nbthread(self) -> None:
        """'nbthread N' (HAProxy 2.5+) starts N worker processes, with a
        warning that says they are processes and what that means."""
        config, problems = self.parse("    nbthread 3\n")
        self.assertEqual(config.global_.nbproc, 3)
        self.assertEqual(
            problems,
            [
                "t.cfg:2: warning: 'nbthread 3' starts 3 worker processes, as "
                "'nbproc 3' does: certlb's workers are processes, not threads, "
                "each with its own health checks, stick tables and connection "
                "limits; write 'nbproc 3' to say so"
            ],
        )

    def test_bad_values(self) -> None:
        """nbproc takes a whole number from 1 to 1024; the error says so."""
        for value in ("0", "two", "1025", "-1"):
            _, problems = self.parse(f"    nbproc {value}\n")
            self.assertEqual(
                problems,
                [
                    "t.cfg:2: error: nbproc must be a whole number from 1 to "
                    f"1024, not {value!r}"
                ],
            )
        _, problems = self.parse("    nbproc\n")
        self.assertEqual(
            problems, ["t.cfg:2: error: 'nbproc' needs a number of worker processes"]
        )

    def test_global_only(self) -> None:
        """nbproc in a frontend is an error naming the global section."""
        text = PLAIN.replace("    bind", "    nbproc 2\n    bind", 1)
        _, problems = parse_config(text, "t.cfg")
        self.assertEqual(len(problems), 1)
        self.assertIn("t.cfg:3: error: 'nbproc'", str(problems[0]))
        self.assertIn("global", str(problems[0]))


class OptionTests(SynchronousTestCase):
    def test_workers(self) -> None:
        """--workers N is read as a number; without it, None."""
        options = tap.Options()
        options.parseOptions(["--config", "x.cfg", "--workers", "3"])
        self.assertEqual(options["workers"], 3)
        options = tap.Options()
        options.parseOptions(["--config", "x.cfg"])
        self.assertIsNone(options["workers"])

    def test_bad_workers(self) -> None:
        """--workers refuses what is not a number from 1 to 1024, saying so."""
        for value in ("0", "many", "1025"):
            options = tap.Options()
            e = self.assertRaises(
                usage.UsageError,
                options.parseOptions,
                ["--config", "x.cfg", "--workers", value],
            )
            self.assertEqual(
                str(e), f"--workers takes a whole number from 1 to 1024, not {value!r}"
            )

    def make(self, config_text: str, *args: str) -> Any:
        self.made = getattr(self, "made", 0) + 1
        path = write_config(self, config_text, f"{self.made}.cfg")
        options = tap.Options()
        options.parseOptions(["--config", path, *args])
        top: Any = tap.makeService(options)
        (service,) = list(top)
        return service

    def test_chooses_the_master(self) -> None:
        """With --workers 2, or nbproc 2, twistd runs the master; --workers 1
        overrides nbproc and runs a single process, as without either."""
        self.assertIsInstance(self.make(SERVED, "--workers", "2"), WorkersService)
        with_nbproc = "global\n    nbproc 2\n" + SERVED
        master = self.make(with_nbproc)
        self.assertIsInstance(master, WorkersService)
        self.assertEqual(master.count, 2)
        self.assertIsInstance(self.make(with_nbproc, "--workers", "1"), CertlbService)
        self.assertIsInstance(self.make(SERVED), CertlbService)

    def test_master_sends_the_files(self) -> None:
        """The master hands its workers the files as it read them at
        start-up (the configuration, its certificates), and the sockets."""
        master = self.make(SERVED, "--workers", "2")
        message = json.loads(master.message(2))
        self.assertEqual(message["worker"], 2)
        [path] = message["config"]
        self.assertEqual(base64.b64decode(message["files"][path]), SERVED.encode())
        self.assertEqual(message["sockets"], [])  # none open before the start


class RestartDelayTests(SynchronousTestCase):
    def test_back_off(self) -> None:
        """A worker dying young again and again waits 0, 1, 2, 4 ... seconds
        before the next start, never more than MAX_DELAY."""
        self.assertEqual(
            [restart_delay(n) for n in range(9)], [0, 1, 2, 4, 8, 16, 32, 60, 60]
        )
        self.assertEqual(restart_delay(1000), MAX_DELAY)

    def test_describe_end(self) -> None:
        """A process's end in words: its status, or the signal that killed it."""
        self.assertEqual(describe_end(ProcessDone(0)), "exited with status 0")
        self.assertEqual(
            describe_end(Failure(ProcessTerminated(exitCode=3))), "exited with status 3"
        )
        self.assertEqual(
            describe_end(ProcessTerminated(signal=9)),
            "was killed by signal 9 (SIGKILL)",
        )


class FakeProcess:
    """What spawnProcess returned: records signals and what was written."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[str] = []
        self.written: list[tuple[int, bytes]] = []

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.written.append((fd, data))

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


class ProcessReactor(MemoryReactorClock):
    """A memory reactor whose spawnProcess starts nothing and records all."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple[Any, FakeProcess, list[str], dict[int, Any]]] = []
        self.next_pid = 100

    def spawnProcess(
        self, protocol: Any, executable: str, args: list[str], env: Any = None,
        path: Any = None, uid: Any = None, gid: Any = None, usePTY: Any = False,
        childFDs: Any = None,
    ) -> FakeProcess:  # fmt: skip
        self.next_pid += 1
        process = FakeProcess(self.next_pid)
        protocol.makeConnection(process)
        self.spawned.append((protocol, process, args, childFDs))
        return process


def killed(signal: int = 9) -> Failure:
    return Failure(ProcessTerminated(signal=signal))


class MasterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = ProcessReactor()
        self.events = EventLoggingObserver.createWithCleanup(
            self,  # type: ignore[arg-type]  # a SynchronousTestCase does as well
            globalLogPublisher,
        )

    def master(
        self, count: int = 2, config: Config | None = None, ready: bool = True
    ) -> WorkersService:
        service = WorkersService(
            config or Config(), {"/a.cfg": b"global\n"}, count, self.reactor
        )
        service.startService()
        for protocol, *_ in self.reactor.spawned if ready else ():
            protocol.childDataReceived(1, READY)
        return service

    def test_no_worker_could_start(self) -> None:
        """When every worker dies before serving (a file it cannot use),
        the master says so and stops, rather than hold the sockets and
        restart workers forever."""
        master = self.master(2, ready=False)
        self.reactor.spawned[0][0].processExited(Failure(ProcessTerminated(exitCode=1)))
        self.assertFalse(self.reactor.hasStopped)
        self.reactor.spawned[1][0].processExited(Failure(ProcessTerminated(exitCode=1)))
        self.assertTrue(self.reactor.hasStopped)
        self.assertIn("no worker could start", self.messages()[-1])
        self.assertEqual(master.workers, {})

    def test_killed_workers_are_not_a_failed_start(self) -> None:
        """Workers killed by a signal before they serve (an operator, the
        OOM killer) are replaced: only errors say the start-up fails."""
        self.master(2, ready=False)
        self.reactor.spawned[0][0].processExited(killed())
        self.reactor.spawned[1][0].processExited(killed())
        self.assertFalse(self.reactor.hasStopped)
        self.reactor.advance(0)
        self.assertEqual(len(self.reactor.spawned), 4)

    def messages(self) -> list[str]:
        return [formatEvent(e) for e in self.events]

    def test_starts_workers(self) -> None:
        """Starting runs N worker processes, 'python -m certlb.worker N', each
        sent its message on descriptor 0, which stays open, and logged."""
        master = self.master(3)
        self.assertEqual(sorted(master.workers), [1, 2, 3])
        for number, (_, process, args, fds) in enumerate(self.reactor.spawned, 1):
            self.assertEqual(args, [sys.executable, "-m", "certlb.worker", str(number)])
            self.assertEqual(fds, {0: "w", 1: "r", 2: "r"})
            self.assertEqual(process.written, [(0, master.message(number))])
        self.assertIn("worker 2 (pid 102) started", self.messages())

    def test_relays_logs(self) -> None:
        """A worker's log events (JSON lines on its descriptor 1) are logged by
        the master at their level, marked with the worker's number; other
        output (descriptor 2) is logged as warnings, line by line."""
        self.master(1, ready=False)
        protocol = self.reactor.spawned[0][0]
        line = {"level": "error", "namespace": "certlb.service", "text": "a {b}"}
        data = json.dumps(line).encode() + b"\n"
        protocol.childDataReceived(1, data[:10])
        protocol.childDataReceived(1, data[10:])
        protocol.childDataReceived(2, b"Traceback (most recent call last):\n  oops")
        protocol.childDataReceived(2, b"\n")
        relayed = [e for e in self.events if e.get("certlb_worker") == 1]
        self.assertEqual(
            [(e["log_level"], e["log_system"], formatEvent(e)) for e in relayed],
            [
                (LogLevel.error, "worker 1, certlb.service#error", "a {b}"),
                (
                    LogLevel.warn,
                    "worker 1, certlb.worker#warn",
                    "Traceback (most recent call last):",
                ),
                (LogLevel.warn, "worker 1, certlb.worker#warn", "  oops"),
            ],
        )

    def test_replaces_a_dead_worker(self) -> None:
        """A worker that dies is replaced at once by a new process with its
        number, and the master says which died and how."""
        master = self.master(2)
        protocol = self.reactor.spawned[0][0]
        protocol.processExited(killed())
        self.reactor.advance(0)
        self.assertEqual(len(self.reactor.spawned), 3)
        self.assertEqual(self.reactor.spawned[2][2][-1], "1")
        self.assertEqual(master.workers[1].pid, 103)
        self.assertIn(
            "worker 1 (pid 101) was killed by signal 9 (SIGKILL); starting a new one",
            self.messages(),
        )
        self.assertIn("worker 1 (pid 103) started", self.messages())

    def test_back_off(self) -> None:
        """A worker that keeps dying soon after its start is started again
        after 0, 1, 2, 4 seconds: no new process before its delay ends."""
        self.master(1)
        for delay in (0, 1, 2, 4):
            spawned = len(self.reactor.spawned)
            self.reactor.spawned[-1][0].processExited(killed())
            if delay:
                self.reactor.advance(delay - 0.5)
                self.assertEqual(len(self.reactor.spawned), spawned)
                self.reactor.advance(0.5)
            else:
                self.reactor.advance(0)
            self.assertEqual(len(self.reactor.spawned), spawned + 1)
        self.assertIn(
            "worker 1 (pid 104) was killed by signal 9 (SIGKILL); starting a new "
            "one in 4s",
            self.messages(),
        )

    def test_stable_worker_restarts_at_once(self) -> None:
        """A worker that ran for a while before dying is started again at
        once, whatever its earlier deaths."""
        self.master(1)
        for _ in range(3):
            self.reactor.spawned[-1][0].processExited(killed())
            self.reactor.advance(MAX_DELAY)
        spawned = len(self.reactor.spawned)
        self.reactor.advance(STABLE)
        self.reactor.spawned[-1][0].processExited(Failure(ProcessDone(0)))
        self.reactor.advance(0)
        self.assertEqual(len(self.reactor.spawned), spawned + 1)

    def test_stop(self) -> None:
        """Stopping sends SIGTERM to each worker and ends once every worker
        has ended; none is started again."""
        master = self.master(2)
        d = master.stopService()
        self.assertEqual(
            [p.signals for _, p, _, _ in self.reactor.spawned], [["TERM"], ["TERM"]]
        )
        self.assertNoResult(d)
        self.reactor.spawned[0][0].processExited(Failure(ProcessDone(0)))
        self.assertNoResult(d)
        self.reactor.spawned[1][0].processExited(killed(15))
        self.assertIsNone(self.successResultOf(d))
        self.reactor.advance(MAX_DELAY)
        self.assertEqual(len(self.reactor.spawned), 2)
        messages = self.messages()
        self.assertIn("worker 1 (pid 101) stopped", messages)
        self.assertIn("worker 2 (pid 102) was killed by signal 15 (SIGTERM)", messages)
        self.assertIn("all workers stopped", messages)

    def test_stop_cancels_a_restart(self) -> None:
        """A worker waiting for its restart when certlb stops is not started."""
        master = self.master(1)
        for _ in range(2):
            self.reactor.spawned[-1][0].processExited(killed())
            self.reactor.advance(0)
        self.reactor.spawned[-1][0].processExited(killed())  # waits 1s
        self.assertEqual(master.workers, {})
        self.successResultOf(master.stopService())
        self.reactor.advance(MAX_DELAY)
        self.assertEqual(len(self.reactor.spawned), 2)

    def test_hard_stop_after_kills(self) -> None:
        """With hard-stop-after, a worker still running KILL_MARGIN seconds
        after it is killed; without it, the master waits."""
        master = self.master(1, Config(global_=Global(hard_stop_after=2000)))
        d = master.stopService()
        process = self.reactor.spawned[0][1]
        self.reactor.advance(2 + KILL_MARGIN - 0.5)
        self.assertEqual(process.signals, ["TERM"])
        self.reactor.advance(0.5)
        self.assertEqual(process.signals, ["TERM", "KILL"])
        self.reactor.spawned[0][0].processExited(killed())
        self.successResultOf(d)

    def test_no_worker_left(self) -> None:
        """Stopping a master whose workers are all dead ends at once."""
        master = self.master(1)
        self.reactor.spawned[0][0].processExited(killed())  # a new one is due
        self.successResultOf(master.stopService())


class WorkerSideTests(SynchronousTestCase):
    def test_load_snapshot(self) -> None:
        """A worker builds its configuration from the files the master sent,
        not from the disk."""
        text = base64.b64encode(b"global\n    nbproc 2\n").decode()
        message = {"config": ["/nowhere/a.cfg"], "files": {"/nowhere/a.cfg": text}}
        config = load_snapshot(message)
        self.assertEqual(config.global_.nbproc, 2)
        self.assertEqual(config.files, ("/nowhere/a.cfg",))

    def test_to_master(self) -> None:
        """Log events go to the master as one JSON line each, with their
        level, namespace and text, a traceback included."""
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        self.addCleanup(os.close, write)
        observer = ToMaster(write)
        verifyObject(ILogObserver, observer)
        logger = Logger(namespace="certlb.test", observer=observer)
        logger.warn("server {name} is DOWN", name="s1")
        try:
            raise ZeroDivisionError("by zero")
        except ZeroDivisionError:
            logger.failure("boom")
        lines = os.read(read, 65536).decode().splitlines()
        first, second = (json.loads(line) for line in lines)
        self.assertEqual(
            first,
            {"level": "warn", "namespace": "certlb.test", "text": "server s1 is DOWN"},
        )
        self.assertEqual(second["level"], "critical")
        self.assertIn("ZeroDivisionError", second["text"])

    def test_master_pipe(self) -> None:
        """End-of-file on descriptor 0 says the master is gone."""
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        gone: list[bool] = []
        pipe = MasterPipe(read, lambda: gone.append(True))
        os.write(write, b"x")
        self.assertIsNone(pipe.doRead())
        os.close(write)
        why = pipe.doRead()
        self.assertIsInstance(why, ConnectionDone)
        pipe.connectionLost(Failure(why))
        self.assertEqual(gone, [True])

    def test_missing_descriptor(self) -> None:
        """A worker given no socket for one of its binds refuses to start,
        naming the frontend and the address."""
        bind = Bind("127.0.0.1", 8443)
        listeners = ListenerService(
            [(bind, "fe", object(), None)],
            MemoryReactorClock(),
            ConnectionLimits(None, {}),
        )
        listeners.descriptors = []
        e = self.assertRaises(ListenError, listeners.startService)
        self.assertIn("frontend 'fe' cannot listen on 127.0.0.1:8443", str(e))
        self.assertIn("no socket was passed for this address", str(e))


class LineTests(SynchronousTestCase):
    def test_long_line_cut(self) -> None:
        """A worker's line longer than MAX_LINE is relayed cut, not kept
        growing in the master."""
        relayed: list[str] = []

        class Master:
            reactor = MemoryReactorClock()
            ever_ready = False

            def relay(self, worker: object, level: object, ns: str, text: str) -> None:
                relayed.append(text)

        protocol = WorkerProcess(Master(), 1, b"")  # type: ignore[arg-type]
        for _ in range(20):
            protocol.childDataReceived(2, b"x" * 8192)
        protocol.childDataReceived(2, b"end\n")
        self.assertTrue(relayed[0].endswith(" [cut]"))
        self.assertTrue(relayed[-1].endswith("end"))
        self.assertLessEqual(max(map(len, relayed)), MAX_LINE + len(" [cut]"))


class ExampleTests(SynchronousTestCase):
    def test_etc_workers(self) -> None:
        """etc/workers.cfg is valid and asks for two workers."""
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(root, "etc", "workers.cfg"), encoding="utf-8") as f:
            path = write_config(self, f.read(), "workers.cfg")
        config, problems = check_config([path])
        self.assertEqual(problems, [])
        self.assertEqual(config.global_.nbproc, 2)


class SnapshotTests(SynchronousTestCase):
    def test_recorded_once(self) -> None:
        """While recording, a file read twice gives what it gave first, so
        that what the master checks is what its workers get."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"first")
        with recording() as files:
            self.assertEqual(read_bytes(path), b"first")
            with open(path, "wb") as f:
                f.write(b"second")
            self.assertEqual(read_bytes(path), b"first")
        self.assertEqual(list(files.values()), [b"first"])
        self.assertEqual(read_bytes(path), b"second")

    def test_snapshot_then_disk(self) -> None:
        """A worker reads the master's contents, then the disk's again once
        its service is built (use_snapshot(None))."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"disk")
        with recording() as files:
            read_bytes(path)
        files = {name: b"master" for name in files}
        use_snapshot(files)
        self.addCleanup(use_snapshot, None)
        self.assertEqual(read_bytes(path), b"master")
        use_snapshot(None)
        self.assertEqual(read_bytes(path), b"disk")

    def test_tls_files_from_the_snapshot(self) -> None:
        """Certificates, keys and CAs (for clients and for servers) come from
        the snapshot: a worker needs no right to read them on the disk."""
        pki = pki_files()
        names = {"server.pem": "/nowhere/server.pem", "ca.crt": "/nowhere/ca.crt"}
        snapshot = {}
        for name, fake in names.items():
            with open(pki[name], "rb") as f:
                snapshot[fake] = f.read()
        use_snapshot(snapshot)
        self.addCleanup(use_snapshot, None)
        build_context("/nowhere/server.pem", "/nowhere/ca.crt", "required", b"t")
        build_client_context(True, "/nowhere/ca.crt")
