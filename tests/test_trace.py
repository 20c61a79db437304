"""Rule traces: 'certlb check --explain' and 'twistd certlb --debug-rules' say
which rules matched a request and why it went where it went."""

from __future__ import annotations

import io
import os
import shutil
import sys
import textwrap

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from certlb import cli, tap
from certlb.config import parse_config
from certlb.config.errors import ERROR
from certlb.config.model import Config
from certlb.proxy.runtime import build_runtime
from certlb.rules.interfaces import IRequestAction
from certlb.rules.registry import BUILTIN, active
from certlb.rules.trace import CERT_KINDS, Described, enable_tracing, explain
from tests.helpers import pki_dir, pki_files, write_config
from tests.proxy_harness import WITH_CERT, ProxyTestCase
from tests.test_async_actions import AskType

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _phase3() -> str:
    """etc/phase3.cfg, copied next to the test PKI's files (those of etc/
    are made by 'certlb pki etc/', and are not in a fresh checkout)."""
    path = os.path.join(pki_dir(), "phase3.cfg")
    shutil.copyfile(os.path.join(ROOT, "etc", "phase3.cfg"), path)
    return path


PHASE3 = _phase3()

# A frontend that refuses invalid certificates, tags the others, and routes
# the /api of valid ones apart.
GUARD = """\
    frontend fe
        mode http
        bind 127.0.0.1:8443 ssl crt ./server.pem ca-file ./ca.crt \
            verify optional crt-ignore-err 10
        acl cert_ok ssl_c_verify 0
        acl api path_beg /api
        http-request deny if { ssl_fc_has_crt } !cert_ok
        http-request set-header X-Ssl-Verify %[ssl_c_verify]
        http-request deny deny_status 429 if { req.hdr(x-ssl-verify) 99 }
        use_backend api if api cert_ok
        default_backend web
    backend api
        mode http
        server a1 10.0.0.1:80
        server a2 10.0.0.2:80 backup
    backend web
        mode http
        server w1 10.0.0.3:80 disabled
        server w2 10.0.0.4:80
"""


def _name() -> str:
    """The configuration's file name, next to the test PKI's files (so that
    ./server.pem and ./ca.crt resolve), as traces name it."""
    return os.path.join(pki_dir(), "t.cfg")


def _config(text: str) -> Config:
    config, problems = parse_config(textwrap.dedent(text), _name(), {})
    errors = [p for p in problems if p.severity == ERROR]
    assert not errors, errors
    return config


def _explain(text: str, frontend: str = "fe", **request: object) -> list[str]:
    config = _config(text)
    runtime = build_runtime(config)[frontend]
    spec = next(f for f in config.frontends if f.name == frontend)
    return explain(config, spec, runtime, Described(**request))  # type: ignore[arg-type]


class ExplainTests(SynchronousTestCase):
    """L{explain}: a described request through a compiled frontend."""

    def setUp(self) -> None:
        self.t = _name()

    def test_expired_denied(self) -> None:
        """An expired certificate: the deny rule answers 403, and the trace
        names the ACL that was false and the value it saw."""
        lines = _explain(GUARD, cert="expired")
        self.assertIn(f"{self.t}:6 http-request deny (status 403): runs", lines)
        self.assertIn(
            f"    ! acl cert_ok ({self.t}:4) ssl_c_verify 0: false (ssl_c_verify is "
            "10), negated: true",
            lines,
        )
        self.assertIn(
            f"    {{ ssl_fc_has_crt }} ({self.t}:6): true (ssl_fc_has_crt is true)",
            lines,
        )
        self.assertEqual(
            lines[-1],
            f"result: denied 403 by {self.t}:6 http-request deny (status 403); no "
            "server is contacted",
        )

    def test_valid_routed(self) -> None:
        """A valid certificate on /api/x: the header rule runs (and later
        rules see its header), use_backend api is chosen, and the balancer
        picks the active server, not the backup."""
        lines = _explain(GUARD, cert="valid", target="/api/x")
        self.assertIn(
            f"{self.t}:6 http-request deny (status 403): condition false, skipped",
            lines,
        )
        self.assertIn(
            f"{self.t}:7 http-request set-header X-Ssl-Verify: adds header "
            "X-Ssl-Verify: 0",
            lines,
        )
        self.assertIn(
            f"    {{ req.hdr(x-ssl-verify) 99 }} ({self.t}:8): false "
            "(req.hdr(x-ssl-verify) is '0')",
            lines,
        )
        self.assertIn(f"{self.t}:9 use_backend api: condition true, chosen", lines)
        self.assertIn(
            f"    acl api ({self.t}:5) path_beg /api: true (path is '/api/x')", lines
        )
        self.assertIn("server api/a1 (10.0.0.1:80): eligible", lines)
        self.assertIn(
            "server api/a2 (10.0.0.2:80): backup, not used while an active "
            "server is up",
            lines,
        )
        self.assertEqual(
            lines[-1],
            "result: backend api, server a1 (10.0.0.1:80), picked by "
            "balance roundrobin",
        )

    def test_no_certificate_default_backend(self) -> None:
        """No certificate on /: no rule matches, default_backend is chosen,
        and the disabled server is not eligible."""
        lines = _explain(GUARD, cert="none")
        self.assertIn(f"{self.t}:9 use_backend api: condition false, skipped", lines)
        self.assertIn(
            f"    acl api ({self.t}:5) path_beg /api: false (path is '/')", lines
        )
        self.assertIn("default_backend web: chosen (no use_backend matched)", lines)
        self.assertIn("server web/w1 (10.0.0.3:80): disabled", lines)
        self.assertEqual(
            lines[-1],
            "result: backend web, server w2 (10.0.0.4:80), picked by balance "
            "roundrobin",
        )

    def test_no_certificate_verify_zero(self) -> None:
        """No certificate on /api/x goes to backend api, and the trace shows
        why: ssl_c_verify is 0 without a certificate, as in HAProxy."""
        lines = _explain(GUARD, cert="none", target="/api/x")
        self.assertIn(f"{self.t}:9 use_backend api: condition true, chosen", lines)
        self.assertIn(
            f"    acl cert_ok ({self.t}:4) ssl_c_verify 0: true (ssl_c_verify is 0)",
            lines,
        )

    def test_phase3_expired_redirected(self) -> None:
        """The article's phase 3: an expired certificate goes to backend static,
        whose redirect answers 302 to the help page."""
        with open(PHASE3, encoding="utf-8") as f:
            config = _config(f.read())
        runtime = build_runtime(config)["ssltests"]
        lines = explain(config, config.frontends[0], runtime, Described(cert="expired"))
        self.assertIn(f"{self.t}:9 use_backend static: condition true, chosen", lines)
        self.assertIn(f"backend static ({self.t}:13)", lines)
        self.assertIn(
            f"{self.t}:16 redirect location /certexpired.html: to /certexpired.html",
            lines,
        )
        self.assertEqual(
            lines[-1],
            f"result: answered 302 by {self.t}:16 redirect location /certexpired.html; "
            "no server is contacted",
        )

    def test_handshake_note(self) -> None:
        """A revoked certificate that no bind lets through: a note says the
        handshake fails before any rule."""
        lines = _explain(GUARD, cert="revoked")
        self.assertIn("note: no bind lets error 23 through", lines[1])

    def test_forged_header_removed(self) -> None:
        """A header of the described request that rules set from the
        certificate is removed first, as certlb does, and the trace says so."""
        lines = _explain(GUARD, cert="valid", headers=(("X-Ssl-Verify", "99"),))
        self.assertIn(
            "header x-ssl-verify removed: no client may send it (certlb sets it)",
            lines,
        )
        self.assertNotIn(f"{self.t}:8 http-request deny (status 429): runs", lines)

    def test_plugin_action_not_run(self) -> None:
        """A plugin's action is not run: the trace says so, and the rules
        after it are played."""
        ask = AskType()
        text = """\
            frontend fe
                mode http
                bind 127.0.0.1:8443
                http-request ask 3
                http-request deny if { hdr(x-asked) yes }
                default_backend bk
            backend bk
                mode http
                server a 10.0.0.1:80
        """
        with active(BUILTIN.including("action", ask, "tests")):
            lines = _explain(text)
        self.assertEqual(ask.built[-1].asked, [])
        self.assertIn(
            f"{self.t}:4 http-request ask 3: not run in --explain (asks another "
            "service); the rules after it are played as if it let the request go on",
            lines,
        )
        self.assertIn("result: backend bk", lines[-1])

    def test_unless_and_alternatives(self) -> None:
        """An 'unless' condition of two alternatives: each alternative's ACLs
        are shown, then why the rule applies."""
        lines = _explain(
            """\
            frontend fe
                mode http
                bind 127.0.0.1:8080
                use_backend a unless { path /x } || { path /y }
                default_backend b
            backend a
                mode http
                server a 10.0.0.1:80
            backend b
                mode http
                server b 10.0.0.2:80
            """
        )
        self.assertEqual(
            lines[1:8],
            [
                f"{self.t}:4 use_backend a: condition true, chosen",
                "    alternative 1 (or):",
                f"        {{ path /x }} ({self.t}:4): false (path is '/')",
                "    alternative 2 (or):",
                f"        {{ path /y }} ({self.t}:4): false (path is '/')",
                "    unless: the condition is false, so the rule applies",
                f"backend a ({self.t}:6)",
            ],
        )

    def test_explain_actions_provide_interface(self) -> None:
        """The actions --explain plays in place of the configured ones are
        request actions."""
        from certlb.rules.actions import DenyAction
        from certlb.rules.trace import _NotRun, _Played

        self.assertTrue(verifyObject(IRequestAction, _Played(DenyAction(), "r")))
        self.assertTrue(verifyObject(IRequestAction, _NotRun("r")))

    def test_kinds_in_help(self) -> None:
        """The CLI's --help names exactly the certificate kinds explain plays."""
        self.assertEqual(list(cli.CERT_KIND_NAMES), list(CERT_KINDS))


class CommandTests(SynchronousTestCase):
    """C{certlb check --explain}."""

    def run_cli(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        status = cli.main(list(argv))
        return status, out.getvalue(), err.getvalue()

    def test_explain_phase3(self) -> None:
        """certlb check --explain etc/phase3.cfg --cert valid prints the trace
        and exits 0."""
        status, out, _ = self.run_cli(
            "check", "--explain", PHASE3, "--cert", "valid", "--request", "GET /mail"
        )
        self.assertEqual(status, 0)
        lines = out.splitlines()
        self.assertEqual(
            lines[0],
            "frontend ssltests (etc/phase3.cfg:6): GET /mail HTTP/1.1 from a client "
            "with a valid certificate".replace("etc/phase3.cfg", PHASE3),
        )
        self.assertIn(
            f"{PHASE3}:10 use_backend sharepoint: condition true, chosen", lines
        )
        self.assertIn("result: backend sharepoint, server srv1", lines[-1])

    def test_errors_as_check(self) -> None:
        """A configuration with an error is reported as 'certlb check' does,
        with exit status 1, and nothing is explained."""
        path = write_config(
            self,
            """\
            frontend fe
                mode http
                bind 127.0.0.1:8443
                default_backend missing
            """,
        )
        status, out, _ = self.run_cli("check", "--explain", path)
        self.assertEqual(status, 1)
        self.assertIn("certlb will not run this configuration", out)
        self.assertNotIn("result:", out)

    def test_cert_file(self) -> None:
        """--cert-file: rules read the real certificate's fields, valid by
        default."""
        path = write_config(
            self,
            """\
            frontend fe
                mode http
                bind 127.0.0.1:8443 ssl crt ./server.pem ca-file ./ca.crt \
                    verify optional
                use_backend named if { ssl_c_s_dn(cn) -m found }
                default_backend other
            backend named
                mode http
                server a 10.0.0.1:80
            backend other
                mode http
                server b 10.0.0.2:80
            """,
        )
        status, out, _ = self.run_cli(
            "check", "--explain", path, "--cert-file", pki_files()["client1.crt"]
        )
        self.assertEqual(status, 0, out)
        self.assertIn("from a client with a valid certificate (CN=", out)
        self.assertIn("use_backend named: condition true, chosen", out)

    def test_unknown_frontend(self) -> None:
        """An unknown --frontend is named, with those there are; exit 2."""
        status, _, err = self.run_cli("check", "--explain", PHASE3, "--frontend", "x")
        self.assertEqual(status, 2)
        self.assertIn(
            "no frontend or listen section is named 'x'; there are: ssltests", err
        )

    def test_unknown_kind(self) -> None:
        """An unknown --cert kind lists the kinds; exit 2."""
        status, _, err = self.run_cli("check", "--explain", PHASE3, "--cert", "bad")
        self.assertEqual(status, 2)
        self.assertIn("none, valid, expired", err)

    def test_options_need_explain(self) -> None:
        """--cert without --explain is a usage error."""
        self.patch(sys, "stderr", io.StringIO())
        error = self.assertRaises(
            SystemExit, cli.main, ["check", PHASE3, "--cert", "valid"]
        )
        self.assertEqual(error.code, 2)


class DebugRulesTests(ProxyTestCase):
    """The run-time switch: each request's trace at debug level."""

    def setUp(self) -> None:
        super().setUp()
        self.logged = EventLoggingObserver.createWithCleanup(
            self,  # type: ignore[arg-type]  # a SynchronousTestCase does as well
            globalLogPublisher,
        )

    def traces(self) -> list[str]:
        return [
            f"{e['request']}: {e['line']}"
            for e in self.logged
            if e["log_level"] == LogLevel.debug and "line" in e
        ]

    def test_debug_rules(self) -> None:
        """With tracing on, a request's trace (its rules, its backend, the
        server picked) is logged at debug level, with the frontend's name and
        the request line, and not sent to the client."""
        config, _ = parse_config(textwrap.dedent(self.config_text), "t.cfg", {})
        enable_tracing(config, self.frontends)
        client = self.connect_client(WITH_CERT)
        client.get(b"/x")
        self.accept().respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual(
            self.traces(),
            [
                "frontend fe: GET /x HTTP/1.1: t.cfg:4 use_backend sharepoint: "
                "condition true, chosen",
                "frontend fe: GET /x HTTP/1.1:     { ssl_fc_has_crt } (t.cfg:4): true "
                "(ssl_fc_has_crt is true)",
                "frontend fe: GET /x HTTP/1.1: server sharepoint/srv1: picked by the "
                "balancer among 2",
            ],
        )
        self.assertNotIn(b"use_backend", client.received())

    def test_off_by_default(self) -> None:
        """Without the switch, nothing is traced."""
        client = self.connect_client(WITH_CERT)
        client.get(b"/x")
        self.accept().respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual(self.traces(), [])

    def test_twistd_option(self) -> None:
        """twistd certlb --debug-rules is accepted."""
        options = tap.Options()
        options.parseOptions(["--config", PHASE3, "--debug-rules"])
        self.assertTrue(options["debug-rules"])


class DocumentedOutputTests(SynchronousTestCase):
    """The manual and the README show the real output of --explain."""

    def test_documented_output(self) -> None:
        """The example of 'certlb check --explain etc/phase3.cfg --cert
        expired' in certlb(1) and the README is what the command prints."""
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        self.assertEqual(
            cli.main(["check", "--explain", PHASE3, "--cert", "expired"]), 0
        )
        printed = out.getvalue().replace(PHASE3, "etc/phase3.cfg")
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            self.assertIn(printed, f.read())
        with open(os.path.join(ROOT, "man", "certlb.1"), encoding="utf-8") as f:
            manual = f.read()
        self.assertIn(printed.replace("\\", "\\e").replace("-", "\\-"), manual)
