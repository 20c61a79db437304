"""Fetches of certificate fields: HAProxy's C{ssl_c_*} and C{ssl_f_*}.

C{ssl_c_*} read the certificate the client presented (no value when it sent
none), C{ssl_c_r_dn} the root CA of its verified chain, C{ssl_f_*} certlb's
own certificate on the bind.  Each field is worked out once per connection,
the first time a rule asks for it (L{certlb.tls.certinfo.CertificateFacts}).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from zope.interface import implementer

from certlb.rules.interfaces import IFetch, IRequestContext
from certlb.tls.certinfo import SAN_TYPES, CertificateFacts
from certlb.tls.state import ClientCertState

__all__ = [
    "CERTIFICATE_FETCHES",
    "CertFieldFetch",
    "ChainDerFetch",
    "DnFetch",
    "RemainingDaysFetch",
    "SanFetch",
]

Value = Any
FetchFunction = Callable[[IRequestContext], Value]


def _facts(side: str) -> Callable[[IRequestContext], CertificateFacts | None]:
    """A function giving a request's L{CertificateFacts} of one C{side}:
    C{peer} (the client's), C{local} (certlb's) or C{root_facts}."""
    get = operator.attrgetter(side)

    def facts(context: IRequestContext) -> CertificateFacts | None:
        tls: ClientCertState | None = context.connection.tls
        return None if tls is None else get(tls)

    return facts


def _no_args(name: str, args: tuple[str, ...]) -> None:
    if args:
        raise ValueError(f"'{name}' takes no arguments, but was given {len(args)}")


@implementer(IFetch)
@attrs.frozen
class CertFieldFetch:
    """A field of a certificate that takes no arguments (C{ssl_c_serial}).

    @ivar side: C{peer} (the client's certificate) or C{local} (certlb's).
    @ivar field: the attribute of L{CertificateFacts} read.
    """

    name: str
    output: str
    side: str
    field: str
    multiple: bool = False
    scope: str = "connection"

    def compile(self, args: tuple[str, ...]) -> FetchFunction:
        _no_args(self.name, args)
        facts = _facts(self.side)
        get = operator.attrgetter(self.field)

        def fetch(context: IRequestContext) -> Value:
            found = facts(context)
            return None if found is None else get(found)

        return fetch


@implementer(IFetch)
@attrs.frozen
class DnFetch:
    """C{ssl_c_s_dn([entry[,occ[,format]]])} and its kin: a distinguished name.

    Without arguments, the whole DN as C{/C=FR/O=Example/CN=client1}; with an
    C{entry} (a short name such as C{CN} or C{OU}, in any case), its first
    value, or its C{occ}th (1 the first, -1 the last); with an empty entry
    and the format C{rfc2253}, the DN as C{CN=client1,O=Example,C=FR}.

    @ivar part: C{subject} or C{issuer}.
    """

    name: str
    side: str
    part: str
    output: str = "str"
    multiple: bool = False
    scope: str = "connection"

    def compile(self, args: tuple[str, ...]) -> FetchFunction:
        if len(args) > 3:
            raise ValueError(
                f"'{self.name}' takes at most 3 arguments, an entry, an "
                f"occurrence and a format, as in {self.name}(OU,2) or "
                f"{self.name}(,0,rfc2253), but was given {len(args)}"
            )
        entry, occurrence, form = (*args, "", "", "")[:3]
        if form not in ("", "rfc2253"):
            raise ValueError(
                f"'{self.name}' format {form!r} is not known; only rfc2253 or "
                "an empty format is supported"
            )
        position = 1
        if occurrence:
            try:
                position = int(occurrence)
            except ValueError:
                raise ValueError(
                    f"'{self.name}' occurrence {occurrence!r} is not a number; "
                    "write 1 for the first value, 2 for the second, -1 for the last"
                ) from None
        facts = _facts(self.side)
        part = operator.attrgetter(self.part)

        if entry:

            def fetch(context: IRequestContext) -> Value:
                found = facts(context)
                return None if found is None else part(found).entry(entry, position)

        else:
            form_of = operator.attrgetter("rfc2253" if form else "oneline")

            def fetch(context: IRequestContext) -> Value:
                found = facts(context)
                return None if found is None else form_of(part(found))

        return fetch


@implementer(IFetch)
@attrs.frozen
class ChainDerFetch:
    """C{ssl_c_chain_der}: the certificates the client sent after its own,
    in DER, one after the other; no value when it sent none."""

    name: str = "ssl_c_chain_der"
    output: str = "bin"
    multiple: bool = False
    scope: str = "connection"

    def compile(self, args: tuple[str, ...]) -> FetchFunction:
        _no_args(self.name, args)

        def fetch(context: IRequestContext) -> Value:
            tls = context.connection.tls
            return None if tls is None else tls.chain_der

        return fetch


@implementer(IFetch)
@attrs.frozen
class SanFetch:
    """C{ssl_c_san([type])}: the client certificate's subject alternative names.

    Without an argument, HAProxy's one string, C{DNS:a, IP Address:10.0.0.1,
    URI:https://b/, email:c@d}.  With a type (C{DNS}, C{URI}, C{email} or
    C{IP}, in any case: a certlb extension), each name of that type alone, so
    that an ACL tries every one and a sample expression takes the last.
    """

    name: str = "ssl_c_san"
    side: str = "peer"
    output: str = "str"
    multiple: bool = True
    scope: str = "connection"

    def compile(
        self, args: tuple[str, ...]
    ) -> Callable[[IRequestContext], Sequence[str]]:
        if len(args) > 1:
            raise ValueError(
                f"'{self.name}' takes at most 1 argument, a type of name, as in "
                f"{self.name}(DNS), but was given {len(args)}"
            )
        facts = _facts(self.side)
        if not args or not args[0]:

            def every(context: IRequestContext) -> Sequence[str]:
                found = facts(context)
                text = None if found is None else found.san
                return () if text is None else (text,)

            return every
        kind = SAN_TYPES.get(args[0].lower())
        if kind is None:
            raise ValueError(
                f"'{self.name}' type {args[0]!r} is not known; write DNS, URI, "
                "email or IP"
            )

        def of_kind(context: IRequestContext) -> Sequence[str]:
            found = facts(context)
            return () if found is None else found.san_values(kind)

        return of_kind


@implementer(IFetch)
@attrs.frozen
class RemainingDaysFetch:
    """C{ssl_c_remaining_days}: whole days left before the certificate
    expires, negative once it has (a certlb addition).

    @ivar now: the clock, in POSIX seconds.
    """

    name: str
    side: str
    now: Callable[[], float] = time.time
    output: str = "int"
    multiple: bool = False
    scope: str = "request"

    def compile(self, args: tuple[str, ...]) -> FetchFunction:
        _no_args(self.name, args)
        facts = _facts(self.side)
        now = self.now

        def fetch(context: IRequestContext) -> Value:
            found = facts(context)
            return None if found is None else found.remaining_days(now())

        return fetch


def _field_fetches(prefix: str, side: str) -> list[IFetch]:
    return [
        DnFetch(f"{prefix}s_dn", side, "subject"),
        DnFetch(f"{prefix}i_dn", side, "issuer"),
        CertFieldFetch(f"{prefix}serial", "bin", side, "serial"),
        CertFieldFetch(f"{prefix}sha1", "bin", side, "sha1"),
        CertFieldFetch(f"{prefix}der", "bin", side, "der"),
        CertFieldFetch(f"{prefix}notbefore", "str", side, "not_before"),
        CertFieldFetch(f"{prefix}notafter", "str", side, "not_after"),
        CertFieldFetch(f"{prefix}version", "int", side, "version"),
        CertFieldFetch(f"{prefix}sig_alg", "str", side, "sig_alg"),
        CertFieldFetch(f"{prefix}key_alg", "str", side, "key_alg"),
    ]


CERTIFICATE_FETCHES: tuple[IFetch, ...] = (
    *_field_fetches("ssl_c_", "peer"),
    DnFetch("ssl_c_r_dn", "root_facts", "subject"),
    ChainDerFetch(),
    SanFetch(),
    RemainingDaysFetch("ssl_c_remaining_days", "peer"),
    *_field_fetches("ssl_f_", "local"),
)
"""Every fetch of this module, for L{certlb.rules.fetches.BUILTIN_FETCHES}."""
