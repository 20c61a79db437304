"""The configuration checker: references, names, TLS files and rules."""

from __future__ import annotations

import os
import textwrap

from cryptography.hazmat.primitives import serialization
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from certlb.config import ConfigError, check_config, load_config, parse_config
from certlb.config.errors import ERROR, WARNING, Problem
from tests.helpers import pki, write_config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def backend_text(name: str) -> str:
    return f"backend {name}\n  mode http\n  server s1 10.0.0.1:80\n"


BACKEND = backend_text("b")


def check(text: str) -> list[str]:
    """Every problem of configuration C{text} (dedented, as C{t.cfg})."""
    _, problems = parse_config(textwrap.dedent(text), "t.cfg", environ={})
    return [str(p) for p in problems]


def frontend(*lines: str) -> list[str]:
    """The problems of a frontend C{f} made of C{lines} (the first at line 3)
    next to a good backend C{b}."""
    body = "".join(f"  {line}\n" for line in lines)
    return check("frontend f\n  mode http\n" + body + BACKEND)


def backend(*lines: str) -> list[str]:
    """The problems of a backend C{b} made of C{lines} (the first at line 3)."""
    return check("backend b\n  mode http\n" + "".join(f"  {x}\n" for x in lines))


class NameTests(SynchronousTestCase):
    def test_duplicate_frontend(self) -> None:
        """A second frontend of the same name is an error at it, naming the
        first one's place."""
        problems = check(
            "frontend f\n mode http\n bind :80\n default_backend b\n"
            "frontend f\n mode http\n bind :81\n default_backend b\n" + BACKEND
        )
        self.assertEqual(
            problems,
            [
                "t.cfg:5: error: frontend 'f' is already defined at t.cfg:1; "
                "give each frontend its own name"
            ],
        )

    def test_duplicate_backend(self) -> None:
        """A second backend of the same name is an error."""
        problems = check(BACKEND + BACKEND)
        self.assertEqual(
            problems,
            [
                "t.cfg:4: error: backend 'b' is already defined at t.cfg:1; "
                "give each backend its own name"
            ],
        )

    def test_frontend_and_backend_may_share_a_name(self) -> None:
        """A frontend and a backend of one name are no problem."""
        frontend_x = "frontend x\n mode http\n bind :80\n default_backend x\n"
        self.assertEqual(check(backend_text("x") + frontend_x), [])

    def test_duplicate_server(self) -> None:
        """Two servers of one name in a backend are an error; in two backends
        they are not."""
        problems = backend("server s 10.0.0.1:80", "server s 10.0.0.2:80")
        self.assertEqual(
            problems,
            [
                "t.cfg:4: error: server 's' is already defined in backend 'b' "
                "at t.cfg:3; give each server its own name"
            ],
        )
        self.assertEqual(check(BACKEND + backend_text("c")), [])

    def test_server_port_zero(self) -> None:
        """A server on port 0 is an error."""
        self.assertEqual(
            backend("server s 10.0.0.1:0"),
            ["t.cfg:3: error: server 's': port 0 is not a port"],
        )

    def test_duplicate_bind(self) -> None:
        """An address and port bound twice, in one frontend or two, is an
        error at the second bind."""
        self.assertEqual(
            frontend("bind :80", "bind *:80,127.0.0.1:80", "default_backend b"),
            [
                "t.cfg:4: error: bind 0.0.0.0:80 is already used at t.cfg:3; each "
                "address and port can be bound once"
            ],
        )
        problems = check(
            "frontend f\n mode http\n bind :80\n default_backend b\n"
            "frontend g\n mode http\n bind :80\n default_backend b\n" + BACKEND
        )
        self.assertEqual(len(problems), 1)
        self.assertIn(
            "t.cfg:7: error: bind 0.0.0.0:80 is already used at t.cfg:3", problems[0]
        )

    def test_port_zero_binds_may_repeat(self) -> None:
        """Port 0 (any free port) may be bound by several lines."""
        self.assertEqual(frontend("bind :0", "bind :0", "default_backend b"), [])


class RouteTests(SynchronousTestCase):
    def test_missing_backend(self) -> None:
        """A use_backend naming no backend is an error at its line that names
        it, suggests a close name and lists the backends."""
        problems = frontend("bind :80", "use_backend bb", "default_backend b")
        self.assertEqual(
            problems,
            [
                "t.cfg:4: error: use_backend 'bb': no backend has this name; "
                "did you mean 'b'? (backends: b)"
            ],
        )

    def test_no_backends_at_all(self) -> None:
        """With no backend at all, the message says so."""
        problems = check("frontend f\n mode http\n bind :80\n default_backend x\n")
        self.assertEqual(
            problems,
            [
                "t.cfg:4: error: default_backend 'x': no backend has this name "
                "(backends: none)"
            ],
        )

    def test_article_phase1(self) -> None:
        """The article's phase 1 names a backend that does not exist: the
        checker reports 'bk_ssltests' at line 9 and suggests 'ssltests'."""
        with open(os.path.join(ROOT, "etc", "phase1-original.cfg")) as f:
            path = write_config(self, f.read(), "phase1-original.cfg")
        config, problems = check_config([path], environ={})
        self.assertEqual(
            [str(p) for p in problems],
            [
                f"{path}:9: error: default_backend 'bk_ssltests': no backend has this "
                "name; did you mean 'ssltests'? (backends: ssltests)"
            ],
        )
        self.assertEqual(config.frontends[0].default_backend, "bk_ssltests")

    def test_frontend_without_bind(self) -> None:
        """A frontend with no bind line is an error that shows one."""
        self.assertEqual(
            frontend("default_backend b"),
            [
                "t.cfg:1: error: frontend 'f' has no 'bind' line, so it accepts "
                "nothing; add one, as in 'bind 127.0.0.1:8443 ssl crt server.pem', "
                "or make it a backend"
            ],
        )

    def test_frontend_without_route(self) -> None:
        """A frontend with neither default_backend nor use_backend is an
        error."""
        self.assertEqual(
            frontend("bind :80"),
            [
                "t.cfg:1: error: frontend 'f' has no route to any backend; add "
                "'default_backend NAME' or 'use_backend NAME if CONDITION'"
            ],
        )

    def test_frontend_with_only_use_backend(self) -> None:
        """A frontend with use_backend rules but no default_backend gets a
        warning that other requests get 503."""
        self.assertEqual(
            frontend("bind :80", "use_backend b if { always_true }"),
            [
                "t.cfg:1: warning: frontend 'f' has no default_backend: "
                "requests that match no use_backend rule will get 503"
            ],
        )

    def test_backend_without_servers(self) -> None:
        """A backend with no server gets a warning about 503."""
        self.assertEqual(
            backend(),
            [
                "t.cfg:1: warning: backend 'b' has no server: requests sent to "
                "it will get 503"
            ],
        )

    def test_no_usable_server(self) -> None:
        """A backend whose servers are all disabled or of weight 0 gets a
        warning; one usable server is enough."""
        expected = [
            "t.cfg:1: warning: backend 'b': every server is disabled or "
            "has weight 0, so requests sent to it will get 503"
        ]
        self.assertEqual(
            backend("server s h:80 disabled", "server t h:81 weight 0"), expected
        )
        self.assertEqual(backend("server s h:80 disabled", "server t h:81"), [])

    def test_parse_errors_not_repeated(self) -> None:
        """A proxy with a line that could not be read gets no second problem
        for what that line would have given (no bind, no server)."""
        self.assertEqual(len(frontend("bind :http", "default_backend b")), 1)
        self.assertEqual(len(backend("server s 10.0.0.1")), 1)


class TlsFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.config = os.path.join(self.directory, "t.cfg")
        server = pki().server
        self.write("server.pem", server.certificate_pem() + server.key_pem())
        self.write("ca.crt", pki().ca1.certificate_pem())

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def bind(self, options: str) -> list[Problem]:
        """The problems of a frontend whose bind line (line 3) has C{options}."""
        text = f"frontend f\n  mode http\n  bind :443 {options}\n  default_backend b\n"
        return parse_config(text + BACKEND, self.config, environ={})[1]

    def error(self, options: str) -> str:
        """The one problem of a bind line, which must be an error at it."""
        problems = self.bind(options)
        self.assertEqual(
            [(p.severity, p.location.line) for p in problems], [(ERROR, 3)], problems
        )
        prefix = f"{self.config}:3: error: bind 0.0.0.0:443: "
        self.assertTrue(str(problems[0]).startswith(prefix), problems)
        return problems[0].message

    def test_good_tls_bind(self) -> None:
        """A bind with ssl, a good crt and ca-file, and verify, is fine."""
        self.assertEqual(
            self.bind("ssl crt server.pem ca-file ca.crt verify required"), []
        )

    def test_ssl_without_crt(self) -> None:
        """ssl without crt is an error saying to add one."""
        self.assertIn("'ssl' needs a certificate; add 'crt FILE'", self.error("ssl"))

    def test_tls_options_without_ssl(self) -> None:
        """crt, ca-file or verify without ssl is an error saying to add ssl."""
        for options, names in (
            ("crt server.pem", "'crt' needs"),
            ("ca-file ca.crt", "'ca-file' needs"),
            ("verify optional", "'verify' needs"),
            ("crt server.pem verify optional", "'crt' and 'verify' need"),
        ):
            self.assertIn(
                f"{names} TLS; add 'ssl' to this bind line", self.error(options)
            )

    def test_verify_without_ca_file(self) -> None:
        """verify optional or required without ca-file is an error."""
        for mode in ("optional", "required"):
            message = self.error(f"ssl crt server.pem verify {mode}")
            self.assertIn(f"'verify {mode}' needs the CAs", message)
            self.assertIn("add 'ca-file FILE'", message)

    def test_ca_file_with_verify_none(self) -> None:
        """ca-file with verify none is a warning: it has no effect."""
        problems = self.bind("ssl crt server.pem ca-file ca.crt")
        self.assertEqual([p.severity for p in problems], [WARNING])
        self.assertIn("'ca-file' has no effect with 'verify none'", problems[0].message)

    def test_missing_certificate(self) -> None:
        """A crt file that does not exist is named, resolved against the
        configuration's directory."""
        path = os.path.join(self.directory, "nope.pem")
        self.assertEqual(
            self.error("ssl crt nope.pem"),
            f"bind 0.0.0.0:443: certificate file {path!r} does not exist",
        )

    def test_certificate_is_a_directory(self) -> None:
        """A crt that is a directory says to give a PEM file."""
        self.assertIn("is a directory; give a PEM file", self.error("ssl crt ."))

    def test_unreadable_certificate(self) -> None:
        """A crt file that cannot be read says so."""
        if os.geteuid() == 0:
            raise SkipTest("root reads any file, whatever its mode")
        os.chmod(os.path.join(self.directory, "server.pem"), 0)
        self.assertIn(
            "cannot be read: Permission denied", self.error("ssl crt server.pem")
        )

    def test_no_certificate_in_pem(self) -> None:
        """A crt file with only a key says it holds no certificate."""
        path = self.write("key.pem", pki().server.key_pem())
        self.assertIn(
            f"certificate file {path!r} holds no PEM certificate",
            self.error("ssl crt key.pem"),
        )

    def test_no_key_in_pem(self) -> None:
        """A crt file without its key says how to append it."""
        message = self.error("ssl crt ca.crt")
        self.assertIn("has no private key; append the key to the certificate", message)
        self.assertIn("cat server.crt server.key >", message)

    def test_key_does_not_match(self) -> None:
        """A crt whose key is another certificate's is an error naming the
        certificate."""
        self.write("mixed.pem", pki().server.certificate_pem() + pki().ca1.key_pem())
        message = self.error("ssl crt mixed.pem")
        self.assertIn("the private key does not match the certificate", message)
        self.assertIn("CN=certlb test server", message)

    def test_encrypted_key(self) -> None:
        """An encrypted key is an error saying how to decrypt it."""
        key = pki().server.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        self.write("enc.pem", pki().server.certificate_pem() + key)
        message = self.error("ssl crt enc.pem")
        self.assertIn("has an encrypted private key", message)
        self.assertIn("openssl pkey -in KEY -out KEY.plain", message)

    def test_chain_in_crt(self) -> None:
        """A crt file may hold the chain, in any order, with the key."""
        server = pki().server
        self.write(
            "chain.pem",
            pki().ca1.certificate_pem() + server.certificate_pem() + server.key_pem(),
        )
        self.assertEqual(self.bind("ssl crt chain.pem"), [])

    def test_ca_file_problems(self) -> None:
        """A missing or empty CA file is an error naming it."""
        self.write("empty.crt", b"")
        missing = os.path.join(self.directory, "nope.crt")
        options = "ssl crt server.pem verify optional ca-file"
        self.assertIn(
            f"CA file {missing!r} does not exist", self.error(f"{options} nope.crt")
        )
        self.assertIn(
            "empty.crt' holds no PEM certificate", self.error(f"{options} empty.crt")
        )


class AclTests(SynchronousTestCase):
    def acl(self, *lines: str) -> list[str]:
        """The problems of a frontend with C{lines} (the first at line 4),
        less the warnings about ACLs left unused (UnusedAclTests has those)."""
        problems = frontend("bind :80", *lines, "default_backend b")
        return [p for p in problems if "is declared but no condition" not in p]

    def test_unknown_fetch(self) -> None:
        """An unknown fetch is an error with a suggestion; an HAProxy fetch
        certlb lacks is named as not implemented."""
        self.assertEqual(
            self.acl("acl a ssl_fc_hascrt"),
            [
                "t.cfg:4: error: unknown fetch 'ssl_fc_hascrt'; did you mean "
                "'ssl_fc_has_crt'?"
            ],
        )
        self.assertIn(
            "fetch 'url_param' is an HAProxy fetch that certlb does not implement yet",
            self.acl("acl a url_param alice")[0],
        )

    def test_unknown_converter(self) -> None:
        """An unknown converter is an error with a suggestion."""
        self.assertEqual(
            self.acl("acl a always_true,lowr"),
            ["t.cfg:4: error: unknown converter 'lowr'; did you mean 'lower'?"],
        )
        self.assertIn(
            "converter 'json' is an HAProxy converter that certlb does not",
            self.acl("acl a always_true,json")[0],
        )

    def test_arguments(self) -> None:
        """A fetch or converter given arguments it does not take is an error."""
        self.assertIn(
            "'always_true' takes no arguments, but was given 1",
            self.acl("acl a always_true(x)")[0],
        )
        self.assertIn(
            "'lower' takes no arguments", self.acl("acl a always_true,lower(x)")[0]
        )

    def test_bad_patterns(self) -> None:
        """A bad -m method, integer, regex, address or a pattern for a boolean
        is an error at the ACL line."""
        for line, message in {
            "acl a always_true -m foo": "unknown match method 'foo'; the methods "
            "are found, bool, int, ip, bin, str, beg, end, sub, reg, dir, dom, len",
            "acl a always_true -m int 1x": "'1x' is not an integer pattern; write "
            "a number (10), a range (10:23, :5, 5:) or an operator",
            "acl a always_true -m int gt": "operator 'gt' needs a number after it",
            "acl a always_true -m reg (": "bad regular expression '('",
            "acl a always_true -m ip 10.0.0.300": "'10.0.0.300' is not an address",
            "acl a always_true yes": "match method 'bool' takes no pattern, but was "
            "given 'yes'",
            "acl a always_true -f x.lst": "ACL flag '-f' is not implemented by",
        }.items():
            problems = self.acl(line)
            self.assertEqual(len(problems), 1, problems)
            self.assertIn(f"t.cfg:4: error: {message}", problems[0])

    def test_undefined_acl(self) -> None:
        """A condition naming no ACL is an error at the name, with a
        suggestion and the two ways to write one."""
        problems = self.acl("acl has_crt ssl_fc_has_crt", "use_backend b if has_cert")
        self.assertEqual(len(problems), 1)
        self.assertIn(
            "t.cfg:5: error: no ACL is named 'has_cert' in this section "
            "(did you mean 'has_crt'?); define it with",
            problems[0],
        )
        self.assertIn("'acl has_cert FETCH [PATTERN...]'", problems[0])
        self.assertIn("{ ssl_fc_has_crt }", problems[0])

    def test_every_undefined_acl(self) -> None:
        """Each undefined ACL of a condition is reported, not only the first."""
        problems = self.acl("acl a always_true", "use_backend b if x a or y")
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("no ACL is named 'x'", problems[0])
        self.assertIn("no ACL is named 'y'", problems[1])

    def test_anonymous_acl_checked(self) -> None:
        """An anonymous ACL is checked at its brace."""
        self.assertIn(
            "t.cfg:4: error: unknown fetch 'nofetch'",
            self.acl("use_backend b if { nofetch }")[0],
        )

    def test_broken_acl_reported_once(self) -> None:
        """An ACL that cannot be compiled is reported at its line only, not
        again where a condition uses it."""
        self.assertEqual(len(self.acl("acl a nofetch", "use_backend b if a")), 1)

    def test_acl_without_pattern(self) -> None:
        """An ACL with no pattern on a non-boolean match is a warning that it
        never matches; -m found and boolean fetches need none."""
        self.assertEqual(
            self.acl("acl a always_true -m str"),
            [
                "t.cfg:4: warning: ACL 'a' has no pattern, so it never matches; "
                "add the values to match"
            ],
        )
        self.assertEqual(
            self.acl("acl a always_true -m found", "acl b ssl_fc_has_crt"), []
        )

    def test_backend_acls_checked(self) -> None:
        """ACL lines of a backend are checked too."""
        self.assertEqual(
            backend("server s h:80", "acl a nofetch", "http-request deny if a"),
            ["t.cfg:4: error: unknown fetch 'nofetch'"],
        )


class UnusedAclTests(SynchronousTestCase):
    def test_unused_acl_warns_once(self) -> None:
        """An ACL no condition of its section uses is a warning, once for its
        several lines; one used by any rule is not."""
        problems = backend(
            "server s h:80",
            "acl unused always_true",
            "acl unused always_false",
            "acl used path /x",
            "redirect location /y if used",
        )
        self.assertEqual(
            problems,
            [
                "t.cfg:4: warning: ACL 'unused' is declared but no condition of "
                "this section uses it"
            ],
        )


class LoadTests(SynchronousTestCase):
    def test_load_config_raises_every_error(self) -> None:
        """load_config raises ConfigError with every problem, sorted by line,
        warnings included; its text has one line per problem."""
        path = write_config(
            self,
            "backend b\n  server s h:0\nfrontend f\n  mode http\n"
            "  bind :80\n  default_backend x\n",
        )
        error = self.assertRaises(ConfigError, load_config, path, environ={})
        lines = [(p.location.line, p.severity) for p in error.problems]
        self.assertEqual(lines, [(1, WARNING), (2, ERROR), (6, ERROR)])
        self.assertEqual([p.location.line for p in error.errors], [2, 6])
        self.assertEqual(str(error).splitlines(), [str(p) for p in error.problems])
        self.assertIn(f"{path}:6: error: default_backend 'x'", str(error))

    def test_load_config_keeps_warnings(self) -> None:
        """A configuration with only warnings loads; they are on its warnings."""
        path = write_config(
            self, "frontend f\n  bind :80\n  default_backend b\n" + BACKEND
        )
        config = load_config(path, environ={})
        self.assertEqual(
            [str(w) for w in config.warnings],
            [
                f"{path}:1: warning: frontend 'f' has no 'mode': HAProxy would run "
                "it in tcp mode, certlb runs it in http mode; add 'mode http' "
                "(here or in defaults) to say so"
            ],
        )

    def test_unreadable_files(self) -> None:
        """A missing or non-UTF-8 configuration file is an error naming it."""
        bad = write_config(self, "", "latin1.cfg")
        with open(bad, "wb") as f:
            f.write(b"# caf\xe9\n")
        missing = os.path.abspath("nope.cfg")
        _, problems = check_config([missing, bad], environ={})
        found = {p.location.file: str(p) for p in problems}
        self.assertEqual(len(problems), 2)
        self.assertIn(
            f"{bad}:0: error: configuration file is not UTF-8 text", found[bad]
        )
        self.assertEqual(
            found[missing],
            f"{missing}:0: error: cannot read configuration file: No such file or "
            "directory",
        )

    def test_parse_config_names_the_string(self) -> None:
        """parse_config reads a string; without a file name, its problems name
        '<string>'."""
        config, problems = parse_config("backend b\n  mode http\n", environ={})
        self.assertEqual(
            (str(problems[0])[:11], config.files), ("<string>:1:", ("<string>",))
        )
