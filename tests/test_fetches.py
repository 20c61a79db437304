"""Sample fetches and converters, each alone, on requests built by hand."""

from __future__ import annotations

from collections.abc import Sequence

from twisted.trial.unittest import SynchronousTestCase

from certlb.config.conditions import parse_expression
from certlb.config.lexer import Word
from certlb.config.model import NOWHERE, AclDef, SampleExpression
from certlb.rules.acl import RuleError, compile_acl, compile_expression
from certlb.rules.context import ConnectionInfo, RequestContext
from certlb.rules.converters import CONVERTERS, cast
from certlb.rules.fetches import FETCHES, Fetch, TlsFetch
from certlb.rules.registry import BUILTIN, active
from certlb.tls.state import ClientCertState

VALID = ClientCertState(
    has_crt=True,
    used=True,
    protocol="TLSv1.3",
    cipher="TLS_AES_128_GCM_SHA256",
    sni="www.example.com",
)
EXPIRED = ClientCertState(has_crt=True, used=True, verify=10, crt_err=10)
UNKNOWN_CA = ClientCertState(
    has_crt=True, used=True, verify=3, crt_err=0, ca_err=3, ca_err_depth=1
)
NO_CERT = ClientCertState(protocol="TLSv1.2", cipher="ECDHE-RSA-AES128-GCM-SHA256")


def context(
    tls: ClientCertState | None = None,
    target: str = "/a/b?x=1",
    headers: Sequence[tuple[str, str]] = (("Host", "www.example.com"),),
    method: str = "GET",
    source: tuple[str, int] = ("10.0.0.1", 50000),
    destination: tuple[str, int] = ("127.0.0.1", 8443),
) -> RequestContext:
    """A request on a connection whose TLS state is C{tls} (None: plain)."""
    connection = ConnectionInfo(source, destination, "ft", lambda: tls)
    return RequestContext(method, target, "HTTP/1.1", list(headers), connection)


def fetch(name: str, request: RequestContext, *args: str) -> object:
    """The value of C{name(args)} for C{request}, as a sample expression
    gives it (one value, or None)."""
    sample, _ = compile_expression(SampleExpression(name, args))
    return sample(request)


def convert(name: str, value: object, *args: str, source: str = "str") -> object:
    """C{value} (of type C{source}) through converter C{name(args)}, cast as
    a sample expression casts it."""
    converter = CONVERTERS[name]
    function = converter.compile(args)
    before = cast(source, converter.input)
    if before is not None:
        value = before(value)
        if value is None:
            return None
    return function(value)


def acl(expression: str, *patterns: str, flags: Sequence[str] = ()) -> AclDef:
    """An ACL on C{expression} (written as in a configuration)."""
    return AclDef(
        "a", parse_expression(Word(expression, NOWHERE)), tuple(flags), patterns
    )


HEADERS = (
    ("Host", "www.example.com"),
    ("Accept", "text/html, application/json ,*/*"),
    ("X-Forwarded-For", "10.1.1.1, 10.2.2.2"),
    ("x-forwarded-for", "10.3.3.3"),
    ("X-Quoted", '"a, b", c'),
    ("X-Empty", ""),
)


class TlsFetchTests(SynchronousTestCase):
    def test_no_value_without_tls(self) -> None:
        """Every ssl_* fetch has no value on a plain connection."""
        for name in FETCHES:
            if name.startswith("ssl_"):
                self.assertIsNone(fetch(name, context()), name)

    def test_certificate_flags(self) -> None:
        """ssl_fc_has_crt and ssl_c_used are true with a certificate, false
        on TLS without one."""
        for name in ("ssl_fc_has_crt", "ssl_c_used"):
            self.assertIs(fetch(name, context(VALID)), True, name)
            self.assertIs(fetch(name, context(NO_CERT)), False, name)

    def test_resumed_session_used_without_new_certificate(self) -> None:
        """On a resumed session no certificate is presented, but one is
        used: ssl_fc_has_crt is false, ssl_c_used true."""
        resumed = context(ClientCertState(has_crt=False, used=True))
        self.assertEqual(
            (fetch("ssl_fc_has_crt", resumed), fetch("ssl_c_used", resumed)),
            (False, True),
        )

    def test_verify_results(self) -> None:
        """ssl_c_verify, ssl_c_err, ssl_c_ca_err and ssl_c_ca_err_depth give
        the connection's codes, 0 when all is well."""
        names = ("ssl_c_verify", "ssl_c_err", "ssl_c_ca_err", "ssl_c_ca_err_depth")
        for state, expected in [
            (VALID, [0, 0, 0, 0]),
            (NO_CERT, [0, 0, 0, 0]),
            (EXPIRED, [10, 10, 0, 0]),
            (UNKNOWN_CA, [3, 0, 3, 1]),
        ]:
            self.assertEqual([fetch(n, context(state)) for n in names], expected)

    def test_connection_strings(self) -> None:
        """ssl_fc_sni, ssl_fc_protocol and ssl_fc_cipher give the handshake's
        values; SNI has none when the client sent no name."""
        names = ("ssl_fc_sni", "ssl_fc_protocol", "ssl_fc_cipher")
        self.assertEqual(
            [fetch(n, context(VALID)) for n in names],
            ["www.example.com", "TLSv1.3", "TLS_AES_128_GCM_SHA256"],
        )
        self.assertEqual(
            [fetch(n, context(NO_CERT)) for n in names],
            [None, "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"],
        )

    def test_output_types(self) -> None:
        """The TLS fetches declare the types HAProxy gives them (those of
        certificate fields: see test_cert_fetches)."""
        self.assertEqual(
            {n: f.output for n, f in FETCHES.items() if isinstance(f, TlsFetch)},
            {
                "ssl_fc_has_crt": "bool",
                "ssl_c_used": "bool",
                "ssl_c_verify": "int",
                "ssl_c_err": "int",
                "ssl_c_ca_err": "int",
                "ssl_c_ca_err_depth": "int",
                "ssl_fc_sni": "str",
                "ssl_fc_protocol": "str",
                "ssl_fc_cipher": "str",
                "ssl_fc_is_resumed": "bool",
            },
        )

    def test_no_arguments(self) -> None:
        """The TLS fetches refuse arguments when compiled."""
        e = self.assertRaises(ValueError, FETCHES["ssl_c_verify"].compile, ("0",))
        self.assertEqual(str(e), "'ssl_c_verify' takes no arguments, but was given 1")


class RequestFetchTests(SynchronousTestCase):
    def test_method_url_path_query(self) -> None:
        """method, url, path and query read the request line."""
        request = context(target="/a/b?x=1&y=2", method="POST")
        self.assertEqual(
            [fetch(n, request) for n in ("method", "url", "path", "query")],
            ["POST", "/a/b?x=1&y=2", "/a/b", "x=1&y=2"],
        )

    def test_query_absent_or_empty(self) -> None:
        """query has no value without '?', and is empty after a bare '?'."""
        self.assertIsNone(fetch("query", context(target="/a")))
        self.assertEqual(fetch("query", context(target="/a?")), "")

    def test_path_of_absolute_form(self) -> None:
        """path skips the scheme and authority of an absolute URI, and has no
        value for '*' or an authority alone, as HAProxy's."""
        for target, path in [
            ("http://www.example.com/a/b?x=1", "/a/b"),
            ("https://h:8443/", "/"),
            ("http://www.example.com", None),
            ("*", None),
            ("www.example.com:443", None),
        ]:
            self.assertEqual(fetch("path", context(target=target)), path, target)
        self.assertEqual(fetch("url", context(target="http://h/a?q")), "http://h/a?q")


class AddressFetchTests(SynchronousTestCase):
    def test_addresses_and_ports(self) -> None:
        """src, src_port, dst and dst_port give the connection's two ends."""
        request = context(source=("192.0.2.7", 41000), destination=("::1", 443))
        self.assertEqual(
            [fetch(n, request) for n in ("src", "src_port", "dst", "dst_port")],
            ["192.0.2.7", 41000, "::1", 443],
        )

    def test_src_matches_networks(self) -> None:
        """src is matched as an address by default, as in 'src 10.0.0.0/8'."""
        test = compile_acl(acl("src", "10.0.0.0/8", "2001:db8::/32"))
        self.assertTrue(test(context(source=("10.9.8.7", 1))))
        self.assertTrue(test(context(source=("2001:db8::1", 1))))
        self.assertFalse(test(context(source=("192.0.2.1", 1))))

    def test_ports_are_integers(self) -> None:
        """dst_port is matched as an integer, ranges included."""
        test = compile_acl(acl("dst_port", "8000:8999"))
        self.assertTrue(test(context(destination=("127.0.0.1", 8443))))
        self.assertFalse(test(context(destination=("127.0.0.1", 443))))


class HeaderFetchTests(SynchronousTestCase):
    request = context(headers=HEADERS)

    def test_last_value_in_a_sample(self) -> None:
        """In a sample expression hdr gives the last comma-separated value of
        the last header of that name, in any case."""
        self.assertEqual(fetch("hdr", self.request, "x-forwarded-for"), "10.3.3.3")
        self.assertEqual(fetch("hdr", self.request, "ACCEPT"), "*/*")
        self.assertEqual(fetch("hdr", self.request, "host"), "www.example.com")

    def test_occurrences(self) -> None:
        """hdr(name,occ) gives one value: 1 is the first, 2 the second, -1 the
        last, -2 the one before; none beyond the count."""
        for occ, value in [
            ("1", "10.1.1.1"),
            ("2", "10.2.2.2"),
            ("3", "10.3.3.3"),
            ("4", None),
            ("-1", "10.3.3.3"),
            ("-3", "10.1.1.1"),
            ("-4", None),
            ("0", "10.3.3.3"),
        ]:
            self.assertEqual(
                fetch("hdr", self.request, "X-Forwarded-For", occ), value, occ
            )

    def test_spaces_and_quotes(self) -> None:
        """Values lose the spaces around them; a comma inside double quotes
        does not split."""
        self.assertEqual(
            [fetch("hdr", self.request, "accept", str(i)) for i in (1, 2, 3)],
            ["text/html", "application/json", "*/*"],
        )
        self.assertEqual(fetch("hdr", self.request, "x-quoted", "1"), '"a, b"')
        self.assertEqual(fetch("hdr", self.request, "x-quoted"), "c")

    def test_absent_and_empty(self) -> None:
        """An absent header has no value; an empty one has an empty value."""
        self.assertIsNone(fetch("hdr", self.request, "x-none"))
        self.assertEqual(fetch("hdr", self.request, "x-empty"), "")
        self.assertEqual(fetch("hdr_cnt", self.request, "x-none"), 0)
        self.assertEqual(fetch("hdr_cnt", self.request, "x-empty"), 1)

    def test_without_name(self) -> None:
        """Without a name hdr reads every header: the last value of the last
        one, the first of the first with occurrence 1."""
        self.assertEqual(fetch("hdr", self.request), "")
        self.assertEqual(fetch("hdr", self.request, "", "1"), "www.example.com")

    def test_count(self) -> None:
        """hdr_cnt counts the comma-separated values of every header of a
        name, or of all headers without one."""
        self.assertEqual(fetch("hdr_cnt", self.request, "X-FORWARDED-FOR"), 3)
        self.assertEqual(fetch("hdr_cnt", self.request, "accept"), 3)
        self.assertEqual(fetch("hdr_cnt", self.request), 1 + 3 + 2 + 1 + 2 + 1)

    def test_req_aliases(self) -> None:
        """req.hdr and req.hdr_cnt are hdr and hdr_cnt."""
        self.assertEqual(
            fetch("req.hdr", self.request, "accept", "2"), "application/json"
        )
        self.assertEqual(fetch("req.hdr_cnt", self.request, "accept"), 3)

    def test_sees_headers_added_later(self) -> None:
        """A compiled hdr reads the headers when it runs: one added by an
        earlier rule is seen, one removed is not."""
        request = context(headers=[("Host", "a")])
        sample, _ = compile_expression(SampleExpression("hdr", ("x-ssl",)))
        count, _ = compile_expression(SampleExpression("hdr_cnt", ("x-ssl",)))
        self.assertEqual((sample(request), count(request)), (None, 0))
        request.headers.append(("X-SSL", "ok"))
        self.assertEqual((sample(request), count(request)), ("ok", 1))
        request.headers[:] = [("Host", "a")]
        self.assertEqual((sample(request), count(request)), (None, 0))

    def test_argument_errors(self) -> None:
        """Too many arguments, or an occurrence that is no number, are errors
        when the fetch is compiled."""
        hdr, count = FETCHES["hdr"], FETCHES["hdr_cnt"]
        e = self.assertRaises(ValueError, hdr.compile, ("a", "1", "2"))
        self.assertEqual(
            str(e),
            "'hdr' takes at most 2 arguments, a header name and an occurrence, "
            "as in hdr(host,1), but was given 3",
        )
        for occ in ("last", "", "1.5"):
            e = self.assertRaises(ValueError, hdr.compile, ("a", occ))
            self.assertEqual(
                str(e),
                f"'hdr' occurrence {occ!r} is not a number; write 1 for the first "
                "value, 2 for the second, -1 for the last",
            )
        e = self.assertRaises(ValueError, count.compile, ("a", "1"))
        self.assertEqual(
            str(e),
            "'hdr_cnt' takes at most 1 argument, a header name, as in "
            "hdr_cnt(host), but was given 2",
        )

    def test_errors_in_a_configuration(self) -> None:
        """Argument errors reach the configuration as RuleError."""
        e = self.assertRaises(
            RuleError, compile_expression, SampleExpression("hdr", ("a", "x"))
        )
        self.assertIn("'hdr' occurrence 'x' is not a number", e.message)


ORIGINAL = ("lower", "upper", "hex", "base64", "x509_v_err_str", "add", "sub")


class ConverterTests(SynchronousTestCase):
    def test_case(self) -> None:
        """lower and upper change the case of text, and of a number's text."""
        self.assertEqual(convert("lower", "WwW.Example"), "www.example")
        self.assertEqual(convert("upper", "WwW.Example"), "WWW.EXAMPLE")
        self.assertEqual(convert("upper", True, source="bool"), "1")

    def test_hex(self) -> None:
        """hex writes the bytes of its input in upper-case hexadecimal: the
        text, the 8 big-endian bytes of an integer, the bytes of an address."""
        self.assertEqual(convert("hex", "Az\xff"), "417AFF")
        self.assertEqual(convert("hex", ""), "")
        self.assertEqual(convert("hex", 10, source="int"), "000000000000000A")
        self.assertEqual(convert("hex", -1, source="int"), "FFFFFFFFFFFFFFFF")
        self.assertEqual(convert("hex", "10.0.0.1", source="ip"), "0A000001")
        self.assertEqual(convert("hex", "::1", source="ip"), "0" * 31 + "1")

    def test_base64(self) -> None:
        """base64 encodes its input's bytes, with padding."""
        self.assertEqual(convert("base64", "certlb"), "Y2VydGxi")
        self.assertEqual(convert("base64", "ab"), "YWI=")
        self.assertEqual(convert("base64", 1, source="int"), "AAAAAAAAAAE=")

    def test_x509_v_err_str(self) -> None:
        """x509_v_err_str names a verification code; an unknown code stays a
        number, as text."""
        for code, name in [
            (0, "X509_V_OK"),
            (10, "X509_V_ERR_CERT_HAS_EXPIRED"),
            (23, "X509_V_ERR_CERT_REVOKED"),
            (3, "X509_V_ERR_UNABLE_TO_GET_CRL"),
            (999, "999"),
        ]:
            self.assertEqual(convert("x509_v_err_str", code, source="int"), name)
        self.assertEqual(convert("x509_v_err_str", "10"), "X509_V_ERR_CERT_HAS_EXPIRED")

    def test_add_and_sub(self) -> None:
        """add and sub do integer arithmetic with their argument, which may
        be negative; results saturate at 64 bits."""
        self.assertEqual(convert("add", 10, "5", source="int"), 15)
        self.assertEqual(convert("sub", 10, "5", source="int"), 5)
        self.assertEqual(convert("sub", 10, "-5", source="int"), 15)
        self.assertEqual(convert("add", 10, "+2", source="int"), 12)
        self.assertEqual(convert("add", 2**63 - 1, "1", source="int"), 2**63 - 1)
        self.assertEqual(convert("sub", -(2**63), "1", source="int"), -(2**63))

    def test_arithmetic_casts(self) -> None:
        """add reads text that writes a number, a boolean as 0 or 1, and an
        IPv4 address as its integer; other text has no value."""
        self.assertEqual(convert("add", "41", "1"), 42)
        self.assertEqual(convert("add", "-3", "1"), -2)
        self.assertEqual(convert("add", True, "1", source="bool"), 2)
        self.assertEqual(convert("add", "0.0.1.0", "1", source="ip"), 257)
        for text in ("", "abc", "12abc", " 1", "1.5"):
            self.assertIsNone(convert("add", text, "1"), text)
        self.assertIsNone(convert("add", "2001:db8::1", "1", source="ip"))

    def test_arithmetic_arguments(self) -> None:
        """add and sub need one integer argument, checked when compiled."""
        for args in ((), ("1", "2")):
            e = self.assertRaises(ValueError, CONVERTERS["add"].compile, args)
            self.assertEqual(
                str(e),
                "'add' takes one integer argument, as in add(1), but was given "
                f"{len(args)}",
            )
        for bad in ("x", "1.5", "", "0x10", "txn.n"):
            e = self.assertRaises(ValueError, CONVERTERS["sub"].compile, (bad,))
            self.assertEqual(
                str(e),
                f"'sub' needs an integer, as in sub(1), not {bad!r} (certlb does "
                "not support variables here yet)",
            )

    def test_no_arguments(self) -> None:
        """hex, base64, x509_v_err_str, lower and upper take no argument."""
        for name in ("hex", "base64", "x509_v_err_str", "lower", "upper"):
            e = self.assertRaises(ValueError, CONVERTERS[name].compile, ("1",))
            self.assertEqual(str(e), f"'{name}' takes no arguments, but was given 1")

    def test_types(self) -> None:
        """Each converter declares the types HAProxy gives it (the later ones
        are checked in test_converters_more)."""
        self.assertEqual(
            {n: (c.input, c.output) for n, c in CONVERTERS.items() if n in ORIGINAL},
            {
                "lower": ("str", "str"),
                "upper": ("str", "str"),
                "hex": ("bin", "str"),
                "base64": ("bin", "str"),
                "x509_v_err_str": ("int", "str"),
                "add": ("int", "int"),
                "sub": ("int", "int"),
            },
        )


class ExpressionTests(SynchronousTestCase):
    def sample(self, text: str, request: RequestContext) -> object:
        function, _ = compile_expression(parse_expression(Word(text, NOWHERE)))
        return function(request)

    def test_chains(self) -> None:
        """Converters run in turn on the fetch's value, each cast as needed."""
        expired = context(EXPIRED, headers=[("X-N", "41")])
        self.assertEqual(
            self.sample("ssl_c_verify,x509_v_err_str", expired),
            "X509_V_ERR_CERT_HAS_EXPIRED",
        )
        self.assertEqual(self.sample("ssl_c_verify,add(13)", expired), 23)
        self.assertEqual(self.sample("hdr(x-n),add(1),sub(2)", expired), 40)
        self.assertEqual(self.sample("ssl_c_verify,hex,lower", expired), "0" * 15 + "a")
        self.assertEqual(self.sample("hdr(x-n),add(1),hex", expired), "0" * 14 + "2A")

    def test_no_value_goes_through(self) -> None:
        """A converter given no value gives no value, and so does the chain
        after a value that cannot be cast."""
        self.assertIsNone(self.sample("ssl_c_verify,x509_v_err_str", context()))
        self.assertIsNone(self.sample("hdr(x-none),hex", context()))
        bad = context(headers=[("X-N", "many")])
        self.assertIsNone(self.sample("hdr(x-n),add(1),hex", bad))

    def test_impossible_cast(self) -> None:
        """A converter that cannot take the type before it is an error when
        the expression is compiled."""
        fetch = Fetch("test_bin", "bin", lambda c: b"\x01")
        with active(BUILTIN.including("fetch", fetch)):
            e = self.assertRaises(
                RuleError,
                compile_expression,
                SampleExpression("test_bin", (), (("add", ("1",)),)),
            )
            sample, output = compile_expression(
                SampleExpression("test_bin", (), (("lower", ()),))
            )
        self.assertEqual(
            e.message,
            "converter 'add' takes int values, but 'test_bin' gives bin values, "
            "which cannot be cast to int",
        )
        self.assertEqual((sample(context()), output), ("\x01", "str"))

    def test_casts(self) -> None:
        """cast follows HAProxy's table: binary is text up to its first NUL;
        binary never becomes a number; an address is no boolean."""
        to_text = cast("bin", "str")
        assert to_text is not None
        self.assertEqual(to_text(b"ab\0cd"), "ab")
        self.assertIsNone(cast("str", "str"))
        self.assertIsNone(cast("str", "plugin-type"))
        for source, target in [("bin", "int"), ("ip", "bool"), ("bool", "ip")]:
            e = self.assertRaises(ValueError, cast, source, target)
            self.assertEqual(
                str(e), f"a value of type {source} cannot be cast to {target}"
            )
        int_to_ip = cast("int", "ip")
        assert int_to_ip is not None
        self.assertEqual(int_to_ip(0x0A000001), "10.0.0.1")
