"""Resumed TLS sessions on binds that verify clients: the client's identity
and the outcome of its verification survive resumption by session ID and by
ticket (TLS 1.2 and TLS 1.3), in memory."""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from certlb.tls.server import ServerTLS
from certlb.tls.state import (
    UNKNOWN_OUTCOME,
    SessionOutcome,
    SessionOutcomes,
    VerifyError,
    VerifyPolicy,
    VerifyRecord,
)
from tests.test_fetches import context, fetch
from tests.test_tls import Client, Handshake, handshake, server_tls

TLS12, TLS13 = SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION
# The ways a client resumes: (TLS version, whether it offers tickets).
MODES = {
    "TLS 1.2 session ID": (TLS12, False),
    "TLS 1.2 ticket": (TLS12, True),
    "TLS 1.3 ticket": (TLS13, True),
}
FETCHES = (
    "ssl_fc_is_resumed",
    "ssl_fc_has_crt",
    "ssl_c_used",
    "ssl_c_verify",
    "ssl_c_err",
    "ssl_c_ca_err",
    "ssl_c_ca_err_depth",
)


def client(name: str | None, version: int, tickets: bool) -> Client:
    """Client C{name}, speaking only TLS C{version}, offering tickets or
    not (then OpenSSL's server resumes from its session cache)."""
    result = Client(name, version=version)
    if not tickets:
        result.context.set_options(SSL.OP_NO_TICKET)
    return result


def connections(tls: ServerTLS, peer: Client, count: int) -> list[Handshake]:
    """Connect C{peer} C{count} times, each time offering the session of its
    previous connection.

    Keep what this returns while the session is to be resumed: OpenSSL
    drops a session from its cache when a connection that did not shut down
    cleanly is freed.
    """
    result = []
    for _ in range(count):
        result.append(handshake(tls, peer))
        assert peer.connection is not None
        peer.session = peer.connection.get_session()
    return result


def seen(shake: Handshake, *names: str) -> dict[str, object]:
    """What rules see on a connection: each fetch of C{FETCHES} (or
    C{names}), and the client's CN."""
    request = context(shake.state)
    values = {name: fetch(name, request) for name in names or FETCHES}
    values["ssl_c_s_dn(cn)"] = fetch("ssl_c_s_dn", request, "CN")
    return values


def observe(testcase: SynchronousTestCase) -> EventLoggingObserver:
    """The log events of C{testcase}, from now until it ends."""
    # Twisted annotates trial's TestCase, but only needs addCleanup.
    return EventLoggingObserver.createWithCleanup(
        testcase,  # type: ignore[arg-type]
        globalLogPublisher,
    )


def resumed(full: dict[str, object]) -> dict[str, object]:
    """What the fetches of a full handshake become once it is resumed."""
    return {**full, "ssl_fc_is_resumed": True, "ssl_fc_has_crt": False}


# What a valid client's connection shows, first handshake and resumed.
VALID = {
    "ssl_fc_is_resumed": False,
    "ssl_fc_has_crt": True,
    "ssl_c_used": True,
    "ssl_c_verify": 0,
    "ssl_c_err": 0,
    "ssl_c_ca_err": 0,
    "ssl_c_ca_err_depth": 0,
    "ssl_c_s_dn(cn)": "certlb client1 client",
}


class IdentityKeptTests(SynchronousTestCase):
    def assert_kept(
        self,
        name: str | None,
        policy: VerifyPolicy | None,
        expected: dict[str, object],
        verify: str = "optional",
    ) -> None:
        for mode, (version, tickets) in MODES.items():
            tls = server_tls(verify, policy=policy)
            shakes = connections(tls, client(name, version, tickets), 3)
            self.assertTrue(all(s.accepted for s in shakes), mode)
            self.assertEqual(
                [seen(s) for s in shakes],
                [expected, resumed(expected), resumed(expected)],
                mode,
            )

    def test_valid_client(self) -> None:
        """A valid client's resumed session (by session ID, TLS 1.2 ticket,
        TLS 1.3 ticket, and again from the resumed one) keeps its certificate
        and a clean verification; no certificate is presented again."""
        self.assert_kept(
            "client1",
            None,
            VALID,
        )

    def test_valid_client_verify_required(self) -> None:
        """A verify required bind resumes sessions as well."""
        self.assert_kept(
            "client1",
            None,
            VALID,
            verify="required",
        )

    def test_ignored_client_error_kept(self) -> None:
        """An expired client let through by crt-ignore-err 10 keeps
        ssl_c_verify 10 and ssl_c_err 10 on its resumed sessions: it never
        looks clean."""
        self.assert_kept(
            "expired",
            VerifyPolicy(crt_ignore=frozenset({10})),
            {
                "ssl_fc_is_resumed": False,
                "ssl_fc_has_crt": True,
                "ssl_c_used": True,
                "ssl_c_verify": 10,
                "ssl_c_err": 10,
                "ssl_c_ca_err": 0,
                "ssl_c_ca_err_depth": 0,
                "ssl_c_s_dn(cn)": "certlb expired client",
            },
        )

    def test_ignored_ca_error_kept(self) -> None:
        """A client whose CA expired, let through by ca-ignore-err 10, keeps
        ssl_c_ca_err 10 at depth 1 on its resumed sessions."""
        self.assert_kept(
            "expiredca",
            VerifyPolicy(ca_ignore=frozenset({10})),
            {
                "ssl_fc_is_resumed": False,
                "ssl_fc_has_crt": True,
                "ssl_c_used": True,
                "ssl_c_verify": 10,
                "ssl_c_err": 0,
                "ssl_c_ca_err": 10,
                "ssl_c_ca_err_depth": 1,
                "ssl_c_s_dn(cn)": "certlb expiredca client",
            },
        )

    def test_no_certificate(self) -> None:
        """A client without a certificate (verify optional) resumes without
        one: ssl_c_used stays false."""
        self.assert_kept(
            None,
            None,
            {
                "ssl_fc_is_resumed": False,
                "ssl_fc_has_crt": False,
                "ssl_c_used": False,
                "ssl_c_verify": 0,
                "ssl_c_err": 0,
                "ssl_c_ca_err": 0,
                "ssl_c_ca_err_depth": 0,
                "ssl_c_s_dn(cn)": None,
            },
        )

    def test_chain_and_root_kept(self) -> None:
        """The chain the client sent and the root CA are still known on a
        resumed session, even from a ticket."""
        for mode, (version, tickets) in MODES.items():
            tls = server_tls("optional")
            full, again = connections(tls, client("chained", version, tickets), 2)
            names = ("ssl_c_chain_der", "ssl_fc_is_resumed")
            first, second = seen(full, *names), seen(again, *names)
            self.assertEqual(
                [fetch("ssl_c_r_dn", context(s.state), "CN") for s in (full, again)],
                ["certlb test CA 1"] * 2,
                mode,
            )
            self.assertEqual(second, {**first, "ssl_fc_is_resumed": True}, mode)

    def test_sessions_do_not_cross_binds(self) -> None:
        """A session of one bind offered to another is not resumed there: the
        client is verified again."""
        for mode, (version, tickets) in MODES.items():
            peer = client("client1", version, tickets)
            kept = connections(server_tls("optional"), peer, 1)
            other = server_tls("optional", ca_file="ca.pem")
            (shake,) = connections(other, peer, 1)
            self.assertTrue(kept[0].accepted)
            values = seen(shake, "ssl_fc_is_resumed", "ssl_fc_has_crt")
            self.assertEqual(
                values,
                {
                    "ssl_fc_is_resumed": False,
                    "ssl_fc_has_crt": True,
                    "ssl_c_s_dn(cn)": "certlb client1 client",
                },
                mode,
            )


class OutcomeLostTests(SynchronousTestCase):
    def bind(self, clock: Clock, size: int = 100) -> ServerTLS:
        """A bind letting expired clients through, whose outcomes last 10
        seconds on C{clock}."""
        tls = server_tls("optional", policy=VerifyPolicy(crt_ignore=frozenset({10})))
        return ServerTLS(
            tls.context, tls.policy, SessionOutcomes(10, size, clock.seconds)
        )

    def test_forgotten_outcome_not_verified(self) -> None:
        """A session resumed after certlb forgot its verification reports its
        certificate as not verified (error 50), never as clean, and says so
        in the log."""
        for mode, (version, tickets) in MODES.items():
            clock = Clock()
            tls = self.bind(clock)
            peer = client("expired", version, tickets)
            kept = connections(tls, peer, 1)
            clock.advance(11)
            events = observe(self)
            (shake,) = connections(tls, peer, 1)
            self.assertEqual(
                seen(shake),
                {
                    "ssl_fc_is_resumed": True,
                    "ssl_fc_has_crt": False,
                    "ssl_c_used": True,
                    "ssl_c_verify": UNKNOWN_OUTCOME,
                    "ssl_c_err": UNKNOWN_OUTCOME,
                    "ssl_c_ca_err": 0,
                    "ssl_c_ca_err_depth": 0,
                    "ssl_c_s_dn(cn)": "certlb expired client",
                },
                mode,
            )
            self.assertTrue(kept[0].accepted)
            self.assertIn(
                "no longer known", "".join(e["log_format"] for e in events), mode
            )

    def test_evicted_outcome_not_verified(self) -> None:
        """When more sessions than the cache holds were made since, a resumed
        session reports its certificate as not verified."""
        clock = Clock()
        tls = self.bind(clock, size=1)
        peer = client("expired", TLS12, False)
        kept = connections(tls, peer, 1)
        session = peer.session
        kept += connections(tls, client("client1", TLS12, False), 1)
        peer.session = session
        (shake,) = connections(tls, peer, 1)
        self.assertEqual(len(kept), 2)
        self.assertEqual(
            seen(shake, "ssl_fc_is_resumed", "ssl_c_verify"),
            {
                "ssl_fc_is_resumed": True,
                "ssl_c_verify": UNKNOWN_OUTCOME,
                "ssl_c_s_dn(cn)": "certlb expired client",
            },
        )

    def test_tracking_failure_not_verified(self) -> None:
        """An error while following a session is logged, and the resumed
        client is reported as not verified."""
        tls = server_tls("optional")
        peer = client("client1", TLS13, True)
        kept = connections(tls, peer, 1)
        self.assertTrue(kept[0].accepted)

        def broken(self: VerifyRecord, connection: object, where: int) -> None:
            raise RuntimeError("broken tracking")

        self.patch(VerifyRecord, "track_session", broken)
        events = observe(self)
        (shake,) = connections(tls, peer, 1)
        self.assertEqual(seen(shake, "ssl_c_verify")["ssl_c_verify"], UNKNOWN_OUTCOME)
        failures = [e for e in events if "log_failure" in e]
        self.assertTrue(failures)
        self.assertEqual(
            failures[0]["log_failure"].getErrorMessage(), "broken tracking"
        )
        self.flushLoggedErrors(RuntimeError)


OUTCOME = SessionOutcome((VerifyError(10, 0),), (), ())


class SessionOutcomesTests(SynchronousTestCase):
    def test_recall(self) -> None:
        """An outcome is given back for its session's key, and only for it."""
        outcomes = SessionOutcomes(10, clock=Clock().seconds)
        outcomes.remember(b"a", OUTCOME)
        self.assertEqual(
            (outcomes.recall(b"a"), outcomes.recall(b"b")), (OUTCOME, None)
        )

    def test_expires(self) -> None:
        """An outcome is forgotten once its time is over."""
        clock = Clock()
        outcomes = SessionOutcomes(10, clock=clock.seconds)
        outcomes.remember(b"a", OUTCOME)
        clock.advance(9)
        self.assertEqual(outcomes.recall(b"a"), OUTCOME)
        clock.advance(1)
        self.assertIsNone(outcomes.recall(b"a"))
        self.assertEqual(len(outcomes), 0)

    def test_bounded(self) -> None:
        """No more than C{size} outcomes are kept: the oldest go first, and
        expired ones are dropped as new ones come."""
        clock = Clock()
        outcomes = SessionOutcomes(10, 2, clock.seconds)
        for key in (b"a", b"b", b"c"):
            outcomes.remember(key, OUTCOME)
        self.assertEqual(
            [outcomes.recall(k) for k in (b"a", b"b", b"c")], [None, OUTCOME, OUTCOME]
        )
        clock.advance(10)
        outcomes.remember(b"d", OUTCOME)
        self.assertEqual(len(outcomes), 1)

    def test_bind_timeout(self) -> None:
        """A bind's outcomes outlive its sessions (OpenSSL's session
        timeout)."""
        tls = server_tls("optional")
        self.assertGreater(tls.sessions.ttl, tls.context.get_timeout())
