"""Rule traces: which rules matched a request, and why it went where it went.

One way of telling, with two users: C{certlb check --explain}, where a
described request (method, path, headers, a kind of client certificate) is
played through a compiled frontend with no network (L{explain} returns the
lines); and C{twistd certlb --debug-rules}, where each live request's lines
are logged at debug level (L{enable_tracing}).

Either way the lines come from the same places: L{RuleSet.apply} and
L{FrontendRuntime.route} call C{context.trace}, and a L{Tracer} adds to each
line about a condition the ACLs it read, their values and verdicts.  Traces
go to the operator, never to clients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from twisted.logger import Logger
from zope.interface import implementer

from certlb.config.model import (
    AclDef,
    AclTerm,
    Backend,
    Condition,
    Config,
    Frontend,
    UseBackend,
)
from certlb.rules.acl import (
    acl_derivative,
    acls_by_name,
    compile_acl,
    compile_sample,
)
from certlb.rules.actions import LocalResponse, RuleSet, describe
from certlb.rules.context import ConnectionInfo, RequestContext
from certlb.rules.interfaces import IRequestAction, IRequestContext
from certlb.rules.registry import BUILTIN, active, for_config
from certlb.tls.state import ClientCertState, VerifyPolicy
from certlb.tls.verify_codes import VERIFY_CODES

if TYPE_CHECKING:
    from certlb.proxy.runtime import BackendRuntime, FrontendRuntime

log = Logger()

# The kinds of client certificate --explain plays, by name: the verification
# result each gives (None: no certificate), as the redirect-loop check
# (certlb.config.rule_checks) plays them.
CERT_KINDS: dict[str, int | None] = {
    "none": None,
    "valid": 0,
    "expired": 10,
    "not-yet-valid": 9,
    "revoked": 23,
    "no-crl": 3,
    "self-signed": 18,
    "unknown-ca": 20,
    "untrusted": 21,
}
# The verdicts of RuleSet.apply and FrontendRuntime.route after which the
# condition's ACLs are worth showing.
_EXPLAINED = ("condition false, skipped", "runs", "condition true, chosen")
_INDENT = "    "


def use_backend_label(rule: UseBackend) -> str:
    """A C{use_backend} rule as traces name it: C{etc/x.cfg:9 use_backend b}."""
    return f"{rule.location} use_backend {rule.backend}"


def cert_state(kind: str) -> tuple[str, ClientCertState]:
    """A certificate kind (a name of L{CERT_KINDS}, or a verification error
    code) as a description and the state rules see.

    @raise ValueError: an unknown kind.
    """
    code = CERT_KINDS[kind] if kind in CERT_KINDS else _code(kind)
    if code is None:
        return "no certificate", ClientCertState()
    if code == 0:
        return "a valid certificate", ClientCertState(True, True)
    return (
        f"a certificate that fails with error {code} ({_meaning(code)})",
        ClientCertState(True, True, verify=code, crt_err=code),
    )


def _code(kind: str) -> int:
    if not kind.isdigit():
        raise ValueError(
            f"unknown certificate kind {kind!r}; use one of "
            f"{', '.join(CERT_KINDS)}, or a verification error number"
        )
    return int(kind)


def _meaning(code: int) -> str:
    return VERIFY_CODES[code][1] if code in VERIFY_CODES else "unknown error"


# -- why a condition holds ------------------------------------------------------


@attrs.frozen
class _Probe:
    """One ACL line, compiled for a trace: its verdict and its value.

    @ivar text: the ACL as a trace names it, with its place.
    @ivar shown: the expression whose value is shown (C{ssl_c_verify}).
    @ivar builtin: it reads only certlb's own fetches, converters and match
        methods, which have no side effect: reading it again for a live
        trace changes nothing (a plugin's might count, or raise).
    """

    text: str
    shown: str
    test: Callable[[IRequestContext], bool]
    values: Callable[[IRequestContext], Sequence[Any]]
    builtin: bool

    @classmethod
    def compile(cls, acl: AclDef) -> _Probe:
        expression = acl.expression
        derivative = acl_derivative(expression.fetch)
        if derivative is not None:
            expression = attrs.evolve(expression, fetch=derivative.fetch)
        words = " ".join((str(acl.expression), *acl.flags, *acl.patterns))
        if acl.name is None:
            text = f"{{ {words} }} ({acl.location})"
        else:
            text = f"acl {acl.name} ({acl.location}) {words}"
        compiled = compile_sample(expression, in_acl=True)
        flags = list(acl.flags)
        method = flags[flags.index("-m") + 1] if "-m" in flags else None
        builtin = (
            expression.fetch in BUILTIN.fetches
            and all(name in BUILTIN.converters for name, _ in expression.converters)
            and (method is None or method in BUILTIN.matchers)
        )
        return cls(text, str(expression), compile_acl(acl), compiled.values(), builtin)

    def line(self, context: IRequestContext, live: bool) -> tuple[bool, str]:
        """Whether it matches, and a line saying so and why.

        @param live: the request is a client's: a plugin's ACL is not read
            again (its verdict is not known here: said false).
        """
        if live and not self.builtin:
            return False, f"{self.text}: a plugin's, not read again for the trace"
        try:
            matched = self.test(context)
            values = [v for v in self.values(context) if v is not None]
        except Exception as e:
            return False, f"{self.text}: raised {type(e).__name__}: {e}"
        if not values:
            why = f"{self.shown} has no value"
        else:
            why = f"{self.shown} is {', '.join(_show(v) for v in values)}"
        return matched, f"{self.text}: {_truth(matched)} ({why})"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return _truth(value)
    if isinstance(value, bytes):
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _truth(value: bool) -> str:
    return "true" if value else "false"


@attrs.frozen
class ConditionExplainer:
    """A condition's ACLs, compiled again to tell why it holds or not."""

    condition: Condition
    groups: tuple[tuple[tuple[AclTerm, tuple[_Probe, ...]], ...], ...]

    @classmethod
    def compile(
        cls, condition: Condition, named: Mapping[str, Sequence[AclDef]]
    ) -> ConditionExplainer:
        def probes(term: AclTerm) -> tuple[_Probe, ...]:
            if term.anonymous is not None:
                return (_Probe.compile(term.anonymous),)
            return tuple(_Probe.compile(acl) for acl in named.get(term.name or "", ()))

        groups = tuple(
            tuple((term, probes(term)) for term in group) for group in condition.groups
        )
        return cls(condition, groups)

    def lines(self, context: IRequestContext, live: bool) -> list[str]:
        """A line per ACL read: its verdict and the value it saw."""
        lines = []
        several = len(self.groups) > 1
        holds = False
        for number, group in enumerate(self.groups, 1):
            if several:
                lines.append(f"alternative {number} (or):")
            group_holds = True
            for term, probes in group:
                indent = _INDENT if several else ""
                said = [probe.line(context, live) for probe in probes]
                matched = any(one for one, _ in said)
                group_holds = group_holds and matched != term.negated
                if term.negated and len(said) == 1:
                    line = said[0][1]
                    lines.append(f"{indent}! {line}, negated: {_truth(not matched)}")
                    continue
                lines += [indent + line for _, line in said]
                if term.negated:
                    lines.append(f"{indent}! {term.name}: {_truth(not matched)}")
            holds = holds or group_holds
        if self.condition.unless:
            lines.append(
                f"unless: the condition is {_truth(holds)}, so the rule "
                + ("does not apply" if holds else "applies")
            )
        return lines


def explainers(config: Config) -> dict[str, ConditionExplainer]:
    """The explainers of every condition of C{config}, by the label of its
    rule (as L{RuleSet} and L{FrontendRuntime.route} name them)."""
    found: dict[str, ConditionExplainer] = {}
    with active(for_config(config.global_.plugin_dirs)):
        proxies: list[Frontend | Backend] = [*config.frontends, *config.backends]
        for proxy in proxies:
            named = acls_by_name(proxy.acls)
            for rule in (*proxy.http_request, *proxy.reqadd, *proxy.redirects):
                if rule.condition is not None:
                    label = f"{rule.location} {describe(rule)}"
                    found[label] = ConditionExplainer.compile(rule.condition, named)
            for use in proxy.use_backends if isinstance(proxy, Frontend) else ():
                if use.condition is not None:
                    found[use_backend_label(use)] = ConditionExplainer.compile(
                        use.condition, named
                    )
    return found


@attrs.frozen
class Tracer:
    """Turns the trace lines of rules into lines that say why.

    @ivar explainers: by rule label, see L{explainers}.
    @ivar live: the requests are clients' (C{--debug-rules}), not described
        ones (C{--explain}).
    """

    explainers: Mapping[str, ConditionExplainer]
    live: bool = False

    def lines(self, context: IRequestContext, line: str) -> Iterator[str]:
        """C{line}, then, when it is about a condition, its ACLs (indented)."""
        yield line
        label, _, verdict = line.rpartition(": ")
        explainer = self.explainers.get(label)
        if explainer is not None and verdict in _EXPLAINED:
            for detail in explainer.lines(context, self.live):
                yield _INDENT + detail


# -- at run time ------------------------------------------------------------------


@attrs.frozen
class LiveTrace:
    """Starts the trace of each request of a frontend, at run time: its lines
    go to twistd's log and to the frontend's log targets, at debug level."""

    frontend: FrontendRuntime
    tracer: Tracer

    def start(self, context: RequestContext) -> Callable[[str], None]:
        """The C{trace} of C{context}: it logs each line, prefixed with the
        frontend's name and the request line."""
        prefix = (
            f"frontend {self.frontend.name}: {context.method} {context.target} "
            f"{context.version}"
        )
        tracer, writers = self.tracer, self.frontend.log_writers

        def trace(line: str) -> None:
            try:
                for each in tracer.lines(context, line):
                    log.debug("{request}: {line}", request=prefix, line=each)
                    for writer in writers:
                        writer.send(f"{prefix}: {each}", "debug")
            except Exception:  # a trace never changes what the request gets
                log.failure(
                    "{request}: cannot trace {line!r}", request=prefix, line=line
                )

        return trace


def enable_tracing(config: Config, frontends: Mapping[str, FrontendRuntime]) -> None:
    """Trace every request of C{frontends} (a service's), as
    C{twistd certlb --debug-rules} does."""
    tracer = Tracer(explainers(config), live=True)
    for runtime in frontends.values():
        runtime.tracer = LiveTrace(runtime, tracer)


# -- certlb check --explain ------------------------------------------------------------


@implementer(IRequestAction)
@attrs.frozen
class _Played:
    """A built-in action of certlb, run on the explained request, saying
    what it changed in the headers."""

    action: IRequestAction
    label: str
    timeout = None

    def run(self, context: IRequestContext) -> LocalResponse | None:
        before = list(context.headers)
        answer = self.action.run(context)
        trace = context.trace
        if trace is not None:
            after = list(context.headers)
            for name, value in before:
                if (name, value) not in after:
                    trace(f"{self.label}: removes header {name}: {value}")
            for name, value in after:
                if (name, value) not in before:
                    trace(f"{self.label}: adds header {name}: {value}")
        if answer is not None and trace is not None:
            for name, value in answer.headers:
                if name == b"Location":
                    trace(f"{self.label}: to {value.decode('latin-1')}")
        return answer


@implementer(IRequestAction)
@attrs.frozen
class _NotRun:
    """A plugin's action, which asks another service: --explain does not run it."""

    label: str
    timeout = None

    def run(self, context: IRequestContext) -> LocalResponse | None:
        if context.trace is not None:
            context.trace(
                f"{self.label}: not run in --explain (asks another service); "
                "the rules after it are played as if it let the request go on"
            )
        return None


def _builtin(action: IRequestAction) -> bool:
    return (
        type(action).__module__ == "certlb.rules.actions"
        and getattr(action, "timeout", None) is None
    )


def _for_explain(rules: RuleSet) -> RuleSet:
    """C{rules}, with certlb's own actions saying what they change and the
    plugins' actions not run."""
    return RuleSet(
        tuple(
            attrs.evolve(
                rule,
                action=_Played(rule.action, rule.label)
                if _builtin(rule.action)
                else _NotRun(rule.label),
            )
            for rule in rules.rules
        )
    )


@attrs.frozen
class Described:
    """The request --explain plays.

    @ivar cert: a kind of L{CERT_KINDS} or an error number.
    @ivar certificate: a real certificate whose fields rules read, if any.
    """

    method: str = "GET"
    target: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    cert: str = "none"
    certificate: Any = None
    source: tuple[str, int] = ("192.0.2.1", 50000)


def describe_request(line: str) -> tuple[str, str]:
    """C{'GET /path'} as a method and a target.

    @raise ValueError: not a method and a target.
    """
    words = line.split()
    if len(words) == 1 and words[0].startswith("/"):
        return "GET", words[0]
    if len(words) != 2:
        raise ValueError(f"{line!r}: describe a request as 'METHOD TARGET', 'GET /x'")
    return words[0].upper(), words[1]


def describe_header(line: str) -> tuple[str, str]:
    """C{'Name: value'} as a header.

    @raise ValueError: no colon, or no name.
    """
    name, colon, value = line.partition(":")
    if not colon or not name.strip() or name != name.strip():
        raise ValueError(f"{line!r}: give a header as 'Name: value'")
    return name, value.strip()


def explain(
    config: Config,
    frontend: Frontend,
    runtime: FrontendRuntime,
    request: Described,
) -> list[str]:
    """The lines that say what C{frontend} does with C{request}: its rules,
    the backend chosen and why, the backend's rules, and the server the
    balancer would pick (no slot is taken).  Plugin actions are not run."""
    from certlb.proxy.identity import XFCC, vouched

    description, state = cert_state(request.cert)
    if request.certificate is not None:
        description = f"{description} ({_subject(request.certificate)})"
        state = attrs.evolve(state, certificate=request.certificate)
    lines = [
        f"frontend {frontend.name} ({frontend.location}): "
        f"{request.method} {request.target} HTTP/1.1 from a client with {description}"
    ]
    notes, tls = _handshake(frontend, state)
    lines += [f"note: {note}" for note in notes]
    bind = frontend.binds[0] if frontend.binds else None
    connection = ConnectionInfo(
        request.source,
        (bind.host, bind.port) if bind is not None else ("192.0.2.2", 443),
        frontend.name,
        lambda: tls,
    )
    headers = list(request.headers)
    if not any(name.lower() == "host" for name, _ in headers):
        headers.insert(0, ("Host", "localhost"))
    context = RequestContext(
        request.method, request.target, "HTTP/1.1", headers, connection
    )
    tracer = Tracer(explainers(config))
    context.trace = lambda line: lines.extend(tracer.lines(context, line))
    for name in sorted(runtime.forged):
        _remove(context, name, "no client may send it (certlb sets it)", lines)
    if not vouched(connection.tls):
        _remove(
            context, XFCC, "only a proxy with a valid certificate may send it", lines
        )
    try:
        return _play(runtime, context, lines)
    except Exception as e:  # a plugin's fetch or balancer, say
        return [
            *lines,
            f"result: 500: a rule raised {type(e).__name__}: {e} (certlb answers "
            "500 and logs it)",
        ]


def _play(
    runtime: FrontendRuntime, context: RequestContext, lines: list[str]
) -> list[str]:
    answer = _for_explain(runtime.rules).apply(context)
    if answer is not None:
        return _answered(answer, lines)
    backend = runtime.route(context)
    if backend is None:
        return [*lines, "result: 503 (no backend): no server is contacted"]
    lines.append(f"backend {backend.name} ({backend.spec.location})")
    rules = runtime.backend_rules(backend)
    answer = _for_explain(rules).apply(context) if rules else None
    if answer is not None:
        return _answered(answer, lines)
    return lines + _servers(backend, context)


def _subject(certificate: Any) -> str:
    return str(certificate.subject.rfc4514_string())


def _handshake(
    frontend: Frontend, state: ClientCertState
) -> tuple[list[str], ClientCertState | None]:
    """What the TLS handshake does before any rule: notes, and the state the
    rules then see (None: no TLS at all)."""
    binds = [b for b in frontend.binds if b.ssl]
    if not binds:
        plain = "no bind of this frontend has ssl: rules see no TLS connection"
        return [plain] if state.has_crt else [], None
    asking = [b for b in binds if b.verify != "none"]
    if not state.has_crt:
        if asking and all(b.verify == "required" for b in binds):
            return [
                "every bind has 'verify required': such a client is refused in "
                "the TLS handshake, before any rule"
            ], state
        return [], state
    if not asking:
        return [
            "no bind asks for a client certificate ('verify none'): rules see none"
        ], ClientCertState()
    code = state.verify
    if code and not any(
        VerifyPolicy(b.crt_ignore_err, b.ca_ignore_err).ignores(code, 0) for b in asking
    ):
        return [
            f"no bind lets error {code} through ('crt-ignore-err {code}' or "
            "'crt-ignore-err all'): such a client fails the TLS handshake, "
            "before any rule; played as if one did"
        ], state
    return [], state


def _remove(context: RequestContext, name: str, why: str, lines: list[str]) -> None:
    if any(n.lower() == name.lower() for n, _ in context.headers):
        context.remove_headers(name)
        lines.append(f"header {name} removed: {why}")


def _answered(answer: LocalResponse, lines: list[str]) -> list[str]:
    """The lines, then the result: which rule answered, with what."""
    said = f": answers {answer.status}"
    rule = next((line for line in reversed(lines) if line.endswith(said)), said)
    what = "denied" if answer.denied else "answered"
    return [
        *lines,
        f"result: {what} {answer.status} by {rule[: -len(said)]}; no server is "
        "contacted",
    ]


def _servers(backend: BackendRuntime, context: RequestContext) -> list[str]:
    lines = []
    if backend.persistence is not None:
        lines.append(
            "stick rules: not played in --explain (they depend on earlier requests)"
        )
    tier = backend.tier()
    free = backend.free()
    for server in backend.servers:
        if server in free:
            state = "eligible"
        elif server in tier:
            state = "no free slot (maxconn)"
        elif server.disabled:
            state = "disabled"
        elif server.weight == 0:
            state = "weight 0"
        elif not server.up:
            state = "down"
        else:
            state = "backup, not used while an active server is up"
        lines.append(f"server {server.label} ({server.address}): {state}")
    if not free:
        return [*lines, "result: 503: no server is available"]
    server = backend.balancer.pick(context, free)
    algorithm = backend.spec.balance.algorithm
    checked = (
        " (health checks are not run: servers count as up)"
        if any(s.spec is not None and s.spec.check for s in backend.servers)
        else ""
    )
    return [
        *lines,
        f"result: backend {backend.name}, server {server.name} ({server.address}), "
        f"picked by balance {algorithm}{checked}",
    ]


__all__ = [
    "CERT_KINDS",
    "ConditionExplainer",
    "Described",
    "LiveTrace",
    "Tracer",
    "cert_state",
    "enable_tracing",
    "explain",
    "explainers",
    "use_backend_label",
]
