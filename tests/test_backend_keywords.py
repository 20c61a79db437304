"""The keywords of health checks, balancing and failures: server options,
balance, hash-type, option httpchk, http-check, retries, retry-on,
redispatch, allbackups, the queue/check/tunnel timeouts, grace and
hard-stop-after."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from certlb.config.errors import Location, Problem
from certlb.config.model import (
    BALANCE_ALGORITHMS,
    HASH_FUNCTIONS,
    INIT_STATES,
    ON_ERROR_MODES,
    RETRY_ON_STATUSES,
    Backend,
    Balance,
    Global,
    HttpCheck,
    Server,
    Timeouts,
)
from tests.test_parser import backend, frontend, only, parse, texts

DURATION = (
    "is not a duration; write a number with an optional unit us, ms, s, m, h "
    "or d, as in 5s (no unit means milliseconds)"
)


def server(options: str) -> tuple[Server, list[str]]:
    """Server C{s} at C{10.0.0.1:80} with C{options}, alone on line 3 of a
    backend, and every problem as text."""
    config, problems = backend(f"server s 10.0.0.1:80 {options}")
    return config.backends[0].servers[0], problems


def one_backend(*lines: str) -> Backend:
    """Backend C{b} made of C{lines}, which must give no problem."""
    config, problems = backend(*lines)
    assert problems == [], problems
    return config.backends[0]


def problem(*lines: str) -> Problem:
    """The one problem of backend C{b} made of C{lines}, as an object."""
    body = "".join(f"  {line}\n" for line in lines)
    _, problems = parse("backend b\n  mode http\n" + body + "  server s0 h:80\n")
    assert len(problems) == 1, problems
    return problems[0]


class ServerOptionTests(SynchronousTestCase):
    def test_every_option(self) -> None:
        """Each health-check and balancing option of a server lands in its
        field of the model."""
        s, problems = server(
            "check check-ssl inter 500ms fastinter 2s downinter 1m rise 4 fall 5 "
            "port 8080 addr 10.0.0.9 backup maxconn 100 weight 0 disabled "
            "init-state fully-down observe layer7 error-limit 7 on-error sudden-death "
            "verify none"
        )
        self.assertEqual(problems, [])
        self.assertEqual(
            s,
            Server(
                "s",
                "10.0.0.1",
                80,
                check=True,
                weight=0,
                disabled=True,
                backup=True,
                maxconn=100,
                check_ssl=True,
                inter=500,
                fastinter=2000,
                downinter=60_000,
                rise=4,
                fall=5,
                check_port=8080,
                check_addr="10.0.0.9",
                init_state="fully-down",
                observe="layer7",
                error_limit=7,
                on_error="sudden-death",
                verify="none",
                location=Location("t.cfg", 3, 10),
            ),
        )

    def test_defaults(self) -> None:
        """A server without options has HAProxy's defaults: no checks, inter
        2s, rise 2, fall 3, error-limit 10, on-error fail-check."""
        s, problems = server("")
        self.assertEqual(problems, [])
        self.assertEqual(
            s, Server("s", "10.0.0.1", 80, location=Location("t.cfg", 3, 10))
        )
        self.assertEqual(
            (s.check, s.inter, s.fastinter, s.downinter, s.rise, s.fall),
            (False, 2000, None, None, 2, 3),
        )
        self.assertEqual(
            (s.error_limit, s.on_error, s.observe, s.init_state, s.maxconn),
            (10, "fail-check", None, None, None),
        )

    def test_maxconn_0_is_no_limit(self) -> None:
        """As in HAProxy, C{maxconn 0} on a server means no limit."""
        s, problems = server("maxconn 0")
        self.assertEqual((s.maxconn, problems), (None, []))

    def test_time_units(self) -> None:
        """inter, fastinter and downinter take durations; no unit means
        milliseconds."""
        units = {"500ms": 500, "2s": 2000, "1m": 60_000, "300": 300, "1h": 3_600_000}
        for text, ms in units.items():
            s, problems = server(f"inter {text} fastinter {text} downinter {text}")
            self.assertEqual(problems, [])
            self.assertEqual((s.inter, s.fastinter, s.downinter), (ms, ms, ms))

    def test_choices(self) -> None:
        """init-state, observe and on-error take each of their words."""
        for state in INIT_STATES:
            self.assertEqual(server(f"init-state {state}")[0].init_state, state)
        for layer in ("layer4", "layer7"):
            self.assertEqual(server(f"observe {layer}")[0].observe, layer)
        for mode in ON_ERROR_MODES:
            self.assertEqual(server(f"on-error {mode}")[0].on_error, mode)

    def test_later_option_wins(self) -> None:
        """An option given twice keeps its last value; 'enabled' undoes
        'disabled'."""
        s, problems = server("inter 1s rise 3 inter 4s rise 1 disabled enabled")
        self.assertEqual((s.inter, s.rise, s.disabled, problems), (4000, 1, False, []))

    def test_ipv6_check_address(self) -> None:
        """'addr' takes an IPv6 address with or without brackets: no port
        can follow it, so it is never ambiguous."""
        for text in ("::1", "[::1]"):
            s, problems = server(f"addr {text} port 81")
            self.assertEqual((s.check_addr, s.check_port, problems), ("::1", 81, []))

    def test_bad_values(self) -> None:
        """A bad or out-of-range value, or a missing one, is an error naming
        the option and what it takes."""
        for options, message in {
            "inter 5x": f"'5x' {DURATION}",
            "fastinter 0": "'0': a timeout must be longer than zero",
            "downinter check": f"'check' {DURATION}",
            "rise 0": "rise must be a whole number from 1 to 1000, not '0'",
            "fall 1001": "fall must be a whole number from 1 to 1000, not '1001'",
            "port 65536": "port must be a whole number from 1 to 65535, not '65536'",
            "port 0": "port must be a whole number from 1 to 65535, not '0'",
            "maxconn -1": "maxconn must be a whole number from 0 to 10000000, not '-1'",
            "error-limit -1": "error-limit must be a whole number from 1 to "
            "10000000, not '-1'",
            "weight 1.5": "weight must be a whole number from 0 to 256, not '1.5'",
            "addr 10.0.0.9:81": "'addr' takes an address alone; give the port "
            "with 'port'",
            "addr [::1": "check address '[::1': missing ']' after the IPv6 address",
            "inter": "'server s 10.0.0.1:80 inter' needs a value for 'inter'",
            "check fall": "'server s 10.0.0.1:80 check fall' needs a value for 'fall'",
        }.items():
            self.assertEqual(
                only(server(options)[1]), f"t.cfg:3: error: {message}", options
            )

    def test_bad_choices(self) -> None:
        """A word that is no initial state, layer or on-error mode is an
        error listing those that are, with a suggestion."""
        for options, message in {
            "init-state upp": "'upp' is not an initial state; use one of "
            "fully-up, up, down, fully-down; did you mean 'up'?",
            "observe layer5": "'layer5' is not a mode to observe; use one of "
            "layer4, layer7; did you mean 'layer7'?",
            "on-error markdown": "'markdown' is not a mode for on-error; use one "
            "of fastinter, fail-check, sudden-death, mark-down; did you mean "
            "'mark-down'?",
        }.items():
            self.assertEqual(
                only(server(options)[1]), f"t.cfg:3: error: {message}", options
            )

    def test_error_points_at_the_value(self) -> None:
        """A bad value's error is at the value's column."""
        found = problem("server s 10.0.0.1:80 check rise 0")
        self.assertEqual(found.location, Location("t.cfg", 3, 35))

    def test_default_server(self) -> None:
        """'default-server' is named as an HAProxy keyword certlb lacks."""
        self.assertEqual(
            only(backend("default-server inter 3s")[1]),
            "t.cfg:3: error: 'default-server' is an HAProxy keyword that certlb "
            "does not implement yet",
        )


# Each algorithm's line after 'balance', and what it gives.
ALGORITHMS = {
    "roundrobin": Balance("roundrobin"),
    "static-rr": Balance("static-rr"),
    "leastconn": Balance("leastconn"),
    "first": Balance("first"),
    "source": Balance("source"),
    "uri": Balance("uri"),
    "uri whole len 10 depth 2": Balance(
        "uri", None, ("whole", "len", "10", "depth", "2")
    ),
    "url_param userid": Balance("url_param", "userid"),
    "hdr(Host)": Balance("hdr", "Host"),
    "hdr(host) use_domain_only": Balance("hdr", "host", ("use_domain_only",)),
    "random": Balance("random", "2"),
    "random(5)": Balance("random", "5"),
    "hash req.hdr(host),lower": Balance("hash", "req.hdr(host),lower"),
}


class BalanceTests(SynchronousTestCase):
    def test_every_algorithm(self) -> None:
        """Every algorithm, with its arguments, lands in Backend.balance;
        random draws 2 servers unless told otherwise."""
        for text, expected in ALGORITHMS.items():
            self.assertEqual(one_backend(f"balance {text}").balance, expected, text)
        self.assertEqual(
            {b.algorithm for b in ALGORITHMS.values()}, set(BALANCE_ALGORITHMS)
        )

    def test_hash_type(self) -> None:
        """hash-type sets the method, the function and avalanche, and keeps
        the algorithm, whichever line comes first."""
        expected = Balance("source", None, (), "consistent", "djb2", True)
        for lines in [
            ("balance source", "hash-type consistent djb2 avalanche"),
            ("hash-type consistent avalanche djb2", "balance source"),
        ]:
            self.assertEqual(one_backend(*lines).balance, expected, lines)
        for function in HASH_FUNCTIONS:
            self.assertEqual(
                one_backend(f"hash-type map-based {function}").balance,
                Balance("roundrobin", hash_method="map-based", hash_function=function),
            )
        self.assertEqual(
            one_backend("hash-type consistent").balance,
            Balance(hash_method="consistent", hash_function="sdbm", avalanche=False),
        )

    def test_bad_balance(self) -> None:
        """A missing or unknown algorithm (with a suggestion), a bad or
        missing argument, and words an algorithm does not take are errors."""
        for line, message in {
            "balance": "'balance' needs an algorithm, as in 'balance roundrobin'",
            "balance rundrobin": "unknown balance algorithm 'rundrobin'; certlb "
            "balances with: roundrobin, static-rr, leastconn, first, source, uri, "
            "url_param, hdr, random, hash; did you mean 'roundrobin'?",
            "balance roundrobin(2)": "'roundrobin(2)': only hdr(NAME) and "
            "random(DRAWS) take an argument in parentheses",
            "balance random(": "'random(': only hdr(NAME) and random(DRAWS) take "
            "an argument in parentheses",
            "balance hdr": "'balance hdr' needs a header: hdr(NAME)",
            "balance hdr()": "'balance hdr' needs a header: hdr(NAME)",
            "balance hdr(Host) whole": "unexpected 'whole' after 'hdr(Host)'; it "
            "takes use_domain_only",
            "balance random(0)": "random's draws must be a whole number from 1 to "
            "100, not '0'",
            "balance random(x)": "random's draws must be a whole number from 1 to "
            "100, not 'x'",
            "balance random 3": "unexpected '3' after 'random'",
            "balance leastconn x": "unexpected 'x' after 'leastconn'",
            "balance url_param": "'balance url_param' needs a parameter",
            "balance url_param u check_post": "unexpected 'check_post' after "
            "'url_param'",
            "balance hash": "'balance hash' needs an expression, as in 'hash src'",
            "balance hash src x": "unexpected 'x' after 'hash'",
            "balance hash hdr(host": "in 'hdr(host': missing ')' to close the "
            "argument list",
            "balance uri len": "unexpected 'len' after 'uri'; it takes whole, len "
            "N and depth N",
            "balance uri path-only": "unexpected 'path-only' after 'uri'; it takes "
            "whole, len N and depth N",
            "balance uri depth 0": "uri depth must be a whole number from 1 to "
            "10000, not '0'",
        }.items():
            self.assertEqual(only(backend(line)[1]), f"t.cfg:3: error: {message}", line)

    def test_bad_words_located(self) -> None:
        """An unexpected word after an algorithm's argument is reported at its
        own column, not at the argument's."""
        for line, column in {
            "balance url_param u check_post": 23,
            "balance hash src x": 20,
            "balance hdr(Host) whole": 21,
            "balance uri len 0": 19,
        }.items():
            self.assertEqual(problem(line).location, Location("t.cfg", 3, column))

    def test_bad_hash_type(self) -> None:
        """A missing or unknown method, or an unknown function, is an error
        listing the choices."""
        for line, message in {
            "hash-type": "'hash-type' needs map-based or consistent",
            "hash-type ring": "'ring' is not a hash method; use one of map-based, "
            "consistent",
            "hash-type consistent avalance": "'avalance' is not a hash function; "
            "use one of sdbm, djb2, crc32, none, avalanche; did you mean "
            "'avalanche'?",
        }.items():
            self.assertEqual(only(backend(line)[1]), f"t.cfg:3: error: {message}", line)


class HttpCheckTests(SynchronousTestCase):
    def test_option_httpchk(self) -> None:
        """option httpchk takes [METHOD] URI [VERSION [HOST]]; a lone word
        is the URI, and OPTIONS / HTTP/1.0 fill what is not given."""
        for line, expected in {
            "option httpchk": HttpCheck("OPTIONS", "/", "HTTP/1.0", None),
            "option httpchk /health": HttpCheck("OPTIONS", "/health"),
            "option httpchk GET /health": HttpCheck("GET", "/health"),
            "option httpchk HEAD /up HTTP/1.1": HttpCheck("HEAD", "/up", "HTTP/1.1"),
            "option httpchk GET /up HTTP/1.1 www.example.com": HttpCheck(
                "GET", "/up", "HTTP/1.1", "www.example.com"
            ),
        }.items():
            self.assertEqual(one_backend(line).http_check, expected, line)

    def test_no_option_httpchk(self) -> None:
        """Without option httpchk checks are TCP (http_check is None); 'no
        option httpchk' turns it off again."""
        self.assertIsNone(one_backend().http_check)
        self.assertIsNone(
            one_backend("option httpchk GET /", "no option httpchk").http_check
        )

    def test_expect(self) -> None:
        """http-check expect keeps its kind, pattern and '!', and goes with
        option httpchk written before or after it."""
        for line, expect, pattern, negate in [
            ("status 200", "status", "200", False),
            ("status 200,204", "status", "200,204", False),
            ("status 200-399", "status", "200-399", False),
            ("! rstatus ^5", "rstatus", "^5", True),
            ("string OK", "string", "OK", False),
            ("! rstring ^down$", "rstring", "^down$", True),
        ]:
            expected = HttpCheck(
                "GET", "/up", expect=expect, pattern=pattern, negate=negate
            )
            option, rule = "option httpchk GET /up", f"http-check expect {line}"
            self.assertEqual(one_backend(option, rule).http_check, expected, line)
            self.assertEqual(one_backend(rule, option).http_check, expected, line)

    def test_bad_option_httpchk(self) -> None:
        """A method not in capitals, a fifth word and words after 'no option
        httpchk' are errors."""
        for line, message in {
            "option httpchk get /": "'get' is not an HTTP method",
            "option httpchk GET / HTTP/1.1 h extra": "'option httpchk' takes "
            "METHOD URI VERSION HOST",
            "no option httpchk GET": "unexpected 'GET' at the end of 'option'",
        }.items():
            self.assertEqual(only(backend(line)[1]), f"t.cfg:3: error: {message}", line)
        extra = problem("option httpchk GET / HTTP/1.1 h extra")
        self.assertEqual(extra.location, Location("t.cfg", 3, 35))

    def test_bad_expect(self) -> None:
        """A missing part, an unknown kind, a bad status or regular expression
        and an HAProxy form certlb lacks are errors."""
        for line, message in {
            "http-check": "'http-check' needs 'expect'",
            "http-check send meth GET": "'http-check send' is an HAProxy form that "
            "certlb does not implement yet; it has 'http-check expect'",
            "http-check expect": "'http-check expect' needs what to expect",
            "http-check expect !": "'http-check expect !' needs status, rstatus, "
            "string or rstring",
            "http-check expect status": "'http-check expect status' needs a pattern",
            "http-check expect body x": "'body' is not a kind of expectation; use "
            "one of status, rstatus, string, rstring",
            "http-check expect status 2xx": "'2xx': 'status' takes statuses and "
            "ranges, as in 200, 200,204 or 200-399",
            "http-check expect status 200,": "'200,': 'status' takes statuses and "
            "ranges, as in 200, 200,204 or 200-399",
            "http-check expect rstatus (": "bad regular expression '(': missing ), "
            "unterminated subpattern at position 0",
            "http-check expect string a b": "unexpected 'b' at the end of 'http-check'",
        }.items():
            self.assertEqual(only(backend(line)[1]), f"t.cfg:3: error: {message}", line)


class FailureTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """A backend retries 3 times on connection failures, without
        redispatch, and uses one backup server at a time."""
        b = one_backend()
        self.assertEqual(
            (b.retries, b.retry_on, b.redispatch, b.allbackups),
            (3, frozenset({"conn-failure"}), None, False),
        )

    def test_retries(self) -> None:
        """retries takes 0 to 1000."""
        for count in (0, 7, 1000):
            self.assertEqual(one_backend(f"retries {count}").retries, count)

    def test_bad_retries(self) -> None:
        """A missing, negative, too large or extra value is an error."""
        for line, message in {
            "retries": "'retries' needs a number of retries",
            "retries -1": "retries must be a whole number from 0 to 1000, not '-1'",
            "retries 1001": "retries must be a whole number from 0 to 1000, not '1001'",
            "retries 1 2": "unexpected '2' at the end of 'retries'",
        }.items():
            self.assertEqual(only(backend(line)[1]), f"t.cfg:3: error: {message}", line)

    def test_retry_on(self) -> None:
        """retry-on takes events and statuses; all-retryable-errors stands
        for HAProxy's list; none and 0rtt-rejected (certlb takes no early
        data) retry nothing; a later line replaces an earlier one."""
        retryable: set[str | int] = {
            "conn-failure", "empty-response", "junk-response", "response-timeout",
            500, 502, 503, 504,
        }  # fmt: skip
        cases: dict[tuple[str, ...], set[str | int]] = {
            ("retry-on conn-failure 503 empty-response",): {
                "conn-failure",
                503,
                "empty-response",
            },
            ("retry-on all-retryable-errors",): retryable,
            ("retry-on all-retryable-errors 404",): retryable | {404},
            ("retry-on " + " ".join(map(str, RETRY_ON_STATUSES)),): set(
                RETRY_ON_STATUSES
            ),
            ("retry-on none",): set(),
            ("retry-on 0rtt-rejected",): set(),
            ("retry-on response-timeout 0rtt-rejected",): {"response-timeout"},
            ("retry-on 503", "retry-on junk-response"): {"junk-response"},
        }
        for lines, expected in cases.items():
            self.assertEqual(one_backend(*lines).retry_on, frozenset(expected), lines)

    def test_bad_retry_on(self) -> None:
        """No event, an unknown event or status (with a suggestion) and
        'none' among other events are errors."""
        events = (
            "use none, conn-failure, empty-response, junk-response, "
            "response-timeout, all-retryable-errors or one of the statuses 401, "
            "403, 404, 408, 421, 425, 429, 500, 501, 502, 503, 504"
        )
        for line, message in {
            "retry-on": "'retry-on' needs at least one event",
            "retry-on 418": f"retry-on '418': {events}",
            "retry-on conn-failur": f"retry-on 'conn-failur': {events}; did you "
            "mean 'conn-failure'?",
            "retry-on none 503": "retry-on 'none' means never retry: write it alone",
            "retry-on 503 none": "retry-on 'none' means never retry: write it alone",
        }.items():
            self.assertEqual(only(backend(line)[1]), f"t.cfg:3: error: {message}", line)
        self.assertEqual(
            problem("retry-on 503 none").location, Location("t.cfg", 3, 16)
        )

    def test_redispatch(self) -> None:
        """option redispatch is -1 (the last retry) unless given an
        interval; 0 and 'no option redispatch' mean never."""
        for lines, expected in {
            ("option redispatch",): -1,
            ("option redispatch 3",): 3,
            ("option redispatch -2",): -2,
            ("option redispatch 0",): None,
            ("option redispatch", "no option redispatch"): None,
        }.items():
            self.assertEqual(one_backend(*lines).redispatch, expected, lines)

    def test_allbackups(self) -> None:
        """option allbackups is set, and undone by 'no option allbackups'."""
        self.assertTrue(one_backend("option allbackups").allbackups)
        self.assertFalse(
            one_backend("option allbackups", "no option allbackups").allbackups
        )

    def test_bad_options(self) -> None:
        """A redispatch interval that is no number, and extra words, are
        errors."""
        for line, message in {
            "option redispatch x": "'x' is not an interval; give a number",
            "option redispatch 1 2": "unexpected '2' at the end of 'option'",
            "no option redispatch 3": "unexpected '3' at the end of 'option'",
            "option allbackups x": "unexpected 'x' at the end of 'option'",
        }.items():
            self.assertEqual(only(backend(line)[1]), f"t.cfg:3: error: {message}", line)


class TimeoutTests(SynchronousTestCase):
    TUNNEL = (
        "'timeout tunnel' has no effect: certlb opens no tunnels (it refuses "
        "CONNECT and protocol upgrades such as WebSocket)"
    )

    def test_queue_and_check(self) -> None:
        """timeout queue and timeout check land in the backend's timeouts."""
        self.assertEqual(
            one_backend("timeout queue 5s", "timeout check 1500ms").timeouts,
            Timeouts(queue=5000, check=1500),
        )

    def test_tunnel_warns(self) -> None:
        """timeout tunnel is kept but warns that it does nothing."""
        config, problems = backend("timeout tunnel 1h")
        self.assertEqual(config.backends[0].timeouts, Timeouts(tunnel=3_600_000))
        self.assertEqual(problems, [f"t.cfg:3: warning: {self.TUNNEL}"])

    def test_tunnel_in_defaults_warns_once(self) -> None:
        """timeout tunnel in defaults warns at its own line, once, however
        many proxies inherit it."""
        config, problems = parse(
            "defaults\n  mode http\n  timeout tunnel 1m\n"
            "backend a\n  server s h:80\nbackend b\n  server s h:80\n"
        )
        self.assertEqual(texts(problems), [f"t.cfg:3: warning: {self.TUNNEL}"])
        self.assertEqual([b.timeouts.tunnel for b in config.backends], [60_000] * 2)

    def test_backend_timeouts_in_a_frontend(self) -> None:
        """timeout queue, check and tunnel in a frontend warn that they
        belong in backends."""
        for which in ("queue", "check", "tunnel"):
            self.assertEqual(
                only(frontend("bind :80", f"timeout {which} 5s")[1]),
                f"t.cfg:4: warning: 'timeout {which}' has no effect in a frontend "
                "section; it belongs in defaults or listen or backend sections",
            )

    def test_bad_durations(self) -> None:
        """A bad or zero queue or check timeout is an error."""
        self.assertEqual(
            only(backend("timeout check 2 s")[1]),
            "t.cfg:3: error: unexpected 's' at the end of 'timeout'",
        )
        self.assertEqual(
            only(backend("timeout queue 0ms")[1]),
            "t.cfg:3: error: '0ms': a timeout must be longer than zero",
        )


class StoppingTests(SynchronousTestCase):
    def test_global(self) -> None:
        """grace and hard-stop-after in the global section land in Global,
        not in the frontends."""
        config, problems = parse(
            "global\n  grace 2s\n  hard-stop-after 1m\n"
            "frontend f\n  mode http\n  bind :80\n  default_backend b\n"
            "backend b\n  mode http\n  server s h:80\n"
        )
        self.assertEqual(problems, [])
        self.assertEqual(config.global_, Global(hard_stop_after=60_000, grace=2000))
        self.assertIsNone(config.frontends[0].grace)

    def test_frontend_and_listen(self) -> None:
        """grace in a frontend or a listen section is that frontend's."""
        front, problems = frontend("bind :80", "grace 500ms")
        self.assertEqual((front.grace, problems), (500, []))
        config, found = parse(
            "listen l\n  mode http\n  bind :80\n  grace 1m\n  server s h:80\n"
        )
        self.assertEqual((config.frontends[0].grace, found), (60_000, []))

    def test_bad_grace(self) -> None:
        """A missing, bad or zero duration and extra words are errors."""
        for line, message in {
            "grace": "'grace' needs a duration, as in 10s",
            "grace 5x": f"'5x' {DURATION}",
            "grace 0": "'0': a timeout must be longer than zero",
            "grace 5s 6s": "unexpected '6s' at the end of 'grace'",
        }.items():
            self.assertEqual(
                only(frontend("bind :80", line)[1]), f"t.cfg:4: error: {message}"
            )

    def test_bad_hard_stop_after(self) -> None:
        """A missing or bad duration and extra words are errors."""
        for line, message in {
            "hard-stop-after": "'hard-stop-after' needs a duration, as in 30s",
            "hard-stop-after 1.5s": f"'1.5s' {DURATION}",
            "hard-stop-after 1s now": "unexpected 'now' at the end of "
            "'hard-stop-after'",
        }.items():
            config, problems = parse(f"global\n  {line}\n")
            self.assertEqual(only(texts(problems)), f"t.cfg:2: error: {message}")
            self.assertIsNone(config.global_.hard_stop_after)


class SectionTests(SynchronousTestCase):
    BACKEND_SIDE = "it belongs in defaults or listen or backend sections"

    def test_backend_keywords_in_a_frontend(self) -> None:
        """balance, hash-type, http-check, retries, retry-on and server are
        errors in a frontend, saying where they belong."""
        for line in (
            "balance roundrobin",
            "hash-type consistent",
            "http-check expect status 200",
            "retries 3",
            "retry-on none",
        ):
            keyword = line.split()[0]
            self.assertEqual(
                only(frontend("bind :80", line)[1]),
                f"t.cfg:4: error: '{keyword}' is not allowed in a frontend "
                f"section; {self.BACKEND_SIDE}",
            )
        self.assertEqual(
            only(frontend("bind :80", "server s h:80 check")[1]),
            "t.cfg:4: error: 'server' is not allowed in a frontend section; it "
            "belongs in listen or backend sections",
        )

    def test_backend_options_in_a_frontend(self) -> None:
        """option httpchk, redispatch and allbackups in a frontend, where
        they do nothing, are warnings saying where they belong."""
        for line in (
            "option httpchk GET /",
            "option redispatch",
            "no option allbackups",
        ):
            name = line.split()[-1] if line.startswith("no") else line.split()[1]
            found = only(frontend("bind :80", line)[1])
            self.assertEqual(
                found,
                f"t.cfg:4: warning: 'option {name}' has no effect in a frontend "
                f"section; {self.BACKEND_SIDE}",
            )

    def test_frontend_keywords_in_a_backend(self) -> None:
        """grace and maxconn are errors in a backend, saying where they
        belong."""
        for line in ("grace 5s", "maxconn 10"):
            self.assertEqual(
                only(backend(line)[1]),
                f"t.cfg:3: error: '{line.split()[0]}' is not allowed in a backend "
                "section; it belongs in global or defaults or frontend or listen "
                "sections",
            )

    def test_global_only(self) -> None:
        """hard-stop-after is an error outside the global section; backend
        keywords are errors in it."""
        self.assertEqual(
            only(texts(parse("defaults\n  mode http\n  hard-stop-after 5s\n")[1])),
            "t.cfg:3: error: 'hard-stop-after' is not allowed in a defaults "
            "section; it belongs in global sections",
        )
        _, problems = parse("global\n  retries 3\n  option redispatch\n")
        self.assertEqual(
            texts(problems),
            [
                "t.cfg:2: error: 'retries' is not allowed in a global section; "
                f"{self.BACKEND_SIDE}",
                "t.cfg:3: error: 'option' is not allowed in a global section; it "
                "belongs in defaults or frontend or listen or backend sections",
            ],
        )


# What DefaultsTests.DEFAULTS gives a backend.
INHERITED = {
    "balance": Balance("source", None, (), "consistent", "crc32"),
    "http_check": HttpCheck("GET", "/up", expect="status", pattern="200"),
    "retries": 5,
    "retry_on": frozenset({503}),
    "redispatch": 2,
    "allbackups": True,
    "timeouts": Timeouts(queue=3000, check=1000),
}


class DefaultsTests(SynchronousTestCase):
    DEFAULTS = (
        "defaults\n  mode http\n  balance source\n  hash-type consistent crc32\n"
        "  option httpchk GET /up\n  http-check expect status 200\n"
        "  retries 5\n  retry-on 503\n  option redispatch 2\n"
        "  option allbackups\n  timeout queue 3s\n  timeout check 1s\n"
        "  grace 4s\n"
    )

    def settings(self, b: Backend) -> dict[str, object]:
        """The fields of C{b} that L{INHERITED} names."""
        return {name: getattr(b, name) for name in INHERITED}

    def test_inherited(self) -> None:
        """Backends and listen sections get every balancing, check and
        failure setting of defaults; frontends and listen sections its
        grace."""
        config, problems = parse(
            self.DEFAULTS + "backend b\n  server s h:80\n"
            "listen l\n  bind :80\n  server s h:80\n"
        )
        self.assertEqual(problems, [])
        for b in config.backends:
            self.assertEqual(self.settings(b), INHERITED, b.name)
        self.assertEqual(config.frontends[0].grace, 4000)

    def test_overridden(self) -> None:
        """A backend's own lines replace what defaults gave it; a new
        'balance' keeps the inherited hash-type."""
        config, problems = parse(
            self.DEFAULTS + "backend b\n  balance uri\n  no option httpchk\n"
            "  retries 0\n  retry-on none\n  no option redispatch\n"
            "  no option allbackups\n  timeout check 9s\n  server s h:80\n"
            "frontend f\n  bind :80\n  grace 1s\n  default_backend b\n"
        )
        self.assertEqual(problems, [])
        self.assertEqual(
            self.settings(config.backends[0]),
            {
                "balance": Balance("uri", None, (), "consistent", "crc32"),
                "http_check": None,
                "retries": 0,
                "retry_on": frozenset(),
                "redispatch": None,
                "allbackups": False,
                "timeouts": Timeouts(queue=3000, check=9000),
            },
        )
        self.assertEqual(config.frontends[0].grace, 1000)

    def test_expect_without_httpchk(self) -> None:
        """As in HAProxy, http-check expect without option httpchk turns no
        HTTP check on, and is warned about."""
        config, problems = parse(
            "backend b\n  mode http\n  http-check expect status 204\n"
            "  server s h:80 check\n"
        )
        self.assertIsNone(config.backends[0].http_check)
        self.assertEqual(
            texts(problems),
            [
                "t.cfg:3: warning: 'http-check expect' has no effect without "
                "'option httpchk' (as in HAProxy): add 'option httpchk' to check "
                "servers over HTTP"
            ],
        )

    def test_expect_added_to_inherited_httpchk(self) -> None:
        """http-check expect in a backend completes the option httpchk of
        defaults."""
        config, problems = parse(
            "defaults\n  mode http\n  option httpchk HEAD /ping HTTP/1.1\n"
            "backend b\n  http-check expect ! string maintenance\n  server s h:80\n"
        )
        self.assertEqual(problems, [])
        self.assertEqual(
            config.backends[0].http_check,
            HttpCheck("HEAD", "/ping", "HTTP/1.1", None, "string", "maintenance", True),
        )

    def test_later_defaults_resets(self) -> None:
        """A later defaults section gives none of the earlier one's settings."""
        config, _ = parse(
            self.DEFAULTS + "defaults\n  mode http\nbackend b\n  server s h:80\n"
        )
        self.assertEqual(
            self.settings(config.backends[0]),
            {
                "balance": Balance(),
                "http_check": None,
                "retries": 3,
                "retry_on": frozenset({"conn-failure"}),
                "redispatch": None,
                "allbackups": False,
                "timeouts": Timeouts(),
            },
        )
