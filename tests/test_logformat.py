"""Log-format strings: parsing, errors, and rendering for bodies, headers
and logs."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from certlb.config.errors import Location
from certlb.rules.acl import RuleError
from certlb.rules.context import RequestContext
from certlb.rules.logformat import LogFormat, compile_log_format, header_value
from certlb.tls.state import ClientCertState
from tests.test_fetches import EXPIRED, VALID, context

HERE = Location("t.cfg", 7)


def compiled(text: str) -> LogFormat:
    return compile_log_format(text, HERE)


def render(text: str, request: RequestContext) -> str:
    """C{text} rendered for C{request} as a body (no '-' for no value)."""
    return compiled(text).render(request)


class ParseTests(SynchronousTestCase):
    def test_constant(self) -> None:
        """A string without items is a constant, with '%%' read as '%'."""
        self.assertEqual(compiled("X-Ssl-Error: 10").constant, "X-Ssl-Error: 10")
        self.assertEqual(compiled("100%% sure").constant, "100% sure")
        self.assertEqual(compiled("").constant, "")
        self.assertIsNone(compiled("a%[src]").constant)
        self.assertIsNone(compiled("%ci").constant)

    def test_text_and_items(self) -> None:
        """Text around items is kept as written."""
        request = context(EXPIRED)
        self.assertEqual(
            render("verify=%[ssl_c_verify];err=%[ssl_c_err]%%", request),
            "verify=10;err=10%",
        )

    def test_expression_with_brackets_and_quotes(self) -> None:
        """A ']' inside parentheses or quotes does not end the expression."""
        request = context(headers=[("A]b", "x")])
        self.assertEqual(render("<%[hdr(a]b)]>", request), "<x>")
        self.assertEqual(render("<%[hdr('a]b')]>", request), "<x>")

    def test_keeps_its_source(self) -> None:
        """A compiled string keeps its text and location."""
        log_format = compiled("X-%[src]")
        self.assertEqual((log_format.text, log_format.location), ("X-%[src]", HERE))


class ErrorTests(SynchronousTestCase):
    def error(self, text: str) -> str:
        e = self.assertRaises(RuleError, compile_log_format, text, HERE)
        self.assertEqual(e.location, HERE)
        return e.message

    def test_unknown_fetch(self) -> None:
        """An unknown fetch names the string, the column of its item and a
        suggestion."""
        self.assertEqual(
            self.error("X-%[ssl_c_verfy]"),
            "in log-format 'X-%[ssl_c_verfy]' at column 3: unknown fetch "
            "'ssl_c_verfy'; did you mean 'ssl_c_verify'?",
        )

    def test_malformed(self) -> None:
        """Unclosed or empty brackets, a lone '%' and unclosed flags are
        errors at their item."""
        for text, message in [
            ("a%[src", "at column 2: '%[' has no closing ']'"),
            ("%[hdr(x]", "at column 1: '%[' has no closing ']'"),
            ("ab%[]", "at column 3: empty sample expression '%[]'; write a fetch"),
            ("%[ ]", "at column 1: empty sample expression"),
            ("50%", "at column 3: a lone '%' ends the string; write '%%' for a "),
            ("%{+Q[src]", "at column 1: '%{' opens flags that no '}' closes"),
            ("%{+Q}", "at column 1: '%' must be followed by an alias (as in %ci)"),
            ("% x", "at column 1: '%' must be followed by an alias"),
            ("%(n)[src]", "at column 1: named items such as %(name)[...]"),
        ]:
            self.assertIn(f"in log-format '{text}' {message}", self.error(text))

    def test_bad_expressions(self) -> None:
        """Unknown converters, bad arguments, derivatives and syntax errors in
        an expression are errors at its item."""
        for text, message in [
            ("%[src,lowr]", "unknown converter 'lowr'; did you mean 'lower'?"),
            ("%[src,add(x)]", "'add' needs an integer, as in add(1), not 'x'"),
            ("%[hdr(a,1,2)]", "'hdr' takes at most 2 arguments"),
            ("%[url_param]", "fetch 'url_param' is an HAProxy fetch that certlb"),
            ("%[src,json]", "converter 'json' is an HAProxy converter that"),
            ("%[src lower]", "in 'src lower': expected ',' before ' lower'"),
            ("%[hdr(a]", "'%[' has no closing ']'"),
        ]:
            self.assertIn(
                f"in log-format '{text}' at column 1: {message}", self.error(text)
            )

    def test_derivative_in_expression(self) -> None:
        """An ACL derivative in a sample expression says which fetch to use."""
        self.assertEqual(
            self.error("%[hdr_beg(host)]"),
            "in log-format '%[hdr_beg(host)]' at column 1: 'hdr_beg' is an ACL "
            "derivative ('hdr' matched with -m beg): it exists only in ACLs; in "
            "a sample expression write 'hdr(host)'",
        )

    def test_bad_flags(self) -> None:
        """Unknown flags, flags without a sign and HAProxy's encodings are
        errors."""
        for text, message in [
            ("%{+Z}[src]", "unknown flag 'Z'; the flags are Q (quote), X"),
            ("%{+q}[src]", "unknown flag 'q' (did you mean 'Q'?); the flags"),
            ("%{Q}[src]", "flag 'Q' needs a sign: '+Q' to set it, '-Q' to clear"),
            ("%{+Q,E}[src]", "flag 'E' needs a sign"),
            ("%{+json}o", "flag 'json' is an HAProxy flag that certlb does not"),
        ]:
            self.assertIn(
                f"in log-format '{text}' at column 1: {message}", self.error(text)
            )

    def test_aliases(self) -> None:
        """An unknown alias lists those certlb has; one of HAProxy's that
        certlb lacks says so, with the expression to write instead."""
        self.assertEqual(
            self.error("x %cii"),
            "in log-format 'x %cii' at column 3: unknown alias '%cii' (did you "
            "mean '%ci'?); the aliases are %ci, %cp, %fi, %fp, %f, %ft, %sslc, "
            "%sslv, %t, %tr, %Ts, %ms, %b, %s, %TR, %Tw, %Tc, %Tr, %Ta, %Tt, "
            "%ST, %B, %ts, %tsc, %ac, %fc, %bc, %sc, %rc, %sq, %bq, %r, %HM, "
            "%HU, %HP, %HPO, %HQ, %HV, %CC, %CS, %hr, %hs, and %[fetch] writes "
            "any fetch",
        )
        self.assertIn("alias '%Tq' is an HAProxy alias that", self.error("%Tq"))


class RenderTests(SynchronousTestCase):
    def test_missing_values(self) -> None:
        """A sample without a value is nothing in a body or a header, '-' in
        a log line; an empty value too."""
        log_format = compiled("v=%[ssl_c_verify];q=%[query]")
        plain = context(target="/a?")
        self.assertEqual(log_format.render(plain), "v=;q=")
        self.assertEqual(log_format.render_header(plain), "v=;q=")
        self.assertEqual(log_format.render_log(plain), "v=-;q=-")

    def test_mandatory_flag(self) -> None:
        """+M writes '-' for no value anywhere; -M writes nothing even in a
        log line."""
        plain = context()
        self.assertEqual(render("%{+M}[ssl_c_verify]", plain), "-")
        self.assertEqual(compiled("%{-M}[ssl_c_verify]").render_log(plain), "")

    def test_multi_valued_fetch_gives_last(self) -> None:
        """hdr in a log-format string gives the last value, or the one its
        occurrence names."""
        request = context(headers=[("XFF", "1.1.1.1, 2.2.2.2"), ("xff", "3.3.3.3")])
        self.assertEqual(
            render("%[hdr(xff)] %[hdr(xff,1)] %[hdr(xff,-2)]", request),
            "3.3.3.3 1.1.1.1 2.2.2.2",
        )

    def test_types_as_text(self) -> None:
        """Booleans are 1 or 0, integers decimal, addresses as written."""
        self.assertEqual(
            render("%[ssl_fc_has_crt] %[ssl_c_used] %[ssl_c_verify] %[src]",
                   context(EXPIRED)),
            "1 1 10 10.0.0.1",
        )  # fmt: skip
        self.assertEqual(render("%[always_false]", context()), "0")

    def test_quote(self) -> None:
        """+Q puts a value in double quotes, and writes "" for no value, in
        every rendering."""
        request = context(VALID)
        self.assertEqual(render("%{+Q}[ssl_fc_sni]", request), '"www.example.com"')
        missing = compiled("%{+Q}[ssl_fc_sni]")
        self.assertEqual(missing.render(context()), '""')
        self.assertEqual(missing.render_log(context()), '""')

    def test_escape(self) -> None:
        """+E puts a backslash before '"', '\\' and ']'."""
        request = context(headers=[("X", 'a"b\\c]d')])
        self.assertEqual(render("%{+E}[hdr(x)]", request), 'a\\"b\\\\c\\]d')
        self.assertEqual(render("%{+Q,+E}[hdr(x)]", request), '"a\\"b\\\\c\\]d"')
        self.assertEqual(render("%{+E,+Q}[hdr(x)]", request), '"a\\"b\\\\c\\]d"')

    def test_hexadecimal(self) -> None:
        """+X writes integers and addresses in upper-case hexadecimal, ports on
        four digits; text is unchanged."""
        request = context(EXPIRED, source=("10.0.0.1", 443))
        self.assertEqual(
            render("%{+X}[ssl_c_verify] %{+X}ci:%{+X}cp %{+X}[src] %{+X}[path]",
                   request),
            "A 0A000001:01BB 0A000001 /a/b",
        )  # fmt: skip
        self.assertEqual(render("%{+X}ci", context(source=("::1", 1))), "0" * 31 + "1")
        self.assertEqual(render("%{+X}[ssl_c_verify,sub(11)]", request), "F" * 16)

    def test_global_flags(self) -> None:
        """%o sets the flags of every item after it; an item's own flags
        change them for that item only."""
        request = context(VALID)
        self.assertEqual(
            render("%[ssl_fc_sni] %{+Q}o%[ssl_fc_sni] %{-Q}[ssl_fc_sni] %f",
                   request),
            'www.example.com "www.example.com" www.example.com "ft"',
        )  # fmt: skip

    def test_aliases(self) -> None:
        """%ci, %cp, %fi, %fp, %f, %ft, %sslc and %sslv give the connection's
        addresses, frontend and TLS parameters."""
        request = context(VALID, source=("192.0.2.1", 5000), destination=("::1", 443))
        self.assertEqual(
            render("%ci:%cp %fi:%fp %f %ft %sslv %sslc", request),
            "192.0.2.1:5000 ::1:443 ft ft~ TLSv1.3 TLS_AES_128_GCM_SHA256",
        )
        plain = compiled("%ft|%sslv|%sslc")
        self.assertEqual(plain.render(context()), "ft||")
        self.assertEqual(plain.render_log(context()), "ft|-|-")

    def test_ports_are_never_quoted(self) -> None:
        """Ports are written bare, even under +Q, as HAProxy writes them."""
        self.assertEqual(render("%{+Q}o%ci:%cp", context()), '"10.0.0.1":50000')

    def test_reads_the_request_when_rendered(self) -> None:
        """A compiled string reads each request anew, headers added by
        earlier rules included."""
        log_format = compiled("%[hdr(x-a)]/%[ssl_c_verify]")
        request = context(EXPIRED)
        self.assertEqual(log_format.render(request), "/10")
        request.headers.append(("X-A", "added"))
        self.assertEqual(log_format.render(request), "added/10")
        self.assertEqual(log_format.render(context(VALID)), "/0")


class HeaderValueTests(SynchronousTestCase):
    def test_forbidden_characters(self) -> None:
        """CR, LF, NUL, the other controls and DEL become %XX; tab, space,
        visible characters and Latin-1 letters stay."""
        self.assertEqual(header_value("a\r\nX-Evil: 1"), "a%0D%0AX-Evil: 1")
        self.assertEqual(header_value("\x00\x01\x1f\x7f"), "%00%01%1F%7F")
        self.assertEqual(header_value("a\tb c~é%"), "a\tb c~é%")

    def test_beyond_latin1(self) -> None:
        """A character beyond Latin-1 becomes its UTF-8 bytes as %XX, so that
        the value always encodes to Latin-1."""
        self.assertEqual(header_value("€"), "%E2%82%AC")
        header_value("x\u2028y").encode("latin-1")

    def test_rendered_for_a_header(self) -> None:
        """render_header escapes what a request brought, as HAProxy does for
        header values built from log-format strings."""
        request = context(ClientCertState(sni="a\rb"), headers=[("X-In", "1\x00\n2")])
        self.assertEqual(
            compiled("sni=%[ssl_fc_sni] in=%[hdr(x-in)]").render_header(request),
            "sni=a%0Db in=1%00%0A2",
        )
        self.assertEqual(compiled("%[hdr(x-in)]").render(request), "1\x00\n2")
