"""Checks of what a configuration takes from plugins: C{balance NAME} and
C{option NAME} of backends, and the plugins found (see
L{certlb.rules.registry}).  Plugin fetches, converters, match methods and
actions are checked with the rules that use them."""

from __future__ import annotations

from certlb.config.errors import WARNING, Location, Problem, RuleError
from certlb.config.model import Config, PluginUse
from certlb.rules.interfaces import IBalancer
from certlb.rules.registry import build, current


def check_plugins(config: Config) -> list[Problem]:
    """The problems of the plugins C{config} uses, and warnings for those
    found that are broken (a module that cannot be imported, a name taken
    twice), said once."""
    problems: list[Problem] = []
    seen: set[PluginUse] = set()
    for backend in config.backends:
        for kind, use, interface in (
            ("balancer", backend.plugin_balance, IBalancer),
            *(("check", use, None) for use in backend.plugin_options),
        ):
            if use is None or use in seen:
                continue  # the same line of a defaults section, said once
            seen.add(use)
            try:
                built = build(kind, use.name, use.args, use.location, interface)
            except RuleError as e:
                problems.append(Problem(e.location, e.message))
                continue
            if kind == "check" and not callable(built):
                problems.append(
                    Problem(
                        use.location,
                        f"option '{use.name}'{current().origin(kind, use.name)} "
                        f"built {built!r}, which is not a callable giving each "
                        "server's IHealthCheck",
                    )
                )
            elif kind == "check" and use is not backend.plugin_check:
                last = backend.plugin_check
                assert last is not None
                problems.append(
                    Problem(
                        use.location,
                        f"option '{use.name}' has no effect: 'option {last.name}' "
                        f"at {last.location} checks the servers instead",
                        WARNING,
                    )
                )
            elif kind == "check" and not any(s.check for s in backend.servers):
                problems.append(
                    Problem(
                        use.location,
                        f"option '{use.name}' has no effect: no server of "
                        f"backend '{backend.name}' says 'check'",
                        WARNING,
                    )
                )
    where = Location(config.files[0] if config.files else "<python>", 0)
    problems += [Problem(where, str(p), WARNING) for p in current().problems]
    return problems
