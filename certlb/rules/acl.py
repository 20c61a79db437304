"""Compile ACL definitions and conditions into objects, once, at load time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from zope.interface import implementer

from certlb.config.errors import RuleError, closest, suggest
from certlb.config.model import AclDef, AclTerm, Condition, SampleExpression
from certlb.rules.converters import CONVERTERS_LATER, cast
from certlb.rules.fetches import ACL_DERIVATIVES, FETCHES_LATER, AclDerivative
from certlb.rules.files import relative_to
from certlb.rules.interfaces import ICondition, IRequestContext
from certlb.rules.matching import DEFAULT_METHOD
from certlb.rules.registry import BUILTIN, current


class UndefinedAcl(RuleError):
    """A condition names an ACL that no C{acl} line defines."""


Sample = Callable[[IRequestContext], Any]
Values = Callable[[IRequestContext], Sequence[Any]]
Convert = Callable[[Any], Any]


def compile_expression(expression: SampleExpression) -> tuple[Sample, str]:
    """Compile a fetch and its converters into one function, and its output type.

    The function gives one value, or None: a fetch that finds several (as
    C{hdr}) gives its last, as HAProxy does outside ACLs.

    @raise RuleError: an unknown fetch or converter, an ACL derivative, bad
        arguments, or a converter that cannot take the value before it.
    """
    return compile_sample(expression, in_acl=False).single()


@attrs.frozen
class CompiledSample:
    """A compiled expression: the fetch's function and the converters'."""

    fetch: Callable[[IRequestContext], Any]
    multiple: bool
    convert: Convert | None
    output: str

    def single(self) -> tuple[Sample, str]:
        fetch, convert = self.fetch, self.convert
        if self.multiple:
            values: Values = fetch

            def fetch(context: IRequestContext) -> Any:
                found = values(context)
                return found[-1] if found else None

        if convert is None:
            return fetch, self.output
        return _chain(fetch, convert), self.output

    def values(self) -> Values:
        fetch, convert = self.fetch, self.convert
        if not self.multiple:
            single, _ = self.single()
            return lambda context: (single(context),)
        if convert is None:
            return fetch
        return lambda context: [convert(value) for value in fetch(context)]


def compile_sample(expression: SampleExpression, in_acl: bool) -> CompiledSample:
    """Compile a fetch and its converters, keeping every value of a fetch
    that finds several (for an ACL, C{in_acl}, which tries them all).

    @raise RuleError: as L{compile_expression}.
    """
    name = expression.fetch
    registry = current()
    fetch = registry.fetches.get(name)
    if fetch is None:
        raise _unknown_fetch(expression, in_acl)
    function = _plugin_call(
        fetch.compile, expression, f"fetch '{name}'", registry.origin("fetch", name)
    )
    if fetch.scope == "connection" and fetch is not BUILTIN.fetches.get(name):
        # certlb's own read the connection's certificate facts, which are
        # worked out once per connection already.
        function = _per_connection(function, bool(fetch.multiple))
    output: str = fetch.output
    steps: list[Convert] = []
    previous = name
    for converter_name, args in expression.converters:
        converter = registry.converters.get(converter_name)
        if converter is None and converter_name in CONVERTERS_LATER:
            raise RuleError(
                expression.location,
                f"converter '{converter_name}' is an HAProxy converter that "
                "certlb does not implement yet",
            )
        if converter is None:
            raise RuleError(
                expression.location,
                f"unknown converter '{converter_name}'"
                + suggest(converter_name, registry.converters)
                + registry.notes("converter", converter_name),
            )
        convert = _plugin_call(
            converter.compile,
            expression,
            f"converter '{converter_name}'",
            registry.origin("converter", converter_name),
            args,
        )
        try:
            cast_first = cast(output, converter.input)
        except ValueError:
            raise RuleError(
                expression.location,
                f"converter '{converter_name}' takes {converter.input} values, "
                f"but '{previous}' gives {output} values, which cannot be cast "
                f"to {converter.input}",
            ) from None
        if cast_first is not None:
            steps.append(cast_first)
        steps.append(convert)
        output = converter.output
        previous = converter_name
    return CompiledSample(function, bool(fetch.multiple), _pipeline(steps), output)


def _plugin_call(
    compile: Callable[[tuple[str, ...]], Any],
    expression: SampleExpression,
    what: str,
    origin: str,
    args: tuple[str, ...] | None = None,
) -> Any:
    """C{compile(args)} (the fetch's own by default), relative to the
    configuration file; what it raises becomes a L{RuleError} at the
    expression's place, naming the plugin's module (C{origin}) if any."""
    try:
        with relative_to(expression.location.file):
            return compile(expression.args if args is None else args)
    except ValueError as e:
        message = f"{what}{origin}: {e}" if origin else str(e)
        raise RuleError(expression.location, message) from None
    except Exception as e:
        raise RuleError(
            expression.location,
            f"{what}{origin} failed on its arguments: {type(e).__name__}: {e}",
        ) from None


def _per_connection(fetch: Sample, multiple: bool) -> Sample:
    """C{fetch}, computed once per connection and kept in its cache."""
    key = object()

    def cached(context: IRequestContext) -> Any:
        cache = context.connection.cache
        try:
            return cache[key]
        except KeyError:
            value = fetch(context)
            if multiple and value is not None and not isinstance(value, tuple):
                value = tuple(value)  # an iterator would be empty next time
            cache[key] = value
            return value

    return cached


def _unknown_fetch(expression: SampleExpression, in_acl: bool) -> RuleError:
    name = expression.fetch
    derivative = ACL_DERIVATIVES.get(name)
    if derivative is not None and not in_acl:
        plain = attrs.evolve(expression, fetch=derivative.fetch, converters=())
        return RuleError(
            expression.location,
            f"'{name}' is an ACL derivative ('{derivative.fetch}' matched with "
            f"-m {derivative.method}): it exists only in ACLs; in a sample "
            f"expression write '{plain}'",
        )
    if name in FETCHES_LATER:
        return RuleError(
            expression.location,
            f"fetch '{name}' is an HAProxy fetch that certlb does not implement yet",
        )
    registry = current()
    names = [*registry.fetches, *ACL_DERIVATIVES] if in_acl else registry.fetches
    return RuleError(
        expression.location,
        f"unknown fetch '{name}'"
        + suggest(name, names)
        + registry.notes("fetch", name),
    )


def _pipeline(steps: Sequence[Convert]) -> Convert | None:
    """One function running C{steps} in turn; a None stops them."""
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def convert(value: Any) -> Any:
        for step in steps:
            value = step(value)
            if value is None:
                return None
        return value

    return convert


def _chain(first: Sample, then: Convert) -> Sample:
    def sample(context: IRequestContext) -> Any:
        value = first(context)
        return None if value is None else then(value)

    return sample


@attrs.frozen
class Acl:
    """A compiled ACL: a sample function and a matcher."""

    sample: Sample
    match: Callable[[Any], bool]

    def __call__(self, context: IRequestContext) -> bool:
        return self.match(self.sample(context))


@attrs.frozen
class MultiAcl:
    """A compiled ACL on a fetch of several values: any of them may match."""

    values: Values
    match: Callable[[Any], bool]

    def __call__(self, context: IRequestContext) -> bool:
        match = self.match
        return any(match(value) for value in self.values(context))


def compile_acl(acl: AclDef) -> Acl | MultiAcl:
    """Compile one ACL line (or anonymous ACL).

    @raise RuleError: unknown fetch or converter, bad flag or bad pattern, or
        an ACL derivative (C{path_beg}, ...) followed by a converter or given
        a C{-m} method.
    """
    expression = acl.expression
    derivative = acl_derivative(expression.fetch)
    if derivative is not None:
        plain = attrs.evolve(expression, fetch=derivative.fetch)
        if expression.converters:
            raise RuleError(
                acl.location,
                f"{_acl_name(acl)}: '{derivative.name}' is an ACL derivative "
                f"('{derivative.fetch}' matched with -m {derivative.method}) and "
                f"must not be followed by a converter; write '{plain} -m "
                f"{derivative.method}' instead",
            )
        expression = plain
    compiled = compile_sample(expression, in_acl=True)
    method = (
        derivative.method
        if derivative is not None
        else DEFAULT_METHOD.get(compiled.output, "str")
    )
    ignore_case = False
    flags = iter(acl.flags)
    for flag in flags:
        if flag == "-i":
            ignore_case = True
        elif flag == "-m":
            method = next(flags)
            if derivative is not None:
                raise RuleError(
                    acl.location,
                    f"{_acl_name(acl)}: '{derivative.name}' is an ACL derivative "
                    f"('{derivative.fetch}' matched with -m {derivative.method}) "
                    f"and must not be used with -m; write '{expression} -m "
                    f"{method}' instead",
                )
        else:
            raise RuleError(
                acl.location, f"ACL flag '{flag}' is not implemented by certlb yet"
            )
    registry = current()
    matcher = registry.matchers.get(method)
    if matcher is None:
        raise RuleError(
            acl.location,
            f"unknown match method '{method}'; the methods are "
            f"{', '.join(registry.matchers)}" + registry.notes("matcher", method),
        )
    try:
        with relative_to(acl.location.file):
            match = matcher.compile(acl.patterns, ignore_case)
    except ValueError as e:
        raise RuleError(acl.location, str(e)) from None
    except Exception as e:
        raise RuleError(
            acl.location,
            f"match method '{method}'{registry.origin('matcher', method)} failed "
            f"on its patterns: {type(e).__name__}: {e}",
        ) from None
    if compiled.multiple:
        return MultiAcl(compiled.values(), match)
    sample, _ = compiled.single()
    return Acl(sample, match)


def acl_derivative(name: str) -> AclDerivative | None:
    """The ACL derivative called C{name}, unless a fetch has that name."""
    return None if name in current().fetches else ACL_DERIVATIVES.get(name)


def _acl_name(acl: AclDef) -> str:
    return "anonymous ACL" if acl.name is None else f"ACL '{acl.name}'"


def never_matches(acl: AclDef) -> bool:
    """Whether an ACL has no pattern while its method needs one."""
    if acl.patterns:
        return False
    method = None
    flags = list(acl.flags)
    if "-m" in flags:
        method = flags[flags.index("-m") + 1]
    if method is None:
        derivative = acl_derivative(acl.expression.fetch)
        fetch = current().fetches.get(acl.expression.fetch)
        if derivative is not None:
            method = derivative.method
        elif fetch is None or acl.expression.converters:
            return False
        else:
            method = DEFAULT_METHOD.get(fetch.output, "str")
    if method not in BUILTIN.matchers:
        return False  # a plugin's: it knows whether it needs a pattern
    return method not in ("found", "bool")


@implementer(ICondition)
@attrs.frozen
class CompiledCondition:
    """OR'ed groups of AND'ed, maybe negated, ACLs; C{unless} inverts it all."""

    groups: tuple[tuple[tuple[bool, Callable[[IRequestContext], bool]], ...], ...]
    unless: bool

    def matches(self, context: IRequestContext) -> bool:
        result = any(
            all(test(context) != negated for negated, test in group)
            for group in self.groups
        )
        return result != self.unless


def compile_condition(
    condition: Condition, acls: Mapping[str, Sequence[AclDef]]
) -> CompiledCondition:
    """Compile a condition against the named ACLs of its proxy.

    @param acls: ACL lines by name; several lines with one name are OR'ed.
    @raise RuleError: an ACL name that no C{acl} line defines, or an ACL that
        cannot be compiled.
    """
    cache: dict[str, Callable[[IRequestContext], bool]] = {}

    def test(term: AclTerm) -> Callable[[IRequestContext], bool]:
        if term.anonymous is not None:
            return compile_acl(term.anonymous)
        assert term.name is not None
        if term.name not in cache:
            lines = acls.get(term.name)
            if not lines:
                raise _undefined(term, acls)
            compiled = [compile_acl(line) for line in lines]
            cache[term.name] = compiled[0] if len(compiled) == 1 else _any(compiled)
        return cache[term.name]

    groups = tuple(
        tuple((term.negated, test(term)) for term in group)
        for group in condition.groups
    )
    return CompiledCondition(groups, condition.unless)


def _undefined(term: AclTerm, acls: Mapping[str, Sequence[AclDef]]) -> UndefinedAcl:
    assert term.name is not None
    close = closest(term.name, acls)
    return UndefinedAcl(
        term.location,
        f"no ACL is named '{term.name}' in this section"
        + (f" (did you mean '{close}'?)" if close else "")
        + f"; define it with 'acl {term.name} FETCH [PATTERN...]', or write an "
        "anonymous ACL in braces, as in { ssl_fc_has_crt }",
    )


def undefined_acls(
    condition: Condition, acls: Mapping[str, Sequence[AclDef]]
) -> list[UndefinedAcl]:
    """One error for each term of C{condition} naming an ACL that does not exist."""
    return [
        _undefined(term, acls)
        for group in condition.groups
        for term in group
        if term.name is not None and not acls.get(term.name)
    ]


def _any(acls: Sequence[Acl | MultiAcl]) -> Callable[[IRequestContext], bool]:
    """Several C{acl} lines with one name: any of them matching is enough."""
    return lambda context: any(acl(context) for acl in acls)


def acls_by_name(acls: Sequence[AclDef]) -> dict[str, list[AclDef]]:
    """Group ACL lines by name, in order."""
    named: dict[str, list[AclDef]] = {}
    for acl in acls:
        assert acl.name is not None
        named.setdefault(acl.name, []).append(acl)
    return named
