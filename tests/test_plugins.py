"""Plugins: found in C{certlb.plugins} and in C{plugin-dir}, usable by name,
and their mistakes reported with their module and the configuration line."""

from __future__ import annotations

import os
import re
import textwrap
from typing import Any, cast

from twisted.internet.task import Clock
from twisted.plugin import pluginPackagePaths
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import certlb.plugins
from certlb.config import load_config, parse_config
from certlb.config.errors import ERROR, ConfigError
from certlb.config.model import Config, SampleExpression
from certlb.health.service import CheckTarget, HealthCheckService
from certlb.proxy.runtime import build_backends, build_runtime
from certlb.rules.acl import compile_expression
from certlb.rules.context import ConnectionInfo, RequestContext
from certlb.rules.fetches import Fetch
from certlb.rules.interfaces import (
    ICheckTarget,
    IConverter,
    IFetch,
    IMatcher,
    IRequestContext,
)
from certlb.rules.registry import BUILTIN, KINDS, active, current, discover, forget
from certlb.tls.state import ClientCertState
from tests.helpers import write_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PLUGIN = '''
import attrs
from twisted.internet.defer import succeed
from twisted.plugin import IPlugin
from zope.interface import implementer

from certlb.rules.actions import LocalResponse
from certlb.rules.interfaces import (
    IBalancer, IBalancerType, IConverter, IFetch, IHealthCheck,
    IHealthCheckType, IMatcher, IRequestAction, IRequestActionType,
)


@implementer(IPlugin, IFetch)
class Tenant:
    """tenant: the X-Tenant header, in lower case."""
    name = "tenant"
    output = "str"
    multiple = False
    scope = "request"

    def compile(self, args):
        if args:
            raise ValueError("'tenant' takes no arguments")
        def fetch(context):
            for name, value in context.headers:
                if name.lower() == "x-tenant":
                    return value.lower()
            return None
        return fetch


@implementer(IPlugin, IConverter)
class Reverse:
    name = "reverse"
    input = "str"
    output = "str"

    def compile(self, args):
        return lambda value: value[::-1]


@implementer(IPlugin, IMatcher)
class Palindrome:
    name = "palindrome"

    def compile(self, patterns, ignore_case):
        return lambda value: value is not None and value == value[::-1]


@implementer(IRequestAction)
@attrs.frozen
class Stamp:
    value: str
    timeout = None

    def run(self, context):
        context.add_header("X-Stamp", self.value)
        if self.value == "stop":
            return LocalResponse(418)
        return None


@implementer(IPlugin, IRequestActionType)
class StampType:
    name = "stamp"

    def build(self, args):
        if len(args) != 1:
            raise ValueError("'stamp' takes one value")
        return Stamp(args[0])


@implementer(IBalancer)
class Last:
    def pick(self, context, servers):
        return servers[-1]


@implementer(IPlugin, IBalancerType)
class LastType:
    name = "last"

    def build(self, args):
        return Last()


@implementer(IHealthCheck)
@attrs.frozen
class Always:
    target: object

    def run(self):
        return succeed("always fine")


@implementer(IPlugin, IHealthCheckType)
class AlwaysType:
    name = "always-check"

    def build(self, args):
        return Always


tenant = Tenant()
reverse = Reverse()
palindrome = Palindrome()
stamp = StampType()
last = LastType()
always = AlwaysType()
'''

USES = """\
global
    plugin-dir {plugins}
frontend fe
    mode http
    bind 127.0.0.1:8080
    acl mirrored tenant,reverse -m palindrome
    http-request stamp first
    http-request stamp stop if mirrored
    default_backend bk
backend bk
    mode http
    balance last
    option always-check
    server a 10.0.0.1:80 check
    server b 10.0.0.2:80 check
"""


class PluginDirTestCase(SynchronousTestCase):
    """Tests with a plugin directory of their own (as C{plugin-dir} names)."""

    def setUp(self) -> None:
        self.addCleanup(forget)
        self.plugins = self.mktemp()
        os.makedirs(self.plugins)

    def module(self, name: str, text: str) -> None:
        with open(os.path.join(self.plugins, name + ".py"), "w") as f:
            f.write(textwrap.dedent(text))

    def check(self, body: str) -> list[str]:
        """The problems of a configuration using this test's plugin
        directory, as C{certlb check} prints them."""
        text = "global\n    plugin-dir {plugins}\n" + body
        _, problems = parse_config(text.format(plugins=self.plugins), "t.cfg", {})
        return [str(p) for p in problems]


FRONTEND = """\
frontend fe
    mode http
    bind 127.0.0.1:8080
    default_backend bk
{lines}
backend bk
    mode http
    server a 10.0.0.1:80
"""


class DiscoveryTests(PluginDirTestCase):
    def test_package_path_follows_twisted(self) -> None:
        """certlb.plugins searches every certlb/plugins directory of sys.path,
        as Twisted's plugin howto says."""
        for path in pluginPackagePaths("certlb.plugins"):
            self.assertIn(path, certlb.plugins.__path__)

    def test_every_kind_used_by_name(self) -> None:
        """A fetch, a converter, a match method, an action, a balancer and a
        health check of a plugin module are used by their names."""
        self.module("mine", PLUGIN)
        config = load_config_text(USES.format(plugins=self.plugins))
        registry = discover(config.global_.plugin_dirs)
        self.assertEqual(registry.origin("fetch", "tenant"), " (plugin module "
                         "certlb.plugins.mine)")  # fmt: skip
        frontends = build_runtime(config)
        context = request([("X-Tenant", "Abba")])
        answer = frontends["fe"].rules.apply(context)
        self.assertEqual(answer.status, 418)
        self.assertEqual(
            context.headers[-2:], [("X-Stamp", "first"), ("X-Stamp", "stop")]
        )
        context = request([("X-Tenant", "abc")])
        self.assertIsNone(frontends["fe"].rules.apply(context))
        backend = build_backends(config)["bk"]
        self.assertEqual(backend.balancer.pick(context, backend.servers).name, "b")
        checks = HealthCheckService([backend], Clock())
        self.assertEqual(
            [type(m.check).__name__ for m in checks.monitors], ["Always", "Always"]
        )
        self.assertEqual(
            [cast(Any, m.check).target.name for m in checks.monitors],
            ["bk/a", "bk/b"],
        )

    def test_log_format_uses_plugin_fetch(self) -> None:
        """A plugin's fetch works in a log-format string (a header's value)."""
        self.module("mine", PLUGIN)
        lines = "    http-request set-header X-T %[tenant,reverse]"
        config = load_config_text(
            f"global\n    plugin-dir {self.plugins}\n" + FRONTEND.format(lines=lines)
        )
        context = request([("X-Tenant", "AbC")])
        build_runtime(config)["fe"].rules.apply(context)
        self.assertEqual(context.headers[-1], ("X-T", "cba"))

    def test_unknown_name_suggests(self) -> None:
        """A name that is neither built in nor a plugin's is an error at its
        line, with a suggestion among the plugins' names too."""
        self.module("mine", PLUGIN)
        problems = self.check(FRONTEND.format(lines="    http-request stammp x"))
        self.assertEqual(
            problems,
            [
                "t.cfg:7: error: unknown http-request action 'stammp'; did you "
                "mean 'stamp'?"
            ],
        )

    def test_bad_arguments_name_module(self) -> None:
        """A plugin that refuses its arguments is an error at the line that
        gives them, naming the plugin's module."""
        self.module("mine", PLUGIN)
        problems = self.check(FRONTEND.format(lines="    http-request stamp a b"))
        self.assertEqual(
            problems,
            [
                "t.cfg:7: error: http-request action 'stamp' (plugin module "
                "certlb.plugins.mine): 'stamp' takes one value"
            ],
        )
        problems = self.check(FRONTEND.format(lines="    acl t tenant(x) -m found"))
        self.assertIn(
            "t.cfg:7: error: fetch 'tenant' (plugin module certlb.plugins.mine): "
            "'tenant' takes no arguments",
            problems,
        )

    def test_plugin_crash_is_an_error(self) -> None:
        """A plugin that raises something else than ValueError on its
        arguments is reported, and does not crash the checker."""
        self.module(
            "crash",
            """
            from twisted.plugin import IPlugin
            from zope.interface import implementer
            from certlb.rules.interfaces import IRequestActionType

            @implementer(IPlugin, IRequestActionType)
            class Crash:
                name = "crash"
                def build(self, args):
                    return {}[args[0]]

            crash = Crash()
            """,
        )
        problems = self.check(FRONTEND.format(lines="    http-request crash x"))
        self.assertEqual(
            problems,
            [
                "t.cfg:7: error: http-request action 'crash' (plugin module "
                "certlb.plugins.crash) failed on its arguments: KeyError: 'x'"
            ],
        )

    def test_build_must_give_an_action(self) -> None:
        """An action type that builds something else than an IRequestAction
        is an error at the line using it."""
        self.module(
            "wrong",
            """
            from twisted.plugin import IPlugin
            from zope.interface import implementer
            from certlb.rules.interfaces import IRequestActionType

            @implementer(IPlugin, IRequestActionType)
            class Wrong:
                name = "wrong"
                def build(self, args):
                    return "deny"

            wrong = Wrong()
            """,
        )
        [problem] = self.check(FRONTEND.format(lines="    http-request wrong"))
        self.assertIn("t.cfg:7: error: http-request action 'wrong' (plugin", problem)
        self.assertIn("which does not provide IRequestAction", problem)

    def test_import_error_names_module(self) -> None:
        """A plugin module that cannot be imported is a warning naming it; a
        configuration using a name it would have given gets an error with
        that note."""
        self.module("broken", "import no_such_module_here\n")
        problems = self.check(FRONTEND.format(lines="    acl t broken_fetch -m found"))
        self.assertIn(
            "t.cfg:0: warning: plugin module certlb.plugins.broken: cannot be "
            "imported: ModuleNotFoundError: No module named 'no_such_module_here'",
            problems,
        )
        [error] = [p for p in problems if ": error: " in p]
        self.assertTrue(
            error.startswith("t.cfg:7: error: unknown fetch 'broken_fetch'")
        )
        self.assertIn("note: plugin module certlb.plugins.broken: cannot be", error)

    def test_syntax_error_names_module(self) -> None:
        """A plugin module with a syntax error is named too."""
        self.module("typo", "def (:\n")
        problems = self.check(FRONTEND.format(lines=""))
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("plugin module certlb.plugins.typo: cannot be imported: "
                      "SyntaxError", problems[0])  # fmt: skip

    def test_clash_between_plugins(self) -> None:
        """Two plugins giving one name: neither is used, a warning says so,
        and a configuration using it gets an error naming both modules."""
        self.module("one", PLUGIN)
        self.module("two", PLUGIN.replace('name = "stamp"', 'name = "stamp2"'))
        problems = self.check(FRONTEND.format(lines="    acl t tenant -m found"))
        [error] = [p for p in problems if ": error: " in p]
        self.assertTrue(error.startswith("t.cfg:7: error: unknown fetch 'tenant'"))
        self.assertIn("fetch 'tenant' is also defined by certlb.plugins.", error)
        warnings = [p for p in problems if "warning" in p and "'tenant'" in p]
        self.assertEqual(len(warnings), 1, problems)
        self.assertIn("certlb uses neither: rename one", warnings[0])
        self.assertNotIn(
            "stamp2", " ".join(problems), "names given once are not reported"
        )

    def test_builtin_name_is_kept(self) -> None:
        """A plugin may not take a built-in's name (nor one of the
        configuration language): it is ignored, with a warning."""
        self.module(
            "shadow",
            PLUGIN.replace('name = "tenant"', 'name = "path"').replace(
                'name = "stamp"', 'name = "deny"'
            ),
        )
        problems = self.check(FRONTEND.format(lines=""))
        self.assertIn(
            "t.cfg:0: warning: plugin module certlb.plugins.shadow: fetch 'path' "
            "is certlb's own name; the plugin is ignored: rename it",
            problems,
        )
        self.assertIn(
            "t.cfg:0: warning: plugin module certlb.plugins.shadow: http-request "
            "action 'deny' is certlb's own name; the plugin is ignored: rename it",
            problems,
        )
        self.assertIs(current().fetches["path"], BUILTIN.fetches["path"])

    def test_bad_spec(self) -> None:
        """A plugin whose attributes are wrong (a fetch's type, a name with
        spaces, a missing method) is reported and not used."""
        self.module(
            "spec",
            PLUGIN.replace(
                'output = "str"\n    multiple', 'output = "text"\n    multiple'
            )
            .replace('name = "reverse"', 'name = "re verse"')
            .replace("def build(self, args):\n        return Last()", "pass"),
        )
        problems = self.check(FRONTEND.format(lines=""))
        text = "\n".join(problems)
        self.assertIn(
            "plugin module certlb.plugins.spec: fetch 'tenant': its output 'text' "
            "is not one of bool, int, str, ip, bin",
            text,
        )
        self.assertIn("a converter needs a name without spaces", text)
        self.assertIn("does not provide IBalancerType as it says", text)

    def test_plugin_balance_and_check_unknown(self) -> None:
        """'balance NAME' and 'option NAME' of no plugin are errors at their
        lines, as a misspelt built-in always was."""
        problems = self.check(
            FRONTEND.format(lines="") + "    balance lastt\n    option always-chek\n"
        )
        self.assertEqual(
            [p.split(";")[0] for p in problems],
            [
                "t.cfg:11: error: unknown balance algorithm 'lastt'",
                "t.cfg:12: error: unknown or unsupported option 'always-chek'",
            ],
        )

    def test_plugin_check_without_checked_server(self) -> None:
        """'option NAME' of a plugin's check warns when no server says check."""
        self.module("mine", PLUGIN)
        problems = self.check(FRONTEND.format(lines="") + "    option always-check\n")
        self.assertEqual(
            problems,
            [
                "t.cfg:11: warning: option 'always-check' has no effect: no "
                "server of backend 'bk' says 'check'"
            ],
        )

    def test_plugin_dir_must_exist(self) -> None:
        """plugin-dir names a directory, or the line is an error."""
        _, problems = parse_config("global\n    plugin-dir /no/such/dir\n", "t.cfg", {})
        self.assertEqual(
            [str(p) for p in problems],
            ["t.cfg:2: error: plugin-dir '/no/such/dir' is not a directory"],
        )

    def test_relative_plugin_dir(self) -> None:
        """A relative plugin-dir is the configuration file's, and the
        configuration's relative files are resolved for plugins as well."""
        self.module("mine", PLUGIN)
        path = os.path.join(os.path.dirname(self.plugins), "t.cfg")
        with open(path, "w") as f:
            f.write(USES.format(plugins=os.path.basename(self.plugins)))
        config = load_config(path)
        self.assertEqual(config.global_.plugin_dirs, (os.path.abspath(self.plugins),))


class BuiltinTests(SynchronousTestCase):
    def test_every_builtin_provides_its_interface(self) -> None:
        """Every built-in fetch, converter and match method provides the
        interface a plugin of its kind provides."""
        for key in ("fetch", "converter", "matcher"):
            for name, builtin in BUILTIN.names[key].items():
                self.assertTrue(verifyObject(KINDS[key].interface, builtin), name)
        self.assertEqual(KINDS["fetch"].interface, IFetch)
        self.assertEqual(KINDS["converter"].interface, IConverter)
        self.assertEqual(KINDS["matcher"].interface, IMatcher)

    def test_check_target(self) -> None:
        """What a plugin's health check is given provides ICheckTarget."""
        target = CheckTarget("bk/a", "10.0.0.1", 80, 2.0, Clock())
        self.assertTrue(verifyObject(ICheckTarget, target))

    def test_matchers_compile(self) -> None:
        """A built-in match method object compiles as -m does."""
        match = BUILTIN.matchers["beg"].compile(("/api",), False)
        self.assertTrue(match("/api/x"))
        self.assertFalse(match("/web"))

    def test_connection_scope_computed_once(self) -> None:
        """A fetch of scope 'connection' is computed once per connection."""
        calls = []

        def count(context: IRequestContext) -> int:
            calls.append(context)
            return 7

        per_connection = Fetch("counted", "int", count, scope="connection")
        with active(BUILTIN.including("fetch", per_connection)):
            sample, _ = compile_expression(SampleExpression("counted"))
        connection = ConnectionInfo(("192.0.2.1", 5), ("127.0.0.1", 80), "fe")
        for _ in range(3):
            self.assertEqual(
                sample(RequestContext("GET", "/", "HTTP/1.1", [], connection)), 7
            )
        self.assertEqual(len(calls), 1)
        other = ConnectionInfo(("192.0.2.1", 6), ("127.0.0.1", 80), "fe")
        sample(RequestContext("GET", "/", "HTTP/1.1", [], other))
        self.assertEqual(len(calls), 2)


def load_config_text(text: str) -> Config:
    config, problems = parse_config(text, "t.cfg", {})
    errors = [p for p in problems if p.severity == ERROR]
    if errors:
        raise ConfigError(errors)
    return config


def request(headers: list[tuple[str, str]]) -> RequestContext:
    connection = ConnectionInfo(
        ("192.0.2.1", 5000), ("127.0.0.1", 8080), "fe", lambda: ClientCertState()
    )
    return RequestContext("GET", "/", "HTTP/1.1", list(headers), connection)


class ReadmeExampleTests(PluginDirTestCase):
    def test_readme_plugin_runs(self) -> None:
        """The README's plugin, in the directory its configuration names,
        is picked up by name, and its test snippet passes."""
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        section = readme[readme.index("## Extending certlb") :]
        section = section[: section.index("\n## ")]
        code = re.findall(r"```python\n(.*?)```", section, re.S)
        config = re.findall(r"```\n(global\n.*?)```", section, re.S)
        self.module("team", code[0])
        plugins = os.path.abspath(self.plugins)
        text = config[0].replace("plugin-dir plugins", f"plugin-dir {plugins}")
        text += "backend ops\n    mode http\n    server a 10.0.0.1:80\n"
        text += "backend app\n    mode http\n    server b 10.0.0.2:80\n"
        path = write_config(self, text)
        load_config(path)
        namespace: dict[str, Any] = {}
        exec(code[0] + code[1], namespace)
        self.assertEqual(discover([self.plugins]).fetches["team"].name, "team")


HANGING = """
import attrs
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.plugin import IPlugin
from zope.interface import implementer

from certlb.rules.interfaces import IHealthCheck, IHealthCheckType


@implementer(IHealthCheck)
@attrs.frozen
class Hang:
    target: object
    how: str

    def run(self):
        if self.how == "cancelled":
            return fail(CancelledError())
        return Deferred()


@implementer(IPlugin, IHealthCheckType)
class HangType:
    name = "hang"

    def build(self, args):
        return lambda target: Hang(target, args[0])


hang = HangType()
"""


class PluginHealthCheckTests(PluginDirTestCase):
    def monitor(self, how: str) -> tuple[Any, Clock]:
        self.module("hang", HANGING)
        config = load_config_text(
            f"global\n    plugin-dir {self.plugins}\n"
            + FRONTEND.format(lines="").replace(
                "server a 10.0.0.1:80", "server a 10.0.0.1:80 check inter 1s fall 2"
            )
            + f"    option hang {how}\n"
        )
        clock = Clock()
        service = HealthCheckService([build_backends(config)["bk"]], clock)
        service.startService()
        self.addCleanup(service.stopService)
        return service.monitors[0], clock

    def test_hanging_check_fails(self) -> None:
        """A plugin's check that never answers is cut (after inter, plus
        timeout check, plus a second), counted as failed, and checks go on:
        the server goes DOWN."""
        monitor, clock = self.monitor("forever")
        self.assertTrue(monitor.server.up)
        for _ in range(10):
            clock.advance(1)
        self.assertFalse(monitor.server.up)

    def test_cancelled_check_fails(self) -> None:
        """A check that fails with CancelledError of its own is a failed
        check; checking goes on."""
        monitor, clock = self.monitor("cancelled")
        for _ in range(5):
            clock.advance(1)
        self.assertFalse(monitor.server.up)


class OptionTypoTests(PluginDirTestCase):
    def test_every_unknown_option_reported(self) -> None:
        """A misspelt option before a plugin's check is still an error, and
        a second plugin check says which one is used."""
        self.module("mine", PLUGIN)
        body = FRONTEND.format(lines="").replace(
            "server a 10.0.0.1:80", "server a 10.0.0.1:80 check"
        )
        problems = self.check(
            body
            + "    option forwardfr\n    option always-check\n    option always-check\n"
        )
        self.assertEqual(
            problems,
            [
                "t.cfg:11: error: unknown or unsupported option 'forwardfr'; did "
                "you mean 'forwardfor'?"
            ],
        )
        self.module("more", PLUGIN.replace('"always-check"', '"other-check"').replace(
            'name = "tenant"', 'name = "tenant2"').replace('"reverse"', '"reverse2"')
            .replace('"palindrome"', '"palindrome2"').replace('"stamp"', '"stamp2"')
            .replace('"last"', '"last2"'))  # fmt: skip
        forget()
        problems = self.check(
            body + "    option other-check\n    option always-check\n"
        )
        self.assertEqual(
            problems,
            [
                "t.cfg:11: warning: option 'other-check' has no effect: 'option "
                "always-check' at t.cfg:12 checks the servers instead"
            ],
        )


class ModuleNameTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.addCleanup(forget)

    def directory(self, fetch: str) -> str:
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)
        with open(os.path.join(path, "mine.py"), "w") as f:
            f.write(PLUGIN.replace('name = "tenant"', f'name = "{fetch}"'))
        return path

    def test_two_directories_one_process(self) -> None:
        """Two configurations' plugin-dirs, each with a module 'mine', give
        each its own plugins in one process."""
        first, second = self.directory("from_a"), self.directory("from_b")
        self.assertIn("from_a", discover([first]).fetches)
        found = discover([second]).fetches
        self.assertIn("from_b", found)
        self.assertNotIn("from_a", found)

    def test_same_name_twice(self) -> None:
        """Two searched directories with a module of one name: the second is
        reported, not silently skipped."""
        first, second = self.directory("from_a"), self.directory("from_b")
        registry = discover([first, second])
        self.assertIn("from_a", registry.fetches)
        [problem] = [p for p in registry.problems if "same module name" in str(p)]
        self.assertIn(os.path.join(second, "mine.py"), str(problem))


class PluginMatcherTests(PluginDirTestCase):
    def test_no_pattern_is_its_business(self) -> None:
        """A plugin's match method without patterns gets no 'never matches'
        warning: the plugin knows whether it needs one."""
        self.module("mine", PLUGIN)
        lines = "    acl pal path -m palindrome\n    http-request deny if pal"
        self.assertEqual(self.check(FRONTEND.format(lines=lines)), [])
