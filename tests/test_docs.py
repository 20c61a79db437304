"""The manual pages and the README keep up with the code.

Each test reads the roff source of C{man/certlb.1} or C{man/certlb.cfg.5}
as plain text and looks, in the right section, for every name the code
defines: keywords, options, timeouts, fetches, converters, match methods,
ACL derivatives, request actions, log-format aliases and flags,
verification error codes, command-line options, the files of the test
PKI, and the HAProxy names reported as not implemented yet.  The example
configurations of the manual must be valid.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
from collections.abc import Callable, Iterable, Iterator
from itertools import pairwise

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from certlb import tap
from certlb.cli import build_parser
from certlb.config import (
    backend_keywords,
    check_config,
    keywords,
    parse_config,
    parser,
    request_rules,
)
from certlb.config.conditions import ACL_FLAGS
from certlb.config.errors import ERROR
from certlb.config.model import (
    BALANCE_ALGORITHMS,
    REDIRECT_CODES,
    REDIRECT_KINDS,
    VERIFY_MODES,
)
from certlb.pki import CLIENTS
from certlb.proxy import channel, upstream
from certlb.proxy.http import ERROR_TEXT, HOP_BY_HOP, REASONS
from certlb.proxy.runtime import DEFAULT_TIMEOUTS
from certlb.rules import logformat
from certlb.rules.fetches import (
    ACL_DERIVATIVES,
    CONVERTERS,
    CONVERTERS_LATER,
    FETCHES,
    FETCHES_LATER,
)
from certlb.rules.matching import METHODS
from certlb.tls.verify_codes import VERIFY_CODES
from tests.helpers import pki_dir, pki_files, write_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION_LETTERS = {
    "g": "global",
    "d": "defaults",
    "f": "frontend",
    "l": "listen",
    "b": "backend",
}

# The blog reader's wish, as the README and both manual pages give it.
WISH = "http-request set-header X-Ssl-Error %[ssl_c_verify]"
# The verification errors the manual's table explains, one by one.
COMMON_VERIFY_CODES = (2, 3, 8, 9, 10, 11, 12, 18, 19, 20, 21, 23, 34, 35)
# How the manual names the sample types of fetches and converters.
TYPE_NAMES = {
    "bool": "boolean",
    "int": "integer",
    "str": "string",
    "ip": "address",
    "bin": "bytes",
}
SECTION_KEYWORDS = ("global", "defaults", "frontend", "backend", "listen")

_FONT = re.compile(r"\\f(?:\[[^]]*\]|\(..|.)")
_SPECIAL = re.compile(r"\\\(..")


def _read(*path: str) -> str:
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


def plain(roff: str) -> str:
    """The text of a roff source, lines kept, without comments or escapes."""
    lines = [
        line.replace('"', "") if line.startswith(".") else line
        for line in roff.split("\n")
        if not line.startswith('.\\"')
    ]
    text = "\n".join(lines).replace("\\-", "-")
    text = _FONT.sub("", text)
    text = _SPECIAL.sub(" ", text)
    for escape in ("\\&", "\\%", "\\c"):
        text = text.replace(escape, "")
    return text.replace("\\e", "\\")


def sections(roff: str) -> dict[str, str]:
    """The plain text of each C{.SH} section of a roff source, by title."""
    found: dict[str, str] = {}
    title = ""
    for line in plain(roff).split("\n"):
        match = re.match(r'\.SH\s+"?(.*?)"?\s*$', line)
        if match:
            title = match.group(1)
            found[title] = ""
        elif title:
            found[title] += line + "\n"
    return found


def has_word(text: str, word: str) -> bool:
    """Whether C{word} stands in C{text} as a word of its own (a keyword such
    as C{ca-file} does not count inside C{no-ca-file}, nor C{hdr} inside
    C{req.hdr})."""
    return re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w-])", text) is not None


def compared_words(function: Callable[..., object]) -> set[str]:
    """The option-like words (lower case, digits, dashes) among a handler's
    constants: those its code compares the words of a line against."""
    return {
        c
        for c in function.__code__.co_consts
        if isinstance(c, str) and re.fullmatch(r"[a-z][a-z0-9-]*", c)
    }


class ManPageTestCase(SynchronousTestCase):
    """Tests of one manual page, read into its sections."""

    page = ""

    def setUp(self) -> None:
        self.sections = sections(_read("man", self.page))

    def section(self, title: str) -> str:
        self.assertIn(title, self.sections, f"{self.page} has no section {title}")
        return self.sections[title]

    def assertDocumented(self, names: Iterable[str], title: str) -> None:
        """Fail, listing them, unless every name is a word of section C{title}."""
        text = self.section(title)
        missing = sorted(n for n in names if not has_word(text, n))
        self.assertEqual(missing, [], f"not in {self.page}, section {title}")

    def tags(self, title: str) -> list[str]:
        """The first word of each C{.TP} tag of a section."""
        lines = self.section(title).split("\n")
        return [
            tag.split()[1] if tag.startswith(".") else tag.split()[0]
            for line, tag in pairwise(lines)
            if line.startswith(".TP") and tag.strip()
        ]

    def examples(self, title: str) -> list[list[str]]:
        """The lines of each C{.EX} block of a section."""
        blocks: list[list[str]] = []
        block: list[str] | None = None
        for line in self.section(title).split("\n"):
            if line.startswith(".EX"):
                block = []
            elif line.startswith(".EE"):
                if block is not None:
                    blocks.append(block)
                block = None
            elif block is not None:
                block.append(line)
        return blocks


def entries(text: str) -> list[tuple[str, str]]:
    """The C{.TP} entries of some plain roff text: each tag (without its
    macro) and its body as one line of words (without macros), up to the
    next paragraph or heading."""
    found: list[tuple[str, str]] = []
    lines = text.split("\n")
    for i, line in enumerate(lines[:-1]):
        if not line.startswith(".TP"):
            continue
        body: list[str] = []
        for following in lines[i + 2 :]:
            if re.match(r"\.(TP|SS|SH|PP|IP|RS|RE|EX)\b", following):
                break
            body.append(_words(following))
        found.append((_words(lines[i + 1]), " ".join(" ".join(body).split())))
    return found


def _words(line: str) -> str:
    """A roff line's text: without its macro (C{.B}, C{.BR}, ...)."""
    if line.startswith("."):
        line = line.partition(" ")[2]
    return line.strip()


def subsection(text: str, title: str) -> str:
    """The text of the C{.SS} subsection C{title} of a section's text."""
    match = re.search(
        rf"^\.SS\s+{re.escape(title)}\s*$(.*?)(?=^\.S[SH]\s|\Z)", text, re.M | re.S
    )
    assert match is not None, f"no subsection {title!r}"
    return match.group(1)


class ConfigurationPageTests(ManPageTestCase):
    page = "certlb.cfg.5"

    def test_keywords(self) -> None:
        """Every keyword of the configuration language has an entry."""
        self.assertDocumented(keywords.KEYWORDS, "KEYWORDS")

    def test_keyword_sections(self) -> None:
        """The table of keywords gives, for each, the sections the parser
        allows it in."""
        lines = self.section("KEYWORDS").split("\n")
        table = {
            lines[i + 1].split(",")[0].strip(): {
                SECTION_LETTERS[w] for w in lines[i + 2].split() if w in SECTION_LETTERS
            }
            for i, line in enumerate(lines[:-2])
            if line == ".TP 20"
        }
        expected = {
            name: {SECTION_LETTERS[s] for s in keyword.sections}
            for name, keyword in keywords.KEYWORDS.items()
        }
        self.assertEqual(table, expected)

    def test_options(self) -> None:
        """Every 'option' certlb implements is documented."""
        self.assertDocumented(keywords.OPTIONS, "KEYWORDS")

    def test_timeouts(self) -> None:
        """Every timeout is documented with its sections and certlb's default."""
        text = " ".join(self.section("KEYWORDS").split())
        for name, letters in keywords.TIMEOUTS.items():
            match = re.search(rf"timeout {name} \(([^;]+); default:? ([^)]+)\)", text)
            assert match is not None, f"no entry 'timeout {name} (...; default ...)'"
            where = {w.strip() for w in match.group(1).split(",")}
            self.assertEqual(where, {SECTION_LETTERS[s] for s in letters}, name)
            default = DEFAULT_TIMEOUTS.get(name.replace("-", "_"))
            if default is None:
                self.assertRegex(
                    match.group(2), r"^(the value of timeout [a-z-]+|none\b)", name
                )
            else:
                self.assertEqual(match.group(2), f"{default:g}s", name)

    def test_bind_options(self) -> None:
        """Every bind option and verify mode the parser accepts is documented."""
        options = {*keywords.BIND_OPTIONS, *VERIFY_MODES, "all"}
        accepted = [
            "ssl",
            "crt x",
            "ca-file x",
            "crl-file x",
            "crt-ignore-err all",
            "ca-ignore-err 10,X509_V_ERR_CERT_REVOKED",
            *(f"verify {m}" for m in VERIFY_MODES),
        ]
        for option in accepted:
            _, problems = parse_config(f"frontend f\n bind :0 {option}\n")
            self.assertNotIn("bind option", " ".join(p.message for p in problems))
        self.assertDocumented(options | compared_words(keywords._bind), "KEYWORDS")

    def test_server_options(self) -> None:
        """Every server option the parser accepts is documented."""
        options = {*backend_keywords.SERVER_FLAGS, *backend_keywords.SERVER_VALUES}
        for option in ("check", "weight 2", "disabled", "enabled", "backup", "rise 3"):
            _, problems = parse_config(f"backend b\n server s 127.0.0.1:80 {option}\n")
            self.assertEqual([p for p in problems if p.severity == ERROR], [], option)
        self.assertDocumented(options, "KEYWORDS")

    def test_balance_algorithms(self) -> None:
        """Every balance algorithm is documented."""
        self.assertDocumented(BALANCE_ALGORITHMS, "KEYWORDS")

    def test_fetches(self) -> None:
        """Every fetch has an entry, and every entry is a fetch."""
        self.assertDocumented(FETCHES, "FETCHES")
        self.assertEqual(sorted(self.tags("FETCHES")), sorted(FETCHES))

    def test_converters(self) -> None:
        """Every converter has an entry, and every entry is a converter."""
        self.assertDocumented(CONVERTERS, "CONVERTERS")
        self.assertEqual(sorted(self.tags("CONVERTERS")), sorted(CONVERTERS))

    def test_match_methods(self) -> None:
        """Every ACL match method has an entry, and every entry is a method."""
        self.assertDocumented(METHODS, "ACLS")
        documented = [t for t in self.tags("ACLS") if not t.startswith("-")]
        self.assertEqual(sorted(documented), sorted(METHODS))

    def test_acl_flags(self) -> None:
        """Every ACL flag the parser knows is documented."""
        self.assertDocumented([*ACL_FLAGS, "--"], "ACLS")

    def test_not_implemented_yet(self) -> None:
        """Every HAProxy name that certlb reports as not implemented yet is
        listed, so that users know it is an error, not ignored."""
        names = [
            *keywords.UNSUPPORTED,
            *parser.UNSUPPORTED_SECTIONS,
            *keywords.BIND_OPTIONS_LATER,
            *backend_keywords.SERVER_OPTIONS_LATER,
            *keywords.TIMEOUTS_LATER,
            *FETCHES_LATER,
            *CONVERTERS_LATER,
        ]
        self.assertDocumented(names, "NOT IMPLEMENTED YET")

    def test_hop_by_hop_headers(self) -> None:
        """Every hop-by-hop header certlb removes is named."""
        text = self.section("HTTP BEHAVIOUR").lower()
        missing = [h.decode() for h in HOP_BY_HOP if not has_word(text, h.decode())]
        self.assertEqual(missing, [])

    def test_error_responses(self) -> None:
        """Every response certlb gives itself is listed with its reason."""
        text = " ".join(self.section("HTTP BEHAVIOUR").split())
        for status in ERROR_TEXT:
            self.assertIn(f"{status} {REASONS[status].decode()}", text)

    def test_limits(self) -> None:
        """The pool's idle timeout and size, and the request head limits, are
        the code's."""
        text = " ".join(self.section("HTTP BEHAVIOUR").split())
        self.assertIn(f"closed after {upstream.IDLE_TIMEOUT:g} seconds unused", text)
        self.assertIn(f"at most {upstream.MAX_IDLE_PER_SERVER} idle", text)
        self.assertIn(f"{channel.MAX_HEAD_BYTES // 1024} KiB", text)
        self.assertIn(f"{channel.MAX_HEADERS} header lines", text)

    def test_fetch_types(self) -> None:
        """Each fetch's entry starts with the type of its values, as the
        code declares it (or says it is the same as another fetch)."""
        for tag, body in entries(self.section("FETCHES")):
            fetch = FETCHES[tag.split()[0]]
            if body.startswith("The same as"):
                other = FETCHES[body.split()[3].rstrip(".")]
                self.assertEqual(other.output, fetch.output, tag)
            else:
                self.assertTrue(
                    body.startswith(f"({TYPE_NAMES[fetch.output]}"), (tag, body)
                )

    def test_converter_types(self) -> None:
        """Each converter's entry starts with the types it takes and gives."""
        for tag, body in entries(self.section("CONVERTERS")):
            converter = CONVERTERS[tag.split()[0]]
            given, taken = TYPE_NAMES[converter.input], TYPE_NAMES[converter.output]
            types = given if given == taken else f"{given} to {taken}"
            self.assertTrue(body.startswith(f"({types})"), (tag, body))

    def test_acl_derivatives(self) -> None:
        """Every ACL derivative (path_beg, hdr_sub, ...) is named."""
        self.assertDocumented(ACL_DERIVATIVES, "ACLS")

    def test_request_actions(self) -> None:
        """Every http-request action, redirect kind, option and code, deny
        status and return option is documented, and the parser accepts the
        return options."""
        self.assertDocumented(request_rules.HTTP_REQUEST_ACTIONS, "KEYWORDS")
        self.assertDocumented(
            [*REDIRECT_KINDS, *request_rules.REDIRECT_OPTIONS, "deny_status"],
            "KEYWORDS",
        )
        statuses = {*map(str, REDIRECT_CODES), *map(str, request_rules.DENY_STATUSES)}
        self.assertDocumented(statuses, "KEYWORDS")
        page = pki_files()["ca.crt"]
        options = {
            "status": "status 404",
            "content-type": "content-type text/plain string x",
            "string": "content-type text/plain string x",
            "lf-string": "content-type text/plain lf-string %[src]",
            "file": f"content-type text/plain file {page}",
            "lf-file": f"content-type text/plain lf-file {page}",
            "hdr": "hdr X-A %[src]",
        }
        for option, words in options.items():
            text = (
                "defaults\n mode http\nfrontend f\n bind :0\n"
                f" http-request return {words}\n default_backend b\n"
                "backend b\n server s 127.0.0.1:8001\n"
            )
            _, problems = parse_config(text)
            self.assertEqual([p for p in problems if p.severity == ERROR], [], option)
        self.assertDocumented(options, "KEYWORDS")

    def test_request_actions_later(self) -> None:
        """Every http-request action reported as not implemented yet is
        listed."""
        self.assertDocumented(request_rules.HTTP_REQUEST_LATER, "NOT IMPLEMENTED YET")

    def test_log_format(self) -> None:
        """Every log-format alias and flag is documented; those reported as
        not implemented yet are listed."""
        title = "LOG-FORMAT STRINGS"
        self.assertDocumented([f"%{alias}" for alias in logformat.ALIASES], title)
        self.assertDocumented([f"+{flag}" for flag in logformat._FLAG_NAMES], title)
        self.assertDocumented(["%%"], title)
        later = [f"%{alias}" for alias in logformat.ALIASES_LATER]
        self.assertDocumented([*later, *logformat._FLAGS_LATER], "NOT IMPLEMENTED YET")

    def test_verify_codes(self) -> None:
        """Every verification error certlb knows is listed with its number
        and name, as crt-ignore-err and x509_v_err_str take them."""
        text = " ".join(self.section("CERTIFICATE VERIFICATION").split())
        missing = [
            f"{code} {name}"
            for code, (name, _) in VERIFY_CODES.items()
            if code and f"{code} {name}" not in text
        ]
        self.assertEqual(missing, [])

    def test_common_verify_codes(self) -> None:
        """The table of common verification errors has an entry for each,
        with its number, its name, OpenSSL's text for it, the depth it comes
        at and the alert a refused client gets."""
        table = subsection(
            self.section("CERTIFICATE VERIFICATION"), "Common verification errors"
        )
        found = entries(table)
        self.assertEqual(
            [int(tag.split()[0]) for tag, _ in found], list(COMMON_VERIFY_CODES)
        )
        for tag, body in found:
            code, name = tag.split()
            self.assertEqual(name, VERIFY_CODES[int(code)][0])
            self.assertIn(VERIFY_CODES[int(code)][1], body)
            self.assertIn("depth", body.lower(), tag)
            self.assertIn("alert", body.lower(), tag)

    def test_examples_are_valid(self) -> None:
        """Every example configuration of EXAMPLES is valid next to the test
        PKI's files (but for the backends that an example of an article's
        phase leaves out, as phase 2 has them)."""
        configurations = [
            block
            for block in self.examples("EXAMPLES")
            if block and block[0].split()[0] in SECTION_KEYWORDS
        ]
        self.assertGreaterEqual(len(configurations), 7)
        for number, block in enumerate(configurations):
            path = write_config(self, "\n".join(block) + "\n", f"example{number}.cfg")
            _, problems = check_config([path], environ={"CERT_DIR": pki_dir()})
            errors = [
                p.message
                for p in problems
                if p.severity == ERROR and "no backend has this name" not in p.message
            ]
            self.assertEqual(errors, [], block[0])

    def test_rule_examples_are_valid(self) -> None:
        """Every request rule shown on a line of its own in an example is
        valid in a backend."""
        rules = [
            line
            for title in self.sections
            for block in self.examples(title)
            for line in block
            if line.split(" ", 1)[0] in ("http-request", "redirect", "reqadd")
        ]
        self.assertIn(WISH, rules)
        for number, rule in enumerate(rules):
            path = write_config(
                self,
                "defaults\n mode http\nfrontend f\n"
                " bind 127.0.0.1:0 ssl crt ./server.pem ca-file ./ca.pem"
                " verify optional crt-ignore-err all crl-file ./ca_crl.pem\n"
                f" default_backend b\nbackend b\n {rule}\n"
                " server s 127.0.0.1:8001\n",
                f"rule{number}.cfg",
            )
            _, problems = check_config([path])
            errors = [p.message for p in problems if p.severity == ERROR]
            self.assertEqual(errors, [], rule)


def _parser_names(
    parser: argparse.ArgumentParser, command: str
) -> Iterator[tuple[str, str]]:
    """C{(command, name)} for every option, argument and subcommand of a
    parser, recursively."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield command, f"{command} {name}"
                yield from _parser_names(sub, f"{command} {name}")
        elif action.option_strings:
            for option in action.option_strings:
                yield command, option
        elif isinstance(action.metavar, str):
            yield command, action.metavar


class CommandPageTests(ManPageTestCase):
    page = "certlb.1"

    def test_plugin_options(self) -> None:
        """Every option of the twistd plugin (flags, parameters and opt_
        methods, --help and --version included) is documented."""
        options = tap.Options()
        declared = [*options.optFlags, *getattr(options, "optParameters", [])]
        names = [entry[0] for entry in declared]
        names += [entry[1] for entry in declared if entry[1]]
        names += [n[4:].replace("_", "-") for n in dir(options) if n.startswith("opt_")]
        dashed = {("-" if len(n) == 1 else "--") + n for n in names}
        self.assertIn("--config", dashed)
        self.assertDocumented(dashed, "OPTIONS")

    def test_synopsis_plugin(self) -> None:
        """The synopsis shows every option of the plugin's own synopsis."""
        options = re.findall(r"--?[a-z][\w-]*", tap.Options.synopsis)
        self.assertIn("--config", options)
        self.assertDocumented(options, "SYNOPSIS")

    def test_commands(self) -> None:
        """Every certlb subcommand, option and argument is documented, and
        every subcommand is in the synopsis."""
        found = list(_parser_names(build_parser(), "certlb"))
        self.assertIn(("certlb", "certlb check"), found)
        text = " ".join(self.section("OPTIONS").split())
        missing = sorted({f"{c}: {n}" for c, n in found if not has_word(text, n)})
        self.assertEqual(missing, [])
        lines = self.section("SYNOPSIS").split("\n")
        synopsis = " ".join(re.sub(r"^\.\w+ ", "", line) for line in lines)
        commands = [name for _, name in found if name.startswith("certlb ")]
        self.assertEqual([c for c in commands if not has_word(synopsis, c)], [])

    def test_pki_files(self) -> None:
        """Every file that 'certlb pki' writes is described (each client by
        its name), and their number is right."""
        text = " ".join(self.section("OPTIONS").split())
        files = pki_files()
        self.assertIn(f"({len(files)} of them)", text)
        self.assertDocumented(CLIENTS, "OPTIONS")
        others = [f for f in files if f.partition(".")[0] not in CLIENTS]
        self.assertDocumented(others, "OPTIONS")

    def test_wish(self) -> None:
        """The examples give the blog reader's wish, the error in a header."""
        self.assertIn(WISH, [line for b in self.examples("EXAMPLES") for line in b])


class ReadmeTests(SynchronousTestCase):
    def test_wish(self) -> None:
        """The README gives the blog reader's wish, the certificate error in
        a header, in one line; the demo runs it."""
        self.assertIn(f"\n{WISH}\n", _read("README.md"))
        self.assertIn(WISH, _read("certlb", "data", "demo.cfg"))
        self.assertIn(WISH, _read("etc", "README.md"))

    def test_etc_readme_lists_the_pki(self) -> None:
        """etc/README.md shows the real output of 'certlb pki etc/' and
        describes every file it writes (each client by its name)."""
        text = _read("etc", "README.md")
        files = sorted(pki_files())
        self.assertIn(f"wrote {len(files)} files into etc/: {', '.join(files)}\n", text)
        others = [f for f in files if f.partition(".")[0] not in CLIENTS]
        missing = [name for name in [*CLIENTS, *others] if f"`{name}`" not in text]
        self.assertEqual(missing, [])

    def test_etc_readme_phases(self) -> None:
        """etc/README.md has a section for each configuration of etc/, and
        shows the phases' checks as certlb gives them."""
        text = _read("etc", "README.md")
        for name in sorted(os.listdir(os.path.join(ROOT, "etc"))):
            if name.endswith(".cfg"):
                self.assertRegex(text, rf"(?m)^## .*{re.escape(name)}", name)
        for phase in ("phase4", "phase5"):
            _, problems = check_config([os.path.join(ROOT, "etc", f"{phase}.cfg")])
            for problem in problems:
                # (crl-file warnings name the file's absolute path)
                if problem.severity != ERROR and "crl-file" not in problem.message:
                    line = problem.location.line
                    warning = f"etc/{phase}.cfg:{line}: warning: {problem.message}"
                    self.assertIn(warning, text)

    def test_ci_runs_the_readme_test_command(self) -> None:
        """The test command the README gives is the one .ci/run runs."""
        readme_path = os.path.join(ROOT, "README.md")
        ci_path = os.path.join(ROOT, ".ci", "run")
        if not (os.path.exists(readme_path) and os.path.exists(ci_path)):
            raise SkipTest("README.md or .ci/run does not exist yet")
        readme, ci = _read("README.md"), _read(".ci", "run")
        match = re.search(r"^# The README's test command: (.+)$", ci, re.M)
        assert match is not None, ".ci/run does not say which README command it runs"
        command = match.group(1).strip()
        self.assertIn(f"`{command}`", readme)
        commands = [
            words
            for line in ci.split("\n")
            if line.strip() and not line.lstrip().startswith("#")
            for words in [_shell_words(line)]
            if words
        ]
        for part in command.split("&&"):
            words = shlex.split(part)
            self.assertTrue(
                any(_in_order(words, line) for line in commands),
                f".ci/run does not run {part.strip()!r}",
            )


def _shell_words(line: str) -> list[str]:
    """The words of a shell line, without a trailing C{;}; none when the line
    is not shell (such as Python in a here-document)."""
    try:
        return [word.rstrip(";") for word in shlex.split(line)]
    except ValueError:
        return []


def _in_order(words: list[str], line: list[str]) -> bool:
    """Whether C{words} appear in C{line} in order (extra flags allowed)."""
    rest = iter(line)
    return all(word in rest for word in words)
