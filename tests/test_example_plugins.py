"""The example plugins of examples/plugins/: a serial allow-list fetch and an
action that asks an HTTP authorisation service, found as plugins are."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any, cast

import attrs
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import (
    EventLoggingObserver,
    MemoryReactorClock,
    StringTransport,
)
from twisted.logger import formatEvent, globalLogPublisher
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from zope.interface.verify import verifyObject

from certlb.config import check_config
from certlb.rules.actions import LocalResponse, Rule, RuleSet
from certlb.rules.files import relative_to
from certlb.rules.interfaces import IFetch, IRequestAction, IRequestActionType
from certlb.rules.pending import ActionFailed
from certlb.rules.registry import Registry, discover
from certlb.tls.state import ClientCertState
from tests.e2e import E2ETestCase, curl, reactor
from tests.helpers import pki, pki_files, write_config
from tests.test_fetches import context

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
EXAMPLES = os.path.abspath(os.path.join(ROOT, "examples", "plugins"))
ALLOWED = "ssl_c_serial_allowed"
ASK = "ask-authz"
URL = "http://127.0.0.1:8081/authz"
# ssl_c_s_dn of the test PKI's client1, URL-encoded.
CLIENT1_QUESTION = (
    b"GET /authz?subject=%2FO%3Dcertlb%20test%20PKI%2FCN%3Dcertlb%20client1%20client"
    b" HTTP/1.1\r\n"
)


def logged(testcase: SynchronousTestCase) -> EventLoggingObserver:
    """The events logged while C{testcase} runs."""
    return EventLoggingObserver.createWithCleanup(
        testcase,  # type: ignore[arg-type]  # a SynchronousTestCase does as well
        globalLogPublisher,
    )


def registry() -> Registry:
    """The registry of a configuration saying C{plugin-dir examples/plugins}."""
    return discover([EXAMPLES])


def module_of(plugin: object) -> Any:
    """The module the registry imported C{plugin} from."""
    return sys.modules[type(plugin).__module__]


def state(client: str | None) -> ClientCertState:
    """The TLS state of a connection whose client sent C{client}'s
    certificate of the test PKI (none for None)."""
    if client is None:
        return ClientCertState()
    certificate = pki().clients[client].certificate
    return ClientCertState(has_crt=True, used=True, certificate=certificate)


def serial(client: str) -> int:
    return pki().clients[client].certificate.serial_number


def openssl_serial(number: int) -> str:
    """C{number} as C{openssl x509 -noout -serial} prints it: whole bytes,
    upper case, after C{serial=}."""
    return (
        f"serial={number.to_bytes((number.bit_length() + 7) // 8, 'big').hex().upper()}"
    )


class DiscoveryTests(SynchronousTestCase):
    """The examples are plugins as any other: found through plugin-dir."""

    def test_found_through_plugin_dir(self) -> None:
        """discover() of the examples' directory finds the fetch and the
        action as modules of certlb.plugins, without any problem; without
        the directory, neither is known."""
        found = registry()
        self.assertEqual(found.modules[("fetch", ALLOWED)], "certlb.plugins.allowlist")
        self.assertEqual(found.modules[("action", ASK)], "certlb.plugins.authz")
        self.assertEqual(found.problems, ())
        self.assertNotIn(ALLOWED, discover().fetches)
        self.assertNotIn(ASK, discover().actions)

    def test_provide_interfaces(self) -> None:
        """The plugin objects provide IPlugin and their interface, and the
        action they build provides IRequestAction."""
        fetch = registry().fetches[ALLOWED]
        action_type = registry().actions[ASK]
        self.assertTrue(verifyObject(IPlugin, fetch))
        self.assertTrue(verifyObject(IFetch, fetch))
        self.assertTrue(verifyObject(IPlugin, action_type))
        self.assertTrue(verifyObject(IRequestActionType, action_type))
        self.assertTrue(verifyObject(IRequestAction, action_type.build((URL,))))

    def test_etc_configurations_valid(self) -> None:
        """etc/allowlist.cfg and etc/authz.cfg are valid configurations, with
        no warning (checked next to the test PKI, with their plugin-dir)."""
        serials = os.path.join(
            os.path.dirname(pki_files()["ca.crt"]), "allowed-serials.txt"
        )
        shutil.copy(os.path.join(ROOT, "etc", "allowed-serials.txt"), serials)
        self.addCleanup(os.remove, serials)
        for name in ("allowlist.cfg", "authz.cfg"):
            with open(os.path.join(ROOT, "etc", name), encoding="utf-8") as f:
                text = f.read().replace("../examples/plugins", EXAMPLES)
            path = write_config(self, text, name)
            _, problems = check_config([path])
            self.assertEqual([str(p) for p in problems], [], name)


class AllowListTests(SynchronousTestCase):
    """ssl_c_serial_allowed(FILE): the client certificate's serial is listed."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.plugin: Any = attrs.evolve(
            cast(Any, registry().fetches[ALLOWED]), clock=self.clock.seconds
        )
        self.path = os.path.abspath(self.mktemp())
        self.logged = logged(self)

    def write(self, *lines: str) -> None:
        with open(self.path, "w", encoding="utf-8") as f:
            f.write("".join(f"{line}\n" for line in lines))

    def compile(self) -> Any:
        return self.plugin.compile((self.path,))

    def allowed(self, fetch: Any, client: str | None) -> object:
        return fetch(context(state(client)))

    def messages(self) -> list[str]:
        return [formatEvent(e) for e in self.logged]

    def test_declared(self) -> None:
        """The fetch gives one boolean per request, computed per request (so
        that a new list applies to open connections)."""
        self.assertEqual(
            (self.plugin.output, self.plugin.multiple, self.plugin.scope),
            ("bool", False, "request"),
        )

    def test_listed_or_not(self) -> None:
        """A listed serial is allowed (true); another is not (false)."""
        self.write(openssl_serial(serial("client1")))
        fetch = self.compile()
        self.assertIs(self.allowed(fetch, "client1"), True)
        self.assertIs(self.allowed(fetch, "client2"), False)

    def test_no_certificate(self) -> None:
        """Without a client certificate, or TLS, the fetch has no value."""
        self.write(openssl_serial(serial("client1")))
        fetch = self.compile()
        self.assertIsNone(self.allowed(fetch, None))
        self.assertIsNone(fetch(context(None)))

    def test_forms(self) -> None:
        """A serial may be written in upper or lower case, with colons
        between the bytes, after openssl's serial=, with leading zeros."""
        number = serial("client1")
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
        for form in [
            raw.hex().upper(),
            raw.hex(),
            ":".join(f"{b:02X}" for b in raw),
            ":".join(f"{b:02x}" for b in raw),
            openssl_serial(number),
            f"SERIAL={raw.hex()}",
            f"  00{raw.hex()}  ",
        ]:
            self.write(form)
            self.assertIs(self.allowed(self.compile(), "client1"), True, form)

    def test_comments_and_blank_lines(self) -> None:
        """'#' starts a comment, on a line of its own or after a serial;
        blank lines are skipped."""
        self.write(
            "# allowed clients",
            "",
            f"{openssl_serial(serial('client2'))}   # client2",
            "   ",
            f"# {openssl_serial(serial('client1'))}",
        )
        fetch = self.compile()
        self.assertIs(self.allowed(fetch, "client2"), True)
        self.assertIs(self.allowed(fetch, "client1"), False)

    def test_relative_to_configuration(self) -> None:
        """A relative file name is the configuration file's directory's."""
        self.write(openssl_serial(serial("client1")))
        directory, name = os.path.split(self.path)
        with relative_to(os.path.join(directory, "certlb.cfg")):
            fetch = self.plugin.compile((name,))
        self.assertIs(self.allowed(fetch, "client1"), True)

    def test_missing_file(self) -> None:
        """A missing file is refused when the configuration is loaded,
        naming the file."""
        with self.assertRaises(ValueError) as raised:
            self.compile()
        self.assertEqual(
            str(raised.exception),
            f"allow-list {self.path!r} cannot be read: No such file or directory",
        )

    def test_bad_line(self) -> None:
        """A line that is not a serial is refused, naming the file and line."""
        self.write("# ok", "0A1B", "not-a-serial")
        with self.assertRaises(ValueError) as raised:
            self.compile()
        self.assertEqual(
            str(raised.exception),
            f"{self.path}:3: 'not-a-serial' is not a serial number in "
            "hexadecimal, as 'openssl x509 -noout -serial -in client.crt' "
            "prints it",
        )

    def test_arguments(self) -> None:
        """The fetch takes exactly one argument, the file."""
        for args in [(), ("a", "b"), ("",)]:
            with self.assertRaises(ValueError) as raised:
                self.plugin.compile(args)
            self.assertIn(
                "takes one argument, the allow-list file", str(raised.exception)
            )

    def test_read_again_when_changed(self) -> None:
        """A change of the file applies from the first request a second or
        more after the last look, and is logged."""
        self.write(openssl_serial(serial("client2")))
        fetch = self.compile()
        self.assertIs(self.allowed(fetch, "client1"), False)
        self.write(openssl_serial(serial("client1")))
        self.clock.advance(0.5)
        self.assertIs(self.allowed(fetch, "client1"), False)
        self.clock.advance(0.5)
        self.assertIs(self.allowed(fetch, "client1"), True)
        self.assertIs(self.allowed(fetch, "client2"), False)
        self.assertEqual(
            self.messages(), [f"allow-list {self.path} read again: 1 serials"]
        )

    def test_one_stat_a_second(self) -> None:
        """However many requests, the file is looked at (one stat) at most
        once a second, and read only when it changed."""
        self.write(openssl_serial(serial("client1")))
        fetch = self.compile()
        module = module_of(self.plugin)
        looks: list[str] = []
        reads: list[str] = []
        signature, read = module._signature, module.read_serials

        def look(path: str) -> Any:
            looks.append(path)
            return signature(path)

        def read_again(path: str) -> Any:
            reads.append(path)
            return read(path)

        self.patch(module, "_signature", look)
        self.patch(module, "read_serials", read_again)
        for _ in range(100):
            self.allowed(fetch, "client1")
            self.clock.advance(0.001)
        self.assertEqual((len(looks), len(reads)), (0, 0))
        self.clock.advance(1)
        for _ in range(100):
            self.allowed(fetch, "client1")
        self.assertEqual((len(looks), len(reads)), (1, 0))

    def test_vanished_file(self) -> None:
        """When the file disappears, the serials read last are kept, and a
        warning is logged once; when it is back, it is read again."""
        self.write(openssl_serial(serial("client1")))
        fetch = self.compile()
        os.remove(self.path)
        for _ in range(3):
            self.clock.advance(1)
            self.assertIs(self.allowed(fetch, "client1"), True)
        self.assertEqual(
            self.messages(),
            [
                f"allow-list {self.path} cannot be read again (No such file or "
                "directory); the 1 serials read before are kept"
            ],
        )
        self.assertEqual(self.logged[0]["log_level"].name, "warn")
        self.write(openssl_serial(serial("client2")))
        self.clock.advance(1)
        self.assertIs(self.allowed(fetch, "client1"), False)
        self.assertIs(self.allowed(fetch, "client2"), True)
        self.assertEqual(
            self.messages()[1:], [f"allow-list {self.path} read again: 1 serials"]
        )

    def test_bad_line_later(self) -> None:
        """A file rewritten with a line that is not a serial is not used: the
        serials read last are kept, with one warning naming the line."""
        self.write(openssl_serial(serial("client1")))
        fetch = self.compile()
        self.write("# oops", "client2")
        for _ in range(3):
            self.clock.advance(1)
            self.assertIs(self.allowed(fetch, "client1"), True)
        self.assertEqual(
            self.messages(),
            [
                f"allow-list {self.path} cannot be read again ({self.path}:2: "
                "'client2' is not a serial number in hexadecimal, as 'openssl "
                "x509 -noout -serial -in client.crt' prints it); the 1 serials "
                "read before are kept"
            ],
        )


def answer(status: bytes, body: bytes = b"") -> bytes:
    """An HTTP/1.1 response of C{status} with C{body}."""
    head = b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n" % (status, len(body))
    return head + body


class AskAuthzTests(SynchronousTestCase):
    """http-request ask-authz URL: asks an HTTP service, on a memory reactor
    (a real Agent, no socket), through certlb's rules."""

    def setUp(self) -> None:
        self.action_type = registry().actions[ASK]
        self.logged = logged(self)
        self.fresh()

    def fresh(self) -> None:
        """Use a new memory reactor (so a new pool of connections)."""
        self.reactor = MemoryReactorClock()
        # Its connections are StringTransports, which never say they are
        # closed: forget the pool, and do not wait.
        self.addCleanup(module_of(self.action_type).close_pools, self.reactor)

    def rules(self, *args: str) -> RuleSet:
        """The rules of a proxy saying C{http-request ask-authz ARGS}."""
        action = self.action_type.build(args or (URL,))
        return RuleSet((Rule(None, action, "t.cfg:5 http-request ask-authz"),))

    def ask(self, rules: RuleSet, client: str | None = "client1") -> Any:
        """Apply C{rules} to a request of C{client} on the memory reactor."""
        request = context(state(client))
        request.reactor = self.reactor
        return rules.apply(request)

    def service(self, index: int = -1) -> tuple[Any, StringTransport]:
        """Accept the C{index}th connection certlb opened to the service:
        its protocol, and the transport that has what certlb sent."""
        factory = self.reactor.tcpClients[index][2]
        protocol: Any = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_question(self) -> None:
        """certlb asks GET URL?subject=<ssl_c_s_dn, URL-encoded> of the
        service at the URL's host and port."""
        self.ask(self.rules())
        host, port = self.reactor.tcpClients[0][:2]
        self.assertEqual((host, port), ("127.0.0.1", 8081))
        _, transport = self.service()
        self.assertTrue(transport.value().startswith(CLIENT1_QUESTION))
        self.assertIn(b"\r\nHost: 127.0.0.1:8081\r\n", transport.value())

    def test_question_with_query(self) -> None:
        """When the URL has a query, the subject is added to it with '&'."""
        self.ask(self.rules(URL + "?app=wiki"))
        _, transport = self.service()
        self.assertTrue(
            transport.value().startswith(b"GET /authz?app=wiki&subject=%2FO%3D")
        )

    def test_allowed(self) -> None:
        """A 2xx answer lets the request go on."""
        for status in (b"200 OK", b"204 No Content"):
            self.fresh()
            asked = self.ask(self.rules())
            protocol, _ = self.service()
            protocol.dataReceived(answer(status, b"" if b"204" in status else b"yes"))
            self.assertIsNone(self.successResultOf(asked))

    def test_denied(self) -> None:
        """A 403 or 401 answer is certlb's 403, a denial."""
        for status in (b"403 Forbidden", b"401 Unauthorized"):
            self.fresh()
            asked = self.ask(self.rules())
            protocol, _ = self.service()
            protocol.dataReceived(answer(status, b"no"))
            self.assertEqual(
                self.successResultOf(asked), LocalResponse(403, denied=True)
            )

    def test_no_certificate(self) -> None:
        """A client without a certificate is denied without asking."""
        rules = self.rules()
        self.assertEqual(self.ask(rules, None), LocalResponse(403, denied=True))
        request = context(None)
        request.reactor = self.reactor
        self.assertEqual(rules.apply(request), LocalResponse(403, denied=True))
        self.assertEqual(self.reactor.tcpClients, [])

    def test_connection_kept(self) -> None:
        """The connection to the service is kept and used again, and not
        logged (Twisted's factories log each connection by default)."""
        rules = self.rules()
        first = self.ask(rules)
        protocol, transport = self.service()
        protocol.dataReceived(answer(b"200 OK"))
        self.successResultOf(first)
        transport.clear()
        second = self.ask(rules)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.assertTrue(transport.value().startswith(CLIENT1_QUESTION))
        protocol.dataReceived(answer(b"403 Forbidden"))
        self.assertEqual(self.successResultOf(second).status, 403)
        self.assertEqual([formatEvent(e) for e in self.logged], [])

    def test_other_status_fails(self) -> None:
        """Any other answer fails the action: certlb answers 500, never lets
        the request through."""
        for status in (b"500 Internal Server Error", b"404 Not Found", b"302 Found"):
            self.fresh()
            asked = self.ask(self.rules())
            protocol, _ = self.service()
            protocol.dataReceived(answer(status))
            failed = self.failureResultOf(asked, ActionFailed).value
            self.assertEqual(failed.status, 500)
            self.assertEqual(
                failed.why,
                f"t.cfg:5 http-request ask-authz failed: the authorisation service "
                f"{URL} answered {status.decode()}, neither 2xx (allowed) nor "
                "401/403 (denied)",
            )

    def test_service_down(self) -> None:
        """A service that cannot be reached fails the action: 500."""
        asked = self.ask(self.rules())
        factory = self.reactor.tcpClients[0][2]
        factory.clientConnectionFailed(
            self.reactor.connectors[0], Failure(ConnectionRefusedError())
        )
        self.reactor.advance(0.3)  # the Agent's endpoint tries every address
        failed = self.failureResultOf(asked, ActionFailed).value
        self.assertEqual(failed.status, 500)
        self.assertEqual(
            failed.why,
            "t.cfg:5 http-request ask-authz failed: Connection was refused by "
            "other side.",
        )

    def test_timeout(self) -> None:
        """No answer within the timeout: certlb cancels the question (the
        connection is closed) and answers 504."""
        asked = self.ask(self.rules(URL, "timeout", "500ms"))
        _, transport = self.service()
        self.reactor.advance(0.499)
        self.assertNoResult(asked)
        self.reactor.advance(0.001)
        failed = self.failureResultOf(asked, ActionFailed).value
        self.assertEqual(
            (failed.status, failed.why),
            (504, "t.cfg:5 http-request ask-authz: no answer within 0.5s (cancelled)"),
        )
        self.assertTrue(transport.disconnecting)

    def test_timeout_connecting(self) -> None:
        """A service that does not even accept the connection in time: the
        connection attempt is stopped, 504 (default timeout: 2 seconds)."""
        asked = self.ask(self.rules())
        self.reactor.advance(2)
        self.assertEqual(self.failureResultOf(asked, ActionFailed).value.status, 504)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)

    def test_cancelled(self) -> None:
        """When the client goes away (certlb cancels the action), the
        question is cancelled: the connection is closed, no timer is left."""
        asked = self.ask(self.rules())
        _, transport = self.service()
        asked.cancel()
        self.failureResultOf(asked, CancelledError)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_cancelled_connecting(self) -> None:
        """Cancelled while it connects to the service, the question stops
        connecting, and certlb sees a cancellation, not a failure."""
        asked = self.ask(self.rules())
        asked.cancel()
        self.failureResultOf(asked, CancelledError)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)

    def test_no_reactor(self) -> None:
        """Without a reactor to ask with, the action fails (500): it never
        lets a request through unasked."""
        request = context(state("client1"))
        outcome = self.rules().apply(request)
        self.assertEqual(self.failureResultOf(outcome, ActionFailed).value.status, 500)

    def test_arguments(self) -> None:
        """The action takes a URL and an optional timeout; anything else is
        refused with the usage."""
        self.assertEqual(self.action_type.build((URL,)).timeout, 2.0)
        self.assertEqual(
            self.action_type.build((URL, "timeout", "250ms")).timeout, 0.25
        )
        for args, message in [
            ((), "'ask-authz' needs the URL of the authorisation service"),
            (("ftp://h/",), "'ftp://h/' is not an http:// or https:// URL"),
            (("http:///x",), "'http:///x' is not an http:// or https:// URL"),
            ((URL, "timeout"), "unexpected 'timeout'"),
            ((URL, "retries", "3"), "unexpected 'retries 3'"),
            ((URL, "timeout", "soon"), "'soon' is not a duration"),
        ]:
            with self.assertRaises(ValueError) as raised:
                self.action_type.build(args)
            self.assertIn(message, str(raised.exception))


class Authorisation(Resource):
    """An authorisation service: yes for certlb's client1, no for others."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[bytes] = []

    def render_GET(self, request: Request) -> bytes:
        subject = (request.args or {}).get(b"subject", [b""])[0]
        self.asked.append(subject)
        if subject.endswith(b"/CN=certlb client1 client"):
            return b"yes\n"
        request.setResponseCode(403)
        return b"no\n"


CONFIG = """\
    global
     plugin-dir {plugins}

    frontend listed
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.pem verify optional
     acl serial_allowed ssl_c_serial_allowed({serials})
     http-request deny unless {{ ssl_c_verify 0 }} serial_allowed
     default_backend app

    frontend asked
     mode http
     bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.pem verify required
     http-request ask-authz http://127.0.0.1:{authz}/authz timeout 5s
     default_backend app

    backend app
     mode http
     server app 127.0.0.1:{app}
"""


class EndToEndTests(E2ETestCase):
    """Both examples in a real certlb, asked by a real curl."""

    async def test_allowed_and_refused(self) -> None:
        """The listed client gets the server's answer from the frontend with
        the allow-list, the other 403; the client the authorisation service
        allows gets the server's answer, the other 403."""
        serials = os.path.abspath(self.mktemp())
        with open(serials, "w", encoding="utf-8") as f:
            f.write(f"# who may come in\n{openssl_serial(serial('client2'))}\n")
        authorisation = Authorisation()
        authz = self.start_backend("authz", Site(authorisation))
        ports = self.start_certlb(
            CONFIG.format(
                plugins=EXAMPLES,
                serials=serials,
                authz=authz,
                app=self.start_backend("app"),
            )
        )
        close_pools = module_of(registry().actions[ASK]).close_pools
        self.addCleanup(close_pools, reactor)
        outcomes = {}
        for frontend in ("listed", "asked"):
            for client in ("client1", "client2"):
                url = f"https://127.0.0.1:{ports[frontend]}/"
                result = await curl(url, client, "-i")
                self.assertEqual(result.code, 0, result)
                status = result.out.split(b"\r\n", 1)[0].decode()
                served = b"\r\n\r\nserver app\n" in result.out
                outcomes[frontend, client] = (status, served)
        self.assertEqual(
            outcomes,
            {
                ("listed", "client1"): ("HTTP/1.1 403 Forbidden", False),
                ("listed", "client2"): ("HTTP/1.1 200 OK", True),
                ("asked", "client1"): ("HTTP/1.1 200 OK", True),
                ("asked", "client2"): ("HTTP/1.1 403 Forbidden", False),
            },
        )
        self.assertEqual(
            authorisation.asked,
            [
                b"/O=certlb test PKI/CN=certlb client1 client",
                b"/O=certlb test PKI/CN=certlb client2 client",
            ],
        )
