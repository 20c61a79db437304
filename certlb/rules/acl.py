"""Compile ACL definitions and conditions into objects, once, at load time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from zope.interface import implementer

from certlb.config.errors import Location, closest, suggest
from certlb.config.model import AclDef, AclTerm, Condition, SampleExpression
from certlb.rules.fetches import CONVERTERS, CONVERTERS_LATER, FETCHES, FETCHES_LATER
from certlb.rules.interfaces import ICondition, IRequestContext
from certlb.rules.matching import DEFAULT_METHOD, as_text, compile_matcher


class RuleError(Exception):
    """A rule cannot be compiled; names the place and what to write instead."""

    def __init__(self, location: Location, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


class UndefinedAcl(RuleError):
    """A condition names an ACL that no C{acl} line defines."""


Sample = Callable[[IRequestContext], Any]


def compile_expression(expression: SampleExpression) -> tuple[Sample, str]:
    """Compile a fetch and its converters into one function, and its output type."""
    fetch = FETCHES.get(expression.fetch)
    if fetch is None and expression.fetch in FETCHES_LATER:
        raise RuleError(
            expression.location,
            f"fetch '{expression.fetch}' is an HAProxy fetch that certlb does "
            "not implement yet",
        )
    if fetch is None:
        raise RuleError(
            expression.location,
            f"unknown fetch '{expression.fetch}'" + suggest(expression.fetch, FETCHES),
        )
    try:
        function: Sample = fetch.compile(expression.args)
    except ValueError as e:
        raise RuleError(expression.location, str(e)) from None
    output: str = fetch.output
    for name, args in expression.converters:
        converter = CONVERTERS.get(name)
        if converter is None and name in CONVERTERS_LATER:
            raise RuleError(
                expression.location,
                f"converter '{name}' is an HAProxy converter that certlb does "
                "not implement yet",
            )
        if converter is None:
            raise RuleError(
                expression.location,
                f"unknown converter '{name}'" + suggest(name, CONVERTERS),
            )
        try:
            convert = converter.compile(args)
        except ValueError as e:
            raise RuleError(expression.location, str(e)) from None
        if converter.input == "str" and output != "str":
            # Cast, as HAProxy does, so that a converter of text gets text.
            convert = _after(as_text, convert)
        function = _chain(function, convert)
        output = converter.output
    return function, output


def _after(
    cast: Callable[[Any], Any], convert: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    return lambda value: convert(cast(value))


def _chain(first: Sample, then: Callable[[Any], Any]) -> Sample:
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


def compile_acl(acl: AclDef) -> Acl:
    """Compile one ACL line (or anonymous ACL).

    @raise RuleError: unknown fetch or converter, bad flag or bad pattern.
    """
    sample, output = compile_expression(acl.expression)
    method = DEFAULT_METHOD.get(output, "str")
    ignore_case = False
    flags = iter(acl.flags)
    for flag in flags:
        if flag == "-i":
            ignore_case = True
        elif flag == "-m":
            method = next(flags)
        else:
            raise RuleError(
                acl.location, f"ACL flag '{flag}' is not implemented by certlb yet"
            )
    try:
        match = compile_matcher(method, acl.patterns, ignore_case)
    except ValueError as e:
        raise RuleError(acl.location, str(e)) from None
    return Acl(sample, match)


def never_matches(acl: AclDef) -> bool:
    """Whether an ACL has no pattern while its method needs one."""
    if acl.patterns:
        return False
    method = None
    flags = list(acl.flags)
    if "-m" in flags:
        method = flags[flags.index("-m") + 1]
    if method is None:
        fetch = FETCHES.get(acl.expression.fetch)
        if fetch is None or acl.expression.converters:
            return False
        method = DEFAULT_METHOD.get(fetch.output, "str")
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


def _any(acls: Sequence[Acl]) -> Callable[[IRequestContext], bool]:
    """Several C{acl} lines with one name: any of them matching is enough."""
    return lambda context: any(acl(context) for acl in acls)


def acls_by_name(acls: Sequence[AclDef]) -> dict[str, list[AclDef]]:
    """Group ACL lines by name, in order."""
    named: dict[str, list[AclDef]] = {}
    for acl in acls:
        assert acl.name is not None
        named.setdefault(acl.name, []).append(acl)
    return named
