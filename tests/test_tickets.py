"""Session-ticket keys that rotate: tune.ssl.ticket-key-lifetime, a bind's
new context, and the service that rotates every bind's keys."""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from certlb import load_config, make_service
from certlb.config.model import TICKET_KEY_LIFETIME
from certlb.tls.server import ServerTLS
from certlb.tls.tickets import TicketKeyRotation
from tests.helpers import pki_files, write_config
from tests.test_parser import only, parse, texts
from tests.test_resumption import MODES, VALID, client, connections, observe, seen
from tests.test_tls import server_tls


class KeywordTests(SynchronousTestCase):
    def test_default(self) -> None:
        """Without the keyword, binds get new ticket keys every hour."""
        config, problems = parse("global\n  maxconn 10\n")
        self.assertEqual(problems, [])
        self.assertEqual(config.global_.ticket_key_lifetime, 3_600_000)
        self.assertEqual(TICKET_KEY_LIFETIME, 3_600_000)

    def test_durations(self) -> None:
        """A duration in the global section, or 0 for never."""
        durations = {"30m": 1_800_000, "1d": 86_400_000, "0": 0, "0s": 0, "00ms": 0}
        for text, lifetime in durations.items():
            config, problems = parse(f"global\n  tune.ssl.ticket-key-lifetime {text}\n")
            self.assertEqual(
                (config.global_.ticket_key_lifetime, problems), (lifetime, [])
            )

    def test_bad(self) -> None:
        """A missing, bad or too short duration and extra words are errors
        naming the line; the default stays."""
        for line, message in {
            "tune.ssl.ticket-key-lifetime": "'tune.ssl.ticket-key-lifetime' needs "
            "a duration, as in 1h, or 0 for never",
            "tune.ssl.ticket-key-lifetime soon": "'soon' is not a duration; write a "
            "number with an optional unit us, ms, s, m, h or d, as in 5s (no unit "
            "means milliseconds)",
            "tune.ssl.ticket-key-lifetime 500ms": "'500ms': new ticket keys that "
            "often would end most sessions before they are resumed; give at least "
            "1s (or 0 for never)",
            "tune.ssl.ticket-key-lifetime 1h 2h": "unexpected '2h' at the end of "
            "'tune.ssl.ticket-key-lifetime'",
        }.items():
            config, problems = parse(f"global\n  {line}\n")
            self.assertEqual(only(texts(problems)), f"t.cfg:2: error: {message}")
            self.assertEqual(config.global_.ticket_key_lifetime, TICKET_KEY_LIFETIME)

    def test_only_global(self) -> None:
        """The keyword belongs in the global section."""
        _, problems = parse(
            "frontend f\n  mode http\n  bind :80\n  tune.ssl.ticket-key-lifetime 1h\n"
        )
        self.assertIn("'tune.ssl.ticket-key-lifetime'", only(texts(problems)))


class RotateTests(SynchronousTestCase):
    def test_old_sessions_not_resumed(self) -> None:
        """After a rotation, a session of before (ticket or session ID) is not
        resumed: the client has a full handshake and is verified again; its
        next connection resumes the new session."""
        for mode, (version, tickets) in MODES.items():
            tls = server_tls("optional")
            peer = client("client1", version, tickets)
            before = connections(tls, peer, 2)
            self.assertTrue(seen(before[1])["ssl_fc_is_resumed"], mode)
            old = tls.context
            tls.rotate()
            self.assertIsNot(tls.context, old)
            after = connections(tls, peer, 2)
            self.assertEqual(
                [seen(s) for s in after],
                [VALID, {**VALID, "ssl_fc_is_resumed": True, "ssl_fc_has_crt": False}],
                mode,
            )

    def test_same_files(self) -> None:
        """A rotation does not read the files again: it keeps what was read at
        start, even if the files are gone."""
        files = pki_files()
        path = self.mktemp()
        with open(files["server.pem"], "rb") as source, open(path, "wb") as copy:
            copy.write(source.read())
        tls = ServerTLS.for_bind(path, files["ca.crt"], "required", "t")
        os.remove(path)
        tls.rotate()
        (shake,) = connections(tls, client("client1", *MODES["TLS 1.3 ticket"]), 1)
        self.assertTrue(shake.accepted)

    def test_without_renew(self) -> None:
        """A ServerTLS built on a context of one's own keeps it."""
        tls = server_tls("none")
        mine = ServerTLS(tls.context)
        mine.rotate()
        self.assertIs(mine.context, tls.context)


class _Bind:
    def __init__(self, fails: bool = False) -> None:
        self.rotations = 0
        self.fails = fails

    def rotate(self) -> None:
        self.rotations += 1
        if self.fails:
            raise RuntimeError("no entropy")


class RotationServiceTests(SynchronousTestCase):
    def test_every_lifetime(self) -> None:
        """Every bind is rotated once per lifetime, not at start; stopping
        stops it."""
        clock, a, b = Clock(), _Bind(), _Bind()
        service = TicketKeyRotation([("a", a), ("b", b)], 60, clock)  # type: ignore[list-item]
        service.startService()
        clock.advance(59)
        self.assertEqual((a.rotations, b.rotations), (0, 0))
        clock.advance(1)
        clock.advance(60)
        self.assertEqual((a.rotations, b.rotations), (2, 2))
        service.stopService()
        clock.advance(600)
        self.assertEqual(a.rotations, 2)

    def test_failure_logged_others_go_on(self) -> None:
        """A bind whose rotation fails is logged by name and keeps its keys;
        the others are rotated, and so are all at the next turn."""
        events = observe(self)
        clock, bad, good = Clock(), _Bind(fails=True), _Bind()
        service = TicketKeyRotation([("fe 1.2.3.4:443", bad), ("g", good)], 10, clock)  # type: ignore[list-item]
        service.startService()
        clock.advance(10)
        clock.advance(10)
        self.assertEqual((bad.rotations, good.rotations), (2, 2))
        failures = [e for e in events if "log_failure" in e]
        self.assertEqual(len(failures), 2)
        self.assertEqual(failures[0]["bind"], "fe 1.2.3.4:443")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_never(self) -> None:
        """A lifetime of 0 rotates nothing."""
        clock, a = Clock(), _Bind()
        service = TicketKeyRotation([("a", a)], 0, clock)  # type: ignore[list-item]
        service.startService()
        clock.advance(10**7)
        self.assertEqual((a.rotations, clock.getDelayedCalls()), (0, []))

    def test_service_rotates_tls_binds(self) -> None:
        """certlb's service rotates its TLS binds' keys at the configured
        lifetime, and only those."""
        files = pki_files()
        path = write_config(
            self,
            "global\n  tune.ssl.ticket-key-lifetime 2m\n"
            "frontend fe\n  mode http\n"
            f"  bind 127.0.0.1:8443 ssl crt {files['server.pem']}\n"
            "  bind 127.0.0.1:8080\n  default_backend b\n"
            "backend b\n  mode http\n  server s 127.0.0.1:9\n",
        )
        clock = Clock()
        service = make_service(load_config(path), clock)
        self.assertEqual(service.tickets.lifetime, 120)
        [(name, tls)] = service.tickets.binds
        self.assertEqual(name, "fe 127.0.0.1:8443")
        old = tls.context
        service.tickets.startService()
        clock.advance(120)
        self.assertIsNot(tls.context, old)
        service.tickets.stopService()
