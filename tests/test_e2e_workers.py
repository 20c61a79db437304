"""certlb with workers, as processes: a master started by twistd, worker
processes serving requests on its sockets, a killed worker replaced, and
every process gone after a stop or after the master's sudden death."""

from __future__ import annotations

import os
import re
import signal
import socket

from twisted.internet import task

from tests.e2e import E2ETestCase, TwistdProcess, curl, reactor, spawn_twistd
from tests.helpers import write_config
from tests.test_e2e_process import SIMPLE

LISTENING = rb"\[certlb\.workers#info\] frontend fe listening on 127\.0\.0\.1:(\d+)"


def alive(pid: int) -> bool:
    """Whether process C{pid} exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def wait_until_gone(pids: list[int], tries: int = 200) -> list[int]:
    """Wait (at most C{tries} times 0.1 s) for the processes to end; return those
    left."""
    for _ in range(tries):
        left = [pid for pid in pids if alive(pid)]
        if not left:
            break
        await task.deferLater(reactor, 0.1, lambda: None)
    return [pid for pid in pids if alive(pid)]


class WorkersTests(E2ETestCase):
    timeout = 120

    async def start(
        self, text: str, *args: str
    ) -> tuple[TwistdProcess, int, dict[int, int]]:
        """Start twistd with C{text}; wait until both workers listen; return
        the master, the port and each worker's pid by number."""
        process = spawn_twistd(self, "--config", write_config(self, text), *args)
        port = int((await process.wait_for(LISTENING)).group(1))
        pids = {}
        for number in (1, 2):
            started = await process.wait_for(
                rb"worker %d \(pid (\d+)\) started" % number
            )
            pids[number] = int(started.group(1))
            await process.wait_for(
                rb"\[worker %d, certlb\.service#info\] frontend fe listening" % number
            )
        return process, port, pids

    async def assert_served(self, port: int) -> None:
        result = await curl(f"https://127.0.0.1:{port}/", "client1")
        self.assertEqual(result.out.split(b"\n")[0], b"server s1", result)

    async def test_serve_replace_stop(self) -> None:
        """With --workers 2: requests are served by the workers (the master
        serves none); a worker killed with SIGKILL is logged and replaced,
        and its replacement serves; SIGTERM to the master stops every
        worker, then the master, which logs it."""
        text = SIMPLE.format(port=0, backend=self.start_backend("s1"))
        master, port, pids = await self.start(text, "--workers", "2")
        self.assertNotEqual(pids[1], pids[2])
        for pid in pids.values():
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rpartition(")")[2].split()[1])
            self.assertEqual(parent, master.pid)
        await self.assert_served(port)

        os.kill(pids[1], signal.SIGKILL)
        await master.wait_for(
            rb"worker 1 \(pid %d\) was killed by signal 9 \(SIGKILL\); "
            rb"starting a new one" % pids[1]
        )
        started = await master.wait_for(
            rb"worker 1 \(pid (?!%d\))(\d+)\) started" % pids[1]
        )
        new = int(started.group(1))
        self.assertTrue(alive(new))
        # Once the new worker listens, stop the other one for a while: the
        # kernel can only hand connections to the new one.
        await master.wait_for(
            rb"(?s)pid %d\) started.*\[worker 1, certlb\.service#info\] "
            rb"frontend fe listening" % new
        )
        os.kill(pids[2], signal.SIGSTOP)
        try:
            await self.assert_served(port)
        finally:
            os.kill(pids[2], signal.SIGCONT)
        await self.assert_served(port)

        await master.stop()
        self.assertEqual(await wait_until_gone([new, pids[2]]), [])
        output = master.output.decode()
        self.assertIn("stopping 2 workers", output)
        self.assertIn("all workers stopped", output)
        self.assertIn("Server Shut Down.", output)
        self.assertNotIn("Traceback", output)
        with socket.socket() as s:  # the port was released
            # (as any server would bind it: certlb's closed connections may
            # still be in TIME_WAIT)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))

    async def test_master_killed(self) -> None:
        """With nbproc 2 in the configuration: when the master dies without
        a word (SIGKILL), its workers notice and stop."""
        text = "    global\n     nbproc 2\n" + SIMPLE.format(
            port=0, backend=self.start_backend("s1")
        )
        master, port, pids = await self.start(text)
        await self.assert_served(port)
        os.kill(master.pid, signal.SIGKILL)
        await master.ended
        self.assertEqual(await wait_until_gone(list(pids.values())), [])

    async def test_bind_in_use(self) -> None:
        """With workers, a port in use stops start-up as for one process: the
        message names the frontend, the address and the line, and twistd
        exits 1 without starting a worker."""
        taken = self.occupied_port()
        path = write_config(self, SIMPLE.format(port=taken, backend=1))
        process = spawn_twistd(self, "--config", path, "--workers", "2")
        self.assertEqual(await process.ended, 1)
        output = process.output.decode()
        self.assertIn(
            f"certlb: frontend 'fe' cannot listen on 127.0.0.1:{taken} ({path}:3): "
            "Address already in use",
            output,
        )
        self.assertIsNone(re.search("worker .* started", output))
        self.assertNotIn("Traceback", output)
