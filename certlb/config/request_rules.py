"""The request rules: C{http-request ...}, C{reqadd} and C{redirect}.

HAProxy evaluates them in this order in each proxy (frontend, then backend):
every C{http-request} rule in turn, then the C{reqadd} lines, then the first
C{redirect} rule that applies.
"""

from __future__ import annotations

import re

from certlb.config.conditions import SyntaxProblem
from certlb.config.errors import WARNING, suggest
from certlb.config.lexer import Word
from certlb.config.model import (
    REDIRECT_CODES,
    REDIRECT_KINDS,
    Condition,
    Deny,
    HeaderRule,
    PluginAction,
    Redirect,
    Return,
)
from certlb.config.syntax import Context, condition, integer

# RFC 9110's token: what a header field name may be made of.
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# Headers that describe the message or its connection: certlb writes them.
FRAMING_HEADERS = frozenset(
    "content-length transfer-encoding connection keep-alive te trailer upgrade "
    "proxy-connection".split()
)
# HAProxy's statuses for deny_status (those it has a page for).
DENY_STATUSES = (200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 421, 422, 425,
                 429, 500, 501, 502, 503, 504)  # fmt: skip

HTTP_REQUEST_ACTIONS = (
    "add-header", "set-header", "del-header", "deny", "return", "redirect",
)  # fmt: skip
HTTP_REQUEST_LATER = frozenset(
    """
    allow auth tarpit replace-header replace-value replace-path replace-uri
    set-path set-pathq set-query set-uri set-method set-var set-var-fmt
    unset-var capture set-log-level set-nice set-tos set-mark set-src
    set-dst set-src-port set-dst-port track-sc0 track-sc1 track-sc2
    add-acl del-acl set-map del-map cache-use lua use-service early-hint
    normalize-uri set-timeout strict-mode wait-for-body wait-for-handshake
    silent-drop reject disable-l7-retry do-resolve sc-inc-gpc0 sc-set-gpt0
    """.split()
)
REDIRECT_OPTIONS = ("code", "drop-query", "append-slash", "keep-query",
                    "set-cookie", "clear-cookie")  # fmt: skip


def _header_name(word: Word) -> str:
    if not HEADER_NAME.match(word.text):
        raise SyntaxProblem(
            word.location,
            f"{word.text!r} is not a header name: use letters, digits and "
            "'-' (as in X-Ssl-Error)",
        )
    return word.text


def _plain(word: Word, what: str) -> str:
    """Text written into a message as is: no control character may hide in
    it (through an escape or an environment variable)."""
    if _CONTROL.search(word.text):
        raise SyntaxProblem(
            word.location,
            f"{what} {word.text!r} holds a control character (such as a line "
            "break), which would corrupt the message",
        )
    return word.text


def _split_condition(ctx: Context, start: int) -> tuple[list[Word], Condition | None]:
    """The words from C{start} up to a trailing C{if|unless}, and its condition."""
    words = list(ctx.words[start:])
    for index, word in enumerate(words):
        if word.text in ("if", "unless") and not word.literal:
            return words[:index], condition(ctx, start + index)
    return words, None


def parse_redirect(ctx: Context, start: int, log_format: bool) -> Redirect:
    """Read C{KIND TARGET [options]... [if|unless COND]} from C{start}."""
    words, rule = _split_condition(ctx, start)
    kind: Word | None = None
    target: Word | None = None
    options: dict[str, object] = {}
    i = 0
    while i < len(words):
        word = words[i]
        name = word.text
        if name in REDIRECT_KINDS and kind is None:
            kind = word
            if i + 1 >= len(words):
                raise SyntaxProblem(word.location, f"'redirect {name}' needs a target")
            target = words[i + 1]
            i += 1
        elif name == "code":
            if i + 1 >= len(words):
                raise SyntaxProblem(word.location, "'code' needs a status")
            code = words[i + 1]
            if not code.text.isdigit() or int(code.text) not in REDIRECT_CODES:
                raise SyntaxProblem(
                    code.location,
                    f"redirect code {code.text!r} is not one of "
                    f"{', '.join(map(str, REDIRECT_CODES))}",
                )
            options["code"] = int(code.text)
            i += 1
        elif name in ("drop-query", "append-slash", "keep-query"):
            options[name.replace("-", "_")] = True
        elif name in ("set-cookie", "clear-cookie"):
            if i + 1 >= len(words):
                raise SyntaxProblem(word.location, f"'{name}' needs NAME[=value]")
            cookie = words[i + 1].text
            if not HEADER_NAME.match(cookie.split("=", 1)[0]):
                raise SyntaxProblem(
                    words[i + 1].location, f"{cookie!r} is not a cookie NAME[=value]"
                )
            # Given both, the last one counts, as in HAProxy.
            options.pop("set_cookie", None)
            options.pop("clear_cookie", None)
            options[name.replace("-", "_")] = _plain(words[i + 1], "the cookie")
            i += 1
        elif name in REDIRECT_KINDS:
            raise SyntaxProblem(
                word.location, "a redirect has one kind: location, prefix or scheme"
            )
        else:
            raise SyntaxProblem(
                word.location,
                f"unknown redirect option {name!r}"
                + suggest(name, [*REDIRECT_KINDS, *REDIRECT_OPTIONS]),
            )
        i += 1
    if kind is None or target is None:
        raise SyntaxProblem(
            ctx.keyword.location,
            "a redirect needs 'location URL', 'prefix PREFIX' or 'scheme SCHEME', "
            "as in 'redirect location /certexpired.html'",
        )
    return Redirect(
        kind=kind.text,
        target=target.text if log_format else _plain(target, "the redirect target"),
        log_format=log_format,
        condition=rule,
        location=ctx.keyword.location,
        **options,  # type: ignore[arg-type]
    )


def redirect(ctx: Context) -> None:
    """C{redirect KIND TARGET [options] [if|unless COND]}."""
    ctx.draft.redirects.append(parse_redirect(ctx, 1, log_format=False))


def reqadd(ctx: Context) -> None:
    """C{reqadd LINE [if|unless COND]}: HAProxy's legacy header addition."""
    line = ctx.arg(1, "a header line, as in 'reqadd X-Ssl-Error:\\ 10'")
    words, rule = _split_condition(ctx, 2)
    if words:
        raise SyntaxProblem(
            words[0].location,
            f"unexpected {words[0].text!r}: escape the spaces of the header line "
            "with backslashes, as in 'reqadd X-Ssl-Error:\\ 10'",
        )
    name, colon, value = line.text.partition(":")
    if not colon or not HEADER_NAME.match(name):
        raise SyntaxProblem(
            line.location,
            f"{line.text!r} is not a header line 'Name: value', as in "
            "'reqadd X-Ssl-Error:\\ 10'",
        )
    value = value.strip(" \t")
    if _CONTROL.search(value):
        raise SyntaxProblem(
            line.location,
            f"the header line {line.text!r} holds a control character (such as "
            "a line break), which would corrupt the request",
        )
    modern = f'http-request add-header {name} "{value}"'
    ctx.problem(
        ctx.keyword.location,
        "'reqadd' is HAProxy's legacy form (removed in HAProxy 2.1); certlb runs "
        f"it, and the modern form is: {modern}",
        WARNING,
    )
    ctx.draft.reqadd.append(
        HeaderRule("add-header", name, value, False, rule, ctx.keyword.location)
    )


def http_request(ctx: Context) -> None:
    """C{http-request ACTION ARGS [if|unless COND]}."""
    action = ctx.arg(1, f"an action, one of {', '.join(HTTP_REQUEST_ACTIONS)}")
    name = action.text
    if "(" in name:  # as in set-var(txn.x): the name goes up to '('
        name = name.partition("(")[0]
    at = ctx.keyword.location
    if name == "redirect":
        ctx.draft.http_request.append(parse_redirect(ctx, 2, log_format=True))
        return
    words, rule = _split_condition(ctx, 2)
    if name in ("add-header", "set-header"):
        if len(words) != 2:
            raise SyntaxProblem(
                action.location,
                f"'http-request {name}' takes a name and a value, as in "
                f"'http-request {name} X-Ssl-Error %[ssl_c_verify]' (quote a "
                "value with spaces)",
            )
        header = _header_name(words[0])
        _warn_framing(ctx, words[0], name)
        ctx.draft.http_request.append(
            HeaderRule(name, header, words[1].text, True, rule, at)
        )
    elif name == "del-header":
        if len(words) != 1:
            raise SyntaxProblem(
                action.location, "'http-request del-header' takes one header name"
            )
        header = _header_name(words[0])
        _warn_framing(ctx, words[0], name)
        ctx.draft.http_request.append(HeaderRule(name, header, None, True, rule, at))
    elif name == "deny":
        status = 403
        if words:
            if words[0].text != "deny_status" or len(words) != 2:
                raise SyntaxProblem(
                    words[0].location,
                    "'http-request deny' takes only 'deny_status STATUS'",
                )
            status = integer(words[1], "deny_status", 200, 599)
            if status not in DENY_STATUSES:
                raise SyntaxProblem(
                    words[1].location,
                    f"deny_status {status} has no page; use one of "
                    f"{', '.join(map(str, DENY_STATUSES))}, or 'http-request "
                    "return status N' for any other",
                )
        ctx.draft.http_request.append(Deny(status, rule, at))
    elif name == "return":
        ctx.draft.http_request.append(_return(ctx, words, rule))
    elif name in HTTP_REQUEST_LATER:
        raise SyntaxProblem(
            action.location,
            f"'http-request {name}' is an HAProxy action that certlb does not "
            "implement yet",
        )
    else:  # a plugin's action, or a mistake: the checker tells which
        args = tuple(w.text for w in words)
        ctx.draft.http_request.append(
            PluginAction(action.text, args, rule, action.location)
        )


def _warn_framing(ctx: Context, word: Word, action: str) -> None:
    lower = word.text.lower()
    if lower in FRAMING_HEADERS:
        ctx.problem(
            word.location,
            f"'{action} {word.text}' has no effect: certlb writes the framing "
            "and connection headers itself",
            WARNING,
        )
    elif lower == "host" and action == "del-header":
        ctx.problem(
            word.location,
            "'del-header Host' sends requests without Host, which HTTP/1.1 "
            "servers refuse",
            WARNING,
        )


def _return(ctx: Context, words: list[Word], rule: Condition | None) -> Return:
    status, content_type, body, log_format, file = 200, None, None, False, None
    headers: list[tuple[str, str]] = []
    i = 0

    def value(what: str) -> Word:
        if i + 1 >= len(words):
            raise SyntaxProblem(words[i].location, f"'{words[i].text}' needs {what}")
        return words[i + 1]

    while i < len(words):
        word = words[i]
        if word.text == "status":
            status = integer(value("a status"), "status", 200, 599)
        elif word.text == "content-type":
            content_type = _plain(value("a media type"), "the content-type")
        elif word.text in ("string", "lf-string", "file", "lf-file"):
            if body is not None or file is not None:
                raise SyntaxProblem(word.location, "a return has one body")
            if word.text.endswith("file"):
                file = ctx.path(value("a file name"))
            else:
                body = value("the body").text
            log_format = word.text.startswith("lf-")
        elif word.text == "hdr":
            name_word = value("a header name and a value")
            name = _header_name(name_word)
            if name.lower() in FRAMING_HEADERS or name.lower() == "content-type":
                raise SyntaxProblem(
                    name_word.location,
                    f"'hdr {name}' is not allowed: certlb frames the answer "
                    "itself (use 'content-type TYPE' for the type)",
                )
            i += 1
            headers.append((name, value("a value").text))
        else:
            raise SyntaxProblem(
                word.location,
                f"unknown 'http-request return' option {word.text!r}; it takes "
                "status, content-type, string, lf-string, file, lf-file and hdr",
            )
        i += 2
    has_body = body is not None or file is not None
    if has_body and status in (204, 304):
        raise SyntaxProblem(
            ctx.keyword.location, f"a {status} answer has no body; remove it"
        )
    if has_body and content_type is None:
        raise SyntaxProblem(
            ctx.keyword.location,
            "'http-request return' with a body needs 'content-type TYPE'",
        )
    if not has_body and content_type is not None:
        ctx.problem(
            ctx.keyword.location,
            "'content-type' has no effect on a return without a body; it is not sent",
            WARNING,
        )
        content_type = None
    return Return(
        status, content_type, body, log_format, file, tuple(headers), rule,
        ctx.keyword.location,
    )  # fmt: skip
