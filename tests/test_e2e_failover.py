"""Health checks and failover end to end: real server processes killed and
restarted under a steady stream of requests from curl, backups, queues."""

from __future__ import annotations

import re
import time
from typing import Any

from twisted.internet import defer, ssl
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher

from tests.e2e import (
    E2ETestCase,
    curl,
    reactor,
    require,
    run,
    spawn_named_server,
    spawn_twistd,
)
from tests.helpers import pki_files, write_config

INTER = 0.3  # seconds between checks (inter 300ms)
FALL = 2
RISE = 2

FRONTEND = """\
    frontend fe
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem
     default_backend bk
    backend bk
     mode http
     timeout connect 1s
     timeout server 5s
"""


def config(*lines: str) -> str:
    return FRONTEND + "".join(f"     {line}\n" for line in lines)


def codes(output: bytes) -> list[str]:
    """The statuses curl printed with C{-w '%{http_code}\\n'}, in order."""
    return re.findall(r"^CODE (\d{3})$", output.decode(), re.M)


async def stream(url: str, count: int, rate: str = "20/s") -> Any:
    """C{count} GET requests from one curl, at a steady C{rate}, on one
    kept-alive connection; its result."""
    require("curl")
    args = ["-sS", "--cacert", pki_files()["ca.crt"], "--max-time", "30"]
    args += ["--rate", rate, "-w", "CODE %{http_code}\n"]
    return await run("curl", [*args, *[url] * count])


def sleep(seconds: float) -> defer.Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


class FailoverTests(E2ETestCase):
    timeout = 90

    def setUp(self) -> None:
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def logged(self, text: str) -> list[float]:
        """When each log line containing C{text} was logged."""
        return [e["log_time"] for e in self.events if text in formatEvent(e)]

    async def wait_for_log(self, text: str, within: float) -> float:
        """Wait until a line containing C{text} is logged; when it was."""
        deadline = time.time() + within
        while not self.logged(text):
            if time.time() > deadline:
                lines = "\n".join(formatEvent(e) for e in self.events)
                self.fail(f"no {text!r} logged within {within}s; logged:\n{lines}")
            await sleep(0.05)
        return self.logged(text)[0]

    async def test_kill_one_of_two_under_load(self) -> None:
        """With retries and redispatch, killing one of two servers under a
        steady stream of requests fails none; the server is marked DOWN
        within fall x inter plus a check timeout, and UP again after rise
        passed checks once restarted."""
        a, port_a = await spawn_named_server(self, "a")
        _, port_b = await spawn_named_server(self, "b")
        check = f"check inter {int(INTER * 1000)}ms fall {FALL} rise {RISE}"
        ports = self.start_certlb(
            config(
                "retries 3",
                "option redispatch",
                "retry-on conn-failure empty-response response-timeout",
                f"server a 127.0.0.1:{port_a} {check}",
                f"server b 127.0.0.1:{port_b} {check}",
            )
        )
        url = f"https://127.0.0.1:{ports['fe']}/"
        requests = defer.ensureDeferred(stream(url, 80))  # 4 seconds of them
        await sleep(1.5)
        a.transport.signalProcess("KILL")
        killed = time.time()
        result = await requests
        self.assertEqual(codes(result.out), ["200"] * 80, result)
        served = result.out.decode()
        self.assertIn("server a", served)
        self.assertIn("server b", served)

        down = await self.wait_for_log("server bk/a is DOWN", 5)
        self.assertLess(down - killed, FALL * INTER + INTER + 0.5)
        self.assertEqual(self.logged("server bk/b is DOWN"), [])

        await spawn_named_server(self, "a", port_a)
        restarted = time.time()
        up = await self.wait_for_log("server bk/a is UP", 5)
        self.assertLess(up - restarted, RISE * INTER + INTER + 0.5)
        self.assertTrue(
            any(
                "bk/a is DOWN (" in line
                and "1 active and 0 backup servers left" in line
                for line in map(formatEvent, self.events)
            )
        )
        bodies = set()
        for _ in range(4):
            bodies.add((await curl(url)).out)
        self.assertEqual(bodies, {b"server a\n", b"server b\n"})

    async def test_backup_then_503_at_once(self) -> None:
        """When no active server is up, the backup serves; when it is down
        too, clients get a 503 at once, without trying any server."""
        backup, port_c = await spawn_named_server(self, "c")
        ports = self.start_certlb(
            config(
                "retries 3",
                f"server a 127.0.0.1:{self.free_port()} check inter 200ms",
                f"server b 127.0.0.1:{self.free_port()} check inter 200ms",
                f"server c 127.0.0.1:{port_c} backup check inter 200ms",
            )
        )
        url = f"https://127.0.0.1:{ports['fe']}/"
        await self.wait_for_log("server bk/a is DOWN", 3)
        await self.wait_for_log("server bk/b is DOWN", 3)
        result = await curl(url)
        self.assertEqual(result.out, b"server c\n", result)

        backup.transport.signalProcess("KILL")
        await self.wait_for_log("backend 'bk' has no server available", 3)
        result = await curl(url, None, "-o", "/dev/null", "-w", "%{http_code}")
        self.assertEqual(result.out, b"503", result)
        self.assertEqual(len(self.logged(": retry ")), 0)
        refused = [
            formatEvent(e) for e in self.events if "for GET / from" in formatEvent(e)
        ]
        self.assertEqual(len(refused), 1, refused)
        self.assertTrue(
            refused[0].endswith(": backend 'bk' has no server available"), refused
        )

    async def test_maxconn_queues_then_503(self) -> None:
        """With C{maxconn 1}, a second request waits for the first to end;
        it gets a 503 when that takes longer than C{timeout queue}."""
        _, port = await spawn_named_server(self, "a")
        ports = self.start_certlb(
            config("timeout queue 1s", f"server a 127.0.0.1:{port} maxconn 1")
        )
        url = f"https://127.0.0.1:{ports['fe']}/"
        status = ["-o", "/dev/null", "-w", "%{http_code}"]

        slow = defer.ensureDeferred(curl(url + "slow/0.5", None, *status))
        await sleep(0.2)
        queued = await curl(url, None, *status)
        self.assertEqual((await slow).out, b"200")
        self.assertEqual(queued.out, b"200", queued)

        slow = defer.ensureDeferred(curl(url + "slow/3", None, *status))
        await sleep(0.2)
        queued = await curl(url, None, *status)
        self.assertEqual(queued.out, b"503", queued)
        self.assertEqual((await slow).out, b"200")

    async def test_check_ssl(self) -> None:
        """C{check-ssl} passes on a TLS server and fails, naming the TLS
        handshake, on a server that does not speak TLS."""
        with open(pki_files()["server.pem"]) as f:
            options = ssl.PrivateCertificate.loadPEM(f.read()).options()
        tls = reactor.listenSSL(
            0, Factory.forProtocol(Protocol), options, interface="127.0.0.1"
        )
        self.addCleanup(tls.stopListening)
        _, plain = await spawn_named_server(self, "plain")
        check = "check check-ssl verify none inter 200ms"
        self.start_certlb(
            config(
                f"server t 127.0.0.1:{tls.getHost().port} {check} init-state down",
                f"server p 127.0.0.1:{plain} {check}",
            )
        )
        await self.wait_for_log("server bk/t is UP (TLS handshake done", 3)
        await self.wait_for_log("server bk/p is DOWN (TLS handshake failed: ", 3)
        servers = self.service.backends["bk"].servers
        self.assertEqual([s.up for s in servers], [True, False])


class GracefulStopTests(E2ETestCase):
    async def test_sigterm_lets_requests_finish(self) -> None:
        """On SIGTERM, twistd certlb stops accepting, answers the request in
        flight in full, then exits cleanly."""
        _, port = await spawn_named_server(self, "a")
        path = write_config(
            self, config("timeout server 10s", f"server a 127.0.0.1:{port} check")
        )
        process = spawn_twistd(self, "--config", path)
        listening = await process.wait_for(rb"frontend fe listening on [^:]+:(\d+)")
        url = f"https://127.0.0.1:{int(listening.group(1))}/"
        self.assertEqual((await curl(url)).out, b"server a\n")

        slow = defer.ensureDeferred(curl(url + "slow/1.5"))
        await sleep(0.5)
        process.transport.signalProcess("TERM")
        await process.wait_for(rb"certlb is stopping")
        await sleep(0.2)
        refused = await curl(url)
        self.assertEqual(refused.code, 7, refused)  # could not connect
        self.assertEqual((await slow).out, b"server a\n")
        await process.ended  # twistd ends by the signal it was stopped with
        self.assertIn(b"Server Shut Down.", process.output)
        self.assertNotIn(b"Traceback", process.output)
