"""Checks of the request rules: errors in them, and likely mistakes.

Every rule's condition and action must compile (log-format strings too).
An ACL that no condition uses is a warning.  C{ssl_c_*} fetches where no
bind asks for a client certificate are a warning (they would always say
"no certificate").  C{redirect location} rules are played against the
certificate states that their conditions tell apart: a rule that fires on
its own target, or rules that send a client back and forth, are warnings
naming the state and the paths (the article's phase 4 has such a loop).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence

import attrs

from certlb.config.errors import WARNING, Location, Problem
from certlb.config.model import (
    AclDef,
    Backend,
    Condition,
    Config,
    Frontend,
    HeaderRule,
    PluginAction,
    Redirect,
    RequestRule,
    Return,
)
from certlb.rules.acl import (
    RuleError,
    UndefinedAcl,
    acls_by_name,
    compile_condition,
    compile_expression,
)
from certlb.rules.actions import RedirectAction, compile_action
from certlb.rules.context import ConnectionInfo, RequestContext
from certlb.rules.fetches import FETCHES
from certlb.rules.interfaces import ICondition
from certlb.rules.logformat import compile_log_format
from certlb.tls.state import ClientCertState
from certlb.tls.verify_codes import VERIFY_CODES

# Fetches in a log-format string: %[name or %{flags}[name
LOG_FORMAT_FETCH = re.compile(r"%(?:\{[^}]*\})?\[([A-Za-z_][A-Za-z0-9_.]*)")
_VERIFY_PATTERN = re.compile(r"^\d+$")
OTHER_ERROR = 21  # stands for "any other error": an unknown CA ends with it


def check_rules(config: Config, incomplete: Iterable[str] = ()) -> list[Problem]:
    """Every problem of the request rules of C{config}.

    @param incomplete: as for L{certlb.config.checker.check}: sections with a
        line the parser could not read (an undefined ACL there is most
        likely that line).
    """
    skip = frozenset(incomplete)
    listens = {f.name for f in config.frontends if f.listen}
    problems: list[Problem] = []
    verifying = {
        f.name: any(b.verify != "none" for b in f.binds) for f in config.frontends
    }
    callers = _callers(config)
    # The back of a listen section has the same rules as its front.
    proxies: list[Frontend | Backend] = [
        *config.frontends,
        *(b for b in config.backends if b.name not in listens),
    ]
    for proxy in proxies:
        kind = "frontend" if isinstance(proxy, Frontend) else "backend"
        problems += _compile(proxy, f"{kind} {proxy.name}" not in skip)
        problems += _unused_acls(proxy)
        if isinstance(proxy, Frontend):
            asks = verifying[proxy.name]
        else:
            asks = any(
                verifying.get(name, False) for name in callers.get(proxy.name, ())
            )
        if not asks:
            problems += _certificate_fetches(proxy, isinstance(proxy, Frontend))
        problems += redirect_loops(proxy)
    return problems


def _rules(proxy: Frontend | Backend) -> Sequence[RequestRule]:
    return (*proxy.http_request, *proxy.reqadd, *proxy.redirects)


def _conditions(proxy: Frontend | Backend) -> Iterator[Condition]:
    for rule in _rules(proxy):
        if rule.condition is not None:
            yield rule.condition
    if isinstance(proxy, Frontend):
        for use in proxy.use_backends:
            if use.condition is not None:
                yield use.condition
    else:
        for stick in proxy.stick_rules:
            if stick.condition is not None:
                yield stick.condition


def _compile(proxy: Frontend | Backend, complete: bool) -> list[Problem]:
    named = acls_by_name(proxy.acls)
    problems = []
    for rule in _rules(proxy):
        try:
            if rule.condition is not None:
                compile_condition(rule.condition, named)
            compile_action(rule)
        except UndefinedAcl as e:
            if complete:
                problems.append(Problem(e.location, e.message))
        except RuleError as e:
            problems.append(Problem(e.location, e.message))
    if isinstance(proxy, Frontend) and proxy.log_format is not None:
        try:
            compile_log_format(proxy.log_format, proxy.log_format_location)
        except RuleError as e:
            problems.append(Problem(e.location, e.message))
    for stick in () if isinstance(proxy, Frontend) else proxy.stick_rules:
        try:
            if stick.condition is not None:
                compile_condition(stick.condition, named)
            compile_expression(stick.expression)
        except UndefinedAcl as e:
            if complete:
                problems.append(Problem(e.location, e.message))
        except RuleError as e:
            problems.append(Problem(e.location, e.message))
    return problems


def _unused_acls(proxy: Frontend | Backend) -> list[Problem]:
    used = {
        term.name
        for condition in _conditions(proxy)
        for group in condition.groups
        for term in group
        if term.name is not None
    }
    seen: set[str] = set()
    problems = []
    for acl in proxy.acls:
        if acl.name not in used and acl.name not in seen:
            seen.add(acl.name or "")
            problems.append(
                Problem(
                    acl.location,
                    f"ACL '{acl.name}' is declared but no condition of this "
                    "section uses it",
                    WARNING,
                )
            )
    return problems


def _callers(config: Config) -> dict[str, set[str]]:
    """For each backend, the frontends that may send requests to it."""
    callers: dict[str, set[str]] = {}
    for frontend in config.frontends:
        targets = [u.backend for u in frontend.use_backends]
        if frontend.default_backend:
            targets.append(frontend.default_backend)
        for target in targets:
            callers.setdefault(target, set()).add(frontend.name)
    return callers


def _fetches(proxy: Frontend | Backend) -> Iterator[tuple[str, Location]]:
    """Every fetch a section's ACLs and log-format strings use."""
    acls: list[AclDef] = list(proxy.acls)
    for condition in _conditions(proxy):
        acls += [t.anonymous for g in condition.groups for t in g if t.anonymous]
    for acl in acls:
        yield acl.expression.fetch, acl.location
    for rule in _rules(proxy):
        texts: Iterable[str | None] = ()
        if isinstance(rule, HeaderRule) and rule.log_format:
            texts = (rule.value,)
        elif isinstance(rule, Redirect) and rule.log_format:
            texts = (rule.target,)
        elif isinstance(rule, Return):
            texts = (
                rule.body if rule.log_format else None,
                *(v for _, v in rule.headers),
            )
        for text in texts:
            for match in LOG_FORMAT_FETCH.finditer(text or ""):
                yield match.group(1), rule.location


def _certificate_fetches(proxy: Frontend | Backend, frontend: bool) -> list[Problem]:
    problems = []
    reported: set[str] = set()
    for fetch, location in _fetches(proxy):
        if fetch.startswith("ssl_c_") and fetch in FETCHES and fetch not in reported:
            reported.add(fetch)
            where = (
                "no bind of this frontend asks for a client certificate"
                if frontend
                else "no frontend that sends requests here asks for a client "
                "certificate"
            )
            problems.append(
                Problem(
                    location,
                    f"'{fetch}' describes the client certificate, but {where} "
                    "('verify none'): it will always say there is none",
                    WARNING,
                )
            )
    return problems


def _states(proxy: Frontend | Backend) -> list[tuple[str, ClientCertState]]:
    """Certificate states worth playing: none, valid, and each verify error
    code the section tests, plus one it does not."""
    codes = {OTHER_ERROR}
    for acl in _all_acls(proxy):
        if acl.expression.fetch in ("ssl_c_verify", "ssl_c_err", "ssl_c_ca_err"):
            codes.update(int(p) for p in acl.patterns if _VERIFY_PATTERN.match(p))
    # Errors first: the states a redirect farm for bad certificates is for.
    states = []
    for code in sorted(codes - {0}):
        state = ClientCertState(True, True, verify=code, crt_err=code)
        meaning = VERIFY_CODES[code][1] if code in VERIFY_CODES else "unknown"
        states.append((f"whose certificate fails with error {code} ({meaning})", state))
    states.append(("with a valid certificate", ClientCertState(True, True)))
    states.append(("without a certificate", ClientCertState()))
    return states


def _all_acls(proxy: Frontend | Backend) -> Iterator[AclDef]:
    yield from proxy.acls
    for condition in _conditions(proxy):
        for group in condition.groups:
            for term in group:
                if term.anonymous is not None:
                    yield term.anonymous


# Fetches whose value comes from request headers, which loop detection does
# not play: a rule that depends on them might answer, or not.
_HEADER_FETCHES = frozenset(
    "hdr hdr_cnt req.hdr req.hdr_cnt hdr_beg hdr_end hdr_sub hdr_reg hdr_dir "
    "hdr_dom hdr_len".split()
)


@attrs.frozen
class _Played:
    """An answering rule, as loop detection plays it.

    @ivar follows: a C{redirect location} to a path of this site, without a
        cookie: where it leads is known.  Other answers end the journey.
    @ivar unknown: its condition reads request headers: whether it fires is
        not known.
    """

    rule: RequestRule
    condition: ICondition | None
    action: RedirectAction | None
    follows: bool
    unknown: bool


def _played(proxy: Frontend | Backend) -> list[_Played] | None:
    named = acls_by_name(proxy.acls)
    played = []
    for rule in (*proxy.http_request, *proxy.redirects):
        if isinstance(rule, HeaderRule | PluginAction):
            continue  # does not answer, or cannot be played without a network
        try:
            condition = (
                compile_condition(rule.condition, named) if rule.condition else None
            )
            action = compile_action(rule)
        except RuleError:
            return None  # reported by _compile
        follows = (
            isinstance(rule, Redirect)
            and rule.kind == "location"
            and rule.target.startswith("/")
            and not (rule.log_format and "%" in rule.target)
            and rule.set_cookie is None
            and rule.clear_cookie is None
        )
        fetches = {
            acl.expression.fetch for acl in condition_acls(rule.condition, named)
        }
        played.append(
            _Played(
                rule,
                condition,
                action if isinstance(action, RedirectAction) else None,
                follows,
                bool(fetches & _HEADER_FETCHES),
            )
        )
    return played


def condition_acls(
    condition: Condition | None, named: Mapping[str, Sequence[AclDef]]
) -> Iterator[AclDef]:
    """The ACL lines a condition reads, anonymous and named."""
    if condition is None:
        return
    for group in condition.groups:
        for term in group:
            if term.anonymous is not None:
                yield term.anonymous
            elif term.name is not None:
                yield from named.get(term.name, ())


def redirect_loops(proxy: Frontend | Backend) -> list[Problem]:
    """Warnings for C{redirect location} rules that send clients in circles.

    The section's answering rules (C{http-request deny}, C{return} and
    C{redirect}, then C{redirect}) are played in order for each certificate
    state its conditions tell apart, from C{/} and from each target.
    """
    played = _played(proxy)
    if not played or not any(p.follows for p in played):
        return []
    problems: list[Problem] = []
    reported: set[frozenset[int]] = set()
    starts = ["/", *(p.rule.target for p in played if p.follows)]  # type: ignore[union-attr]
    for description, state in _states(proxy):
        for start in starts:
            cycle = _follow(played, state, start)
            if cycle is None:
                continue
            rules, paths = cycle
            key = frozenset(id(rule) for rule in rules)
            if key in reported:
                continue
            reported.add(key)
            first = min(rules, key=lambda rule: rule.location)
            problems.append(
                Problem(
                    first.location, _loop_message(rules, paths, description), WARNING
                )
            )
    return problems


def _follow(
    played: list[_Played], state: ClientCertState, path: str
) -> tuple[list[Redirect], list[str]] | None:
    """Follow the redirects from C{path}; return the rules and paths of a
    cycle, or None when the journey ends (or cannot be told)."""
    seen = [path]
    fired: list[Redirect] = []
    for _ in range(len(played) + 1):
        context = _context(path, state)
        answer = None
        for rule in played:
            if rule.unknown:
                return None
            if rule.condition is None or rule.condition.matches(context):
                answer = rule
                break
        if answer is None or not answer.follows or answer.action is None:
            return None
        assert isinstance(answer.rule, Redirect)
        path = answer.action.location(context).partition("?")[0]
        fired.append(answer.rule)
        if path in seen:
            start = seen.index(path)
            return fired[start:], [*seen[start:], path]
        seen.append(path)
    return None


def _context(path: str, state: ClientCertState) -> RequestContext:
    connection = ConnectionInfo(
        ("192.0.2.1", 50000), ("192.0.2.2", 443), "", lambda: state
    )
    return RequestContext("GET", path, "HTTP/1.1", [("Host", "localhost")], connection)


def _loop_message(rules: list[Redirect], paths: list[str], description: str) -> str:
    lines = sorted({str(r.location.line) for r in rules}, key=int)
    if len(paths) == 2:
        return (
            f"redirect loop: for a client {description}, this rule redirects "
            f"{paths[0]} to itself, again and again; its condition must not hold "
            "on its own target"
        )
    route = " -> ".join(paths)
    return (
        f"redirect loop: for a client {description}, the redirects at lines "
        f"{', '.join(lines)} send it around {route}"
    )
