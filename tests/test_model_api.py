"""A configuration built from Python objects: validation, helpers, checks."""

from __future__ import annotations

import pathlib

from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

import certlb
from certlb import (
    AclDef,
    Backend,
    Bind,
    Condition,
    Config,
    ConfigError,
    Frontend,
    HttpCheck,
    SampleExpression,
    Server,
    Timeouts,
    UseBackend,
    make_service,
)
from certlb.config import parse_config
from certlb.config.model import ForwardFor, Global, IdentityHeaders
from tests.helpers import pki_files


def tls_bind(port: int = 8443) -> Bind:
    files = pki_files()
    return Bind(
        "127.0.0.1",
        port,
        ssl=True,
        crt=files["server.pem"],
        ca_file=files["ca.crt"],
        verify="optional",
    )


class ValidationTests(SynchronousTestCase):
    def assert_refused(
        self, error: type[Exception], build: object, *words: str, **kwargs: object
    ) -> None:
        """C{build(**kwargs)} raises C{error}, naming each of C{words}."""
        raised = self.assertRaises(error, build, **kwargs)
        for word in words:
            self.assertIn(word, str(raised))

    def test_wrong_types_name_field_and_value(self) -> None:
        """A value of the wrong type is refused with a TypeError naming the
        class, the field and the value."""
        self.assert_refused(
            TypeError, Server, "Server.port", "'80'", name="s", host="h", port="80"
        )
        self.assert_refused(
            TypeError, Bind, "Bind.ssl", "'yes'", host="127.0.0.1", port=1, ssl="yes"
        )
        self.assert_refused(
            TypeError, Server, "Server.check", name="s", host="h", port=1, check=1
        )
        self.assert_refused(
            TypeError, Frontend, "Frontend.binds", "a tuple of Bind", name="f",
            binds=[("127.0.0.1", 443)],
        )  # fmt: skip
        self.assert_refused(
            TypeError, Backend, "Backend.servers", name="b", servers=Server("s", "h", 1)
        )
        self.assert_refused(TypeError, Config, "Config.frontends", frontends="www")
        self.assert_refused(
            TypeError, Frontend, "Frontend.timeouts", name="f", timeouts={"client": 1}
        )

    def test_bad_values_name_field_and_value(self) -> None:
        """A value out of range or not among the choices is refused with a
        ValueError naming the class, the field, the value and what is valid."""
        self.assert_refused(
            ValueError, Bind, "Bind.verify", "'sometimes'", "'optional'",
            host="127.0.0.1", port=1, verify="sometimes",
        )  # fmt: skip
        self.assert_refused(
            ValueError, Server, "Server.port", "70000", "from 0 to 65535",
            name="s", host="h", port=70000,
        )  # fmt: skip
        self.assert_refused(
            ValueError, Server, "Server.weight", "300", name="s", host="h", port=1,
            weight=300,
        )  # fmt: skip
        self.assert_refused(
            ValueError, Server, "Server.name", "''", name="", host="h", port=1
        )
        self.assert_refused(
            ValueError, Server, "Server.on_error", "'explode'", name="s", host="h",
            port=1, on_error="explode",
        )  # fmt: skip
        self.assert_refused(ValueError, Timeouts, "Timeouts.client", "0", client=0)
        self.assert_refused(
            ValueError, Backend, "Backend.retry_on", "'sometimes'", name="b",
            retry_on=["sometimes"],
        )  # fmt: skip
        self.assert_refused(
            ValueError, ForwardFor, "ForwardFor.except_network", "'nowhere'",
            except_network="nowhere",
        )  # fmt: skip
        self.assert_refused(
            ValueError, HttpCheck, "HttpCheck.expect", "'body'", expect="body"
        )
        self.assert_refused(ValueError, Global, "Global.maxconn", "0", maxconn=0)
        self.assert_refused(
            ValueError, IdentityHeaders, "IdentityHeaders.xfcc_fields", "'Nope'",
            xfcc_fields=["Hash", "Nope"],
        )  # fmt: skip

    def test_ignored_errors(self) -> None:
        """crt-ignore-err takes 'all' or any collection of error codes, and
        refuses anything else."""
        bind = Bind("127.0.0.1", 1, crt_ignore_err=[10, 23], ca_ignore_err="all")
        self.assertEqual(bind.crt_ignore_err, frozenset({10, 23}))
        self.assertEqual(bind.ca_ignore_err, "all")
        self.assert_refused(
            TypeError, Bind, "Bind.crt_ignore_err", host="h", port=1,
            crt_ignore_err=["X509_V_ERR_CERT_HAS_EXPIRED"],
        )  # fmt: skip
        self.assert_refused(
            ValueError, Bind, "Bind.ca_ignore_err", host="h", port=1,
            ca_ignore_err={0},
        )  # fmt: skip

    def test_conveniences(self) -> None:
        """Lists become tuples, paths become strings and '*' every IPv4
        address, as the parser would have them; equal configurations
        compare equal and hash alike."""

        def build() -> Config:
            return Config(
                frontends=[Frontend("f", binds=[Bind("*", 80)], default_backend="b")],
                backends=[
                    Backend(
                        "b",
                        servers=[
                            Server("s", "h", 1, ca_file=pathlib.Path("/x/ca.crt"))
                        ],
                    )
                ],
            )

        config = build()
        self.assertIsInstance(config.frontends, tuple)
        self.assertIsInstance(config.frontends[0].binds, tuple)
        self.assertEqual(config.frontends[0].binds[0].host, "0.0.0.0")
        self.assertEqual(config.backends[0].servers[0].ca_file, "/x/ca.crt")
        self.assertEqual(config, build())
        self.assertEqual(hash(config), hash(build()))

    def test_parser_builds_the_same_classes(self) -> None:
        """A file's configuration passes the same validators: the parser's
        objects are the public classes."""
        config, problems = parse_config(
            "frontend f\n mode http\n bind *:80\n default_backend b\n"
            "backend b\n mode http\n server s 127.0.0.1:81 weight 3\n",
            "t.cfg",
            {},
        )
        self.assertEqual(problems, [])
        self.assertIsInstance(config.frontends[0], Frontend)
        self.assertEqual(config.backends[0].servers[0].weight, 3)

    def test_public_names(self) -> None:
        """The model classes and the service are importable from certlb."""
        for name in ("Config", "Frontend", "Backend", "Server", "Bind", "UseBackend"):
            self.assertIn(name, certlb.__all__)
        self.assertIs(certlb.make_service, make_service)
        self.assertEqual(certlb.ClientConnection._fields, ("frontend", "peer", "tls"))


class ParseHelperTests(SynchronousTestCase):
    def test_condition_from_text(self) -> None:
        """Condition.parse reads a condition as a rule line writes it; 'if'
        may be left out."""
        condition = Condition.parse("unless { ssl_c_verify 0 } || !trusted")
        self.assertTrue(condition.unless)
        first, second = condition.groups
        acl = first[0].anonymous
        assert acl is not None
        self.assertEqual((acl.expression.fetch, acl.patterns), ("ssl_c_verify", ("0",)))
        self.assertEqual((second[0].name, second[0].negated), ("trusted", True))
        self.assertFalse(Condition.parse("{ ssl_fc_has_crt }").unless)

    def test_use_backend_takes_text(self) -> None:
        """UseBackend accepts its condition as text."""
        rule = UseBackend("app", "if { ssl_c_used }")
        assert rule.condition is not None
        anonymous = rule.condition.groups[0][0].anonymous
        assert anonymous is not None
        self.assertEqual(anonymous.expression.fetch, "ssl_c_used")

    def test_bad_condition(self) -> None:
        """A condition that does not parse is a ValueError quoting it and
        saying what is wrong."""
        raised = self.assertRaises(ValueError, Condition.parse, "if { ssl_c_used")
        self.assertIn("'if { ssl_c_used'", str(raised))
        self.assertIn("no '}' closes", str(raised))
        self.assertRaises(ValueError, Condition.parse, "")

    def test_acl_and_expression(self) -> None:
        """AclDef.parse and SampleExpression.parse read an ACL's body and an
        expression; Server takes its sni as text."""
        acl = AclDef.parse("api", "path -m beg /api")
        self.assertEqual(
            (acl.name, acl.flags, acl.patterns), ("api", ("-m", "beg"), ("/api",))
        )
        expression = SampleExpression.parse("hdr(host),lower")
        self.assertEqual(str(expression), "hdr(host),lower")
        self.assertEqual(Server("s", "h", 443, ssl=True, sni="ssl_fc_sni").sni,
                         SampleExpression.parse("ssl_fc_sni"))  # fmt: skip
        self.assertRaises(ValueError, SampleExpression.parse, "a b")


class MakeServiceTests(SynchronousTestCase):
    def test_cross_checks_with_every_problem(self) -> None:
        """make_service checks a configuration built in Python as a file's,
        and raises ConfigError with every problem."""
        config = Config(
            frontends=[
                Frontend(
                    "www",
                    binds=[Bind("127.0.0.1", 8443, ssl=True)],
                    use_backends=[UseBackend("app", "if valid")],
                    default_backend="nope",
                )
            ],
            backends=[Backend("app", servers=[Server("s", "127.0.0.1", 0)])],
        )
        raised = self.assertRaises(
            ConfigError, make_service, config, MemoryReactorClock()
        )
        message = str(raised)
        self.assertIn("default_backend 'nope': no backend has this name", message)
        self.assertIn("'ssl' needs a certificate", message)
        self.assertIn("server 's': port 0 is not a port", message)
        self.assertIn("valid", message)
        self.assertEqual(len(raised.errors), 4, message)

    def test_warnings_logged(self) -> None:
        """The warnings of a configuration built in Python are logged, since
        no loader reported them."""
        events = EventLoggingObserver()
        globalLogPublisher.addObserver(events)
        self.addCleanup(globalLogPublisher.removeObserver, events)
        config = Config(
            frontends=[Frontend("www", binds=[tls_bind()], default_backend="app")],
            backends=[Backend("app")],
        )
        make_service(config, MemoryReactorClock())
        logged = [formatEvent(e) for e in events]
        self.assertTrue(
            any("backend 'app' has no server" in line for line in logged), logged
        )

    def test_hand_built_listens(self) -> None:
        """A valid configuration built in Python gives a service that listens
        on its binds."""
        reactor = MemoryReactorClock()
        config = Config(
            frontends=[Frontend("www", binds=[tls_bind(9443)], default_backend="app")],
            backends=[Backend("app", servers=[Server("s", "127.0.0.1", 8080)])],
        )
        service = make_service(config, reactor)
        service.startService()
        self.assertEqual(
            [(port, host) for port, _, _, host in reactor.tcpServers],
            [(9443, "127.0.0.1")],
        )
        self.assertEqual(list(service.connections()), [])
        self.assertEqual(service.backends["app"].servers[0].up, True)
