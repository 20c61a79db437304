"""Health checks, driven by a fake clock: rise, fall, the intervals, the
initial states, HTTP expectations, passive checking, and the service."""

from __future__ import annotations

import textwrap
from collections import deque
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import (
    EventLoggingObserver,
    MemoryReactorClock,
    StringTransport,
)
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from certlb.config import parse_config
from certlb.config.checker import check
from certlb.config.model import HttpCheck
from certlb.health import HealthCheckService
from certlb.health.checks import CheckFailed, ConnectCheck, http_request, judge
from certlb.health.monitor import ServerMonitor
from certlb.proxy.runtime import BackendRuntime, build_backends
from certlb.rules.interfaces import IHealthCheck


def backends(servers: str, backend_lines: str = "") -> dict[str, BackendRuntime]:
    """The run-time backends of a configuration with backend C{bk}."""
    text = textwrap.dedent(
        f"""\
        backend bk
            mode http
        {textwrap.indent(backend_lines, "    ")}
        {textwrap.indent(servers, "    ")}
        """
    )
    config, problems = parse_config(text, "t.cfg", {})
    assert not [p for p in problems if p.severity == "error"], problems
    return build_backends(config)


@implementer(IHealthCheck)
class ScriptedCheck:
    """A check whose outcomes are given in advance: a string passes, an
    exception fails (raised at once if C{raise_now})."""

    def __init__(self, *outcomes: str | Exception, raise_now: bool = False) -> None:
        self.outcomes = deque(outcomes)
        self.raise_now = raise_now
        self.runs = 0

    def run(self) -> Deferred[str]:
        self.runs += 1
        outcome = self.outcomes.popleft() if self.outcomes else "ok"
        if isinstance(outcome, str):
            return succeed(outcome)
        if self.raise_now:
            raise outcome
        return fail(outcome)


class Waiter:
    def __init__(self) -> None:
        self.woken = False

    def dequeued(self) -> None:
        self.woken = True


class MonitorTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        # Twisted annotates trial's TestCase, but only needs addCleanup.
        self.events = EventLoggingObserver.createWithCleanup(
            self,  # type: ignore[arg-type]
            globalLogPublisher,
        )

    def monitor(
        self, options: str = "", *outcomes: str | Exception, others: str = ""
    ) -> ServerMonitor:
        """A monitor of server s1 (check OPTIONS) of backend bk, started."""
        self.backend = backends(f"server s1 10.0.0.1:80 check {options}\n{others}")[
            "bk"
        ]
        self.check = ScriptedCheck(*outcomes)
        monitor = ServerMonitor.watch(
            self.backend.servers[0], self.backend, self.check, self.clock
        )
        monitor.start(0)
        return monitor

    def messages(self) -> list[str]:
        return [formatEvent(e) for e in self.events]

    def run_checks(self, count: int, step: float) -> None:
        for _ in range(count):
            self.clock.advance(step)


REFUSED = CheckFailed("connection refused")


class StateTests(MonitorTestCase):
    def test_default_start_up_and_one_failure_marks_down(self) -> None:
        """By default a checked server starts UP, and its first failed
        check marks it DOWN, as in HAProxy; the log line says why."""
        monitor = self.monitor("", REFUSED)
        self.assertTrue(monitor.server.up)
        self.clock.advance(0)
        self.assertFalse(monitor.server.up)
        self.assertEqual(
            self.messages(),
            [
                "server bk/s1 is DOWN (connection refused, check took 0 ms); "
                "0 active and 0 backup servers left",
                "backend 'bk' has no server available",
            ],
        )

    def test_fall_failures_once_fully_up(self) -> None:
        """Once fully up, a server goes DOWN after C{fall} failed checks in
        a row, not before."""
        monitor = self.monitor("fall 3 init-state fully-up", REFUSED, REFUSED, "ok")
        self.run_checks(3, 2)
        self.assertTrue(monitor.server.up)
        self.assertEqual(monitor.health, monitor.top)
        self.check.outcomes.extend([REFUSED, REFUSED])
        self.run_checks(2, 2)
        self.assertTrue(monitor.server.up)
        self.check.outcomes.append(REFUSED)
        self.clock.advance(2)
        self.assertFalse(monitor.server.up)

    def test_rise_passes_to_come_back(self) -> None:
        """A DOWN server comes back UP after C{rise} passed checks, and the
        log says how many servers are online."""
        monitor = self.monitor("rise 3", REFUSED, "ok", "ok", "HTTP status 200")
        self.clock.advance(0)
        self.run_checks(2, 2)
        self.assertFalse(monitor.server.up)
        self.clock.advance(2)
        self.assertTrue(monitor.server.up)
        self.assertIn(
            "server bk/s1 is UP (HTTP status 200, check took 0 ms); "
            "1 active and 0 backup servers online",
            self.messages(),
        )

    def test_init_state_down(self) -> None:
        """C{init-state down}: DOWN at first, UP after one passed check."""
        monitor = self.monitor("init-state down rise 3", "ok")
        self.assertFalse(monitor.server.up)
        self.clock.advance(0)
        self.assertTrue(monitor.server.up)

    def test_init_state_fully_down(self) -> None:
        """C{init-state fully-down}: DOWN until C{rise} passed checks."""
        monitor = self.monitor("init-state fully-down rise 2")
        self.assertFalse(monitor.server.up)
        self.clock.advance(0)
        self.assertFalse(monitor.server.up)
        self.clock.advance(2)
        self.assertTrue(monitor.server.up)

    def test_failure_in_transition_resets_to_down(self) -> None:
        """A failure while coming up starts the count again from nothing."""
        monitor = self.monitor("rise 2 init-state fully-down", "ok", REFUSED, "ok")
        self.run_checks(3, 2)
        self.assertFalse(monitor.server.up)
        self.clock.advance(2)
        self.assertTrue(monitor.server.up)

    def test_backup_counted_in_log(self) -> None:
        """The log line counts the active and backup servers left."""
        self.monitor(
            "",
            REFUSED,
            others="server s2 10.0.0.2:80\nserver b1 10.0.0.3:80 backup",
        )
        self.clock.advance(0)
        self.assertEqual(
            self.messages(),
            [
                "server bk/s1 is DOWN (connection refused, check took 0 ms); "
                "1 active and 1 backup servers left"
            ],
        )

    def test_coming_up_wakes_queued_requests(self) -> None:
        """Requests waiting for a server get it as soon as it is UP."""
        monitor = self.monitor("init-state down")
        waiter = Waiter()
        self.backend.waiting.append(waiter)
        self.assertFalse(waiter.woken)
        self.clock.advance(0)
        self.assertTrue(monitor.server.up)
        self.assertTrue(waiter.woken)


class IntervalTests(MonitorTestCase):
    def delays(self) -> list[float]:
        return [
            c.getTime() - self.clock.seconds() for c in self.clock.getDelayedCalls()
        ]

    def test_inter_when_fully_up(self) -> None:
        """A fully up server is checked every C{inter}."""
        self.monitor("inter 500ms init-state fully-up")
        self.clock.advance(0)
        self.assertEqual(self.delays(), [0.5])
        self.clock.advance(0.5)
        self.assertEqual(self.check.runs, 2)

    def test_fastinter_in_transition(self) -> None:
        """A server between UP and DOWN is checked every C{fastinter}."""
        self.monitor("inter 5s fastinter 1s fall 3 init-state fully-up", REFUSED)
        self.clock.advance(0)
        self.assertEqual(self.delays(), [1.0])

    def test_downinter_when_down(self) -> None:
        """A DOWN server is checked every C{downinter}."""
        self.monitor("inter 5s downinter 10s", REFUSED)
        self.clock.advance(0)
        self.assertEqual(self.delays(), [10.0])

    def test_intervals_default_to_inter(self) -> None:
        """Without fastinter and downinter, C{inter} is used throughout."""
        self.monitor("inter 3s", REFUSED, "ok")
        self.clock.advance(0)
        self.assertEqual(self.delays(), [3.0])
        self.clock.advance(3)
        self.assertEqual(self.delays(), [3.0])

    def test_raising_check_goes_on(self) -> None:
        """A check that raises counts as failed, is logged, and the server
        is checked again at the next interval."""
        monitor = self.monitor("inter 1s")
        monitor.check = ScriptedCheck(ZeroDivisionError("oops"), raise_now=True)
        self.clock.advance(0)
        self.assertFalse(monitor.server.up)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertIn(
            "server bk/s1 is DOWN (internal error in the check: "
            "ZeroDivisionError('oops'), check took 0 ms); "
            "0 active and 0 backup servers left",
            self.messages(),
        )
        self.clock.advance(1)
        self.assertEqual(monitor.check.runs, 2)

    def test_stop_cancels(self) -> None:
        """A stopped monitor leaves no timer and abandons its check."""
        monitor = self.monitor()
        cancelled: list[bool] = []
        pending: Deferred[str] = Deferred(lambda _: cancelled.append(True))
        monitor.check = ScriptedCheck()
        monitor.check.run = lambda: pending  # type: ignore[method-assign]
        self.clock.advance(0)
        monitor.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(cancelled, [True])
        self.assertTrue(monitor.server.up)
        self.assertEqual(self.messages(), [])


class ObserveTests(MonitorTestCase):
    def test_errors_up_to_the_limit_fail_a_check(self) -> None:
        """C{on-error fail-check}: C{error-limit} consecutive errors count as
        one failed check."""
        monitor = self.monitor(
            "observe layer4 error-limit 3 fall 2 init-state fully-up"
        )
        for _ in range(2):
            monitor.observe(False, False, "connection refused")
        self.assertEqual(monitor.health, monitor.top)
        monitor.observe(False, False, "connection refused")
        self.assertEqual(monitor.health, monitor.top - 1)
        self.assertTrue(monitor.server.up)
        self.assertEqual(monitor.errors, 0)

    def test_success_clears_the_count(self) -> None:
        """A good connection in between starts the count again."""
        monitor = self.monitor("observe layer4 error-limit 2 init-state fully-up")
        monitor.observe(False, False, "refused")
        monitor.observe(True, False, "")
        monitor.observe(False, False, "refused")
        self.assertEqual(monitor.health, monitor.top)

    def test_mark_down(self) -> None:
        """C{on-error mark-down} marks the server DOWN at once, naming the
        errors, and the next check comes at C{fastinter}."""
        monitor = self.monitor(
            "inter 10s fastinter 1s observe layer4 error-limit 1 on-error mark-down "
            "init-state fully-up"
        )
        self.clock.advance(0)
        monitor.observe(False, False, "connection to 10.0.0.1:80 refused")
        self.assertFalse(monitor.server.up)
        self.assertIn(
            "server bk/s1 is DOWN (1 consecutive errors, last: connection to "
            "10.0.0.1:80 refused); 0 active and 0 backup servers left",
            self.messages(),
        )
        self.clock.advance(1)
        self.assertEqual(self.check.runs, 2)

    def test_sudden_death(self) -> None:
        """C{on-error sudden-death} leaves the server one failed check from
        DOWN."""
        monitor = self.monitor(
            "observe layer4 error-limit 1 on-error sudden-death fall 5 "
            "init-state fully-up",
            "ok",
            REFUSED,
        )
        self.clock.advance(0)
        monitor.observe(False, False, "refused")
        self.assertTrue(monitor.server.up)
        self.clock.advance(2)
        self.assertFalse(monitor.server.up)

    def test_fastinter_mode_only_hastens(self) -> None:
        """C{on-error fastinter} changes no state, only brings the next check
        forward."""
        monitor = self.monitor(
            "inter 10s fastinter 2s observe layer4 error-limit 1 on-error fastinter "
            "init-state fully-up"
        )
        self.clock.advance(0)
        monitor.observe(False, False, "refused")
        self.assertEqual(monitor.health, monitor.top)
        self.clock.advance(2)
        self.assertEqual(self.check.runs, 2)

    def test_layer4_ignores_responses(self) -> None:
        """C{observe layer4} does not count bad responses."""
        monitor = self.monitor("observe layer4 error-limit 1 init-state fully-up")
        monitor.observe(False, True, "HTTP status 500")
        self.assertEqual(monitor.health, monitor.top)

    def test_layer7_counts_both(self) -> None:
        """C{observe layer7} counts failed connections and bad responses, and
        only a good response clears the count."""
        monitor = self.monitor("observe layer7 error-limit 3 init-state fully-up")
        monitor.observe(False, False, "refused")
        monitor.observe(True, False, "")
        monitor.observe(False, True, "HTTP status 500")
        self.assertEqual(monitor.errors, 2)
        monitor.observe(True, True, "")
        self.assertEqual(monitor.errors, 0)

    def test_without_observe_nothing_counts(self) -> None:
        """Without C{observe}, what requests see changes nothing."""
        monitor = self.monitor("error-limit 1 on-error mark-down")
        monitor.observe(False, False, "refused")
        self.assertTrue(monitor.server.up)

    def test_server_state_passes_on(self) -> None:
        """What the proxy tells a server reaches its monitor."""
        monitor = self.monitor("observe layer4 error-limit 1 on-error mark-down")
        monitor.server.observe(False, False, "refused")
        self.assertFalse(monitor.server.up)


class JudgeTests(SynchronousTestCase):
    def test_default_2xx_3xx(self) -> None:
        """Without C{http-check expect}, 2xx and 3xx pass, others fail."""
        http = HttpCheck()
        self.assertEqual(judge(http, 200, b""), (True, "HTTP status 200"))
        self.assertEqual(judge(http, 302, b"")[0], True)
        self.assertEqual(judge(http, 404, b""), (False, "HTTP status 404"))
        self.assertEqual(judge(http, 503, b"")[0], False)

    def test_status(self) -> None:
        """C{expect status} lists the statuses that pass."""
        http = HttpCheck(expect="status", pattern="200,204")
        self.assertTrue(judge(http, 204, b"")[0])
        self.assertEqual(
            judge(http, 302, b""),
            (False, "HTTP status 302, not what 'expect status 200,204' wants"),
        )

    def test_status_ranges(self) -> None:
        """C{expect status} takes ranges too."""
        http = HttpCheck(expect="status", pattern="200-299,304")
        self.assertEqual(
            [judge(http, status, b"")[0] for status in (199, 200, 299, 300, 304)],
            [False, True, True, False, True],
        )

    def test_rstatus(self) -> None:
        """C{expect rstatus} searches the status with a regex."""
        http = HttpCheck(expect="rstatus", pattern="^2")
        self.assertTrue(judge(http, 250, b"")[0])
        self.assertFalse(judge(http, 302, b"")[0])

    def test_string_and_rstring(self) -> None:
        """C{expect string} and C{rstring} look in the body."""
        self.assertTrue(
            judge(HttpCheck(expect="string", pattern="OK"), 200, b"all OK")[0]
        )
        self.assertFalse(judge(HttpCheck(expect="string", pattern="OK"), 200, b"no")[0])
        rstring = HttpCheck(expect="rstring", pattern="up|ready")
        self.assertTrue(judge(rstring, 500, b"ready")[0])
        self.assertFalse(judge(rstring, 200, b"down")[0])

    def test_negate(self) -> None:
        """C{expect !} passes when the expectation fails."""
        http = HttpCheck(expect="string", pattern="maintenance", negate=True)
        self.assertTrue(judge(http, 200, b"fine")[0])
        self.assertEqual(
            judge(http, 200, b"in maintenance"),
            (False, "HTTP status 200, not what 'expect ! string maintenance' wants"),
        )

    def test_request(self) -> None:
        """The check's request: method, URI, version, Host if given."""
        self.assertEqual(
            http_request(HttpCheck(), "10.0.0.1:80"),
            b"OPTIONS / HTTP/1.0\r\nConnection: close\r\n\r\n",
        )
        self.assertEqual(
            http_request(HttpCheck("GET", "/health", "HTTP/1.1", "app"), "x"),
            b"GET /health HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
        )


class ConnectCheckTests(SynchronousTestCase):
    """The check itself, over a memory reactor."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def start(self, **kwargs: Any) -> Deferred[str]:
        check = ConnectCheck(self.reactor, "10.0.0.1", 8080, 2.0, **kwargs)
        verifyObject(IHealthCheck, check)
        return check.run()

    def accept(self) -> tuple[Any, StringTransport]:
        host, port, factory, _, _ = self.reactor.tcpClients[-1]
        self.assertEqual((host, port), ("10.0.0.1", 8080))
        protocol: Any = factory.buildProtocol(IPv4Address("TCP", host, port))
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def why(self, d: Deferred[str]) -> str:
        return self.failureResultOf(d, CheckFailed).value.why

    def test_tcp_passes_on_connect(self) -> None:
        """A TCP check passes when the connection is accepted, and closes it."""
        d = self.start()
        _, transport = self.accept()
        self.assertEqual(self.successResultOf(d), "connection accepted")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_refused(self) -> None:
        """A refused connection fails the check, in those words."""
        d = self.start()
        _, _, factory, _, _ = self.reactor.tcpClients[-1]
        factory.clientConnectionFailed(
            None,  # type: ignore[arg-type]
            Failure(ConnectionRefusedError()),
        )
        self.assertEqual(self.why(d), "connection refused")

    def test_connect_timeout(self) -> None:
        """A check that cannot connect in time fails when the time is up."""
        d = self.start()
        self.reactor.advance(1.9)
        self.assertNoResult(d)
        self.reactor.advance(0.1)
        self.assertEqual(self.why(d), "timed out after 2s")

    def test_http_pass(self) -> None:
        """An HTTP check sends its request and passes on a 2xx status."""
        d = self.start(http=HttpCheck("GET", "/health"))
        protocol, transport = self.accept()
        self.assertEqual(
            transport.value(), b"GET /health HTTP/1.0\r\nConnection: close\r\n\r\n"
        )
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\n")
        self.assertEqual(self.successResultOf(d), "HTTP status 200")

    def test_http_fail(self) -> None:
        """An HTTP check fails on a 5xx status."""
        d = self.start(http=HttpCheck())
        protocol, _ = self.accept()
        protocol.dataReceived(b"HTTP/1.0 503 Service Unavailable\r\n\r\n")
        self.assertEqual(self.why(d), "HTTP status 503")

    def test_http_string_reads_to_the_end(self) -> None:
        """C{expect string} waits for the body, to the end of the response."""
        d = self.start(http=HttpCheck(expect="string", pattern="READY"))
        protocol, _ = self.accept()
        protocol.dataReceived(b"HTTP/1.0 200 OK\r\n\r\nnot yet ")
        self.assertNoResult(d)
        protocol.dataReceived(b"READY")
        protocol.connectionLost(Failure(ConnectionRefusedError()))
        self.assertTrue(self.successResultOf(d).startswith("HTTP status 200"))

    def test_http_junk(self) -> None:
        """Something that is not HTTP fails the check, quoting it."""
        d = self.start(http=HttpCheck())
        protocol, _ = self.accept()
        protocol.dataReceived(b"SSH-2.0-OpenSSH\r\n")
        self.assertEqual(self.why(d), "not an HTTP response: b'SSH-2.0-OpenSSH\\r'")

    def test_http_closed_without_response(self) -> None:
        """A server that closes without answering fails the check."""
        d = self.start(http=HttpCheck())
        protocol, _ = self.accept()
        protocol.connectionLost(Failure(ConnectionRefusedError()))
        self.assertEqual(self.why(d), "connection closed without a response")

    def test_read_timeout(self) -> None:
        """With C{timeout check}, the response has that long once connected."""
        d = self.start(http=HttpCheck(), read_timeout=5.0)
        self.reactor.advance(1)
        self.accept()
        self.reactor.advance(4.9)
        self.assertNoResult(d)
        self.reactor.advance(0.1)
        self.assertEqual(self.why(d), "timed out waiting for the response after 5s")


class ServiceTests(SynchronousTestCase):
    def test_checked_servers_only(self) -> None:
        """Only servers with C{check}, and not disabled, are checked; the
        others stay UP."""
        runtime = backends(
            "server a 10.0.0.1:80 check\n"
            "server b 10.0.0.2:80\n"
            "server c 10.0.0.3:80 check disabled\n"
            "server d 10.0.0.4:80 check init-state down"
        )
        service = HealthCheckService(runtime.values(), MemoryReactorClock())
        self.assertEqual([m.server.name for m in service.monitors], ["a", "d"])
        self.assertEqual(
            [s.up for s in runtime["bk"].servers], [True, True, True, False]
        )

    def test_first_checks_spread_and_stop(self) -> None:
        """The first checks of a backend are spread over its interval, and
        stopping leaves nothing scheduled."""
        reactor = MemoryReactorClock()
        runtime = backends(
            "server a 10.0.0.1:80 check inter 4s\n"
            "server b 10.0.0.2:80 check inter 4s\n"
            "server c 10.0.0.3:80 check inter 6s\n"
            "server d 10.0.0.4:80 check inter 4s"
        )
        service = HealthCheckService(runtime.values(), reactor)
        service.startService()
        self.assertEqual(
            sorted(c.getTime() for c in reactor.getDelayedCalls()), [0, 1, 2, 3]
        )
        reactor.advance(0)
        self.assertEqual(len(reactor.tcpClients), 1)
        service.stopService()
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_check_settings(self) -> None:
        """A check goes to C{addr}/C{port} when given, over TLS with
        C{check-ssl}, with the backend's C{option httpchk} and timeouts."""
        runtime = backends(
            "server a 10.0.0.1:80 check addr 10.9.9.9 port 81 check-ssl verify none "
            "inter 3s",
            "option httpchk GET /up\ntimeout connect 1s\ntimeout check 4s",
        )
        service = HealthCheckService(runtime.values(), MemoryReactorClock())
        check: Any = service.monitors[0].check
        self.assertEqual(
            (check.host, check.port, check.tls, check.timeout, check.read_timeout),
            ("10.9.9.9", 81, True, 1.0, 4.0),
        )
        self.assertEqual((check.http.method, check.http.uri), ("GET", "/up"))

    def test_whole_check_within_inter(self) -> None:
        """Without C{timeout check}, a check has C{inter} in all."""
        runtime = backends("server a 10.0.0.1:80 check inter 1500ms")
        service = HealthCheckService(runtime.values(), MemoryReactorClock())
        check: Any = service.monitors[0].check
        self.assertEqual((check.timeout, check.read_timeout), (1.5, None))


class ConfigurationTests(SynchronousTestCase):
    def test_observe_needs_check(self) -> None:
        """C{observe} without C{check} is warned about."""
        text = "backend bk\n  mode http\n  server s 10.0.0.1:80 observe layer4\n"
        config, _ = parse_config(text, "t.cfg", {})
        self.assertEqual(
            [str(p) for p in check(config)],
            [
                "t.cfg:3: warning: server 's': 'observe' has no effect without "
                "'check': what requests see counts against health checks"
            ],
        )
