"""The rule language: match methods, ACLs, conditions, fetches, converters."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from certlb.config import parse_config
from certlb.config.model import AclDef, SampleExpression
from certlb.rules.acl import (
    CompiledCondition,
    RuleError,
    UndefinedAcl,
    acls_by_name,
    compile_acl,
    compile_condition,
)
from certlb.rules.context import ConnectionInfo, RequestContext
from certlb.rules.fetches import (
    BUILTIN_CONVERTERS,
    BUILTIN_FETCHES,
    CONVERTERS,
    FETCHES,
)
from certlb.rules.interfaces import (
    ICondition,
    IConnectionInfo,
    IConverter,
    IFetch,
    IRequestContext,
)
from certlb.rules.matching import compile_matcher
from certlb.tls.state import ClientCertState


def request(
    tls: ClientCertState | None = None, target: str = "/a/b?x=1"
) -> RequestContext:
    """A request from 10.0.0.1 with the TLS state C{tls} (None: plain HTTP)."""
    connection = ConnectionInfo(
        ("10.0.0.1", 50000), ("127.0.0.1", 8443), "ft", lambda: tls
    )
    return RequestContext("GET", target, "HTTP/1.1", [("Host", "x")], connection)


PLAIN = request()
NO_CERT = request(ClientCertState(has_crt=False))
CERT = request(ClientCertState(has_crt=True, used=True))


def matches(
    method: str, patterns: Sequence[str], value: object, i: bool = False
) -> bool:
    """Whether C{value} matches C{patterns} with C{-m method} (and C{-i})."""
    return compile_matcher(method, patterns, i)(value)


def condition(acls: Sequence[str], text: str) -> CompiledCondition:
    """Compile C{use_backend b TEXT} of a frontend with the C{acl} lines
    C{acls} (each without its 'acl' keyword)."""
    lines = "".join(f"  acl {acl}\n" for acl in acls)
    config, problems = parse_config(
        f"frontend f\n  mode http\n  bind :80\n{lines}  use_backend b {text}\n"
        "  default_backend b\nbackend b\n  mode http\n  server s h:80\n",
        "t.cfg",
        environ={},
    )
    assert [p for p in problems if p.severity == "error"] == [], problems
    front = config.frontends[0]
    cond = front.use_backends[0].condition
    assert cond is not None
    return compile_condition(cond, acls_by_name(front.acls))


def results(compiled: CompiledCondition) -> tuple[bool, bool, bool]:
    """Whether C{compiled} matches a plain request, one without a client
    certificate and one with."""
    return (compiled.matches(PLAIN), compiled.matches(NO_CERT), compiled.matches(CERT))


class MatchMethodTests(SynchronousTestCase):
    def test_found_and_bool(self) -> None:
        """'found' matches any value, even false; 'bool' only a true one."""
        self.assertEqual([matches("found", [], v) for v in (False, 0, "")], [True] * 3)
        self.assertEqual(
            [matches("bool", [], v) for v in (True, 1, False, 0)],
            [True, True, False, False],
        )
        self.assertEqual(
            [matches("bool", [], v) for v in ("1", "-2", "0", "", "yes")],
            [True, True, False, False, False],
        )

    def test_found_and_bool_take_no_pattern(self) -> None:
        """A pattern given to 'found' or 'bool' is an error naming it."""
        for method in ("found", "bool"):
            e = self.assertRaises(ValueError, compile_matcher, method, ["1"], False)
            self.assertIn(
                f"match method '{method}' takes no pattern, but was given '1'", str(e)
            )

    def test_int_exact_and_several(self) -> None:
        """Integer patterns match equal values; any of several is enough."""
        self.assertTrue(matches("int", ["10"], 10))
        self.assertTrue(matches("int", ["9", "10"], 10))
        self.assertFalse(matches("int", ["9", "11"], 10))
        self.assertTrue(matches("int", ["-5"], -5))

    def test_int_ranges(self) -> None:
        """'10:23' is inclusive, ':5' has no lower bound, '5:' no upper."""
        within = [v for v in range(8, 26) if matches("int", ["10:23"], v)]
        self.assertEqual((within[0], within[-1], len(within)), (10, 23, 14))
        self.assertEqual(
            [matches("int", [":5"], v) for v in (-9, 5, 6)], [True, True, False]
        )
        self.assertEqual(
            [matches("int", ["5:"], v) for v in (4, 5, 10**9)], [False, True, True]
        )

    def test_int_operators(self) -> None:
        """eq, ne, lt, le, gt and ge compare with the number after them."""
        table = {
            "eq": [False, True, False],
            "ne": [True, False, True],
            "lt": [True, False, False],
            "le": [True, True, False],
            "gt": [False, False, True],
            "ge": [False, True, True],
        }
        for operator, expected in table.items():
            got = [matches("int", [operator, "5"], v) for v in (4, 5, 6)]
            self.assertEqual(got, expected, operator)

    def test_int_reads_text(self) -> None:
        """A value written in digits is compared as a number; other text is
        no match."""
        self.assertTrue(matches("int", ["10"], "10"))
        self.assertFalse(matches("int", ["10"], "ten"))

    def test_bad_int_patterns(self) -> None:
        """A pattern that is no number, or an operator without one, is an
        error that shows what to write."""
        e = self.assertRaises(ValueError, compile_matcher, "int", ["1x"], False)
        self.assertIn(
            "'1x' is not an integer pattern; write a number (10), a "
            "range (10:23, :5, 5:)",
            str(e),
        )
        e = self.assertRaises(ValueError, compile_matcher, "int", ["ge"], False)
        self.assertEqual(str(e), "operator 'ge' needs a number after it")
        for loose in ("1_0", " 10", "10 ", "0x10"):
            self.assertRaises(ValueError, compile_matcher, "int", [loose], False)

    def test_ip(self) -> None:
        """Addresses match networks and single addresses, IPv4 and IPv6;
        IPv4-mapped IPv6 addresses match IPv4 networks."""
        nets = ["10.0.0.0/8", "192.168.1.1", "2001:db8::/32"]
        for value in ("10.1.2.3", "192.168.1.1", "2001:db8::5", "::ffff:10.9.9.9"):
            self.assertTrue(matches("ip", nets, value), value)
        self.assertTrue(matches("ip", nets, ipaddress.ip_address("10.0.0.1")))
        for value in ("11.0.0.1", "192.168.1.2", "2001:db9::1", "not an address"):
            self.assertFalse(matches("ip", nets, value), value)

    def test_bad_ip_pattern(self) -> None:
        """A pattern that is no address or network is an error."""
        e = self.assertRaises(ValueError, compile_matcher, "ip", ["10.0.0.0/33"], False)
        self.assertIn("'10.0.0.0/33' is not an address or a network", str(e))

    def test_strings(self) -> None:
        """str, beg, end, sub and reg match exactly, at the start, at the end,
        anywhere, and by regular expression (unanchored)."""
        for method, pattern, yes, no in [
            ("str", "/login", "/login", "/login/"),
            ("beg", "/api/", "/api/v1", "/ap"),
            ("end", ".css", "/a.css", "/a.css.map"),
            ("sub", "admin", "/x/admin/y", "/x/adm/y"),
            ("reg", r"^/a\.html$", "/a.html", "/aXhtml"),
            ("reg", r"\d+", "/user/42", "/user/me"),
        ]:
            self.assertTrue(matches(method, [pattern], yes), (method, yes))
            self.assertFalse(matches(method, [pattern], no), (method, no))

    def test_dir_and_dom(self) -> None:
        """dir matches whole '/'-separated parts, dom whole '.'-separated
        labels."""
        self.assertTrue(matches("dir", ["img"], "/static/img/a.png"))
        self.assertTrue(matches("dir", ["static/img"], "/static/img/a.png"))
        self.assertFalse(matches("dir", ["img"], "/images/a.png"))
        self.assertTrue(matches("dom", ["example.com"], "www.example.com"))
        self.assertTrue(matches("dom", ["example.com"], "example.com"))
        self.assertFalse(matches("dom", ["example.com"], "badexample.com"))

    def test_len(self) -> None:
        """len compares the length of the text with integer patterns."""
        self.assertTrue(matches("len", ["3"], "abc"))
        self.assertTrue(matches("len", ["gt", "2"], "abc"))
        self.assertFalse(matches("len", ["4:"], "abc"))

    def test_ignore_case(self) -> None:
        """-i makes every string method ignore case; without it case counts."""
        for method, pattern, value in [
            ("str", "Host", "hOST"),
            ("beg", "/API", "/api/v1"),
            ("end", ".CSS", "/a.css"),
            ("sub", "Admin", "/ADMIN/"),
            ("reg", "^/A", "/a"),
            ("dir", "IMG", "/img/x"),
            ("dom", "Example.COM", "www.example.com"),
        ]:
            self.assertTrue(matches(method, [pattern], value, i=True), method)
            self.assertFalse(matches(method, [pattern], value), method)

    def test_non_text_values(self) -> None:
        """String methods read numbers as decimal text, booleans as 1 or 0."""
        self.assertTrue(matches("str", ["10"], 10))
        self.assertTrue(matches("str", ["1"], True))

    def test_bad_regex_and_method(self) -> None:
        """A bad regular expression or an unknown method is an error."""
        e = self.assertRaises(ValueError, compile_matcher, "reg", ["(a"], False)
        self.assertIn("bad regular expression '(a'", str(e))
        e = self.assertRaises(ValueError, compile_matcher, "glob", ["*"], False)
        self.assertIn("unknown match method 'glob'; the methods are found,", str(e))

    def test_no_value_never_matches(self) -> None:
        """A missing value (None) matches no method, not even 'found', with
        patterns that match an empty or minimal value."""
        for method, patterns, value in [
            ("found", [], ""),
            ("bool", [], True),
            ("int", ["0:"], 0),
            ("ip", ["0.0.0.0/0"], "0.0.0.0"),
            ("str", [""], ""),
            ("beg", [""], ""),
            ("end", [""], ""),
            ("sub", [""], ""),
            ("reg", [""], ""),
            ("dir", ["a"], "a"),
            ("dom", ["a"], "a"),
            ("len", ["0:"], ""),
        ]:
            self.assertTrue(matches(method, patterns, value), method)
            self.assertFalse(matches(method, patterns, None), method)


class ConditionTests(SynchronousTestCase):
    def test_ssl_fc_has_crt(self) -> None:
        """{ ssl_fc_has_crt } matches only a TLS request with a certificate."""
        self.assertEqual(
            results(condition([], "if { ssl_fc_has_crt }")), (False, False, True)
        )

    def test_negated_missing_value_matches(self) -> None:
        """Without TLS, ssl_fc_has_crt has no value: it does not match, so
        its negation does."""
        self.assertEqual(
            results(condition(["c ssl_fc_has_crt"], "if !c")), (True, True, False)
        )

    def test_unless(self) -> None:
        """'unless' applies the rule when the condition does not match."""
        self.assertEqual(
            results(condition(["c ssl_fc_has_crt"], "unless c")), (True, True, False)
        )

    def test_same_name_lines_are_ored(self) -> None:
        """Several acl lines of one name: any of them matching is enough."""
        acls = ["c always_false", "c ssl_fc_has_crt"]
        self.assertEqual(results(condition(acls, "if c")), (False, False, True))
        self.assertEqual(
            results(condition(["n always_false"] * 2, "if n")), (False, False, False)
        )

    def test_and(self) -> None:
        """Terms side by side must all match."""
        acls = ["t always_true", "c ssl_fc_has_crt"]
        self.assertEqual(results(condition(acls, "if t c")), (False, False, True))
        self.assertEqual(results(condition(acls, "if t !c")), (True, True, False))

    def test_or(self) -> None:
        """Groups separated by 'or' or '||': one matching is enough."""
        acls = ["f always_false", "c ssl_fc_has_crt"]
        self.assertEqual(results(condition(acls, "if f or c")), (False, False, True))
        self.assertEqual(results(condition(acls, "if f || f")), (False, False, False))
        self.assertEqual(
            results(condition(acls, "if f c || !f !c")), (True, True, False)
        )

    def test_converter_on_boolean(self) -> None:
        """A converter reads a boolean as text ('1' or '0'), and is not run
        when there is no value."""
        compiled = condition(["c ssl_fc_has_crt,upper 1"], "if c")
        self.assertEqual(results(compiled), (False, False, True))
        found = condition(["c ssl_fc_has_crt,lower -m found"], "if c")
        self.assertEqual(results(found), (False, True, True))

    def test_undefined_acl(self) -> None:
        """Compiling a condition that names no ACL raises UndefinedAcl at the
        name, with a suggestion."""
        config, _ = parse_config(
            "frontend f\n acl has_crt always_true\n use_backend b if has_cert\n",
            "t.cfg",
            environ={},
        )
        front = config.frontends[0]
        cond = front.use_backends[0].condition
        assert cond is not None
        e = self.assertRaises(
            UndefinedAcl, compile_condition, cond, acls_by_name(front.acls)
        )
        self.assertEqual(str(e.location), "t.cfg:3")
        self.assertIn(
            "no ACL is named 'has_cert' in this section (did you mean 'has_crt'?)",
            e.message,
        )

    def test_compile_acl_errors(self) -> None:
        """compile_acl raises RuleError naming the fetch or converter."""
        for fetch, converters, message in [
            ("nofetch", (), "unknown fetch 'nofetch'"),
            (
                "always_tru",
                (),
                "unknown fetch 'always_tru'; did you mean 'always_true'?",
            ),
            ("always_true", (("uper", ()),), "unknown converter 'uper'; did you mean"),
            ("always_true", (("lower", ("x",)),), "'lower' takes no arguments"),
        ]:
            acl = AclDef("a", SampleExpression(fetch, (), converters))
            e = self.assertRaises(RuleError, compile_acl, acl)
            self.assertIn(message, e.message)
        for flag in ("-n", "-M", "-u"):
            acl = AclDef("a", SampleExpression("always_true"), (flag,))
            e = self.assertRaises(RuleError, compile_acl, acl)
            self.assertIn(
                f"ACL flag '{flag}' is not implemented by certlb yet", e.message
            )


class FetchTests(SynchronousTestCase):
    def fetch(self, name: str, context: RequestContext) -> object:
        return FETCHES[name].compile(())(context)

    def test_ssl_fc_has_crt(self) -> None:
        """ssl_fc_has_crt is None without TLS, else whether a certificate was
        presented."""
        values = [self.fetch("ssl_fc_has_crt", r) for r in (PLAIN, NO_CERT, CERT)]
        self.assertEqual(values, [None, False, True])

    def test_constants(self) -> None:
        """always_true and always_false are what they say, for any request."""
        for context in (PLAIN, CERT):
            self.assertIs(self.fetch("always_true", context), True)
            self.assertIs(self.fetch("always_false", context), False)

    def test_fetches_take_no_arguments(self) -> None:
        """Built-in fetches refuse arguments with a message naming them."""
        e = self.assertRaises(ValueError, FETCHES["ssl_fc_has_crt"].compile, ("x",))
        self.assertEqual(str(e), "'ssl_fc_has_crt' takes no arguments, but was given 1")

    def test_converters(self) -> None:
        """lower and upper change the case of text."""
        self.assertEqual(CONVERTERS["lower"].compile(())("WwW.Example"), "www.example")
        self.assertEqual(CONVERTERS["upper"].compile(())("WwW.Example"), "WWW.EXAMPLE")

    def test_connection_tls_read_once(self) -> None:
        """A connection's TLS state is read when first asked for, then kept."""
        calls: list[int] = []
        state = ClientCertState(has_crt=True)

        def source() -> ClientCertState:
            calls.append(1)
            return state

        connection = ConnectionInfo(("10.0.0.1", 1), ("10.0.0.2", 2), "ft", source)
        self.assertEqual(calls, [])
        self.assertIs(connection.tls, state)
        self.assertIs(connection.tls, state)
        self.assertEqual(calls, [1])

    def test_path_and_query(self) -> None:
        """A request's path is its target up to '?'; its query the rest, or
        None without '?'."""
        self.assertEqual((PLAIN.path, PLAIN.query), ("/a/b", "x=1"))
        bare = request(target="/a")
        self.assertEqual((bare.path, bare.query), ("/a", None))
        self.assertEqual(request(target="/a?").query, "")


class InterfaceTests(SynchronousTestCase):
    def test_fetches(self) -> None:
        """Every built-in fetch provides IFetch."""
        for fetch in BUILTIN_FETCHES:
            self.assertTrue(verifyObject(IFetch, fetch))

    def test_converters(self) -> None:
        """Every built-in converter provides IConverter."""
        for converter in BUILTIN_CONVERTERS:
            self.assertTrue(verifyObject(IConverter, converter))

    def test_condition(self) -> None:
        """A compiled condition provides ICondition."""
        self.assertTrue(verifyObject(ICondition, condition([], "if { always_true }")))

    def test_context(self) -> None:
        """RequestContext and ConnectionInfo provide their interfaces."""
        self.assertTrue(verifyObject(IRequestContext, CERT))
        self.assertTrue(verifyObject(IConnectionInfo, CERT.connection))
