"""Actions that ask another service: the request waits for their Deferred,
and is never let through when it fails, times out or the client goes."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from zope.interface import implementer
from zope.interface.verify import verifyObject

from certlb.rules.actions import LocalResponse
from certlb.rules.interfaces import IRequestAction, IRequestActionType
from certlb.rules.registry import BUILTIN, active
from tests.proxy_harness import WITH_CERT, ProxyTestCase, header

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@implementer(IRequestAction)
@attrs.define(eq=False)
class Ask:
    """An action whose answers the test gives: one Deferred per request."""

    timeout: float | None
    asked: list[Deferred[Any]] = attrs.Factory(list)
    cancelled: list[Deferred[Any]] = attrs.Factory(list)

    def run(self, context: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred(self.cancelled.append)
        self.asked.append(d)
        context.add_header("X-Asked", "yes")
        return d


@implementer(IRequestActionType)
@attrs.define(eq=False)
class AskType:
    """C{http-request ask [SECONDS]}."""

    name = "ask"
    built: list[Ask] = attrs.Factory(list)

    def build(self, args: tuple[str, ...]) -> Ask:
        action = Ask(float(args[0]) if args else None)
        self.built.append(action)
        return action


class AsyncActionTests(ProxyTestCase):
    """The channel: an asynchronous action in a frontend's rules."""

    config_text = """\
        frontend fe
            mode http
            bind 127.0.0.1:8443
            http-request ask 3
            http-request set-header X-After %[hdr(x-answer)]
            http-request deny if { hdr(x-answer) -m str no }
            default_backend bk
        backend bk
            mode http
            server a 10.0.0.1:80
    """

    def setUp(self) -> None:
        self.ask = AskType()
        with active(BUILTIN.including("action", self.ask, "tests")):
            super().setUp()
        self.action = self.ask.built[-1]
        self.logged = EventLoggingObserver.createWithCleanup(
            self,  # type: ignore[arg-type]  # a SynchronousTestCase does as well
            globalLogPublisher,
        )

    def test_types_provide_interfaces(self) -> None:
        """The test's action and its type provide certlb's interfaces."""
        self.assertTrue(verifyObject(IRequestActionType, self.ask))
        self.assertTrue(verifyObject(IRequestAction, self.action))

    def test_waits_then_goes_on(self) -> None:
        """The request waits for the action; when it says go on, the later
        rules run (seeing what it did) and the request reaches the server."""
        client = self.connect_client(WITH_CERT)
        client.get()
        self.assertEqual(self.pending_connections(), [])
        [asked] = self.action.asked
        asked.callback(None)
        server = self.accept()
        request = server.received()
        self.assertEqual(header(request, b"X-Asked"), [b"yes"])
        self.assertEqual(header(request, b"X-After"), [b""])
        server.respond(OK)
        self.assertStatus(client.received(), 200)

    def test_denial(self) -> None:
        """An action that answers (403) ends the request; no server is asked."""
        client = self.connect_client(WITH_CERT)
        client.get()
        self.action.asked[0].callback(LocalResponse(403, denied=True))
        self.assertStatus(client.received(), 403)
        self.assertEqual(self.pending_connections(), [])

    def test_later_rules_see_its_answer(self) -> None:
        """A header the action adds when it fires is seen by the rules after
        it (here, one that denies)."""
        client = self.connect_client(WITH_CERT)
        client.get(headers=b"X-Answer: maybe\r\n")
        [asked] = self.action.asked
        asked.callback(None)
        server = self.accept()
        self.assertEqual(header(server.received(), b"X-After"), [b"maybe"])
        client2 = self.connect_client(WITH_CERT, port=50001)
        client2.get(headers=b"X-Answer: no\r\n")
        self.action.asked[1].callback(None)
        self.assertStatus(client2.received(), 403)

    def test_timeout(self) -> None:
        """An action that does not answer within its timeout is cancelled,
        and the request answered 504, logged with the rule's place."""
        client = self.connect_client(WITH_CERT)
        client.get()
        self.reactor.advance(2.9)
        self.assertEqual(client.received(), b"")
        self.reactor.advance(0.2)
        self.assertStatus(client.received(), 504)
        self.assertEqual(self.action.cancelled, self.action.asked)
        self.assertEqual(self.pending_connections(), [])
        [event] = [e for e in self.logged if "outcome" in e]
        self.assertEqual(event["outcome"], "504")
        self.assertEqual(
            event["why"], "t.cfg:4 http-request ask 3: no answer within 3s (cancelled)"
        )

    def test_timeout_not_undone_by_the_action(self) -> None:
        """An action that turns its own errors into "go on" (as a fallback)
        cannot undo a timeout: its cancellation answers 504, not the server."""
        client = self.connect_client(WITH_CERT)
        client.get()
        self.action.asked[0].addErrback(lambda failure: None)
        self.reactor.advance(3.1)
        self.assertStatus(client.received(), 504)
        self.assertEqual(self.pending_connections(), [])

    def test_late_answer_ignored(self) -> None:
        """An answer that comes after the timeout changes nothing."""
        action = self.action
        action.asked.clear()
        client = self.connect_client(WITH_CERT)
        client.get()
        late: Deferred[Any] = Deferred()
        action.asked[0].addErrback(lambda failure: late)  # answers later
        self.reactor.advance(3.1)
        late.callback(None)
        self.assertStatus(client.received(), 504)
        self.assertEqual(self.pending_connections(), [])

    def test_failure(self) -> None:
        """An action that fails gives 500, never the server; the failure is
        logged with its traceback and the rule's place."""
        client = self.connect_client(WITH_CERT)
        client.get()
        self.action.asked[0].errback(ConnectionError("authorisation service down"))
        self.assertStatus(client.received(), 500)
        self.assertEqual(self.pending_connections(), [])
        failures = [e for e in self.logged if "log_failure" in e]
        self.assertEqual(len(failures), 1)
        self.assertEqual(
            failures[0]["why"],
            "t.cfg:4 http-request ask 3 failed: authorisation service down",
        )
        self.flushLoggedErrors(ConnectionError)

    def test_wrong_result(self) -> None:
        """A Deferred that fires with something else than None or a
        LocalResponse is a failure: 500."""
        client = self.connect_client(WITH_CERT)
        client.get()
        self.action.asked[0].callback("yes")
        self.assertStatus(client.received(), 500)

    def test_client_gone(self) -> None:
        """When the client goes away, the action is cancelled, and nothing
        goes to the server."""
        client = self.connect_client(WITH_CERT)
        client.get()
        client.close()
        self.assertEqual(self.action.cancelled, self.action.asked)
        self.reactor.advance(10)
        self.assertEqual(self.pending_connections(), [])

    def test_pipelined_requests_wait_in_turn(self) -> None:
        """Requests pipelined on one connection are answered in order while
        the first one waits for its action."""
        client = self.connect_client(WITH_CERT)
        client.get(b"/one")
        client.get(b"/two")
        self.assertEqual(len(self.action.asked), 1)
        self.action.asked[0].callback(LocalResponse(403, denied=True))
        self.assertStatus(client.received(), 403)
        self.assertEqual(len(self.action.asked), 2)


class ResourceAsyncActionTests(AsyncActionTests):
    """The twisted.web front door runs the same engine."""

    door = "resource"

    def test_pipelined_requests_wait_in_turn(self) -> None:
        """(twisted.web answers pipelined requests itself.)"""


class BackendAsyncActionTests(ProxyTestCase):
    """An asynchronous action among a backend's rules."""

    config_text = """\
        frontend fe
            mode http
            bind 127.0.0.1:8443
            default_backend bk
        backend bk
            mode http
            http-request ask
            server a 10.0.0.1:80
    """

    def setUp(self) -> None:
        self.ask = AskType()
        with active(BUILTIN.including("action", self.ask, "tests")):
            super().setUp()

    def test_default_timeout(self) -> None:
        """Without a timeout of its own, an action is given 10 seconds."""
        client = self.connect_client(WITH_CERT)
        client.get()
        self.reactor.advance(9.9)
        self.assertEqual(client.received(), b"")
        self.reactor.advance(0.2)
        self.assertStatus(client.received(), 504)

    def test_goes_on(self) -> None:
        """When it says go on, the request reaches the backend's server."""
        client = self.connect_client(WITH_CERT)
        client.get()
        self.ask.built[-1].asked[0].callback(None)
        self.accept().respond(OK)
        self.assertStatus(client.received(), 200)
