"""certlb as a process: twistd plugin start-up and failure, and streaming
large bodies with bounded memory."""

from __future__ import annotations

import hashlib
import os
import socket
import sys

from twisted.internet import task
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.static import File

from tests.e2e import (
    E2ETestCase,
    TwistdProcess,
    curl,
    reactor,
    rss_kib,
    run,
    spawn_twistd,
)
from tests.helpers import write_config

SIMPLE = """\
    frontend fe
     mode http
     bind 127.0.0.1:{port} ssl crt ./server.pem ca-file ./ca.crt verify optional
     default_backend be
    backend be
     mode http
     server s1 127.0.0.1:{backend}
"""

LISTENING = rb"frontend fe listening on 127\.0\.0\.1:(\d+)"
SIZE = 50 * 1024 * 1024


class TwistdTests(E2ETestCase):
    async def test_twistd_serves(self) -> None:
        """'twistd -n certlb --config FILE' listens and forwards requests."""
        path = write_config(
            self, SIMPLE.format(port=0, backend=self.start_backend("s1"))
        )
        process = spawn_twistd(self, "--config", path)
        port = int((await process.wait_for(LISTENING)).group(1))
        result = await curl(f"https://127.0.0.1:{port}/", "client1")
        self.assertEqual(result.out.split(b"\n")[0], b"server s1", result)

    async def test_bind_in_use(self) -> None:
        """An address already in use stops start-up with a message naming the
        frontend, the address and the line, a non-zero exit, and no port of
        the configuration left open."""
        taken = self.occupied_port()
        free = self.free_port()
        text = SIMPLE.format(port=free, backend=1) + (
            f"    frontend fe2\n     mode http\n     bind 127.0.0.1:{taken}\n"
            "     default_backend be\n"
        )
        path = write_config(self, text)
        process = spawn_twistd(self, "--config", path)
        code = await process.ended
        self.assertNotEqual(code, 0)
        output = process.output.decode()
        self.assertIn(
            f"frontend 'fe2' cannot listen on 127.0.0.1:{taken} ({path}:10): "
            "Address already in use",
            output,
        )
        self.assertNotIn("Traceback", output)
        with socket.socket() as s:
            s.bind(("127.0.0.1", free))  # the first frontend's port was released

    async def test_bind_in_use_in_the_background(self) -> None:
        """Without -n, a port in use makes the twistd command return 1 with
        the reason, leaving no PID file, and the log has the whole message."""
        taken = self.occupied_port()
        path = write_config(self, SIMPLE.format(port=taken, backend=1))
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        pidfile = os.path.join(directory, "twistd.pid")
        logfile = os.path.join(directory, "twistd.log")
        process = spawn_twistd(
            self,
            "--config",
            path,
            twistd_args=(f"--pidfile={pidfile}", f"--logfile={logfile}"),
        )
        self.assertEqual(await process.ended, 1)
        self.assertIn(b"cannot listen on 127.0.0.1", process.output)
        self.assertFalse(os.path.exists(pidfile))
        with open(logfile) as f:
            self.assertIn(
                f"frontend 'fe' cannot listen on 127.0.0.1:{taken} ({path}:3): "
                "Address already in use",
                f.read(),
            )

    async def test_config_error_exits(self) -> None:
        """A configuration with errors is refused at start-up with every
        problem printed, and twistd exits 1."""
        path = write_config(
            self, "frontend fe\n mode http\n bind :1\n default_backend x\n"
        )
        process = spawn_twistd(self, "--config", path)
        self.assertEqual(await process.ended, 1)
        self.assertIn(f"{path}:4: error: default_backend 'x'", process.output.decode())

    async def test_check_option(self) -> None:
        """'twistd certlb --check --config FILE' validates and exits 1 on the
        article's phase 1, naming bk_ssltests and its line."""
        path = os.path.join(
            os.path.dirname(__file__), "..", "etc", "phase1-original.cfg"
        )
        process = spawn_twistd(self, "--check", "--config", path)
        self.assertEqual(await process.ended, 1)
        self.assertIn(
            ":9: error: default_backend 'bk_ssltests'", process.output.decode()
        )

    async def test_certlb_check_command(self) -> None:
        """'certlb check' exits 0 on a valid configuration and 1 on an invalid
        one, printing each problem with its file and line."""
        good = write_config(self, SIMPLE.format(port=8443, backend=80), "good.cfg")
        bad = write_config(
            self, "backend b\n mode http\n server s :80 wieght 2\n", "bad.cfg"
        )
        result = await run(sys.executable, ["-m", "certlb.cli", "check", good])
        self.assertEqual(result.code, 0, result)
        self.assertIn(b"configuration is valid", result.out)
        result = await run(sys.executable, ["-m", "certlb.cli", "check", bad])
        self.assertEqual(result.code, 1, result)
        self.assertIn(
            f"{bad}:3: error: unknown server option 'wieght'; did you mean 'weight'?",
            result.out.decode(),
        )


class _Sink(Resource):
    """Reads an uploaded body and answers with its length and SHA-256."""

    isLeaf = True

    def render_POST(self, request: Request) -> bytes:
        digest = hashlib.sha256()
        size = 0
        assert request.content is not None
        while chunk := request.content.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        return f"{size} {digest.hexdigest()}".encode()


class StreamingTests(E2ETestCase):
    """50 MB each way through a certlb process, whose memory is watched."""

    timeout = 120

    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.big = os.path.join(directory, "big")
        block = os.urandom(1 << 20)
        with open(self.big, "wb") as f:
            for i in range(SIZE >> 20):
                f.write(block[i:] + block[:i])
        with open(self.big, "rb") as f:
            self.digest = hashlib.file_digest(f, "sha256").hexdigest()
        root = Resource()
        root.putChild(b"big", File(self.big))
        root.putChild(b"sink", _Sink())
        self.backend = self.start_backend("", Site(root))

    async def start(self) -> tuple[str, TwistdProcess]:
        path = write_config(self, SIMPLE.format(port=0, backend=self.backend))
        process = spawn_twistd(self, "--config", path)
        port = int((await process.wait_for(LISTENING)).group(1))
        url = f"https://127.0.0.1:{port}"
        await curl(url + "/sink", "client1", "--data-binary", "warm-up")
        return url, process

    def watch(self, pid: int) -> tuple[list[int], task.LoopingCall]:
        samples = [rss_kib(pid)]
        loop = task.LoopingCall(lambda: samples.append(rss_kib(pid)))
        loop.clock = reactor
        loop.start(0.02)
        return samples, loop

    async def test_download(self) -> None:
        """A 50 MB response streams through intact while certlb's memory grows
        by far less than the body."""
        url, process = await self.start()
        samples, loop = self.watch(process.pid)
        out = os.path.join(os.path.dirname(self.big), "down")
        result = await curl(url + "/big", "client1", "-o", out)
        loop.stop()
        self.assertEqual(result.code, 0, result)
        with open(out, "rb") as f:
            self.assertEqual(hashlib.file_digest(f, "sha256").hexdigest(), self.digest)
        growth = (max(samples) - samples[0]) / 1024
        self.assertLess(growth, 16, f"certlb grew by {growth:.1f} MiB")

    async def test_upload(self) -> None:
        """A 50 MB upload streams through intact while certlb's memory grows by
        far less than the body (with and without chunked encoding)."""
        url, process = await self.start()
        for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
            samples, loop = self.watch(process.pid)
            result = await curl(
                url + "/sink", "client1", "--data-binary", "@" + self.big, *extra
            )
            loop.stop()
            self.assertEqual(result.out.decode(), f"{SIZE} {self.digest}", result)
            growth = (max(samples) - samples[0]) / 1024
            self.assertLess(growth, 16, f"certlb grew by {growth:.1f} MiB {extra}")
