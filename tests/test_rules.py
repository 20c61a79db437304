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
    never_matches,
)
from certlb.rules.context import ConnectionInfo, RequestContext
from certlb.rules.fetches import (
    ACL_DERIVATIVES,
    BUILTIN_CONVERTERS,
    BUILTIN_FETCHES,
    CONVERTERS,
    CONVERTERS_LATER,
    FETCHES,
    FETCHES_LATER,
)
from certlb.rules.interfaces import (
    ICondition,
    IConnectionInfo,
    IConverter,
    IFetch,
    IRequestContext,
)
from certlb.rules.matching import METHODS, compile_matcher
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


def condition(acls: Sequence[str], text: str, bind: str = ":80") -> CompiledCondition:
    """Compile C{use_backend b TEXT} of a frontend with the C{acl} lines
    C{acls} (each without its 'acl' keyword), listening on C{bind}."""
    lines = "".join(f"  acl {acl}\n" for acl in acls)
    config, problems = parse_config(
        f"frontend f\n  mode http\n  bind {bind}\n{lines}  use_backend b {text}\n"
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
        """Every fetch of the registry provides IFetch, under its own name."""
        self.assertEqual(list(FETCHES.values()), list(BUILTIN_FETCHES))
        for name, fetch in FETCHES.items():
            self.assertTrue(verifyObject(IFetch, fetch), name)
            self.assertEqual(fetch.name, name)

    def test_converters(self) -> None:
        """Every converter of the registry provides IConverter, under its own
        name."""
        self.assertEqual(list(CONVERTERS.values()), list(BUILTIN_CONVERTERS))
        for name, converter in CONVERTERS.items():
            self.assertTrue(verifyObject(IConverter, converter), name)
            self.assertEqual(converter.name, name)

    def test_registries_do_not_overlap(self) -> None:
        """No name is at once implemented and listed as not implemented yet,
        and no ACL derivative hides a fetch."""
        self.assertEqual(set(FETCHES) & FETCHES_LATER, set())
        self.assertEqual(set(CONVERTERS) & CONVERTERS_LATER, set())
        self.assertEqual(set(ACL_DERIVATIVES) & set(FETCHES), set())
        for derivative in ACL_DERIVATIVES.values():
            self.assertIn(derivative.fetch, FETCHES)
            self.assertIn(derivative.method, METHODS)

    def test_condition(self) -> None:
        """A compiled condition provides ICondition."""
        self.assertTrue(verifyObject(ICondition, condition([], "if { always_true }")))

    def test_context(self) -> None:
        """RequestContext and ConnectionInfo provide their interfaces."""
        self.assertTrue(verifyObject(IRequestContext, CERT))
        self.assertTrue(verifyObject(IConnectionInfo, CERT.connection))


def verdicts(
    acls: Sequence[str], text: str, states: Sequence[ClientCertState | None]
) -> list[bool]:
    """Whether C{use_backend b TEXT} applies to a request on a connection in
    each of C{states} (None: plain HTTP)."""
    compiled = condition(acls, text)
    return [compiled.matches(request(state)) for state in states]


# The clients of the article, as certlb's verify callback records them.
VALID = ClientCertState(has_crt=True, used=True)
EXPIRED = ClientCertState(has_crt=True, used=True, verify=10, crt_err=10)
REVOKED = ClientCertState(has_crt=True, used=True, verify=23, crt_err=23)
UNTRUSTED = ClientCertState(has_crt=True, used=True, verify=20, crt_err=20)
NO_CRL = ClientCertState(
    has_crt=True, used=True, verify=3, crt_err=3, ca_err=3, ca_err_depth=1
)
ANONYMOUS = ClientCertState(has_crt=False, used=False)
ARTICLE = (VALID, EXPIRED, REVOKED, UNTRUSTED, NO_CRL, ANONYMOUS, None)


class ArticleConditionTests(SynchronousTestCase):
    """The conditions of the article's phases 3 to 5, on every kind of
    client: valid, expired, revoked, untrusted, CA without CRL, without a
    certificate, and plain HTTP."""

    def test_phase3_expired(self) -> None:
        """{ ssl_c_verify 10 } picks out the expired certificate only."""
        self.assertEqual(
            verdicts([], "if { ssl_c_verify 10 }", ARTICLE),
            [False, True, False, False, False, False, False],
        )

    def test_phase4_unless_ok(self) -> None:
        """unless { ssl_c_verify 0 } applies to every failed verification,
        and to plain HTTP, where ssl_c_verify has no value."""
        self.assertEqual(
            verdicts([], "unless { ssl_c_verify 0 }", ARTICLE),
            [False, True, True, True, True, False, True],
        )

    def test_phase4_not_equal(self) -> None:
        """{ ssl_c_verify ne 0 } is the same on TLS, but not on plain HTTP:
        there is no value to compare."""
        self.assertEqual(
            verdicts([], "if { ssl_c_verify ne 0 }", ARTICLE),
            [False, True, True, True, True, False, False],
        )

    def test_phase4_redirects(self) -> None:
        """Phase 4's redirects: the expired go to their page, except on it;
        'unless' inverts the whole condition, so the third redirect also
        applies on /othererrors.html itself: the article's redirect loop."""
        expired = condition([], "if { ssl_c_verify 10 } ! { path /certexpired.html }")
        other = condition([], "unless { ssl_c_verify 0 } ! { path /othererrors.html }")
        self.assertTrue(expired.matches(request(EXPIRED, "/")))
        self.assertFalse(expired.matches(request(EXPIRED, "/certexpired.html")))
        self.assertFalse(expired.matches(request(REVOKED, "/")))
        self.assertTrue(other.matches(request(UNTRUSTED, "/x?y")))
        self.assertTrue(other.matches(request(UNTRUSTED, "/othererrors.html?y")))
        self.assertFalse(other.matches(request(VALID, "/")))
        self.assertTrue(other.matches(request(VALID, "/othererrors.html")))

    def test_phase5_named_acls(self) -> None:
        """Phase 5's named ACLs: 'other' is neither expired nor revoked."""
        acls = ["cert_expired ssl_c_verify 10", "cert_revoked ssl_c_verify 23"]
        states = (VALID, EXPIRED, REVOKED, UNTRUSTED)
        self.assertEqual(
            verdicts(acls, "if cert_expired", states), [False, True, False, False]
        )
        self.assertEqual(
            verdicts(acls, "if cert_revoked", states), [False, False, True, False]
        )
        self.assertEqual(
            verdicts(acls, "if ! cert_expired ! cert_revoked", states),
            [True, False, False, True],
        )

    def test_verify_error_names(self) -> None:
        """x509_v_err_str lets a condition name the error instead of its
        number, as HAProxy's documentation suggests."""
        self.assertEqual(
            verdicts(
                [],
                "if { ssl_c_verify,x509_v_err_str -m str X509_V_ERR_CERT_REVOKED }",
                ARTICLE,
            ),
            [False, False, True, False, False, False, False],
        )

    def test_ca_errors(self) -> None:
        """ssl_c_ca_err and its depth tell a CA's error from the client's."""
        self.assertEqual(
            verdicts([], "if { ssl_c_ca_err 3 } { ssl_c_ca_err_depth 1 }", ARTICLE),
            [False, False, False, False, True, False, False],
        )
        self.assertEqual(
            verdicts([], "if { ssl_c_err 3 }", ARTICLE),
            [False, False, False, False, True, False, False],
        )

    def test_certificate_used(self) -> None:
        """{ ssl_c_used } matches a connection with a certificate."""
        self.assertEqual(
            verdicts([], "if { ssl_c_used }", ARTICLE),
            [True, True, True, True, True, False, False],
        )


def headers_request(*headers: tuple[str, str], target: str = "/") -> RequestContext:
    """A plain request with C{headers}."""
    connection = ConnectionInfo(("10.0.0.1", 1), ("127.0.0.1", 80), "ft")
    return RequestContext("GET", target, "HTTP/1.1", list(headers), connection)


def acl_matches(line: str, context: RequestContext) -> bool:
    """Whether the ACL C{line} (without 'acl NAME') matches C{context}."""
    return condition([f"a {line}"], "if a").matches(context)


class MultiValueTests(SynchronousTestCase):
    request = headers_request(
        ("X-Forwarded-For", "10.0.0.1, 192.168.0.1"),
        ("x-forwarded-for", "172.16.0.1"),
        ("Accept", "text/html, application/json"),
    )

    def test_every_value_is_tried(self) -> None:
        """An ACL on hdr matches when any value of any occurrence does."""
        for value in ("10.0.0.1", "192.168.0.1", "172.16.0.1"):
            self.assertTrue(acl_matches(f"hdr(x-forwarded-for) {value}", self.request))
        self.assertFalse(acl_matches("hdr(x-forwarded-for) 10.0.0.2", self.request))

    def test_occurrence_tries_one(self) -> None:
        """With an occurrence an ACL tries that value only."""
        self.assertTrue(acl_matches("hdr(x-forwarded-for,1) 10.0.0.1", self.request))
        self.assertFalse(acl_matches("hdr(x-forwarded-for,1) 172.16.0.1", self.request))
        self.assertTrue(acl_matches("hdr(x-forwarded-for,-1) 172.16.0.1", self.request))

    def test_converters_apply_to_each_value(self) -> None:
        """Converters run on each value before it is matched."""
        self.assertTrue(acl_matches("hdr(accept),upper APPLICATION/JSON", self.request))
        self.assertTrue(acl_matches("hdr(accept),hex -m beg 746578", self.request))

    def test_match_methods(self) -> None:
        """-m methods and -i apply to each value; found needs one value."""
        self.assertTrue(acl_matches("hdr(accept) -m beg -i APPLICATION/", self.request))
        self.assertTrue(acl_matches("hdr(accept) -m found", self.request))
        self.assertFalse(acl_matches("hdr(x-none) -m found", self.request))
        self.assertTrue(
            acl_matches("hdr(x-forwarded-for) -m ip 192.168.0.0/16", self.request)
        )

    def test_absent_header(self) -> None:
        """An absent header matches nothing; its negation matches."""
        self.assertFalse(acl_matches("hdr(x-none) -m sub a", self.request))
        compiled = condition(["a hdr(x-none) -m sub a"], "if !a")
        self.assertTrue(compiled.matches(self.request))

    def test_count(self) -> None:
        """hdr_cnt counts values, and is 0 for an absent header."""
        self.assertTrue(acl_matches("hdr_cnt(x-forwarded-for) 3", self.request))
        self.assertTrue(acl_matches("hdr_cnt(x-none) 0", self.request))
        self.assertTrue(acl_matches("hdr_cnt gt 4", self.request))


class DerivativeTests(SynchronousTestCase):
    def test_path_derivatives(self) -> None:
        """path_beg, path_end, path_sub, path_reg, path_dir, path_dom and
        path_len match the path with their method."""
        context = headers_request(target="/static/img/a.png?v=1")
        for line in [
            "path_beg /static/",
            "path_end .png",
            "path_sub img",
            r"path_reg ^/static/.*\.png$",
            "path_dir img",
            "path_dom png",
            "path_len 17",
        ]:
            self.assertTrue(acl_matches(line, context), line)
        for line in ["path_beg /img", "path_end .jpg", "path_dir im", "path_len 21"]:
            self.assertFalse(acl_matches(line, context), line)

    def test_url_derivatives(self) -> None:
        """url_* match the whole target, query included."""
        context = headers_request(target="/a/b.html?token=x")
        for line in [
            "url /a/b.html?token=x",
            "url_beg /a/",
            "url_end =x",
            "url_sub token",
            "url_reg token=.$",
            "url_dir b.html?token=x",
            "url_dom html?token=x",
            "url_len 17",
        ]:
            self.assertTrue(acl_matches(line, context), line)
        self.assertFalse(acl_matches("url /a/b.html", context))

    def test_hdr_derivatives(self) -> None:
        """hdr_* match every value of the header, with -i when asked."""
        context = headers_request(
            ("Host", "WWW.Example.com"), ("X-List", "alpha, beta/gamma")
        )
        for line in [
            "hdr_beg(host) -i www.",
            "hdr_end(host) .com",
            "hdr_sub(host) Example",
            "hdr_reg(host) ^WWW",
            "hdr_dom(host) -i example.com",
            "hdr_len(host) 15",
            "hdr_dir(x-list) gamma",
            "hdr_beg(x-list) beta",
            "hdr_len(x-list) 5",
        ]:
            self.assertTrue(acl_matches(line, context), line)
        self.assertFalse(acl_matches("hdr_beg(host) www.", context))
        self.assertFalse(acl_matches("hdr_beg(x-none) a", context))

    def test_hdr_with_occurrence(self) -> None:
        """A derivative passes its arguments to the fetch."""
        context = headers_request(("X-List", "alpha, beta"))
        self.assertTrue(acl_matches("hdr_beg(x-list,2) be", context))
        self.assertFalse(acl_matches("hdr_beg(x-list,1) be", context))

    def test_with_converter_is_an_error(self) -> None:
        """A derivative followed by a converter is an error naming the ACL
        and what to write."""
        acl = AclDef("api", SampleExpression("path_beg", (), (("lower", ()),)))
        e = self.assertRaises(RuleError, compile_acl, acl)
        self.assertEqual(
            e.message,
            "ACL 'api': 'path_beg' is an ACL derivative ('path' matched with -m "
            "beg) and must not be followed by a converter; write 'path,lower -m "
            "beg' instead",
        )

    def test_with_method_is_an_error(self) -> None:
        """A derivative given -m is an error naming the ACL and what to
        write."""
        acl = AclDef(None, SampleExpression("hdr_beg", ("host",)), ("-m", "sub"))
        e = self.assertRaises(RuleError, compile_acl, acl)
        self.assertEqual(
            e.message,
            "anonymous ACL: 'hdr_beg' is an ACL derivative ('hdr' matched with "
            "-m beg) and must not be used with -m; write 'hdr(host) -m sub' "
            "instead",
        )

    def test_in_a_configuration(self) -> None:
        """The checker reports a misused derivative at its line."""
        _, problems = parse_config(
            "frontend f\n  bind :80\n  use_backend b if { url_sub,lower x }\n"
            "  default_backend b\nbackend b\n  server s h:80\n",
            "t.cfg",
            environ={},
        )
        errors = [str(p) for p in problems if p.severity == "error"]
        self.assertEqual(len(errors), 1, errors)
        self.assertTrue(
            errors[0].startswith(
                "t.cfg:3: error: anonymous ACL: 'url_sub' is an ACL derivative"
            ),
            errors,
        )

    def test_suggested_in_acls(self) -> None:
        """A misspelt derivative in an ACL gets a suggestion."""
        e = self.assertRaises(
            RuleError, compile_acl, AclDef("a", SampleExpression("path_bgn"))
        )
        self.assertEqual(
            e.message, "unknown fetch 'path_bgn'; did you mean 'path_beg'?"
        )

    def test_without_pattern_never_matches(self) -> None:
        """A derivative without a pattern is reported as never matching."""
        self.assertTrue(never_matches(AclDef("a", SampleExpression("path_beg"))))
        self.assertFalse(
            never_matches(AclDef("a", SampleExpression("path_beg"), (), ("/",)))
        )
