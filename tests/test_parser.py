"""The configuration parser: sections, defaults, keywords and conditions."""

from __future__ import annotations

import os
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from certlb.config import check_config, parse_config
from certlb.config.errors import WARNING, Location, Problem
from certlb.config.model import Condition, Config, ForwardFor, Frontend, Server

BACKEND = "backend b\n  mode http\n  server s1 10.0.0.1:80\n"


def parse(text: str) -> tuple[Config, list[Problem]]:
    """Parse and check C{text} (dedented) as the file C{t.cfg}."""
    return parse_config(textwrap.dedent(text), "t.cfg", environ={})


def texts(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


def frontend(*lines: str) -> tuple[Frontend, list[str]]:
    """A frontend C{f} made of C{lines} (the first is line 3 of C{t.cfg}),
    routed to a good backend; return it with every problem as text."""
    body = "".join(f"  {line}\n" for line in lines)
    config, problems = parse(
        "frontend f\n  mode http\n" + body + "  default_backend b\n" + BACKEND
    )
    return config.frontends[0], texts(problems)


def backend(*lines: str) -> tuple[Config, list[str]]:
    """A backend C{b} made of C{lines} (the first is line 3 of C{t.cfg}), then
    a good server."""
    body = "".join(f"  {line}\n" for line in lines)
    config, problems = parse("backend b\n  mode http\n" + body + "  server s0 h:80\n")
    return config, texts(problems)


def write(directory: str, name: str, text: str) -> str:
    """Write C{text} to the file C{name} in C{directory}; return its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def errors(problems: list[str]) -> list[str]:
    """The errors among problems (warnings such as unused ACLs left out)."""
    return [p for p in problems if ": error: " in p]


def only(problems: list[str]) -> str:
    """The one problem of a list that must hold exactly one."""
    assert len(problems) == 1, problems
    return problems[0]


def shape(condition: Condition | None) -> tuple[bool, list[list[str]]]:
    """A condition as (unless, groups), terms written C{!name} or C{{fetch}}."""
    assert condition is not None
    return condition.unless, [
        [
            ("!" if t.negated else "")
            + (f"{{{t.anonymous.expression}}}" if t.anonymous else str(t.name))
            for t in group
        ]
        for group in condition.groups
    ]


class SectionTests(SynchronousTestCase):
    def test_proxies_and_locations(self) -> None:
        """Frontends and backends are read in order, each at its line."""
        config, problems = parse(
            "frontend f\n mode http\n bind :80\n default_backend b\n" + BACKEND
        )
        self.assertEqual(problems, [])
        self.assertEqual([f.name for f in config.frontends], ["f"])
        self.assertEqual(config.frontends[0].location, Location("t.cfg", 1, 1))
        self.assertEqual(
            [b.location for b in config.backends], [Location("t.cfg", 5, 1)]
        )
        self.assertEqual(config.files, ("t.cfg",))

    def test_global_maxconn(self) -> None:
        """'maxconn' in the global section is the global connection limit."""
        config, problems = parse("global\n  maxconn 500\n")
        self.assertEqual((config.global_.maxconn, problems), (500, []))

    def test_section_lines(self) -> None:
        """Bad section lines are errors: a name after 'global', two after
        'defaults', none or a bad one for a proxy, extra words after it."""
        _, problems = parse(
            "global main\ndefaults a b\nfrontend\nbackend 'a b'\nbackend x y\n"
        )
        found = texts(problems)
        for expected in [
            "t.cfg:1: error: 'global' takes no name",
            "t.cfg:2: error: 'defaults' takes at most a name",
            "t.cfg:3: error: 'frontend' needs a name, as in 'frontend web'",
            "t.cfg:4: error: 'a b' is not a valid backend name: use letters, "
            "digits, '-', '_', '.' and ':'",
            "t.cfg:5: error: unexpected 'y' after 'backend x'; only "
            "'from DEFAULTS-NAME' may follow the name",
        ]:
            self.assertIn(expected, found)

    def test_keyword_before_any_section(self) -> None:
        """A keyword before any section is an error listing the sections."""
        self.assertEqual(
            only(texts(parse("mode http\n")[1])),
            "t.cfg:1: error: 'mode' comes before any section; start with one "
            "of global, defaults, frontend, backend, listen",
        )

    def test_unsupported_section(self) -> None:
        """A section certlb does not support is one error; its lines are
        skipped and the next section is read."""
        config, problems = parse("peers p\n  peer p1 10.0.0.1:1024\n  x\n" + BACKEND)
        self.assertEqual(
            only(texts(problems)),
            "t.cfg:1: error: section 'peers' is not supported by certlb; "
            "remove it and the lines under it",
        )
        self.assertEqual([b.name for b in config.backends], ["b"])

    def test_missing_mode_warns(self) -> None:
        """A proxy without 'mode' (here or in defaults) gets a warning saying
        that HAProxy would run it in tcp mode."""
        _, problems = parse("backend b\n  server s1 10.0.0.1:80\n")
        self.assertEqual([p.severity for p in problems], [WARNING])
        self.assertIn("t.cfg:1: warning: backend 'b' has no 'mode'", str(problems[0]))
        self.assertIn("tcp mode", problems[0].message)
        self.assertIn("add 'mode http'", problems[0].message)
        _, problems = parse("defaults\n  mode http\nbackend b\n  server s h:80\n")
        self.assertEqual(problems, [], "'mode http' in defaults is enough")

    def test_several_files_read_in_order(self) -> None:
        """check_config reads files in order as one configuration: defaults of
        the first apply in the second; each file's paths are relative to its
        own directory, and its problems name it."""
        second = os.path.abspath(self.mktemp())
        first_text = "defaults\n  mode http\n  timeout client 7s\n"
        second_text = "frontend f\n  bind :80 ssl crt s.pem\n  default_backend b\n"
        paths = [
            write(self.mktemp(), "a.cfg", first_text),
            write(second, "b.cfg", second_text + BACKEND),
        ]
        config, problems = check_config(paths, environ={})
        self.assertEqual(config.files, tuple(paths))
        self.assertEqual(config.frontends[0].timeouts.client, 7000)
        crt = os.path.join(second, "s.pem")
        self.assertEqual(config.frontends[0].binds[0].crt, crt)
        self.assertEqual(
            only(texts(problems)),
            f"{paths[1]}:2: error: bind 0.0.0.0:80: certificate file {crt!r} "
            "does not exist",
        )

    def test_section_ends_with_its_file(self) -> None:
        """A file's first lines do not continue the previous file's section."""
        directory = self.mktemp()
        paths = [
            write(directory, "a.cfg", BACKEND),
            write(directory, "b.cfg", "  server s2 10.0.0.2:80\n"),
        ]
        config, problems = check_config(paths, environ={})
        self.assertEqual(len(config.backends[0].servers), 1)
        problem = only(texts(problems))
        self.assertIn(
            f"{paths[1]}:1: error: 'server' comes before any section", problem
        )


class DefaultsTests(SynchronousTestCase):
    DEFAULTS = (
        "defaults\n  mode http\n  timeout connect 3s\n  timeout client 1m\n"
        "  option http-server-close\n  option forwardfor\n  balance roundrobin\n"
        "  maxconn 100\n  default_backend b\n"
    )

    def test_proxies_inherit_defaults(self) -> None:
        """A proxy gets the mode, timeouts, options, balance, default_backend
        and maxconn of the defaults section before it."""
        config, problems = parse(
            self.DEFAULTS + "frontend f\n  bind :80\nbackend b\n  server s h:80\n"
        )
        self.assertEqual(problems, [])
        front, back = config.frontends[0], config.backends[0]
        self.assertEqual((front.timeouts.connect, front.timeouts.client), (3000, 60000))
        self.assertEqual((front.maxconn, front.default_backend), (100, "b"))
        self.assertEqual(front.default_backend_location, Location("t.cfg", 9, 19))
        self.assertTrue(front.http_server_close and back.http_server_close)
        self.assertEqual(front.forwardfor, ForwardFor())
        self.assertEqual(
            (back.balance.algorithm, back.timeouts.connect), ("roundrobin", 3000)
        )

    def test_proxy_overrides_defaults(self) -> None:
        """A proxy's own lines replace what defaults gave it."""
        config, _ = parse(
            self.DEFAULTS + "frontend f\n  bind :80\n  timeout client 5s\n"
            "  no option http-server-close\n  no option forwardfor\n"
            "  default_backend c\n  maxconn 9\nbackend c\n  server s h:80\n"
        )
        front = config.frontends[0]
        self.assertEqual((front.timeouts.client, front.timeouts.connect), (5000, 3000))
        self.assertEqual((front.default_backend, front.maxconn), ("c", 9))
        self.assertEqual((front.http_server_close, front.forwardfor), (False, None))

    def test_later_defaults_resets(self) -> None:
        """A later defaults section starts from nothing: proxies after it get
        none of the earlier defaults."""
        config, problems = parse(
            self.DEFAULTS + "defaults\n  mode http\nfrontend f\n  bind :80\n"
        )
        front = config.frontends[0]
        self.assertEqual((front.timeouts.client, front.maxconn), (None, None))
        self.assertEqual((front.default_backend, front.forwardfor), (None, None))
        self.assertFalse(front.http_server_close)
        self.assertIn("frontend 'f' has no route to any backend", str(problems))

    def test_named_defaults(self) -> None:
        """'frontend X from NAME' takes the named defaults section, not the
        latest one."""
        config, problems = parse(
            "defaults slow\n  mode http\n  timeout client 1h\n"
            "defaults\n  mode http\n  timeout client 1s\n"
            "frontend f from slow\n  bind :80\n  default_backend b\n"
            "frontend g\n  bind :81\n  default_backend b\n" + BACKEND
        )
        self.assertEqual(problems, [])
        clients = [f.timeouts.client for f in config.frontends]
        self.assertEqual(clients, [3_600_000, 1000])

    def test_unknown_named_defaults(self) -> None:
        """'from NAME' naming no defaults section is an error listing those
        that exist."""
        _, problems = parse("defaults web\n  mode http\nbackend b from webb\n")
        self.assertIn(
            "t.cfg:3: error: no defaults section is named 'webb'; "
            "named defaults are: web",
            texts(problems),
        )

    def test_listen_is_frontend_and_backend(self) -> None:
        """A listen section makes a frontend and a backend of one name; the
        frontend's default_backend is the listen section itself, unless it
        names one."""
        config, problems = parse(
            "listen app\n  mode http\n  bind :80\n  server s 10.0.0.1:80\n"
        )
        self.assertEqual(problems, [])
        self.assertEqual(config.frontends[0].default_backend, "app")
        self.assertEqual([b.name for b in config.backends], ["app"])
        self.assertEqual([s.name for s in config.backends[0].servers], ["s"])
        config, _ = parse(
            "listen app\n  mode http\n  bind :80\n  default_backend b\n" + BACKEND
        )
        self.assertEqual(config.frontends[0].default_backend, "b", "its own wins")


class ModeAndBindTests(SynchronousTestCase):
    def test_mode(self) -> None:
        """'mode tcp' is refused saying certlb proxies HTTP; an unknown mode,
        a missing one and extra words are errors too."""
        self.assertEqual(
            only(frontend("mode tcp", "bind :80")[1]),
            "t.cfg:3: error: certlb proxies HTTP only: 'mode tcp' is not "
            "supported; use 'mode http'",
        )
        for line, message in [
            ("mode htp", "unknown mode 'htp'; use 'mode http'"),
            ("mode", "'mode' needs a mode, as in 'mode http'"),
            ("mode http x", "unexpected 'x' at the end of 'mode'"),
        ]:
            self.assertIn(message, only(frontend(line, "bind :80")[1]))

    def test_addresses(self) -> None:
        """IPv4, '*:PORT', ':PORT', '[IPv6]:PORT', comma lists and several
        bind lines all bind."""
        front, problems = frontend(
            "bind 127.0.0.1:8443", "bind *:80,:81", "bind [::1]:8443"
        )
        self.assertEqual(problems, [])
        addresses = ["127.0.0.1:8443", "0.0.0.0:80", "0.0.0.0:81", "[::1]:8443"]
        self.assertEqual([b.address for b in front.binds], addresses)
        self.assertEqual([b.location.line for b in front.binds], [3, 4, 4, 5])
        self.assertEqual((front.binds[3].host, front.binds[3].port), ("::1", 8443))

    def test_bad_addresses(self) -> None:
        """A missing port, a bad port, an unbracketed IPv6 address or a bad
        IPv6 address is an error saying what to write."""
        for address, message in {
            "127.0.0.1": "has no port; write it as 127.0.0.1:PORT, as in *:443",
            "10.0.0.1:99999": "'99999' is not a port; give a number from 1 to 65535",
            "*:http": "'http' is not a port",
            "::1": "ambiguous: write the IPv6 address in brackets, as in [::1]:PORT",
            "[::1": "missing ']' after the IPv6 address",
            "[::g]:80": "'::g' is not an IPv6 address",
        }.items():
            problem = only(frontend(f"bind {address}")[1])
            self.assertIn(f"t.cfg:3: error: bind address {address!r}", problem)
            self.assertIn(message, problem)
        self.assertIn(
            "'bind' needs an address, as in 'bind 127.0.0.1:8443 ssl crt server.pem'",
            only(frontend("bind")[1]),
        )

    def test_tls_options_and_relative_paths(self) -> None:
        """ssl, crt, ca-file and verify are read; file names are relative to
        the configuration file's directory."""
        front, _ = frontend(
            "bind :443 ssl crt c/s.pem ca-file ../ca.crt verify optional"
        )
        bind, here = front.binds[0], os.path.abspath(".")
        self.assertEqual((bind.ssl, bind.verify), (True, "optional"))
        self.assertEqual(bind.crt, os.path.join(here, "c", "s.pem"))
        self.assertEqual(bind.ca_file, os.path.join(os.path.dirname(here), "ca.crt"))

    def test_bad_bind_options(self) -> None:
        """A bad verify mode, an unknown option (with a suggestion), an HAProxy
        option certlb lacks and a missing value are errors."""
        later = "is an HAProxy option that certlb does not implement yet"
        for options, message in {
            "verify maybe": "unknown verify mode 'maybe'; use none, optional or",
            "sll": "unknown bind option 'sll'; did you mean 'ssl'?",
            "crt": "'bind :443 crt' needs a file name",
            "no-sslv3": f"bind option 'no-sslv3' {later}",
            "crt-ignore-err 10,X": "'X' is not a certificate verification error",
            "ca-ignore-err 999": "'999' is not a certificate verification error",
            "alpn h2": f"bind option 'alpn' {later}",
            "accept-proxy": f"bind option 'accept-proxy' {later}",
        }.items():
            problem = only(frontend(f"bind :443 {options}")[1])
            self.assertIn(f"t.cfg:3: error: {message}", problem)


class ServerTests(SynchronousTestCase):
    def server(self, line: str) -> tuple[Server, list[str]]:
        config, problems = backend(line)
        return config.backends[0].servers[0], problems

    def test_server(self) -> None:
        """A server has a name, an address and the options check, weight and
        disabled."""
        s, problems = self.server("server web1 10.0.0.1:8080 check weight 256 disabled")
        self.assertEqual(problems, [])
        location = Location("t.cfg", 3, 10)
        self.assertEqual(
            s,
            Server("web1", "10.0.0.1", 8080, True, 256, True, location=location),
        )
        self.assertEqual(self.server("server s [::1]:80 weight 0")[0].weight, 0)

    def test_bad_servers(self) -> None:
        """A weight out of 0..256, a missing port or address, an unknown option
        (with a suggestion) or one certlb lacks are errors."""
        for words, message in {
            "s h:80 weight 257": "weight must be a whole number from 0 to 256",
            "s h:80 weight x": "from 0 to 256, not 'x'",
            "s 10.0.0.1": "server address '10.0.0.1' has no port; write 10.0.0.1:PORT",
            "s": "'server s' needs an address, as in 'server s1 10.0.0.1:80'",
            "s h:80 wieght 2": "unknown server option 'wieght'; did you mean 'weight'?",
            "s h:80 slowstart 2s": "'slowstart' is an HAProxy option that certlb",
        }.items():
            problem = only(backend(f"server {words}")[1])
            self.assertTrue(problem.startswith("t.cfg:3: error: "), problem)
            self.assertIn(message, problem)


class KeywordTests(SynchronousTestCase):
    def test_default_backend(self) -> None:
        """default_backend takes exactly one name."""
        for line, message in [
            ("default_backend", "'default_backend' needs a backend name"),
            ("default_backend b c", "unexpected 'c' at the end of 'default_backend'"),
        ]:
            self.assertIn(message, only(frontend("bind :80", line)[1]))

    def test_use_backend(self) -> None:
        """use_backend takes a name and an optional if/unless condition, kept
        in order; other words after the name are an error."""
        front, problems = frontend(
            "bind :80", "acl a always_true", "use_backend b if a", "use_backend b"
        )
        self.assertEqual(problems, [])
        uses = [(u.backend, u.location.line) for u in front.use_backends]
        self.assertEqual(uses, [("b", 5), ("b", 6)])
        self.assertEqual(shape(front.use_backends[0].condition), (False, [["a"]]))
        self.assertIsNone(front.use_backends[1].condition)
        self.assertIn(
            "unexpected 'when': 'use_backend' takes a condition after 'if' or 'unless'",
            only(frontend("bind :80", "use_backend b when a")[1]),
        )

    def test_balance(self) -> None:
        """HAProxy's algorithms are accepted; an unknown one is an error with
        a suggestion."""
        config, problems = backend("balance leastconn")
        self.assertEqual(
            (config.backends[0].balance.algorithm, problems), ("leastconn", [])
        )
        self.assertIn(
            "unknown balance algorithm 'leastconnn'; certlb balances with: "
            "roundrobin, static-rr, leastconn",
            only(backend("balance leastconnn")[1]),
        )

    def test_maxconn(self) -> None:
        """maxconn takes a whole number from 1."""
        self.assertEqual(frontend("bind :80", "maxconn 50")[0].maxconn, 50)
        for bad in ("0", "many"):
            problem = only(frontend("bind :80", f"maxconn {bad}")[1])
            self.assertIn(
                f"maxconn must be a whole number from 1 to 10000000, not '{bad}'",
                problem,
            )

    def test_timeout_units(self) -> None:
        """Durations take us, ms, s, m, h or d; no unit means milliseconds."""
        units = (1, 250, 300, 5000, 120_000, 3_600_000, 86_400_000)
        for text, ms in zip("1500us 250ms 300 5s 2m 1h 1d".split(), units, strict=True):
            config, problems = backend(f"timeout server {text}")
            self.assertEqual((config.backends[0].timeouts.server, problems), (ms, []))

    def test_bad_timeouts(self) -> None:
        """A bad duration, zero, an unknown timeout (with a suggestion), one
        certlb lacks and a missing duration are errors."""
        for text in ("5x", "1.5s", "-1s", "s"):
            problem = only(backend(f"timeout server {text}")[1])
            self.assertIn(f"{text!r} is not a duration", problem)
            self.assertIn("unit us, ms, s, m, h or d, as in 5s", problem)
        for line, message in {
            "timeout server 0s": "'0s': a timeout must be longer than zero",
            "timeout conect 5s": "unknown timeout 'conect'; did you mean 'connect'?",
            "timeout tarpit 5s": "'timeout tarpit' is an HAProxy timeout that certlb",
            "timeout server": "'timeout server' needs a duration, as in 5s",
        }.items():
            self.assertIn(message, only(backend(line)[1]))

    def test_timeout_in_the_wrong_section(self) -> None:
        """A timeout that does nothing in its section is a warning saying
        where it belongs; the value is still kept."""
        config, problems = backend("timeout client 5s")
        self.assertEqual(
            only(problems),
            "t.cfg:3: warning: 'timeout client' has no effect in a backend "
            "section; it belongs in defaults or frontend or listen sections",
        )
        self.assertEqual(config.backends[0].timeouts.client, 5000)
        problem = only(frontend("bind :80", "timeout connect 1s")[1])
        self.assertIn("warning: 'timeout connect' has no effect in a frontend", problem)
        for which in ("http-request", "http-keep-alive"):
            problem = only(backend(f"timeout {which} 5s")[1])
            self.assertIn(f"'timeout {which}' has no effect in a backend", problem)

    def test_server_close_and_keep_alive(self) -> None:
        """http-server-close and http-keep-alive undo each other, in order;
        'no option' reverses each."""
        for lines, closes in {
            ("option http-server-close",): True,
            ("option http-server-close", "option http-keep-alive"): False,
            ("no option http-keep-alive",): True,
            ("option http-server-close", "no option http-server-close"): False,
        }.items():
            config, problems = backend(*lines)
            self.assertEqual(
                (config.backends[0].http_server_close, problems), (closes, []), lines
            )

    def test_forwardfor(self) -> None:
        """option forwardfor takes header, except and if-none."""
        front, problems = frontend(
            "bind :80", "option forwardfor except 10.0.0.0/8 header X-Client if-none"
        )
        self.assertEqual(problems, [])
        self.assertEqual(front.forwardfor, ForwardFor("X-Client", "10.0.0.0/8", True))

    def test_bad_options(self) -> None:
        """A bad forwardfor network, argument or missing value, and an unknown
        option (with a suggestion), are errors."""
        for line, message in {
            "option forwardfor except ::/129": "'::/129' is not a network; write it",
            "option forwardfor except": "'option forwardfor except' needs a network",
            "option forwardfor header": "'option forwardfor header' needs a header",
            "option forwardfor always": "unknown 'option forwardfor' argument 'always'",
            "no option forwardfor x": "unexpected 'x' at the end of 'option'",
            "option forwardfro": "unknown or unsupported option 'forwardfro'; did you",
        }.items():
            self.assertIn(f"t.cfg:3: error: {message}", only(backend(line)[1]))

    def test_acl(self) -> None:
        """An ACL line keeps its name, expression, flags and patterns; '--'
        ends the flags."""
        front, _ = frontend(
            "bind :80", "acl w req.hdr(host,1),lower -i -m beg -- -x w."
        )
        acl = front.acls[0]
        self.assertEqual((acl.name, acl.location), ("w", Location("t.cfg", 4, 7)))
        expression = acl.expression
        self.assertEqual(
            (expression.fetch, expression.args), ("req.hdr", ("host", "1"))
        )
        self.assertEqual(expression.converters, (("lower", ()),))
        self.assertEqual((acl.flags, acl.patterns), (("-i", "-m", "beg"), ("-x", "w.")))

    def test_bad_acl_lines(self) -> None:
        """A bad ACL name, a missing fetch, a bad flag or a bad expression is
        an error saying what to write."""
        for line, message in {
            "acl": "'acl' needs a name and a fetch",
            "acl a/b always_true": "'a/b' is not a valid ACL name",
            "acl a": "an ACL needs a fetch, as in 'ssl_fc_has_crt'",
            "acl a always_true -z": "unknown ACL flag '-z'",
            "acl a always_true -m": "ACL flag -m needs a value",
            "acl a hdr(host": "missing ')' to close the argument list",
            "acl a 1abc": "'1abc' is not a sample expression",
            "acl a hdr;lower": "expected ',' before ';lower'",
        }.items():
            problem = only(frontend("bind :80", line)[1])
            self.assertTrue(problem.startswith("t.cfg:4: error: "), problem)
            self.assertIn(message, problem)


class UnknownKeywordTests(SynchronousTestCase):
    def test_unknown_keyword_suggests(self) -> None:
        """An unknown keyword is an error with a 'did you mean' suggestion."""
        self.assertEqual(
            only(backend("sever s 10.0.0.1:80")[1]),
            "t.cfg:3: error: unknown keyword 'sever' in backend section; did you "
            "mean 'server'?",
        )

    def test_no_without_option(self) -> None:
        """'no' only negates 'option' and 'log': anything else after it is an
        error."""
        self.assertEqual(
            only(backend("no balance")[1]),
            "t.cfg:3: error: 'no' can only come before 'option' or 'log', as in "
            "'no option http-server-close'",
        )

    def test_keyword_in_the_wrong_section(self) -> None:
        """A keyword where it is not allowed says where it belongs."""
        self.assertEqual(
            only(backend("bind :80")[1]),
            "t.cfg:3: error: 'bind' is not allowed in a backend section; it "
            "belongs in frontend or listen sections",
        )
        problem = only(texts(parse("global\n  mode http\n")[1]))
        self.assertIn("'mode' is not allowed in a global section", problem)

    def test_unimplemented_haproxy_keywords(self) -> None:
        """HAProxy keywords certlb lacks each give a message naming them."""
        for line in ("rspadd X-A:\\ 1", "http-response deny", "stats enable"):
            self.assertEqual(
                only(backend(line)[1]),
                f"t.cfg:3: error: '{line.split()[0]}' is an HAProxy keyword that "
                "certlb does not implement yet",
            )

    def test_process_keywords_point_to_twistd(self) -> None:
        """daemon, user and pidfile name twistd's option instead."""
        _, problems = parse("global\n  daemon\n  user haproxy\n  pidfile /x\n")
        for problem, message in zip(
            texts(problems),
            [
                "'daemon': twistd runs certlb in the background unless it is given -n",
                "'user': give twistd --uid instead; remove 'user'",
                "'pidfile': give twistd --pidfile instead; remove 'pidfile'",
            ],
            strict=True,
        ):
            self.assertIn(message, problem)


class ConditionTests(SynchronousTestCase):
    ACLS = ("bind :80", "acl a always_true", "acl b always_true", "acl c always_true")

    def condition(self, text: str) -> tuple[bool, list[list[str]]]:
        """The shape of C{use_backend b TEXT} where a, b and c are ACLs."""
        front, problems = frontend(*self.ACLS, f"use_backend b {text}")
        self.assertEqual(errors(problems), [])
        return shape(front.use_backends[0].condition)

    def test_named_and_anonymous(self) -> None:
        """Terms are ACL names or anonymous ACLs in braces."""
        self.assertEqual(
            self.condition("if a { ssl_fc_has_crt -m bool }"),
            (False, [["a", "{ssl_fc_has_crt}"]]),
        )

    def test_negation(self) -> None:
        """'!' negates the next term, as a word or attached to a name; twice
        cancels out."""
        self.assertEqual(
            self.condition("if ! a !b ! { always_true } ! !c"),
            (False, [["!a", "!b", "!{always_true}", "c"]]),
        )

    def test_and_or(self) -> None:
        """Terms side by side are AND'ed; 'or' and '||' separate OR'ed groups."""
        self.assertEqual(
            self.condition("if a b or c || !a"), (False, [["a", "b"], ["c"], ["!a"]])
        )

    def test_unless(self) -> None:
        """'unless' marks the condition as inverted."""
        self.assertEqual(self.condition("unless a"), (True, [["a"]]))

    def test_location(self) -> None:
        """A condition and its terms know where they were written."""
        front, _ = frontend(*self.ACLS, "use_backend b if a")
        condition = front.use_backends[0].condition
        assert condition is not None
        self.assertEqual(condition.location, Location("t.cfg", 7, 17))
        self.assertEqual(condition.groups[0][0].location, Location("t.cfg", 7, 20))

    def test_errors(self) -> None:
        """Malformed conditions are errors that say what is wrong; a quoted
        '{' is no brace."""
        for text, message in {
            "if": "empty condition after 'if'",
            "if { always_true": "'{' opens an anonymous ACL that no '}' closes",
            "if a }": "'}' without a matching '{'",
            "if a !": "'!' must be followed by an ACL",
            "if a or or b": "nothing between 'or' and 'or'",
            "if a || or b": "nothing between '||' and 'or'",
            "if a or": "nothing after 'or'",
            "if { }": "an ACL needs a fetch",
            'if "{" always_true }': "'{' is not an ACL name",
        }.items():
            _, problems = frontend(*self.ACLS, f"use_backend b {text}")
            self.assertIn(f"t.cfg:7: error: {message}", only(errors(problems)), text)
