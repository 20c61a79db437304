"""Log targets: the 'log' lines of HAProxy, and where access lines go."""

from __future__ import annotations

import io
import os
import shutil
import socket
import sys
import tempfile
import textwrap
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from certlb.config import parse_config
from certlb.config.model import Config, LogTarget
from certlb.proxy.logtargets import LogTargetsService, LogWriter, format_line
from tests.e2e import E2ETestCase, curl, reactor
from tests.proxy_harness import ProxyTestCase

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def parse(text: str) -> tuple[Config, list[str]]:
    config, problems = parse_config(textwrap.dedent(text), "t.cfg", environ={})
    return config, [str(p) for p in problems]


def frontend_logs(*lines: str) -> tuple[tuple[LogTarget, ...], list[str]]:
    """The log targets of frontend 'fe' with C{lines}, and the problems."""
    body = "".join(f"  {line}\n" for line in lines)
    config, problems = parse(
        "frontend fe\n  mode http\n  bind :80\n" + body + "  default_backend b\n"
        "backend b\n  mode http\n  server s h:80\n"
    )
    return (config.frontends[0].logs if config.frontends else ()), problems


class ParserTests(SynchronousTestCase):
    def target(self, line: str) -> LogTarget:
        logs, problems = frontend_logs(line)
        self.assertEqual(problems, [])
        (target,) = logs
        return target

    def test_targets(self) -> None:
        """stdout, stderr, IPv4 and IPv6 addresses (port 514 by default, udp@
        and ipv6@ prefixes allowed) and unix socket paths."""
        cases = {
            "log stdout local0": ("stdout", None, 514, None),
            "log stderr user": ("stderr", None, 514, None),
            "log 10.0.0.1 local0": ("udp", "10.0.0.1", 514, None),
            "log 10.0.0.1:5140 local0": ("udp", "10.0.0.1", 5140, None),
            "log udp@10.0.0.1:5140 local0": ("udp", "10.0.0.1", 5140, None),
            "log [::1]:5140 local0": ("udp", "::1", 5140, None),
            "log ipv6@::1 local0": ("udp", "::1", 514, None),
            "log /dev/log daemon": ("unix", None, 514, "/dev/log"),
            "log unix@/run/log.sock daemon": ("unix", None, 514, "/run/log.sock"),
        }
        for line, (kind, host, port, path) in cases.items():
            target = self.target(line)
            self.assertEqual(
                (target.kind, target.host, target.port, target.path),
                (kind, host, port, path),
                line,
            )
            self.assertEqual(target.address, line.split()[1])

    def test_options(self) -> None:
        """len, format, the facility, the level and the minimum level."""
        target = self.target("log stdout len 200 format rfc5424 local3 notice err")
        self.assertEqual(
            (target.length, target.format, target.facility, target.level),
            (200, "rfc5424", "local3", "notice"),
        )
        self.assertEqual(target.minlevel, "err")
        target = self.target("log stdout daemon")
        self.assertEqual(
            (target.length, target.format, target.level, target.minlevel),
            (1024, "rfc3164", None, None),
        )
        self.assertEqual(target.location.line, 4)
        for name in ("rfc3164", "short", "raw"):
            self.assertEqual(self.target(f"log stdout format {name} user").format, name)

    def test_errors(self) -> None:
        """Each mistake is an error at the word at fault, saying what to write."""
        cases = {
            "log": "t.cfg:4: error: 'log' needs a target and a facility, as in "
            "'log 127.0.0.1:514 local0', 'log stdout format raw local0' or "
            "'log global'",
            "log stdout": "t.cfg:4: error: 'log stdout' needs a facility after "
            "the target, one of kern, user, mail, daemon, auth, syslog, lpr, news, "
            "uucp, cron, auth2, ftp, ntp, audit, alert, cron2, local0, local1, "
            "local2, local3, local4, local5, local6, local7",
            "log stdout local9": "t.cfg:4: error: unknown log facility 'local9'; "
            "use one of kern, user, mail, daemon, auth, syslog, lpr, news, uucp, "
            "cron, auth2, ftp, ntp, audit, alert, cron2, local0, local1, local2, "
            "local3, local4, local5, local6, local7",
            "log stdout local0 loud": "t.cfg:4: error: unknown log level 'loud'; "
            "use one of emerg, alert, crit, err, warning, notice, info, debug",
            "log stdout local0 info bad": "t.cfg:4: error: unknown log minimum "
            "level 'bad'; use one of emerg, alert, crit, err, warning, notice, "
            "info, debug",
            "log stdout local0 info err x": "t.cfg:4: error: unexpected 'x' at "
            "the end of 'log'",
            "log stdout len 10 local0": "t.cfg:4: error: 'log ... len' must be a "
            "whole number from 80 to 65535, not '10'",
            "log stdout len": "t.cfg:4: error: 'log stdout len' needs a value "
            "after 'len'",
            "log stdout format json local0": "t.cfg:4: error: unknown log format "
            "'json'; use one of rfc3164, rfc5424, short, raw",
            "log stdout format iso local0": "t.cfg:4: error: log format 'iso' is "
            "not implemented yet; use one of rfc3164, rfc5424, short, raw",
            "log stdout sample 1:2 local0": "t.cfg:4: error: 'log ... sample' "
            "(sending one line in N) is not implemented yet; remove 'sample "
            "RANGES:SIZE' to send every line",
            "log tcp@10.0.0.1:514 local0": "t.cfg:4: error: log target "
            "'tcp@10.0.0.1:514': 'tcp@' targets are not implemented; certlb sends "
            "to stdout, stderr, a UDP syslog server (ADDRESS[:PORT]) or a unix "
            "datagram socket (/dev/log)",
            "log syslog.example:514 local0": "t.cfg:4: error: log target "
            "'syslog.example:514': 'syslog.example' is not an IP address; write "
            "the syslog server's address, as in 127.0.0.1:514",
            "log :514 local0": "t.cfg:4: error: log target ':514' has no address; "
            "write one, as in 127.0.0.1:514",
            "log 10.0.0.1:0 local0": "t.cfg:4: error: log target '10.0.0.1:0': "
            "port 0 is not a syslog server's; give a port from 1 to 65535, or none "
            "for 514",
            "log 10.0.0.1:x local0": "t.cfg:4: error: log target '10.0.0.1:x': "
            "'x' is not a port; give a number from 1 to 65535 (or 0, on a bind "
            "line, for any free port)",
            "log unix@log local0": "t.cfg:4: error: log target 'unix@log': give "
            "the socket's absolute path, as in '/dev/log'",
        }
        for line, message in cases.items():
            logs, problems = frontend_logs(line)
            self.assertEqual(problems, [message], line)
            self.assertEqual(logs, ())

    def test_log_global(self) -> None:
        """'log global' in defaults, a frontend or a listen section uses the
        global section's lines, before the proxy's own; 'no log' drops them
        all; a proxy without 'log global' has only its own."""
        config, problems = parse(
            """\
            global
              log 10.0.0.1 local0
              log stdout format raw daemon
            defaults
              mode http
              log global
            frontend a
              bind :80
              log stderr local1
              default_backend b
            frontend c
              bind :81
              no log
              default_backend b
            listen d
              bind :82
              server s h:80
            defaults
              mode http
            frontend e
              bind :83
              log stderr local1
              default_backend b
            backend b
              server s h:80
            """
        )
        self.assertEqual(problems, [])
        self.assertEqual(
            [t.address for t in config.global_.logs], ["10.0.0.1", "stdout"]
        )
        self.assertEqual(
            {f.name: [t.address for t in f.logs] for f in config.frontends},
            {
                "a": ["10.0.0.1", "stdout", "stderr"],
                "c": [],
                "d": ["10.0.0.1", "stdout"],
                "e": ["stderr"],
            },
        )

    def test_backend_warning(self) -> None:
        """A log target in a backend does nothing: a warning says where it goes."""
        _, problems = parse(
            "backend b\n  mode http\n  log stdout local0\n  server s h:80\n"
        )
        self.assertEqual(
            problems,
            [
                "t.cfg:3: warning: 'log' has no effect in a backend section: access "
                "lines are written with the frontend's log lines; put it in the "
                "frontend, listen, defaults or global section"
            ],
        )


# 27 Nov 2026 02:00:00.25 at UTC+01:00
WHEN = datetime(2026, 11, 7, 2, 0, 0, 250000, timezone(timedelta(hours=1)))


def target(**kwargs: Any) -> LogTarget:
    return LogTarget(**{"kind": "stdout", "address": "stdout", **kwargs})


class FormatTests(SynchronousTestCase):
    def line(self, **kwargs: Any) -> bytes:
        return format_line(target(**kwargs), "hello", 6, WHEN, "host1", 42)

    def test_rfc3164(self) -> None:
        """rfc3164, the default: PRI, a BSD time stamp (day padded with a
        space), the host, certlb[PID]: and the message."""
        self.assertEqual(
            self.line(facility="local0"),
            b"<134>Nov  7 02:00:00 host1 certlb[42]: hello",
        )

    def test_rfc5424(self) -> None:
        """rfc5424: version 1, an ISO time stamp with its offset, no structured data."""
        self.assertEqual(
            self.line(facility="daemon", format="rfc5424"),
            b"<30>1 2026-11-07T02:00:00.250000+01:00 host1 certlb 42 - - hello",
        )

    def test_short_and_raw(self) -> None:
        """short: PRI and the message; raw: the message alone."""
        self.assertEqual(self.line(facility="kern", format="short"), b"<6>hello")
        self.assertEqual(self.line(facility="local7", format="raw"), b"hello")

    def test_len(self) -> None:
        """A line longer than 'len' is cut to it."""
        line = format_line(
            target(facility="user", format="raw", length=80), "x" * 100, 6, WHEN, "h", 1
        )
        self.assertEqual(line, b"x" * 80)

    def test_one_line(self) -> None:
        """A message holding line breaks stays one line."""
        line = format_line(
            target(facility="user", format="raw"), "a\r\nb\nc", 6, WHEN, "h", 1
        )
        self.assertEqual(line, b"a#0D#0Ab#0Ac")


class WriterTests(SynchronousTestCase):
    def writer(self, **kwargs: Any) -> tuple[LogWriter, list[bytes]]:
        sent: list[bytes] = []
        t = target(facility="local0", format="short", **kwargs)
        return LogWriter(t, sent.append, Clock().seconds, "h", 1), sent

    def test_levels(self) -> None:
        """A line goes out if its level is at least as severe as the target's;
        a line more severe than minlevel goes out at minlevel."""
        writer, sent = self.writer(level="notice")
        writer.send("a")
        writer.send("b", "warning")
        self.assertEqual(sent, [b"<132>b"])
        writer, sent = self.writer(minlevel="notice")
        writer.send("c")
        writer.send("d", "err")
        self.assertEqual(sent, [b"<134>c", b"<133>d"])

    def test_failure_reported_once_a_minute(self) -> None:
        """A sink that fails loses the line, never raises, and is reported at
        most once a minute."""
        clock = Clock()

        def fail(data: bytes) -> None:
            raise OSError("unreachable")

        writer = LogWriter(target(facility="user"), fail, clock.seconds, "h", 1)
        events = EventLoggingObserver.createWithCleanup(
            self,  # type: ignore[arg-type]
            globalLogPublisher,
        )
        writer.send("a")
        writer.send("b")
        clock.advance(60)
        writer.send("c")
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 2)
        self.assertEqual(
            formatEvent(events[0]),
            "cannot send a log line to stdout (<python>:0); lines are lost until "
            "it can be reached",
        )

    def test_stdout(self) -> None:
        """stdout gets one line per message, flushed."""
        config, _ = parse(
            "frontend fe\n  mode http\n  bind :80\n  log stdout format raw user\n"
        )
        service = LogTargetsService(config.frontends[0].logs, MemoryReactorClock())
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        service.startService()
        (writer,) = service.writers.values()
        writer.send("one")
        writer.send("two")
        self.successResultOf(service.stopService())
        self.assertEqual(out.getvalue(), "one\ntwo\n")

    def test_udp_service(self) -> None:
        """A UDP target listens on a port of the reactor's at start, sends
        to the syslog server from it, and stops listening at stop."""
        config, _ = parse(
            "frontend fe\n  mode http\n  bind :80\n  log 10.0.0.1:5140 local0\n"
        )
        memory = UDPReactor()
        service = LogTargetsService(config.frontends[0].logs, memory)
        (writer,) = service.writers.values()
        service.startService()
        writer.send("up")
        self.successResultOf(service.stopService())
        writer.send("stopped")
        self.assertEqual(memory.ports, [(0, "")])
        (port,) = memory.opened
        ((data, address),) = port.sent
        self.assertEqual(address, ("10.0.0.1", 5140))
        self.assertTrue(data.startswith(b"<134>"), data)
        self.assertTrue(data.endswith(f" certlb[{os.getpid()}]: up".encode()), data)
        self.assertFalse(port.listening)
        self.flushLoggedErrors(RuntimeError)


class FakeUDPPort:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.listening = True

    def write(self, data: bytes, address: tuple[str, int]) -> None:
        self.sent.append((data, address))

    def stopListening(self) -> None:
        self.listening = False


class UDPReactor(MemoryReactorClock):
    """A memory reactor that also listens on UDP ports."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[tuple[int, str]] = []
        self.opened: list[FakeUDPPort] = []

    def listenUDP(self, port: int, protocol: Any, interface: str = "") -> FakeUDPPort:
        self.ports.append((port, interface))
        self.opened.append(FakeUDPPort())
        return self.opened[-1]


class FakeWriterTests(ProxyTestCase):
    """A frontend whose access lines go to a log target."""

    config_text = """\
        frontend fe
            mode http
            bind 127.0.0.1:8443
            option httplog
            log stdout local0
            default_backend be
        backend be
            mode http
            server s1 10.0.0.1:80
    """

    def test_access_line_to_writer(self) -> None:
        """The access line of a request is sent to the frontend's writer, at
        info level, and not to twistd's log."""
        sent: list[bytes] = []
        (logs,) = [f.logs for f in parse(self.config_text)[0].frontends]
        self.frontend.log_writers = [
            LogWriter(logs[0], sent.append, self.reactor.seconds, "h", 7)
        ]
        events = EventLoggingObserver.createWithCleanup(
            self,  # type: ignore[arg-type]
            globalLogPublisher,
        )
        client = self.connect_client()
        client.get()
        self.accept().respond(OK)
        client.received()
        self.assertEqual(len(sent), 1)
        self.assertRegex(
            sent[0].decode(),
            r"^<134>Jan  1 \d\d:00:00 h certlb\[7\]: 192\.0\.2\.7:50000 "
            r'\[.*\] fe~ be/s1 .* 200 43 .*"GET / HTTP/1\.1"$',
        )
        self.assertEqual(
            [e for e in events if e.get("log_namespace") == "certlb.access"], []
        )


class _Receiver(DatagramProtocol):
    def __init__(self) -> None:
        self.received: Deferred[bytes] = Deferred()

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        if not self.received.called:
            self.received.callback(data)


class UDPTests(E2ETestCase):
    async def test_lines(self) -> None:
        """An access line sent to a syslog server on 127.0.0.1 over UDP, as
        local0.info in the rfc3164 format."""
        receiver = _Receiver()
        udp = reactor.listenUDP(0, receiver, interface="127.0.0.1")
        self.addCleanup(udp.stopListening)
        backend = self.start_backend("s1")
        ports = self.start_certlb(
            f"""\
            global
             log 127.0.0.1:{udp.getHost().port} local0
            frontend fe
             mode http
             bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.crt verify optional
             log global
             option httplog
             default_backend be
            backend be
             mode http
             server s1 127.0.0.1:{backend}
            """
        )
        result = await curl(f"https://127.0.0.1:{ports['fe']}/hello", "client1")
        self.assertEqual(result.code, 0, result)
        data = (await receiver.received).decode()
        self.assertRegex(
            data,
            r"^<134>\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ certlb\[\d+\]: "
            r"127\.0\.0\.1:\d+ \[.*\] fe~ be/s1 \S+ 200 \d+ - - ---- \S+ 0/0 "
            r'"GET /hello HTTP/1\.1"$',
        )


class UnixSocketTests(SynchronousTestCase):
    def test_datagram(self) -> None:
        """A unix socket target (as /dev/log) gets each line as one datagram;
        a socket nobody listens on loses the line without raising."""
        directory = tempfile.mkdtemp()  # short: a socket's path is 107 bytes at most
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "log")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(server.close)
        server.bind(path)
        logs, _ = frontend_logs(f"log {path} format short daemon")
        service = LogTargetsService(logs, MemoryReactorClock())
        service.startService()
        (writer,) = service.writers.values()
        writer.send("hello")
        self.assertEqual(server.recv(100), b"<30>hello")
        server.close()
        os.unlink(path)
        writer.send("lost")
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.successResultOf(service.stopService())
