"""The configuration lexer: words, locations, comments, escapes and quotes."""

from __future__ import annotations

from collections.abc import Mapping

from twisted.trial.unittest import SynchronousTestCase

from certlb.config.errors import ERROR, WARNING, Location, Problem
from certlb.config.lexer import Word, tokenize


def lex(
    text: str, environ: Mapping[str, str] | None = None
) -> tuple[list[list[Word]], list[Problem]]:
    """The words of each line of C{text} (read as C{t.cfg}), and the problems."""
    problems: list[Problem] = []
    lines = [
        list(line.words) for line in tokenize(text, "t.cfg", environ or {}, problems)
    ]
    return lines, problems


def words(text: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The texts of the words of the single line C{text}, without problems."""
    lines, problems = lex(text, environ)
    assert problems == [], problems
    assert len(lines) == 1, lines
    return [word.text for word in lines[0]]


class WordTests(SynchronousTestCase):
    def test_spaces_and_tabs_separate_words(self) -> None:
        """Runs of spaces and tabs separate words; leading and trailing blanks
        make no empty word."""
        self.assertEqual(
            words(" \t bind  127.0.0.1:80\tssl \t"), ["bind", "127.0.0.1:80", "ssl"]
        )

    def test_locations(self) -> None:
        """Each word knows its file, line and 1-based column; blank and comment
        lines yield nothing but still count as lines."""
        lines, _ = lex("frontend web\n\n# comment\n  bind\t:80\n")
        self.assertEqual(len(lines), 2)
        self.assertEqual(
            [(w.text, w.location) for w in lines[1]],
            [("bind", Location("t.cfg", 4, 3)), (":80", Location("t.cfg", 4, 8))],
        )
        self.assertEqual(str(lines[1][0].location), "t.cfg:4")

    def test_windows_line_endings(self) -> None:
        """CRLF line endings count one line each and leave no carriage return
        in the words."""
        lines, _ = lex("frontend web\r\n bind :80\r\n")
        texts = [[w.text for w in line] for line in lines]
        self.assertEqual(texts, [["frontend", "web"], ["bind", ":80"]])
        self.assertEqual(lines[1][0].location.line, 2)

    def test_only_newline_ends_a_line(self) -> None:
        """A form feed or a Unicode line separator does not end a line, so
        line numbers are those an editor shows."""
        lines, _ = lex("frontend web\x0c\n bind :80\u2028x\n")
        self.assertEqual(lines[1][0].location.line, 2)
        self.assertEqual([w.text for w in lines[1]], ["bind", ":80\u2028x"])

    def test_plain_words_are_not_literal(self) -> None:
        """A word written without quotes or escapes is not literal, so the
        parser may read it as a brace, '!' or 'or'."""
        lines, _ = lex("if { a } ! or ||")
        self.assertEqual([w.literal for w in lines[0]], [False] * 7)


class CommentTests(SynchronousTestCase):
    def test_comment_ends_the_line(self) -> None:
        """'#' starts a comment up to the end of the line."""
        self.assertEqual(words("bind :80 # ssl crt x.pem"), ["bind", ":80"])

    def test_comment_inside_a_word(self) -> None:
        """'#' inside a word starts a comment there, as in HAProxy."""
        self.assertEqual(words("path /a#b c"), ["path", "/a"])

    def test_comment_in_quotes_is_text(self) -> None:
        """'#' inside single or double quotes is part of the word."""
        self.assertEqual(words("x '/a#b' \"c#d\" e"), ["x", "/a#b", "c#d", "e"])

    def test_escaped_hash_is_text(self) -> None:
        """'\\#' is a literal '#', not a comment."""
        self.assertEqual(words(r"x a\#b c"), ["x", "a#b", "c"])


class EscapeTests(SynchronousTestCase):
    def test_escaped_space_joins_a_word(self) -> None:
        """'\\ ' is a space inside the word."""
        self.assertEqual(words(r"hdr X-My\ Header"), ["hdr", "X-My Header"])

    def test_escaped_backslash_and_quotes(self) -> None:
        """'\\\\', "\\'" and '\\"' stand for the character itself."""
        self.assertEqual(words(r"a\\b \'c\' \"d\""), ["a\\b", "'c'", '"d"'])

    def test_control_escapes(self) -> None:
        """'\\r', '\\n' and '\\t' are carriage return, newline and tab."""
        self.assertEqual(words(r"a\r\n\tb"), ["a\r\n\tb"])

    def test_hex_escape(self) -> None:
        """'\\xHH' is the character with that code, in either case of hex."""
        self.assertEqual(words(r"\x41\x7e\x2F"), ["A~/"])

    def test_escaped_word_is_literal(self) -> None:
        """A word with any escape in it is literal."""
        lines, _ = lex(r"a\ b plain")
        self.assertEqual([w.literal for w in lines[0]], [True, False])

    def test_unknown_escape_is_kept(self) -> None:
        """Any other backslash is kept as written, so regular expressions read
        as written."""
        self.assertEqual(
            words(r"path_reg ^/a\.html$ \d+"), ["path_reg", r"^/a\.html$", r"\d+"]
        )

    def test_bad_hex_escape(self) -> None:
        """'\\x' without two hexadecimal digits is an error at the backslash
        that shows how to write one; the line is still read."""
        lines, problems = lex(r"abc \xZ1")
        self.assertEqual(len(problems), 1)
        self.assertEqual(problems[0].location, Location("t.cfg", 1, 5))
        self.assertEqual(problems[0].severity, ERROR)
        self.assertIn("\\x needs two hexadecimal digits", problems[0].message)
        self.assertIn("\\x20", problems[0].message)
        self.assertEqual(lines[0][0].text, "abc")

    def test_short_hex_escape_at_end(self) -> None:
        """'\\x' with a single digit before the end of the line is an error."""
        _, problems = lex(r"a\x4")
        self.assertEqual(len(problems), 1)
        self.assertIn("two hexadecimal digits", problems[0].message)

    def test_trailing_backslash(self) -> None:
        """A backslash at the end of a line is an error (there is no line
        continuation), and it makes no empty word."""
        lines, problems = lex("bind :80 \\\nmode http")
        self.assertEqual(
            [str(p) for p in problems],
            [
                "t.cfg:1: error: a backslash ends the line; certlb, like HAProxy, "
                "has no line continuation: put the whole statement on one line"
            ],
        )
        texts = [[w.text for w in line] for line in lines]
        self.assertEqual(texts, [["bind", ":80"], ["mode", "http"]])


class QuoteTests(SynchronousTestCase):
    def test_single_quotes_are_literal(self) -> None:
        """Inside single quotes nothing is special: spaces, '#', backslashes,
        '$' and double quotes are kept."""
        self.assertEqual(
            words("x 'a b # \\n $HOME \"q\"'", {"HOME": "/root"}),
            ["x", 'a b # \\n $HOME "q"'],
        )

    def test_double_quotes_keep_spaces_and_escapes(self) -> None:
        """Double quotes keep spaces and single quotes; escapes still work."""
        self.assertEqual(words('"a b \'c\' \\t\\""'), ["a b 'c' \t\""])

    def test_quoted_parts_join_their_word(self) -> None:
        """Quoted and unquoted parts written together make one word."""
        self.assertEqual(words("a'b c'\"d\"e"), ["ab cde"])

    def test_empty_quotes_make_an_empty_word(self) -> None:
        """'' and \"\" are empty words, not nothing."""
        self.assertEqual(words("x '' \"\" y"), ["x", "", "", "y"])

    def test_quoted_word_is_literal_and_starts_at_the_quote(self) -> None:
        """A quoted '{' is literal (text, not a brace), and its column is the
        quote's."""
        lines, _ = lex('if "{" {')
        self.assertEqual(
            [(w.text, w.literal, w.location.column) for w in lines[0]],
            [("if", False, 1), ("{", True, 4), ("{", False, 8)],
        )

    def test_unterminated_single_quote(self) -> None:
        """A single quote left open is an error at the quote; what was read is
        kept."""
        lines, problems = lex("x 'abc")
        self.assertEqual(
            [str(p) for p in problems],
            [
                "t.cfg:1: error: unterminated ' quote; close it with ' before "
                "the end of the line"
            ],
        )
        self.assertEqual(problems[0].location.column, 3)
        self.assertEqual(lines[0][1].text, "abc")

    def test_unterminated_double_quote(self) -> None:
        """A double quote left open is an error that names the double quote."""
        _, problems = lex('x "abc')
        self.assertEqual(len(problems), 1)
        self.assertIn('unterminated " quote', problems[0].message)

    def test_problems_do_not_stop_reading(self) -> None:
        """After a line with a problem, the following lines are read."""
        lines, problems = lex("a 'b\nc d\n")
        self.assertEqual(len(problems), 1)
        self.assertEqual([w.text for w in lines[1]], ["c", "d"])


class EnvironmentTests(SynchronousTestCase):
    def test_variables_in_double_quotes(self) -> None:
        """$NAME and ${NAME} expand inside double quotes."""
        env = {"ADDR": "127.0.0.1", "PORT": "8443"}
        self.assertEqual(words('bind "$ADDR:${PORT}"', env), ["bind", "127.0.0.1:8443"])

    def test_braces_end_the_name(self) -> None:
        """${NAME} ends at the brace; $NAME takes every name character after
        the dollar."""
        env = {"A": "1", "AB": "2"}
        self.assertEqual(words('"${A}B $AB $A.x"', env), ["1B 2 1.x"])

    def test_no_expansion_elsewhere(self) -> None:
        """Outside double quotes, and in single quotes, '$NAME' is text."""
        self.assertEqual(words("$A '$A'", {"A": "1"}), ["$A", "$A"])

    def test_escaped_dollar(self) -> None:
        """'\\$' inside double quotes is a dollar, not a variable."""
        self.assertEqual(words('"\\$A"', {"A": "1"}), ["$A"])

    def test_dollar_without_a_name(self) -> None:
        """A dollar not followed by a name is kept."""
        self.assertEqual(words('"5$ $1 $"'), ["5$ $1 $"])

    def test_unset_variable_warns(self) -> None:
        """An unset variable expands to nothing, with a warning at the dollar
        that names it."""
        lines, problems = lex('x "a${MISSING}b"', {})
        self.assertEqual(lines[0][1].text, "ab")
        self.assertEqual(
            problems,
            [
                Problem(
                    Location("t.cfg", 1, 5),
                    "environment variable MISSING is not set; it expands to an "
                    "empty string",
                    WARNING,
                )
            ],
        )

    def test_empty_variable_does_not_warn(self) -> None:
        """A variable set to the empty string expands to it without warning."""
        self.assertEqual(words('x"$E"y', {"E": ""}), ["xy"])
