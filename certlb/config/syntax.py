"""What keyword handlers share: the draft of a section, and the line at hand."""

from __future__ import annotations

import os.path
from collections.abc import Callable, Sequence

import attrs

from certlb.config.conditions import SyntaxProblem, parse_condition
from certlb.config.errors import WARNING, Location, Problem
from certlb.config.lexer import Word
from certlb.config.model import (
    NOWHERE,
    AclDef,
    Backend,
    Balance,
    Bind,
    Condition,
    ForwardFor,
    Frontend,
    HeaderRule,
    HttpCheck,
    IdentityHeaders,
    LogTarget,
    PluginUse,
    Redirect,
    RequestRule,
    Server,
    StickRule,
    StickTable,
    Timeouts,
    UseBackend,
)


@attrs.define
class Draft:
    """The settings of a section while it is being read."""

    mode_set: bool = False
    timeouts: dict[str, int] = attrs.Factory(dict)
    maxconn: int | None = None
    http_server_close: bool = False
    forwardfor: ForwardFor | None = None
    identity: IdentityHeaders = attrs.Factory(IdentityHeaders)
    log_format: str | None = None
    no_log: bool = False  # 'no log': no access line, whatever the format
    log_format_location: Location = NOWHERE
    logs: list[LogTarget] = attrs.Factory(list)  # its 'log TARGET ...' lines
    log_global: bool = False  # 'log global': the global section's too
    balance: Balance = attrs.Factory(Balance)
    http_check: HttpCheck | None = None
    plugin_balance: PluginUse | None = None  # 'balance NAME', NAME a plugin's
    plugin_options: list[PluginUse] = attrs.Factory(list)  # 'option NAME'
    plugin_dirs: list[str] = attrs.Factory(list)  # global 'plugin-dir' lines
    httpchk: bool = False  # 'option httpchk' given: HTTP checks are on
    expect_location: Location | None = None  # of 'http-check expect'
    allbackups: bool = False
    retries: int = 3
    redispatch: int | None = None
    retry_on: frozenset[str | int] = frozenset({"conn-failure"})
    grace: int | None = None
    stick_table: StickTable | None = None
    stick_rules: list[StickRule] = attrs.Factory(list)
    hard_stop_after: int | None = None
    nbproc: int | None = None  # global 'nbproc' (or 'nbthread')
    ticket_key_lifetime: int | None = None  # 'tune.ssl.ticket-key-lifetime'
    default_backend: str | None = None
    default_backend_location: Location = NOWHERE
    binds: list[Bind] = attrs.Factory(list)
    servers: list[Server] = attrs.Factory(list)
    acls: list[AclDef] = attrs.Factory(list)
    use_backends: list[UseBackend] = attrs.Factory(list)
    http_request: list[RequestRule] = attrs.Factory(list)
    reqadd: list[HeaderRule] = attrs.Factory(list)
    redirects: list[Redirect] = attrs.Factory(list)

    def inherit(self) -> Draft:
        """A new proxy's draft, with the settings a defaults section gives."""
        return Draft(
            mode_set=self.mode_set,
            timeouts=dict(self.timeouts),
            maxconn=self.maxconn,
            http_server_close=self.http_server_close,
            forwardfor=self.forwardfor,
            identity=self.identity,
            log_format=self.log_format,
            no_log=self.no_log,
            log_format_location=self.log_format_location,
            logs=list(self.logs),
            log_global=self.log_global,
            balance=self.balance,
            http_check=self.http_check,
            plugin_balance=self.plugin_balance,
            plugin_options=list(self.plugin_options),
            httpchk=self.httpchk,
            expect_location=self.expect_location,
            allbackups=self.allbackups,
            retries=self.retries,
            redispatch=self.redispatch,
            retry_on=self.retry_on,
            grace=self.grace,
            default_backend=self.default_backend,
            default_backend_location=self.default_backend_location,
        )

    def frontend(self, name: str, location: Location, kind: str) -> Frontend:
        default = self.default_backend
        default_location = self.default_backend_location
        if kind == "listen" and default is None:
            # A listen section serves what no rule sends elsewhere itself.
            default, default_location = name, location
        return Frontend(
            name=name,
            binds=tuple(self.binds),
            acls=tuple(self.acls),
            http_request=tuple(self.http_request),
            reqadd=tuple(self.reqadd),
            redirects=tuple(self.redirects),
            listen=kind == "listen",
            use_backends=tuple(self.use_backends),
            default_backend=default,
            default_backend_location=default_location,
            timeouts=Timeouts(**self.timeouts),
            maxconn=self.maxconn,
            http_server_close=self.http_server_close,
            forwardfor=self.forwardfor,
            grace=self.grace,
            identity=self.identity,
            log_format=None if self.no_log else self.log_format,
            log_format_location=self.log_format_location,
            logs=() if self.no_log else tuple(self.logs),
            location=location,
        )

    def backend(self, name: str, location: Location) -> Backend:
        return Backend(
            name=name,
            servers=tuple(self.servers),
            acls=tuple(self.acls),
            http_request=tuple(self.http_request),
            reqadd=tuple(self.reqadd),
            redirects=tuple(self.redirects),
            balance=self.balance,
            # As in HAProxy, 'http-check expect' alone does not turn HTTP
            # checks on.
            http_check=self.http_check if self.httpchk else None,
            allbackups=self.allbackups,
            retries=self.retries,
            redispatch=self.redispatch,
            retry_on=self.retry_on,
            stick_table=self.stick_table,
            stick_rules=tuple(self.stick_rules),
            plugin_balance=self.plugin_balance,
            plugin_options=tuple(self.plugin_options),
            timeouts=Timeouts(**self.timeouts),
            http_server_close=self.http_server_close,
            forwardfor=self.forwardfor,
            location=location,
        )


@attrs.frozen
class Context:
    """What a keyword handler gets: the draft, the line, and where to report."""

    draft: Draft
    words: Sequence[Word]
    base_dir: str
    negate: bool
    problems: list[Problem]
    section: str

    @property
    def keyword(self) -> Word:
        return self.words[0]

    def problem(
        self, location: Location, message: str, severity: str = "error"
    ) -> None:
        self.problems.append(Problem(location, message, severity))

    def path(self, word: Word) -> str:
        """A file name resolved against the configuration file's directory."""
        return os.path.normpath(os.path.join(self.base_dir, word.text))

    def arg(self, index: int, what: str) -> Word:
        """The word at C{index}, or a problem saying that C{what} is missing."""
        if index >= len(self.words):
            raise SyntaxProblem(
                self.words[-1].location,
                f"'{' '.join(w.text for w in self.words[:index])}' needs {what}",
            )
        return self.words[index]

    def no_more(self, index: int) -> None:
        if index < len(self.words):
            raise SyntaxProblem(
                self.words[index].location,
                f"unexpected {self.words[index].text!r} at the end of "
                f"'{self.words[0].text}'",
            )


@attrs.frozen
class Keyword:
    """A keyword: the sections it is allowed in, and its handler."""

    sections: str
    handler: Callable[[Context], None]


def no_effect_in(ctx: Context, section: str, belongs: str) -> None:
    """Warn of an option given in C{section}, where it does nothing."""
    if ctx.section == section:
        ctx.problem(
            ctx.words[1].location,
            f"'option {ctx.words[1].text}' has no effect in a {section} section; "
            f"it belongs in {belongs} sections",
            WARNING,
        )


def integer(word: Word, what: str, low: int, high: int) -> int:
    if not word.text.isdigit() or not low <= int(word.text) <= high:
        raise SyntaxProblem(
            word.location,
            f"{what} must be a whole number from {low} to {high}, not {word.text!r}",
        )
    return int(word.text)


def condition(ctx: Context, index: int) -> Condition | None:
    """Parse an optional trailing C{if|unless COND} starting at C{index}."""
    if index >= len(ctx.words):
        return None
    word = ctx.words[index]
    if word.text not in ("if", "unless") or word.literal:
        raise SyntaxProblem(
            word.location,
            f"unexpected {word.text!r}: '{ctx.keyword.text}' takes a condition "
            "after 'if' or 'unless'",
        )
    return parse_condition(ctx.words[index:])
