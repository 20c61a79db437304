"""Request rules compiled into actions: headers, deny, return, redirect.

Each proxy's rules become one L{RuleSet}, built when the configuration is
loaded: its C{http-request} rules in order, then its C{reqadd} lines, then its
C{redirect} rules.  Per request, L{RuleSet.apply} runs them; an action that
answers the request (deny, return, redirect) ends the evaluation.  An action
may also return a Deferred (a plugin's, that asks another service): the
rules after it run when it fires.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
from zope.interface import implementer

from certlb.config.errors import Location, RuleError
from certlb.config.model import (
    Backend,
    Deny,
    Frontend,
    HeaderRule,
    PluginAction,
    Redirect,
    RequestRule,
    Return,
)
from certlb.config.sources import read_bytes
from certlb.rules.acl import acls_by_name, compile_condition
from certlb.rules.interfaces import ICondition, IRequestAction, IRequestContext
from certlb.rules.logformat import compile_log_format, header_value
from certlb.rules.registry import build

# How long certlb waits for an action's Deferred when the action does not say.
DEFAULT_ACTION_TIMEOUT = 10.0

Text = Callable[[IRequestContext], str]


@attrs.frozen
class LocalResponse:
    """An answer certlb gives itself, without a server.

    @ivar headers: header lines to send (the framing ones are added).
    @ivar body: the body; C{None} for certlb's own short page for C{status}.
    @ivar denied: the request was refused (C{http-request deny}), which the
        access log tells apart from other answers.
    """

    status: int
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes | None = None
    denied: bool = False


def encode_text(text: str) -> bytes:
    """Header or body text as bytes: Latin-1, or UTF-8 when it is not."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _text(value: str, log_format: bool, location: Location) -> Text:
    """A constant, or a log-format string rendered for a header per request."""
    if not log_format:
        return lambda context: value
    compiled = compile_log_format(value, location)
    if compiled.constant is not None:
        constant = header_value(compiled.constant)
        return lambda context: constant
    return lambda context: header_value(compiled.render(context))


@attrs.frozen
class _Sync:
    """What every built-in action shares: it never returns a Deferred."""

    timeout = None


@implementer(IRequestAction)
@attrs.frozen
class AddHeader(_Sync):
    """Add a header, after any of the same name."""

    name: str
    value: Text

    def run(self, context: IRequestContext) -> LocalResponse | None:
        context.add_header(self.name, self.value(context))
        return None


@implementer(IRequestAction)
@attrs.frozen
class SetHeader(_Sync):
    """Replace every header of a name by one, with a new value."""

    name: str
    value: Text

    def run(self, context: IRequestContext) -> LocalResponse | None:
        value = self.value(context)  # computed before removal: it may read them
        context.remove_headers(self.name)
        context.add_header(self.name, value)
        return None


@implementer(IRequestAction)
@attrs.frozen
class DelHeader(_Sync):
    """Remove every header of a name."""

    name: str

    def run(self, context: IRequestContext) -> LocalResponse | None:
        context.remove_headers(self.name)
        return None


@implementer(IRequestAction)
@attrs.frozen
class DenyAction(_Sync):
    """Refuse the request with certlb's own page (403 unless told otherwise)."""

    status: int = 403

    def run(self, context: IRequestContext) -> LocalResponse | None:
        return LocalResponse(self.status, denied=True)


@implementer(IRequestAction)
@attrs.frozen
class ReturnAction(_Sync):
    """Answer with a given status, headers and body."""

    status: int
    content_type: bytes | None
    body: Text | bytes
    headers: tuple[tuple[bytes, Text], ...] = ()

    def run(self, context: IRequestContext) -> LocalResponse | None:
        body = (
            self.body
            if isinstance(self.body, bytes)
            else encode_text(self.body(context))
        )
        headers = [(name, encode_text(value(context))) for name, value in self.headers]
        if self.content_type is not None:
            headers.insert(0, (b"Content-Type", self.content_type))
        return LocalResponse(self.status, tuple(headers), body)


@implementer(IRequestAction)
@attrs.frozen
class RedirectAction(_Sync):
    """Answer with a redirection, as HAProxy's C{redirect} builds it."""

    kind: str
    target: Text
    code: int = 302
    drop_query: bool = False
    append_slash: bool = False
    keep_query: bool = False
    cookie: bytes | None = None
    same_url: bool = False  # 'redirect prefix /': to the very URL requested

    def run(self, context: IRequestContext) -> LocalResponse | None:
        location = self.location(context)
        headers = [
            (b"Location", encode_text(location)),
            (b"Cache-Control", b"no-cache"),
        ]
        if self.cookie is not None:
            headers.append((b"Set-Cookie", self.cookie))
        return LocalResponse(self.code, tuple(headers), b"")

    def location(self, context: IRequestContext) -> str:
        """The Location: built from the request's path (of an absolute-form
        target too, so that no client chooses the host), as HAProxy does."""
        target = self.target(context)
        query = context.query
        if self.kind == "location":
            if self.keep_query and query:
                separator = "" if target.endswith(("?", "&")) else "&"
                target += (separator if "?" in target else "?") + query
            return target
        path = context.path or "/"
        if self.append_slash and not path.endswith("/"):
            path += "/"
        uri = path + ("?" + query if query is not None and not self.drop_query else "")
        if self.kind == "prefix":
            return uri if self.same_url else target + uri
        host = next((v for n, v in context.headers if n.lower() == "host"), "")
        return f"{target}://{host}{uri}"


@attrs.frozen
class Rule:
    """An action and the condition under which it runs.

    @ivar label: the rule as traces and logs name it, as in
        C{etc/x.cfg:12 http-request deny}.
    """

    condition: ICondition | None
    action: IRequestAction
    label: str = "rule"


Outcome = Any  # LocalResponse | None, or a Deferred firing with one


@attrs.frozen
class RuleSet:
    """A proxy's request rules, in the order they run."""

    rules: tuple[Rule, ...] = ()

    def apply(self, context: IRequestContext, start: int = 0) -> Outcome:
        """Run the rules from the C{start}th; return the answer of the first
        that answers, or None.

        When an action returns a Deferred, so does this: it fires with the
        answer once the action and the rules after it have run, or fails
        with L{ActionFailed}.
        """
        trace = context.trace
        rules = self.rules
        for index in range(start, len(rules)):
            rule = rules[index]
            if rule.condition is not None and not rule.condition.matches(context):
                if trace is not None:
                    trace(f"{rule.label}: condition false, skipped")
                continue
            if trace is not None:
                trace(f"{rule.label}: runs")
            outcome = rule.action.run(context)
            if outcome is None:
                continue
            if isinstance(outcome, LocalResponse):
                if trace is not None:
                    trace(f"{rule.label}: answers {outcome.status}")
                return outcome
            from certlb.rules.pending import wait_for

            return wait_for(outcome, rule, context).addCallback(
                self._after, index, context
            )
        return None

    def _after(self, answer: LocalResponse | None, index: int, context: Any) -> Outcome:
        if answer is not None:
            return answer
        return self.apply(context, index + 1)

    def __bool__(self) -> bool:
        return bool(self.rules)


def compile_action(rule: RequestRule) -> IRequestAction:
    """The action of one rule (its condition apart).

    @raise RuleError: a log-format string or a file that cannot be used, or
        a plugin's action that is unknown or refuses its arguments.
    """
    if isinstance(rule, PluginAction):
        action: IRequestAction = build(
            "action", rule.name, rule.args, rule.location, IRequestAction
        )
        return action
    if isinstance(rule, HeaderRule):
        if rule.action == "del-header":
            return DelHeader(rule.name)
        assert rule.value is not None
        value = _text(rule.value, rule.log_format, rule.location)
        return (AddHeader if rule.action == "add-header" else SetHeader)(
            rule.name, value
        )
    if isinstance(rule, Deny):
        return DenyAction(rule.status)
    if isinstance(rule, Return):
        return _compile_return(rule)
    assert isinstance(rule, Redirect)
    cookie: bytes | None = None
    if rule.set_cookie is not None:
        cookie = encode_text(rule.set_cookie + "; path=/;")
    elif rule.clear_cookie is not None:
        cookie = encode_text(rule.clear_cookie + "; path=/; Max-Age=0;")
    return RedirectAction(
        rule.kind,
        _text(rule.target, rule.log_format, rule.location),
        rule.code,
        rule.drop_query,
        rule.append_slash,
        rule.keep_query,
        cookie,
        same_url=rule.kind == "prefix" and rule.target == "/" and not rule.log_format,
    )


def _compile_return(rule: Return) -> ReturnAction:
    body: Text | bytes = b""
    if rule.file is not None:
        try:
            data = read_bytes(rule.file)
        except OSError as e:
            raise RuleError(
                rule.location, f"'http-request return' file {rule.file!r}: {e.strerror}"
            ) from None
        if rule.log_format:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise RuleError(
                    rule.location,
                    f"'http-request return' lf-file {rule.file!r} is not UTF-8 "
                    f"text ({e.reason} at byte {e.start})",
                ) from None
            body = compile_log_format(text, rule.location).render
        else:
            body = data
    elif rule.body is not None:
        if rule.log_format:
            body = compile_log_format(rule.body, rule.location).render
        else:
            body = encode_text(rule.body)
    headers = tuple(
        (encode_text(name), _text(value, True, rule.location))
        for name, value in rule.headers
    )
    content_type = encode_text(rule.content_type) if rule.content_type else None
    return ReturnAction(rule.status, content_type, body, headers)


def compile_rules(proxy: Frontend | Backend) -> RuleSet:
    """A proxy's C{http-request}, C{reqadd} and C{redirect} rules, in order.

    @raise RuleError: a condition or an action that cannot be compiled.
    """
    named = acls_by_name(proxy.acls)
    rules: Sequence[RequestRule] = (
        *proxy.http_request,
        *proxy.reqadd,
        *proxy.redirects,
    )
    return RuleSet(
        tuple(
            Rule(
                compile_condition(rule.condition, named) if rule.condition else None,
                compile_action(rule),
                f"{rule.location} {describe(rule)}",
            )
            for rule in rules
        )
    )


def describe(rule: RequestRule) -> str:
    """A rule in a few words, as written: C{http-request deny}."""
    if isinstance(rule, PluginAction):
        return " ".join(("http-request", rule.name, *rule.args))
    if isinstance(rule, HeaderRule):
        if not rule.log_format:  # a reqadd line
            return f"reqadd {rule.name}: {rule.value}"
        return f"http-request {rule.action} {rule.name}"
    if isinstance(rule, Deny):
        return f"http-request deny (status {rule.status})"
    if isinstance(rule, Return):
        return f"http-request return (status {rule.status})"
    return f"redirect {rule.kind} {rule.target}"
