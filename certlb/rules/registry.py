"""The names a configuration may use: certlb's built-ins and the plugins found.

A L{Registry} maps each name a configuration may write (a fetch, a
converter, a match method, an C{http-request} action, a C{balance}
algorithm, a health check C{option}) to the object that provides it.
L{discover} builds one from the built-ins and the plugins of the
C{certlb.plugins} package, found with L{twisted.plugin.getPlugins}: those on
C{sys.path} (directories C{certlb/plugins/}) and those of the directories a
configuration names with C{plugin-dir}.

A plugin may not take a built-in's name, nor one another plugin has taken;
one that does, a module that cannot be imported, or an object that does not
provide its interface as it says are recorded as L{PluginProblem}s, which the
configuration checker reports: as an error at the line of a configuration
that uses the name, else as a warning.

Rules compiled while a registry is L{active} look names up in it; outside,
in the registry of the plugins on C{sys.path}.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import attrs
from twisted.plugin import IPlugin, getPlugins
from twisted.python.modules import getModule
from zope.interface import Interface
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from certlb.config.errors import Location, RuleError, suggest
from certlb.rules.converters import CONVERTERS, CONVERTERS_LATER
from certlb.rules.fetches import ACL_DERIVATIVES, FETCHES, FETCHES_LATER
from certlb.rules.files import relative_to
from certlb.rules.interfaces import (
    IBalancerType,
    IConverter,
    IFetch,
    IHealthCheckType,
    IMatcher,
    IRequestActionType,
)
from certlb.rules.matching import MATCHERS

__all__ = [
    "KINDS",
    "Kind",
    "PluginProblem",
    "Registry",
    "active",
    "build",
    "current",
    "discover",
    "for_config",
]

TYPES = ("bool", "int", "str", "ip", "bin")


def _check_fetch(plugin: Any) -> str | None:
    if plugin.output not in TYPES:
        return f"its output {plugin.output!r} is not one of {', '.join(TYPES)}"
    if plugin.scope not in ("request", "connection"):
        return f"its scope {plugin.scope!r} is not 'request' or 'connection'"
    return None


def _check_converter(plugin: Any) -> str | None:
    for what in ("input", "output"):
        if getattr(plugin, what) not in TYPES:
            return (
                f"its {what} {getattr(plugin, what)!r} is not one of {', '.join(TYPES)}"
            )
    return None


@attrs.frozen
class Kind:
    """A kind of name a configuration uses.

    @ivar what: how messages call it, as in C{"http-request action"}.
    @ivar builtin: the built-in objects of this kind, by name.
    @ivar reserved: names that are not objects of the registry but that a
        plugin may not take either (actions and options the configuration
        language reads itself, HAProxy's names certlb does not implement yet).
    @ivar check: further checks of a plugin's attributes: the problem in
        words, or None.
    """

    what: str
    interface: type[Interface]
    builtin: Mapping[str, Any] = attrs.field(factory=dict)
    reserved: frozenset[str] = frozenset()
    check: Callable[[Any], str | None] = lambda plugin: None


def _reserved_actions() -> tuple[str, ...]:
    from certlb.config.request_rules import HTTP_REQUEST_ACTIONS, HTTP_REQUEST_LATER

    return (*HTTP_REQUEST_ACTIONS, *sorted(HTTP_REQUEST_LATER))


def _reserved_balancers() -> tuple[str, ...]:
    from certlb.config.model import BALANCE_ALGORITHMS

    return BALANCE_ALGORITHMS


def _reserved_options() -> tuple[str, ...]:
    from certlb.config.keywords import OPTIONS

    return tuple(OPTIONS)


KINDS: dict[str, Kind] = {
    "fetch": Kind(
        "fetch",
        IFetch,
        FETCHES,
        FETCHES_LATER | frozenset(ACL_DERIVATIVES),
        _check_fetch,
    ),
    "converter": Kind(
        "converter", IConverter, CONVERTERS, CONVERTERS_LATER, _check_converter
    ),
    "matcher": Kind("match method", IMatcher, MATCHERS),
    "action": Kind("http-request action", IRequestActionType),
    "balancer": Kind("balance algorithm", IBalancerType),
    "check": Kind("health check option", IHealthCheckType),
}
_RESERVED: dict[str, Callable[[], tuple[str, ...]]] = {
    "action": _reserved_actions,
    "balancer": _reserved_balancers,
    "check": _reserved_options,
}


@attrs.frozen
class PluginProblem:
    """Something wrong with a plugin, found when plugins were discovered.

    @ivar module: the plugin's module, as in C{certlb.plugins.allowlist}.
    @ivar kind: a key of L{KINDS}, or None for a module that failed to import.
    @ivar name: the name the plugin claims, or None.
    """

    module: str
    message: str
    kind: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        return f"plugin module {self.module}: {self.message}"


@attrs.frozen
class Registry:
    """Every name a configuration may use, by kind.

    @ivar names: for each kind of L{KINDS}, the objects by name (built-ins
        and plugins).
    @ivar modules: the module of each plugin, by C{(kind, name)}.
    @ivar problems: what was wrong with the plugins found.
    """

    names: Mapping[str, Mapping[str, Any]]
    modules: Mapping[tuple[str, str], str] = attrs.field(factory=dict)
    problems: tuple[PluginProblem, ...] = ()

    @property
    def fetches(self) -> Mapping[str, IFetch]:
        return self.names["fetch"]

    @property
    def converters(self) -> Mapping[str, IConverter]:
        return self.names["converter"]

    @property
    def matchers(self) -> Mapping[str, IMatcher]:
        return self.names["matcher"]

    @property
    def actions(self) -> Mapping[str, IRequestActionType]:
        return self.names["action"]

    @property
    def balancers(self) -> Mapping[str, IBalancerType]:
        return self.names["balancer"]

    @property
    def checks(self) -> Mapping[str, IHealthCheckType]:
        return self.names["check"]

    def including(self, kind: str, plugin: Any, module: str = "<python>") -> Registry:
        """This registry with C{plugin} as a C{kind} of L{KINDS} under its
        name (for a program that composes certlb, or a test), unchecked."""
        names = {key: dict(found) for key, found in self.names.items()}
        names[kind][plugin.name] = plugin
        modules = {**self.modules, (kind, plugin.name): module}
        return Registry(names, modules, self.problems)

    def origin(self, kind: str, name: str) -> str:
        """Where C{name} comes from, for messages: C{" (plugin module M)"},
        or nothing for a built-in."""
        module = self.modules.get((kind, name))
        return "" if module is None else f" (plugin module {module})"

    def notes(self, kind: str, name: str) -> str:
        """What may explain why C{name} is unknown, for a message: the
        problems of plugins claiming it, and the modules that failed to
        import; or nothing."""
        related = [
            str(p)
            for p in self.problems
            if p.kind is None or (p.kind == kind and p.name == name)
        ]
        return "".join(f"; note: {p}" for p in related)

    def unknown(self, kind: str, name: str) -> str:
        """The message for a C{name} of C{kind} that is neither built in nor
        a plugin's, with a suggestion and notes."""
        known = [
            *_RESERVED.get(kind, tuple)(),
            *self.names[kind],
            *sorted(KINDS[kind].reserved),
        ]
        if kind == "balancer":
            listed = ", ".join(dict.fromkeys(known))
            message = (
                f"unknown balance algorithm '{name}'; certlb balances with: {listed}"
            )
        elif kind == "check":
            message = f"unknown or unsupported option '{name}'"
        else:
            message = f"unknown {KINDS[kind].what} '{name}'"
        return message + suggest(name, known) + self.notes(kind, name)


def build(
    kind: str,
    name: str,
    args: tuple[str, ...],
    location: Location,
    interface: type[Interface] | None = None,
) -> Any:
    """What the plugin C{name} of C{kind} builds of C{args} (an action, a
    balancer, a health check factory), in the L{current} registry.

    @param interface: what the result must provide, if anything.
    @raise RuleError: the name is unknown, the plugin refuses the arguments,
        fails, or builds something that does not provide C{interface}; the
        message names the plugin's module.
    """
    registry = current()
    plugin = registry.names[kind].get(name)
    if plugin is None:
        raise RuleError(location, registry.unknown(kind, name))
    what = f"{KINDS[kind].what} '{name}'{registry.origin(kind, name)}"
    try:
        with relative_to(location.file):
            built = plugin.build(args)
    except ValueError as e:
        raise RuleError(location, f"{what}: {e}") from None
    except Exception as e:
        raise RuleError(
            location, f"{what} failed on its arguments: {type(e).__name__}: {e}"
        ) from None
    if interface is not None and not interface.providedBy(built):
        raise RuleError(
            location,
            f"{what} built {built!r}, which does not provide {interface.__name__}",
        )
    return built


BUILTIN = Registry({key: dict(kind.builtin) for key, kind in KINDS.items()})
"""The built-ins alone, with no plugin."""


def discover(directories: Iterable[str] = ()) -> Registry:
    """The built-ins and every plugin of C{certlb.plugins}, with the modules
    of C{directories} searched as modules of that package too.

    Found once per set of directories and kept: plugins are modules, imported
    once per process.
    """
    key = tuple(os.path.abspath(d) for d in directories)
    found = _discovered.get(key)
    if found is None:
        found = _discovered[key] = _discover(key)
    return found


_discovered: dict[tuple[str, ...], Registry] = {}


def _discover(directories: tuple[str, ...]) -> Registry:
    import certlb.plugins as package

    names = {key: dict(kind.builtin) for key, kind in KINDS.items()}
    modules: dict[tuple[str, str], str] = {}
    problems: list[PluginProblem] = []
    reserved = {
        key: kind.reserved | frozenset(_RESERVED.get(key, tuple)())
        for key, kind in KINDS.items()
    }
    claimed: dict[tuple[str, str], list[str]] = {}
    saved = list(package.__path__)
    package.__path__.extend(d for d in directories if d not in saved)
    try:
        _one_module_per_name(package, problems)
        with _importable(package, problems):
            for key, kind in KINDS.items():
                for plugin in getPlugins(kind.interface, package):
                    _add(plugin, key, kind, names, modules, claimed, problems, reserved)
    finally:
        package.__path__[:] = saved
    for (key, name), owners in claimed.items():
        if len(owners) > 1:
            names[key].pop(name, None)
            modules.pop((key, name), None)
            problems.append(
                PluginProblem(
                    owners[0],
                    f"{KINDS[key].what} '{name}' is also defined by "
                    f"{', '.join(owners[1:])}; certlb uses neither: rename one",
                    key,
                    name,
                )
            )
    return Registry(names, modules, tuple(problems))


def _add(
    plugin: Any,
    key: str,
    kind: Kind,
    names: dict[str, dict[str, Any]],
    modules: dict[tuple[str, str], str],
    claimed: dict[tuple[str, str], list[str]],
    problems: list[PluginProblem],
    reserved: Mapping[str, frozenset[str]],
) -> None:
    module = getattr(type(plugin), "__module__", "?")
    name = getattr(plugin, "name", None)
    try:
        verifyObject(kind.interface, plugin)
        verifyObject(IPlugin, plugin)
    except Invalid as e:
        problems.append(
            PluginProblem(
                module,
                f"{plugin!r} does not provide {kind.interface.__name__} as it "
                f"says: {e}",
                key,
                name if isinstance(name, str) else None,
            )
        )
        return
    if not isinstance(name, str) or not name or any(c in name for c in " \t(),"):
        problems.append(
            PluginProblem(
                module,
                f"a {kind.what} needs a name without spaces, commas or "
                f"parentheses, not {name!r}",
                key,
            )
        )
        return
    wrong = kind.check(plugin)
    if wrong is not None:
        problems.append(
            PluginProblem(module, f"{kind.what} '{name}': {wrong}", key, name)
        )
        return
    if (name in names[key] and (key, name) not in modules) or name in reserved[key]:
        problems.append(
            PluginProblem(
                module,
                f"{kind.what} '{name}' is certlb's own name; the plugin is "
                "ignored: rename it",
                key,
                name,
            )
        )
        return
    claimed.setdefault((key, name), []).append(module)
    names[key][name] = plugin
    modules[(key, name)] = module


def _one_module_per_name(
    package: types.ModuleType, problems: list[PluginProblem]
) -> None:
    """Make each module name of the searched directories mean their file:
    forget a module of that name imported from elsewhere (another
    configuration's C{plugin-dir}), and report a name that two directories
    hold (only the first is imported)."""
    found: dict[str, str] = {}
    for root in (os.path.abspath(p) for p in package.__path__):
        try:
            files = sorted(os.listdir(root))
        except OSError:
            continue
        for file in files:
            stem, dot, extension = file.rpartition(".")
            if extension != "py" or not dot or stem == "__init__":
                continue
            path = os.path.join(root, file)
            if stem in found:
                problems.append(
                    PluginProblem(
                        f"{package.__name__}.{stem}",
                        f"{path} is not used: {found[stem]} has the same module "
                        "name; rename one",
                    )
                )
            else:
                found[stem] = path
    for stem, path in found.items():
        name = f"{package.__name__}.{stem}"
        module = sys.modules.get(name)
        loaded = getattr(module, "__file__", None)
        if loaded is not None and os.path.abspath(loaded) != path:
            del sys.modules[name]
            if getattr(package, stem, None) is module:
                delattr(package, stem)


@contextmanager
def _importable(
    package: types.ModuleType, problems: list[PluginProblem]
) -> Iterator[None]:
    """Import every module of C{package}, recording those that fail: within
    the block, each of those is an empty module, so that
    L{twisted.plugin.getPlugins} finds nothing in it (rather than logging an
    unhandled error, with no word of which module it was)."""
    failed = []
    for module in getModule(package.__name__).iterModules():
        try:
            module.load()
        except Exception as e:
            problems.append(
                PluginProblem(
                    module.name, f"cannot be imported: {type(e).__name__}: {e}"
                )
            )
            failed.append(module.name)
            empty = sys.modules[module.name] = types.ModuleType(module.name)
            setattr(package, module.name.rpartition(".")[2], empty)
    try:
        yield
    finally:
        for name in failed:
            del sys.modules[name]
            delattr(package, name.rpartition(".")[2])


_active: ContextVar[Registry | None] = ContextVar("certlb_registry", default=None)


def current() -> Registry:
    """The registry rules are compiled with now."""
    registry = _active.get()
    return discover() if registry is None else registry


def for_config(directories: Iterable[str]) -> Registry:
    """The registry a configuration with C{plugin-dir} C{directories} is
    checked and compiled with: the L{active} one if a program chose one,
    else the built-ins and the plugins found."""
    registry = _active.get()
    return discover(directories) if registry is None else registry


@contextmanager
def active(registry: Registry) -> Iterator[None]:
    """Within the block, rules are compiled with C{registry}: a program that
    composes certlb may give its own objects, with no plugin module, as in
    C{with active(discover().including("fetch", MyFetch())): make_service(...)}.
    """
    token = _active.set(registry)
    try:
        yield
    finally:
        _active.reset(token)


def forget() -> None:
    """Discover plugins anew at the next L{discover} (for tests that add
    plugin modules)."""
    _discovered.clear()
    for name in [n for n in sys.modules if n.startswith("certlb.plugins.")]:
        del sys.modules[name]
