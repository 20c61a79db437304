"""Turn configuration text into a L{Config}: sections, keywords, defaults.

Each section keyword (C{global}, C{defaults}, C{frontend}, C{backend},
C{listen}) opens a section; the lines that follow are its keywords.  A
C{defaults} section gives its settings to every proxy declared after it, up to
the next C{defaults}.  Problems are collected, never raised one at a time, so
that a user sees all of them at once.
"""

from __future__ import annotations

import os.path
from collections.abc import Mapping, Sequence

import attrs

from certlb.config import keywords
from certlb.config.conditions import SyntaxProblem
from certlb.config.errors import WARNING, Location, Problem, suggest
from certlb.config.lexer import Line, Word, tokenize
from certlb.config.model import (
    TICKET_KEY_LIFETIME,
    Backend,
    Config,
    Frontend,
    Global,
    LogTarget,
)
from certlb.config.syntax import Context, Draft, Keyword

SECTIONS = ("global", "defaults", "frontend", "backend", "listen")
UNSUPPORTED_SECTIONS = (
    "peers", "resolvers", "userlist", "program", "cache", "ring", "mailers",
    "http-errors", "crt-store", "traces", "log-forward",
)  # fmt: skip


@attrs.define
class Section:
    """A section being read; becomes frontends and backends when complete."""

    kind: str
    name: str
    location: Location
    base_dir: str
    draft: Draft


def parse(
    sources: Sequence[tuple[str, str]], environ: Mapping[str, str]
) -> tuple[Config, list[Problem], frozenset[str]]:
    """Parse C{(filename, text)} pairs, in order, as one configuration.

    @return: the configuration read, every problem met on the way, and the
        proxies with a line that could not be read, as C{"frontend NAME"} and
        C{"backend NAME"} (checks that would only repeat that problem skip
        them).
    """
    problems: list[Problem] = []
    reader = _Reader(problems)
    for filename, text in sources:
        reader.start_file(filename)
        for line in tokenize(text, filename, environ, problems):
            reader.line(line)
        reader.close_section()
    config = reader.config(tuple(name for name, _ in sources))
    return config, problems, frozenset(reader.incomplete)


class _Reader:
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.section: Section | None = None
        self.defaults = Draft()
        self.global_maxconn: int | None = None
        self.global_hard_stop_after: int | None = None
        self.global_nbproc: int | None = None
        self.global_ticket_key_lifetime = TICKET_KEY_LIFETIME
        self.global_grace: int | None = None
        self.global_logs: list[LogTarget] = []
        self.plugin_dirs: list[str] = []
        self.log_global: set[int] = set()  # frontends saying 'log global'
        self.named_defaults: dict[str, Draft] = {}
        self.frontends: list[Frontend] = []
        self.backends: list[Backend] = []
        self.incomplete: set[str] = set()
        self.base_dir = "."
        self.filename = ""

    def start_file(self, filename: str) -> None:
        self.filename = filename
        self.base_dir = os.path.dirname(os.path.abspath(filename))

    def error(self, location: Location, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(location, message, severity))

    def line(self, line: Line) -> None:
        first = line.words[0]
        if first.text in SECTIONS and not first.literal:
            self.close_section()
            self.open_section(line.words)
        elif first.text in UNSUPPORTED_SECTIONS:
            self.close_section()
            self.error(
                first.location,
                f"section '{first.text}' is not supported by certlb; remove it "
                "and the lines under it",
            )
            self.section = Section(
                "unsupported", first.text, first.location, self.base_dir,
                Draft(),
            )  # fmt: skip
        elif self.section is None:
            self.error(
                first.location,
                f"'{first.text}' comes before any section; start with one of "
                f"{', '.join(SECTIONS)}",
            )
        elif self.section.kind != "unsupported":
            self.keyword(line.words)

    def open_section(self, words: Sequence[Word]) -> None:
        kind = words[0].text
        name = words[1].text if len(words) > 1 else ""
        location = words[0].location
        draft = Draft()
        if kind in ("frontend", "backend", "listen"):
            if not name:
                self.error(location, f"'{kind}' needs a name, as in '{kind} web'")
            elif not keywords.PROXY_NAME.match(name):
                self.error(
                    words[1].location,
                    f"{name!r} is not a valid {kind} name: use letters, digits, "
                    "'-', '_', '.' and ':'",
                )
            rest = list(words[2:])
            parent = self.defaults
            if len(rest) == 2 and rest[0].text == "from":
                found = self.named_defaults.get(rest[1].text)
                if found is None:
                    self.error(
                        rest[1].location,
                        f"no defaults section is named {rest[1].text!r}"
                        + self._known("named defaults", self.named_defaults),
                    )
                else:
                    parent = found
            elif rest:
                self.error(
                    rest[0].location,
                    f"unexpected {rest[0].text!r} after '{kind} {name}'; only "
                    "'from DEFAULTS-NAME' may follow the name",
                )
            draft = parent.inherit()
        elif kind == "defaults" and len(words) > 2:
            self.error(words[2].location, "'defaults' takes at most a name")
        elif kind == "global" and len(words) > 1:
            self.error(words[1].location, "'global' takes no name")
        self.section = Section(kind, name, location, self.base_dir, draft)

    def close_section(self) -> None:
        section, self.section = self.section, None
        if section is None or section.kind == "unsupported":
            return
        draft = section.draft
        if section.kind == "global":
            if draft.maxconn is not None:
                self.global_maxconn = draft.maxconn
            if draft.hard_stop_after is not None:
                self.global_hard_stop_after = draft.hard_stop_after
            if draft.nbproc is not None:
                self.global_nbproc = draft.nbproc
            if draft.ticket_key_lifetime is not None:
                self.global_ticket_key_lifetime = draft.ticket_key_lifetime
            if draft.grace is not None:
                self.global_grace = draft.grace
            self.global_logs.extend(draft.logs)
            self.plugin_dirs.extend(draft.plugin_dirs)
            return
        if section.kind == "defaults":
            self.defaults = draft
            if section.name:
                self.named_defaults[section.name] = draft
            return
        if not draft.mode_set:
            self.error(
                section.location,
                f"{section.kind} '{section.name}' has no 'mode': HAProxy would "
                "run it in tcp mode, certlb runs it in http mode; add "
                "'mode http' (here or in defaults) to say so",
                WARNING,
            )
        if not section.name:
            return
        try:
            if section.kind in ("frontend", "listen"):
                if draft.log_global and not draft.no_log:
                    self.log_global.add(len(self.frontends))
                self.frontends.append(
                    draft.frontend(section.name, section.location, section.kind)
                )
            if section.kind in ("backend", "listen"):
                self.backends.append(draft.backend(section.name, section.location))
                if draft.expect_location is not None and not draft.httpchk:
                    self.error(
                        draft.expect_location,
                        "'http-check expect' has no effect without 'option "
                        "httpchk' (as in HAProxy): add 'option httpchk' to check "
                        "servers over HTTP",
                        WARNING,
                    )
        except (ValueError, TypeError) as e:  # pragma: no cover - drafts validate
            self.error(section.location, str(e))

    def keyword(self, words: Sequence[Word]) -> None:
        assert self.section is not None
        kind = self.section.kind
        first = words[0]
        name = first.text
        negate = name == "no"
        if negate:
            if len(words) < 2 or words[1].text not in ("option", "log"):
                self.error(
                    first.location,
                    "'no' can only come before 'option' or 'log', as in "
                    "'no option http-server-close'",
                )
                self._incomplete()
                return
            name, words = words[1].text, words[1:]
        entry = keywords.KEYWORDS.get(name)
        if entry is None or kind[0] not in entry.sections:
            self.unknown(first, kind, entry)
            self._incomplete()
            return
        try:
            entry.handler(
                Context(self.section.draft, words, self.base_dir, negate,
                                 self.problems, kind),
            )  # fmt: skip
        except SyntaxProblem as e:
            self.error(e.location, e.message)
            self._incomplete()
        if name == "mode":
            self.section.draft.mode_set = True

    def _incomplete(self) -> None:
        assert self.section is not None
        kind, name = self.section.kind, self.section.name
        if kind in ("frontend", "listen"):
            self.incomplete.add(f"frontend {name}")
        if kind in ("backend", "listen"):
            self.incomplete.add(f"backend {name}")

    def unknown(self, word: Word, kind: str, entry: Keyword | None) -> None:
        name = word.text
        if entry is not None:
            where = [keywords.SECTION_NAMES[s] for s in entry.sections]
            self.error(
                word.location,
                f"'{name}' is not allowed in a {kind} section; it belongs in "
                f"{' or '.join(where)} sections",
            )
            return
        hint = keywords.UNSUPPORTED.get(name)
        if hint is not None:
            self.error(word.location, hint.format(name=name))
            return
        allowed = [k for k, e in keywords.KEYWORDS.items() if kind[0] in e.sections]
        self.error(
            word.location,
            f"unknown keyword '{name}' in {kind} section" + suggest(name, allowed),
        )

    @staticmethod
    def _known(what: str, names: Mapping[str, object]) -> str:
        return (
            f"; {what} are: {', '.join(names)}" if names else f"; there are no {what}"
        )

    def config(self, files: tuple[str, ...]) -> Config:
        global_logs = tuple(self.global_logs)
        # 'log global' means the global section's lines, wherever it is.
        frontends = tuple(
            attrs.evolve(f, logs=global_logs + f.logs) if i in self.log_global else f
            for i, f in enumerate(self.frontends)
        )
        return Config(
            frontends=frontends,
            backends=tuple(self.backends),
            global_=Global(
                maxconn=self.global_maxconn,
                hard_stop_after=self.global_hard_stop_after,
                nbproc=self.global_nbproc,
                grace=self.global_grace,
                ticket_key_lifetime=self.global_ticket_key_lifetime,
                logs=global_logs,
                plugin_dirs=tuple(self.plugin_dirs),
            ),
            files=files,
        )
