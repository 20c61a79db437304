"""Request rules: parsing http-request, reqadd and redirect, and running them."""

from __future__ import annotations

import os
import textwrap

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from certlb.config import parse_config
from certlb.config.model import Deny, HeaderRule, Redirect, Return
from certlb.rules.actions import (
    AddHeader,
    DelHeader,
    DenyAction,
    LocalResponse,
    RedirectAction,
    ReturnAction,
    SetHeader,
    compile_rules,
)
from certlb.rules.context import ConnectionInfo, RequestContext
from certlb.rules.interfaces import IRequestAction
from certlb.tls.state import ClientCertState
from tests.proxy_harness import ProxyTestCase, head_and_body, header

ETC = os.path.join(os.path.dirname(__file__), "..", "etc")


def backend(*lines: str) -> tuple[object, list[str]]:
    """A backend 'b' with C{lines} (the first is line 3 of t.cfg)."""
    body = "".join(f"  {line}\n" for line in lines)
    text = "backend b\n  mode http\n" + body + "  server s 10.0.0.1:80\n"
    config, problems = parse_config(text, "t.cfg", {})
    return config.backends[0], [str(p) for p in problems]


def errors(problems: list[str]) -> list[str]:
    return [p for p in problems if ": error: " in p]


def request(
    path: str = "/",
    headers: list[tuple[str, str]] | None = None,
    verify: int | None = None,
) -> RequestContext:
    tls = None if verify is None else ClientCertState(True, True, verify=verify)
    connection = ConnectionInfo(
        ("192.0.2.7", 5000), ("192.0.2.1", 443), "f", lambda: tls
    )
    return RequestContext(
        "GET",
        path,
        "HTTP/1.1",
        headers if headers is not None else [("Host", "h")],
        connection,
    )


class ParseTests(SynchronousTestCase):
    def test_http_request_actions(self) -> None:
        """Each http-request action is read with its arguments and condition."""
        b, problems = backend(
            "http-request set-header X-Ssl-Error %[ssl_c_verify]",
            "http-request add-header X-A b if { always_true }",
            "http-request del-header X-B",
            "http-request deny deny_status 401 unless { always_true }",
            'http-request return status 404 content-type text/plain string "no"',
            "http-request redirect location /x code 301",
        )
        self.assertEqual(errors(problems), [])
        rules = b.http_request  # type: ignore[attr-defined]
        self.assertEqual(
            [type(r) for r in rules],
            [HeaderRule, HeaderRule, HeaderRule, Deny, Return, Redirect],
        )
        self.assertEqual(
            (rules[0].action, rules[0].name, rules[0].value),
            ("set-header", "X-Ssl-Error", "%[ssl_c_verify]"),
        )
        self.assertIsNotNone(rules[1].condition)
        self.assertEqual(rules[3].status, 401)
        self.assertTrue(rules[3].condition.unless)
        self.assertEqual(
            (rules[4].status, rules[4].content_type, rules[4].body),
            (404, "text/plain", "no"),
        )
        self.assertEqual(
            (rules[5].kind, rules[5].target, rules[5].code, rules[5].log_format),
            ("location", "/x", 301, True),
        )

    def test_redirect_options(self) -> None:
        """redirect reads its kind anywhere among the options, as HAProxy's
        own example 'redirect code 301 prefix / drop-query append-slash'."""
        b, problems = backend(
            "redirect code 301 prefix / drop-query append-slash if { always_true }",
            "redirect scheme https set-cookie SEEN=1",
            "redirect location / clear-cookie USERID=",
        )
        self.assertEqual(errors(problems), [])
        first, second, third = b.redirects  # type: ignore[attr-defined]
        self.assertEqual(
            (
                first.kind,
                first.target,
                first.code,
                first.drop_query,
                first.append_slash,
            ),
            ("prefix", "/", 301, True, True),
        )
        self.assertEqual(
            (second.kind, second.set_cookie, second.log_format),
            ("scheme", "SEEN=1", False),
        )
        self.assertEqual(third.clear_cookie, "USERID=")

    def test_reqadd(self) -> None:
        """reqadd reads the article's escaped header line, and warns with the
        modern form."""
        b, problems = backend("reqadd X-Ssl-Error:\\ 10 if { always_true }")
        (rule,) = b.reqadd  # type: ignore[attr-defined]
        self.assertEqual(
            (rule.action, rule.name, rule.value, rule.log_format),
            ("add-header", "X-Ssl-Error", "10", False),
        )
        self.assertEqual(
            problems,
            [
                "t.cfg:3: warning: 'reqadd' is HAProxy's legacy form (removed in "
                "HAProxy 2.1); certlb runs it, and the modern form is: "
                'http-request add-header X-Ssl-Error "10"'
            ],
        )

    def test_errors(self) -> None:
        """Malformed rules are errors that say what to write."""
        for line, message in {
            "reqadd NoColon": "'NoColon' is not a header line 'Name: value'",
            "reqadd X-A: 1": "escape the spaces of the header line",
            "redirect elsewhere /x": "unknown redirect option 'elsewhere'",
            "redirect location": "'redirect location' needs a target",
            "redirect code 301": "a redirect needs 'location URL', 'prefix PREFIX'",
            "redirect location /x code 399": "redirect code '399' is not one of",
            "redirect location /a prefix /b": "a redirect has one kind",
            "http-request set-header X-A": "takes a name and a value",
            "http-request set-header Bad:Name v": "'Bad:Name' is not a header name",
            "http-request del-header": "takes one header name",
            "http-request deny 404": "takes only 'deny_status STATUS'",
            "http-request deny deny_status 99": "deny_status must be a whole number",
            "http-request return string x": "with a body needs 'content-type TYPE'",
            "http-request return bogus": "unknown 'http-request return' option 'bogus'",
            "http-request tarpit": "'http-request tarpit' is an HAProxy action "
            "that certlb does not implement yet",
            "http-request set-hedaer X-A b": "unknown http-request action "
            "'set-hedaer'; did you mean 'set-header'?",
            "http-request set-header X-A %[nofetch]": "unknown fetch 'nofetch'",
        }.items():
            _, problems = backend(line)
            self.assertEqual(len(errors(problems)), 1, (line, problems))
            self.assertIn(message, errors(problems)[0], line)
            self.assertTrue(
                errors(problems)[0].startswith("t.cfg:3: error: "), problems
            )

    def test_sections(self) -> None:
        """The request rules belong in frontend, listen and backend sections."""
        _, problems = parse_config("defaults\n  redirect location /x\n", "t.cfg", {})
        self.assertIn(
            "'redirect' is not allowed in a defaults section", problems[0].message
        )


class ActionTests(SynchronousTestCase):
    def rules(self, *lines: str) -> object:
        b, problems = backend(*lines)
        self.assertEqual(errors(problems), [])
        return compile_rules(b)  # type: ignore[arg-type]

    def test_headers_in_order(self) -> None:
        """Header rules act in order; a later rule sees what an earlier one set."""
        rules = self.rules(
            "http-request set-header X-Ssl-Error %[ssl_c_verify]",
            "http-request add-header X-Copy %[hdr(x-ssl-error)]",
            "http-request del-header X-Remove",
        )
        context = request(
            headers=[("Host", "h"), ("X-Ssl-Error", "forged"), ("X-Remove", "1")],
            verify=10,
        )
        self.assertIsNone(rules.apply(context))  # type: ignore[attr-defined]
        self.assertEqual(
            context.headers, [("Host", "h"), ("X-Ssl-Error", "10"), ("X-Copy", "10")]
        )
        self.assertTrue(context.headers_changed)

    def test_header_value_cannot_inject_lines(self) -> None:
        """A value built from the request cannot add header lines."""
        rules = self.rules("http-request set-header X-Host %[hdr(host)]")
        context = request(headers=[("Host", "h\r\nX-Evil: 1")])
        rules.apply(context)  # type: ignore[attr-defined]
        value = dict(context.headers)["X-Host"]
        self.assertNotIn("\r", value)
        self.assertNotIn("\n", value)

    def test_deny_and_return(self) -> None:
        """deny answers 403 (or deny_status) with certlb's page; return answers
        with its status, type, body and headers; later rules do not run."""
        rules = self.rules(
            "http-request deny if { path /admin }", "http-request deny deny_status 401"
        )
        self.assertEqual(
            rules.apply(request("/admin")),  # type: ignore[attr-defined]
            LocalResponse(403, denied=True),
        )
        self.assertEqual(
            rules.apply(request("/")),  # type: ignore[attr-defined]
            LocalResponse(401, denied=True),
        )
        rules = self.rules(
            "http-request return status 503 content-type text/plain "
            'lf-string "error %[ssl_c_verify]" hdr X-A b',
            "http-request add-header X-Never 1",
        )
        context = request(verify=23)
        self.assertEqual(
            rules.apply(context),  # type: ignore[attr-defined]
            LocalResponse(
                503, ((b"Content-Type", b"text/plain"), (b"X-A", b"b")), b"error 23"
            ),
        )
        self.assertNotIn("X-Never", dict(context.headers))

    def test_redirect_location(self) -> None:
        """redirect location answers 302 with the target, no-cache, and the
        cookie to set."""
        rules = self.rules(
            "redirect location /certexpired.html set-cookie SEEN=1 "
            "if { ssl_c_verify 10 } ! { path /certexpired.html }"
        )
        self.assertEqual(
            rules.apply(request("/", verify=10)),  # type: ignore[attr-defined]
            LocalResponse(
                302,
                (
                    (b"Location", b"/certexpired.html"),
                    (b"Cache-Control", b"no-cache"),
                    (b"Set-Cookie", b"SEEN=1; path=/;"),
                ),
                b"",
            ),
        )
        self.assertIsNone(rules.apply(request("/certexpired.html", verify=10)))  # type: ignore[attr-defined]
        self.assertIsNone(rules.apply(request("/", verify=0)))  # type: ignore[attr-defined]

    def test_redirect_targets(self) -> None:
        """prefix, scheme, drop-query, append-slash and keep-query build the
        Location as HAProxy does."""

        def location(
            line: str, target: str, headers: list[tuple[str, str]] | None = None
        ) -> str:
            response = self.rules(line).apply(request(target, headers))  # type: ignore[attr-defined]
            return dict(response.headers)[b"Location"].decode()

        self.assertEqual(
            location("redirect prefix https://x.example", "/a?b=1"),
            "https://x.example/a?b=1",
        )
        self.assertEqual(
            location("redirect prefix https://x.example drop-query", "/a?b=1"),
            "https://x.example/a",
        )
        self.assertEqual(
            location("redirect prefix / drop-query append-slash", "/a?b=1"), "/a/"
        )
        self.assertEqual(
            location("redirect scheme https", "/a?b=1", [("Host", "h.example")]),
            "https://h.example/a?b=1",
        )
        self.assertEqual(
            location("redirect location /x keep-query", "/a?b=1"), "/x?b=1"
        )
        self.assertEqual(
            location("redirect location /x?y=2 keep-query", "/a?b=1"), "/x?y=2&b=1"
        )
        # A sample without a value is empty outside logs, as in HAProxy.
        self.assertEqual(
            location("http-request redirect location /e/%[ssl_c_verify]", "/"), "/e/"
        )

    def test_interfaces(self) -> None:
        """Every action provides IRequestAction."""
        for action in (
            AddHeader("X", lambda c: ""),
            SetHeader("X", lambda c: ""),
            DelHeader("X"),
            DenyAction(),
            ReturnAction(200, None, b""),
            RedirectAction("location", lambda c: "/"),
        ):
            self.assertTrue(verifyObject(IRequestAction, action))


class RuleCheckTests(SynchronousTestCase):
    def problems(self, text: str) -> list[str]:
        _, problems = parse_config(textwrap.dedent(text), "t.cfg", {})
        return [str(p) for p in problems]

    def test_phase4_loops(self) -> None:
        """The article's phase 4 is flagged: expired and revoked clients go
        back and forth, others loop on /othererrors.html itself."""
        with open(os.path.join(ETC, "phase4.cfg"), encoding="utf-8") as f:
            text = f.read()
        text = text.replace("ssl crt ./server.pem ca-file ./ca.crt verify optional", "")
        text = text.replace(" crt-ignore-err all crl-file ./ca_crl.pem", "")
        loops = [p for p in self.problems(text) if "redirect loop" in p]
        self.assertEqual(len(loops), 3, loops)
        self.assertIn(
            "t.cfg:19: warning: redirect loop: for a client whose certificate "
            "fails with error 10 (certificate has expired), the redirects at "
            "lines 19, 21 send it around /certexpired.html -> /othererrors.html "
            "-> /certexpired.html",
            loops,
        )
        self.assertIn(
            "t.cfg:20: warning: redirect loop: for a client whose certificate "
            "fails with error 23",
            loops[1],
        )
        self.assertIn("this rule redirects /othererrors.html to itself", loops[2])

    def test_phase5_has_no_loop(self) -> None:
        """Phase 5's redirects, written right, raise no loop warning."""
        with open(os.path.join(ETC, "phase5.cfg"), encoding="utf-8") as f:
            text = f.read()
        self.assertEqual([p for p in self.problems(text) if "loop" in p], [])

    def test_certificate_fetch_without_verify(self) -> None:
        """ssl_c_* fetches where no bind asks for a certificate are a warning,
        in the frontend and in a backend only such frontends reach."""
        problems = self.problems(
            """\
            frontend f
                mode http
                bind :80
                http-request set-header X-E %[ssl_c_verify]
                default_backend b
            backend b
                mode http
                http-request deny if { ssl_c_err 10 }
                server s 10.0.0.1:80
            """
        )
        self.assertEqual(
            [p for p in problems if "describes the client certificate" in p],
            [
                "t.cfg:4: warning: 'ssl_c_verify' describes the client certificate, "
                "but no bind of this frontend asks for a client certificate "
                "('verify none'): it will always say there is none",
                "t.cfg:8: warning: 'ssl_c_err' describes the client certificate, "
                "but no frontend that sends requests here asks for a client "
                "certificate ('verify none'): it will always say there is none",
            ],
        )


EXPIRED = ClientCertState(True, True, verify=10, crt_err=10)

RULES = """\
    frontend fe
        mode http
        bind 127.0.0.1:8443
        redirect prefix / if { path_beg /p }
        redirect scheme https if { path_beg /s }
        http-request deny if { path /admin }
        http-request deny unless { hdr(host) -i public.example }
        default_backend b
    backend b
        mode http
        http-request set-header X-Ssl-Error %[ssl_c_verify]
        http-request return status 204 if { path /nc }
        server s 10.0.0.1:80
"""


class RulesThroughProxyTests(ProxyTestCase):
    """Request rules as a client sees them, through certlb's own listener."""

    config_text = RULES

    def get(
        self,
        target: bytes,
        headers: bytes = b"Host: public.example\r\n",
        method: bytes = b"GET",
    ) -> bytes:
        client = self.connect_client(EXPIRED)
        client.send(method + b" " + target + b" HTTP/1.1\r\n" + headers + b"\r\n")
        return client.received()

    def test_rule_header_reaches_server(self) -> None:
        """The header a rule writes replaces the client's, and a client's
        'Connection: X-Ssl-Error' cannot drop it."""
        self.get(
            b"/x",
            b"Host: public.example\r\nX-Ssl-Error: 0\r\nX_Ssl_Error: 0\r\n"
            b"Connection: X-Ssl-Error\r\n",
        )
        sent = self.accept().received()
        self.assertEqual(header(sent, b"x-ssl-error"), [b"10"])
        self.assertEqual(header(sent, b"x_ssl_error"), [])

    def test_redirect_absolute_form(self) -> None:
        """prefix and scheme redirects use the path of an absolute-form target:
        a client cannot choose the host of the Location."""
        out = self.get(b"http://evil.example/p")
        self.assertEqual(header(out, b"location"), [b"/p"])
        out = self.get(b"http://public.example/s?a=1")
        self.assertEqual(header(out, b"location"), [b"https://public.example/s?a=1"])

    def test_fragment_refused(self) -> None:
        """A '#' in the target is refused with 400, so that no server serves a
        path the rules did not see."""
        out = self.get(b"/admin#x")
        self.assertStatus(out, 400)
        self.assertEqual(self.pending_connections(), [])

    def test_several_hosts_refused(self) -> None:
        """Two different Host headers, a Host with a comma or an '@', or no
        Host in HTTP/1.1, are refused with 400 (RFC 9112, 3.2)."""
        for headers in (
            b"Host: internal.example\r\nHost: public.example\r\n",
            b"Host: internal.example, public.example\r\n",
            b"Host: public.example@evil.example\r\n",
            b"",
        ):
            self.assertStatus(self.get(b"/x", headers), 400)
            self.assertEqual(self.pending_connections(), [], headers)

    def test_answer_to_head_has_no_body(self) -> None:
        """certlb's own answer to a HEAD request (here a deny) has no body."""
        out = self.get(b"/admin", method=b"HEAD")
        self.assertStatus(out, 403)
        self.assertEqual(head_and_body(out)[1], b"")

    def test_return_204_has_no_body(self) -> None:
        """A 204 answer has no body and no length."""
        out = self.get(b"/nc")
        self.assertStatus(out, 204)
        self.assertEqual(head_and_body(out)[1], b"")
        self.assertEqual(header(out, b"content-length"), [])


class RulesThroughResourceTests(RulesThroughProxyTests):
    """The same, through twisted.web's door."""

    door = "resource"


class ReturnFileTests(SynchronousTestCase):
    def config(self, data: bytes) -> tuple[object, list[str]]:
        folder = self.mktemp()
        os.makedirs(folder)
        with open(os.path.join(folder, "page.html"), "wb") as f:
            f.write(data)
        text = (
            "backend b\n  mode http\n"
            "  http-request return content-type text/html lf-file page.html\n"
            "  server s 10.0.0.1:80\n"
        )
        config, problems = parse_config(text, os.path.join(folder, "t.cfg"), {})
        return config, [str(p) for p in problems]

    def test_lf_file_body_kept(self) -> None:
        """An lf-file body keeps its line breaks, its items filled in."""
        config, _ = self.config(b"<p>\nerror %[ssl_c_verify]\n</p>\n")
        rules = compile_rules(config.backends[0])  # type: ignore[attr-defined]
        response = rules.apply(request(verify=10))
        self.assertEqual(response.body, b"<p>\nerror 10\n</p>\n")

    def test_lf_file_not_utf8(self) -> None:
        """An lf-file that is not UTF-8 is a configuration error naming it."""
        _, problems = self.config(b"caf\xe9\n")
        self.assertEqual(len(errors(problems)), 1, problems)
        self.assertIn("is not UTF-8 text", errors(problems)[0])


class LoopCheckTests(SynchronousTestCase):
    def test_no_loop_when_return_serves_target(self) -> None:
        """A redirect to a page that an earlier 'http-request return' serves
        is no loop."""
        _, problems = backend(
            "http-request return content-type text/html string x "
            "if { path /certexpired.html }",
            "redirect location /certexpired.html if { ssl_c_verify 10 }",
        )
        self.assertEqual([p for p in problems if "loop" in p], [])

    def test_no_loop_when_cookie_breaks_it(self) -> None:
        """HAProxy's set-cookie idiom is not taken for a loop."""
        _, problems = backend(
            "acl cookie_set hdr_sub(cookie) SEEN=1",
            "redirect location / set-cookie SEEN=1 if !cookie_set",
        )
        self.assertEqual([p for p in problems if "loop" in p], [])

    def test_self_loop(self) -> None:
        """A rule whose condition holds on its own target is reported."""
        _, problems = backend("redirect location /away unless { path /home }")
        self.assertEqual(
            len([p for p in problems if "redirects /away to itself" in p]), 1
        )

    def test_listen_acl_used_by_use_backend(self) -> None:
        """An ACL of a listen section used by its use_backend is used."""
        _, problems = parse_config(
            "listen l\n  mode http\n  bind :80\n  acl api path_beg /api\n"
            "  use_backend other if api\n  server s 10.0.0.1:80\n"
            "backend other\n  mode http\n  server s 10.0.0.2:80\n",
            "t.cfg",
            {},
        )
        self.assertEqual([str(p) for p in problems], [])

    def test_negations(self) -> None:
        """'!{ ... }', '!!acl' and 'OR' read as in HAProxy."""
        _, problems = backend(
            "acl a always_true",
            "http-request deny if !{ path /x } !!a OR a",
        )
        self.assertEqual(errors(problems), [])
