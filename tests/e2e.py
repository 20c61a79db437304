"""End-to-end helpers: real sockets on 127.0.0.1, real certlb, real clients.

certlb runs either in this process (a service on the global reactor, ports
chosen by the system) or as a C{twistd certlb} process.  Clients are the real
C{curl} and C{openssl} programs, run without blocking the reactor.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer, protocol
from twisted.internet import reactor as _reactor
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.server import Site

from certlb import load_config, make_service
from certlb.demo import EchoResource
from tests.helpers import pki_files, write_config

# The global reactor, which end-to-end tests run on (typed loosely: it
# provides many interfaces at once).
reactor: Any = _reactor


def require(*programs: str) -> None:
    """Skip the test when a client program is missing."""
    for program in programs:
        if shutil.which(program) is None:
            raise SkipTest(f"{program} is not installed")


class ClientResult:
    """What a client program printed, and how it exited."""

    def __init__(self, out: bytes, err: bytes, code: int) -> None:
        self.out = out
        self.err = err
        self.code = code

    def __repr__(self) -> str:
        return f"<exit {self.code} out={self.out[:300]!r} err={self.err[:300]!r}>"


async def run(
    program: str, args: Sequence[str], stdin: bytes | None = None
) -> ClientResult:
    """Run a program to completion without blocking the reactor."""
    if stdin is None:
        out, err, code = await getProcessOutputAndValue(
            program, list(args), env=dict(os.environ)
        )
        return ClientResult(out, err, code)
    return await _run_with_input(program, list(args), stdin)


class _Collect(protocol.ProcessProtocol):
    transport: Any

    def __init__(self, stdin: bytes) -> None:
        self.stdin = stdin
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.done: defer.Deferred[ClientResult] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason: Any) -> None:
        code = reason.value.exitCode
        self.done.callback(ClientResult(b"".join(self.out), b"".join(self.err), code))


async def _run_with_input(program: str, args: list[str], stdin: bytes) -> ClientResult:
    collector = _Collect(stdin)
    path = shutil.which(program)
    assert path is not None, program
    reactor.spawnProcess(collector, path, [program, *args], env=dict(os.environ))
    return await collector.done


def curl_args(
    url: str, client: str | None = None, extra: Sequence[str] = ()
) -> list[str]:
    """curl arguments trusting CA 1, presenting C{client}'s certificate if any."""
    files = pki_files()
    args = ["-sS", "--max-time", "20", "--cacert", files["ca.crt"]]
    if client is not None:
        args += ["--cert", files[f"{client}.crt"], "--key", files[f"{client}.key"]]
    return [*args, *extra, url]


async def curl(url: str, client: str | None = None, *extra: str) -> ClientResult:
    require("curl")
    return await run("curl", curl_args(url, client, extra))


async def s_client(
    port: int, client: str | None = None, request: bytes | None = None
) -> ClientResult:
    """Run C{openssl s_client} against 127.0.0.1:port and send C{request}."""
    require("openssl")
    files = pki_files()
    args = ["s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", files["ca.crt"]]
    args += ["-servername", "localhost", "-verify_return_error", "-ign_eof"]
    if client is not None:
        args += ["-cert", files[f"{client}.crt"], "-key", files[f"{client}.key"]]
    if request is None:
        request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    return await run("openssl", args, stdin=request)


class E2ETestCase(TestCase):
    """Backends and certlb on 127.0.0.1, started per test, stopped after."""

    timeout = 60

    def start_backend(self, name: str, site: Any = None) -> int:
        """Start an HTTP server answering with its name; return its port."""
        port = reactor.listenTCP(
            0, site or Site(EchoResource(name)), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    def free_port(self) -> int:
        """A port on 127.0.0.1 that nothing listens on (for refused connections)."""
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def occupied_port(self) -> int:
        """A port on 127.0.0.1 that something else listens on, for the test."""
        import socket

        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        self.addCleanup(busy.close)
        return int(busy.getsockname()[1])

    def start_certlb(self, text: str) -> dict[str, int]:
        """Run certlb in this process with configuration C{text}, written next
        to the test PKI; return the port of each frontend."""
        config = load_config(write_config(self, text))
        service = make_service(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        self.service = service
        return {name: port for name, _, port in service.listeners.addresses()}


class TwistdProcess(protocol.ProcessProtocol):
    """A C{twistd -n certlb} process (or another), whose output is watched
    for lines."""

    def __init__(self) -> None:
        self.output = b""
        self.ended: defer.Deferred[int] = defer.Deferred()
        self._waiting: list[
            tuple[re.Pattern[bytes], defer.Deferred[re.Match[bytes]]]
        ] = []

    def outReceived(self, data: bytes) -> None:
        self.output += data
        self._check()

    errReceived = outReceived

    def _check(self) -> None:
        for item in list(self._waiting):
            match = item[0].search(self.output)
            if match is not None:
                self._waiting.remove(item)
                item[1].callback(match)

    def wait_for(
        self, pattern: bytes, timeout: float = 20
    ) -> defer.Deferred[re.Match[bytes]]:
        d: defer.Deferred[re.Match[bytes]] = defer.Deferred()
        self._waiting.append((re.compile(pattern), d))
        self._check()
        return d.addTimeout(timeout, reactor)

    def processEnded(self, reason: Any) -> None:
        for _, d in self._waiting:
            d.errback(Exception(f"twistd ended; it printed:\n{self.output.decode()}"))
        self._waiting = []
        self.ended.callback(reason.value.exitCode)

    transport: Any

    @property
    def pid(self) -> int:
        return int(self.transport.pid)

    def stop(self) -> defer.Deferred[int]:
        if self.ended.called:
            return defer.succeed(0)
        with contextlib.suppress(ProcessExitedAlready):
            self.transport.signalProcess("TERM")
        return self.ended


def spawn_twistd(
    testcase: TestCase, *args: str, twistd_args: Sequence[str] = ("-n", "--pidfile=")
) -> TwistdProcess:
    """Start C{twistd TWISTD_ARGS certlb ARGS} with this Python."""
    process = TwistdProcess()
    run = "from twisted.scripts.twistd import run; run()"
    argv = [sys.executable, "-c", run, *twistd_args, "certlb", *args]
    reactor.spawnProcess(
        process, sys.executable, argv, env=dict(os.environ), path=os.getcwd()
    )
    testcase.addCleanup(process.stop)
    return process


async def spawn_named_server(
    testcase: TestCase, name: str, port: int = 0
) -> tuple[TwistdProcess, int]:
    """Start C{tests/named_server.py}, a server process answering with its
    name; return it, once listening, and its port."""
    process = TwistdProcess()
    script = os.path.join(os.path.dirname(__file__), "named_server.py")
    argv = [sys.executable, script, name, str(port)]
    reactor.spawnProcess(process, sys.executable, argv, env=dict(os.environ))
    testcase.addCleanup(process.stop)
    listening = await process.wait_for(rb"listening on (\d+)")
    return process, int(listening.group(1))


def rss_kib(pid: int) -> int:
    """The resident memory of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")
