"""The options that tell servers who the client is: C{option
client-cert-headers} (RFC 9440) and C{option forwarded-client-cert}
(Envoy's C{X-Forwarded-Client-Cert})."""

from __future__ import annotations

import attrs

from certlb.config.conditions import SyntaxProblem
from certlb.config.errors import suggest
from certlb.config.model import XFCC_FIELDS, XFCC_MODES
from certlb.config.syntax import Context, no_effect_in


def _frontend_option(ctx: Context) -> None:
    """Warn of a frontend's option in a backend, where it does nothing: the
    headers are set for the client's connection, in its frontend."""
    no_effect_in(ctx, "backend", "defaults or frontend or listen")


def option_client_cert_headers(ctx: Context) -> None:
    """C{[no] option client-cert-headers}."""
    _frontend_option(ctx)
    ctx.no_more(2)
    ctx.draft.identity = attrs.evolve(ctx.draft.identity, client_cert=not ctx.negate)


def option_forwarded_client_cert(ctx: Context) -> None:
    """C{[no] option forwarded-client-cert [MODE] [FIELD,...]}."""
    _frontend_option(ctx)
    if ctx.negate:
        ctx.no_more(2)
        ctx.draft.identity = attrs.evolve(ctx.draft.identity, xfcc=None)
        return
    mode, fields = "sanitize-set", ctx.draft.identity.xfcc_fields
    index = 2
    if index < len(ctx.words) and ctx.words[index].text in XFCC_MODES:
        mode = ctx.words[index].text
        index += 1
    if index < len(ctx.words):
        word = ctx.words[index]
        names = word.text.split(",")
        for name in names:
            if name not in XFCC_FIELDS:
                raise SyntaxProblem(
                    word.location,
                    f"'option forwarded-client-cert': {name!r} is neither a mode "
                    f"({', '.join(XFCC_MODES)}) nor a field "
                    f"({','.join(XFCC_FIELDS)})"
                    + suggest(name, (*XFCC_MODES, *XFCC_FIELDS)),
                )
        fields = tuple(names)
        index += 1
    ctx.no_more(index)
    ctx.draft.identity = attrs.evolve(ctx.draft.identity, xfcc=mode, xfcc_fields=fields)
