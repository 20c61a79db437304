"""The converters of issue 5: digests, regsub, url_enc, field, bytes and maps."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from certlb.config import load_config, parse_config
from certlb.rules.actions import compile_rules
from certlb.rules.converters import CONVERTERS, CONVERTERS_LATER
from certlb.rules.files import config_path as resolve
from certlb.rules.files import relative_to
from certlb.rules.interfaces import IConverter
from certlb.rules.maps import MAP_CONVERTERS
from tests.test_fetches import context, convert

ABC_DIGESTS = {
    "md5": "900150983cd24fb0d6963f7d28e17f72",
    "sha1": "a9993e364706816aba3e25717850c26c9cd0d89d",
    "sha224": "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
    "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "sha384": "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
    "8086072ba1e7cc2358baeca134c825a7",
    "sha512": "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
}

MAP = """\
# users, and their tier
alice   gold
  bob\tsilver   # not a comment: part of the value
carol

alice   bronze
"""


def compile_error(name: str, *args: str) -> str:
    """The message of the error that compiling C{name(args)} raises."""
    try:
        CONVERTERS[name].compile(args)
    except ValueError as e:
        return str(e)
    raise AssertionError(f"{name}{args} compiled")


def proxy(*lines: str) -> tuple[object, list[str]]:
    """A backend 'b' with C{lines} (the first is line 3 of t.cfg), and the
    errors found in it."""
    body = "".join(f"  {line}\n" for line in lines)
    text = "backend b\n  mode http\n" + body + "  server s 10.0.0.1:80\n"
    config, problems = parse_config(text, "t.cfg", {})
    return config.backends[0], [str(p) for p in problems if p.severity == "error"]


class InterfaceTests(SynchronousTestCase):
    def test_provides_iconverter(self) -> None:
        """Every new converter provides IConverter."""
        for name in ("digest", "sha1", "sha2", "regsub", "url_enc", "field", "bytes"):
            self.assertTrue(verifyObject(IConverter, CONVERTERS[name]), name)
        for converter in MAP_CONVERTERS:
            self.assertTrue(verifyObject(IConverter, converter), converter.name)

    def test_not_later_any_more(self) -> None:
        """Implemented converters are no longer reported as not implemented."""
        self.assertEqual(CONVERTERS_LATER & set(CONVERTERS), set())
        self.assertEqual(CONVERTERS_LATER, {"json"})

    def test_types(self) -> None:
        """Each new converter declares the types HAProxy gives it."""
        self.assertEqual(
            {
                n: (CONVERTERS[n].input, CONVERTERS[n].output)
                for n in (
                    "digest",
                    "sha1",
                    "sha2",
                    "bytes",
                    "field",
                    "regsub",
                    "url_enc",
                )
            },
            {
                "digest": ("bin", "bin"),
                "sha1": ("bin", "bin"),
                "sha2": ("bin", "bin"),
                "bytes": ("bin", "bin"),
                "field": ("str", "str"),
                "regsub": ("str", "str"),
                "url_enc": ("str", "str"),
            },
        )

    def test_map_family(self) -> None:
        """map and map_MATCH[_int|_ip] exist for every match method, with the
        input type of the match and the type of the output."""
        self.assertEqual(
            (CONVERTERS["map"].input, CONVERTERS["map"].output), ("str", "str")
        )
        for match, given in [
            ("str", "str"),
            ("beg", "str"),
            ("int", "int"),
            ("ip", "ip"),
        ]:
            self.assertEqual(CONVERTERS[f"map_{match}"].output, "str")
            self.assertEqual(CONVERTERS[f"map_{match}_int"].output, "int")
            self.assertEqual(CONVERTERS[f"map_{match}_ip"].output, "ip")
            self.assertEqual(CONVERTERS[f"map_{match}_ip"].input, given)


class DigestTests(SynchronousTestCase):
    def test_known_vectors(self) -> None:
        """digest(ALG) gives the digest of the bytes, for OpenSSL's names."""
        for algorithm, expected in ABC_DIGESTS.items():
            self.assertEqual(
                convert("digest", "abc", algorithm), bytes.fromhex(expected)
            )
        self.assertEqual(
            convert("digest", "", "md5"),
            bytes.fromhex("d41d8cd98f00b204e9800998ecf8427e"),
        )

    def test_openssl_spellings(self) -> None:
        """Upper case and OpenSSL's dashed names are accepted."""
        self.assertEqual(convert("digest", "abc", "SHA256"), convert("sha2", "abc"))
        self.assertEqual(len(convert("digest", "abc", "sha3-256")), 32)  # type: ignore[arg-type]

    def test_integer_input(self) -> None:
        """An integer is digested as its 8 bytes, big-endian."""
        self.assertEqual(
            convert("sha1", 1, source="int"),
            convert("sha1", b"\0" * 7 + b"\1", source="bin"),
        )

    def test_unknown_algorithm(self) -> None:
        """An unknown algorithm is an error naming it, and what to write."""
        message = compile_error("digest", "sha257")
        self.assertIn("unknown digest algorithm 'sha257'", message)
        self.assertIn("sha256", message)
        self.assertIn("'shake128'", compile_error("digest", "shake128"))
        self.assertIn("digest(sha256)", compile_error("digest"))

    def test_sha1(self) -> None:
        """sha1 gives the 20-byte SHA-1 digest, and takes no argument."""
        self.assertEqual(convert("sha1", "abc"), bytes.fromhex(ABC_DIGESTS["sha1"]))
        self.assertIn("takes no arguments", compile_error("sha1", "1"))

    def test_sha2_bits(self) -> None:
        """sha2 gives SHA-256 by default, SHA-BITS for 224, 256, 384 or 512."""
        self.assertEqual(convert("sha2", "abc"), bytes.fromhex(ABC_DIGESTS["sha256"]))
        for bits in (224, 256, 384, 512):
            self.assertEqual(
                convert("sha2", "abc", str(bits)),
                bytes.fromhex(ABC_DIGESTS[f"sha{bits}"]),
            )
        self.assertIn(
            "224, 256, 384 or 512 bits, not 128", compile_error("sha2", "128")
        )
        self.assertIn("not 'big'", compile_error("sha2", "big"))


class RegsubTests(SynchronousTestCase):
    def test_first_match(self) -> None:
        """Without g, only the first match is replaced."""
        self.assertEqual(convert("regsub", "banana", "a", "o"), "bonana")
        self.assertEqual(convert("regsub", "banana", "z", "o"), "banana")

    def test_global(self) -> None:
        """With g, every match is replaced."""
        self.assertEqual(convert("regsub", "banana", "a", "o", "g"), "bonono")
        self.assertEqual(convert("regsub", "/a//b///c", "/+", "/", "g"), "/a/b/c")

    def test_ignore_case(self) -> None:
        """With i, the regex ignores case; flags combine in any order."""
        self.assertEqual(convert("regsub", "BaNAnA", "a", "o"), "BoNAnA")
        self.assertEqual(convert("regsub", "BaNAnA", "a", "o", "i"), "BoNAnA")
        self.assertEqual(convert("regsub", "BANANA", "a", "o", "i"), "BoNANA")
        self.assertEqual(convert("regsub", "BANANA", "a", "o", "gi"), "BoNoNo")
        self.assertEqual(convert("regsub", "BANANA", "a", "o", "ig"), "BoNoNo")

    def test_empty_matches(self) -> None:
        """A regex that matches the empty string replaces between characters,
        as sed does."""
        self.assertEqual(convert("regsub", "abxd", "x*", "-", "g"), "-a-b--d-")
        self.assertEqual(convert("regsub", "abc", "^", ">"), ">abc")

    def test_back_references(self) -> None:
        """\\1 to \\9 are groups, \\0 the match; a group that took no part
        gives nothing."""
        self.assertEqual(
            convert("regsub", "/foo12", "(foo|bar)([0-9]+)?", "\\2\\1"), "/12foo"
        )
        self.assertEqual(
            convert("regsub", "/bar", "(foo|bar)([0-9]+)?", "\\2\\1"), "/bar"
        )
        self.assertEqual(convert("regsub", "ab", "b", "[\\0]"), "a[b]")
        self.assertEqual(convert("regsub", "ab", "b", "\\7"), "a")

    def test_escapes(self) -> None:
        """\\xHH is a character; a backslash before another character keeps it."""
        self.assertEqual(convert("regsub", "a b", " ", "\\x2C"), "a,b")
        self.assertEqual(convert("regsub", "a", "a", "\\\\\\n"), "\\n")

    def test_errors(self) -> None:
        """Bad flags, regexes, substitutions and argument counts are errors."""
        self.assertIn(
            "no flag 'x': its flags are i (ignore case) and g",
            compile_error("regsub", "a", "b", "gx"),
        )
        self.assertIn("bad regular expression '('", compile_error("regsub", "(", "b"))
        self.assertIn(
            "a backslash must be followed", compile_error("regsub", "a", "b\\")
        )
        self.assertIn(
            "a backslash must be followed", compile_error("regsub", "a", "\\xZ1")
        )
        self.assertIn("regsub(REGEX,SUBST)", compile_error("regsub", "a"))


class UrlEncTests(SynchronousTestCase):
    def test_reserved_characters(self) -> None:
        """Every character but letters, digits and -._~ is percent-encoded,
        in upper-case hexadecimal."""
        self.assertEqual(
            convert("url_enc", " !\"#$%&'()*+,/:;<=>?@[\\]^`{|}"),
            "%20%21%22%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3C%3D%3E%3F%40"
            "%5B%5C%5D%5E%60%7B%7C%7D",
        )
        self.assertEqual(convert("url_enc", "Az09-._~"), "Az09-._~")

    def test_bytes_beyond_ascii(self) -> None:
        """Characters beyond ASCII are encoded byte by byte (as sent)."""
        self.assertEqual(convert("url_enc", "caf\xe9\n"), "caf%E9%0A")

    def test_type(self) -> None:
        """The only encoding type is query, the default."""
        self.assertEqual(convert("url_enc", "a b", "query"), "a%20b")
        self.assertIn(
            "only the encoding type 'query', not 'path'",
            compile_error("url_enc", "path"),
        )


class FieldTests(SynchronousTestCase):
    def test_haproxy_examples(self) -> None:
        """field gives what HAProxy's manual says it gives."""
        for args, expected in [
            (("4", "_"), ""),
            (("5", "_"), "f5"),
            (("2", "_", "0"), "f2_f3__f5"),
            (("2", "_", "2"), "f2_f3"),
            (("-2", "_", "3"), "f2_f3_"),
            (("-3", "_", "0"), "f1_f2_f3"),
        ]:
            self.assertEqual(convert("field", "f1_f2_f3__f5", *args), expected, args)

    def test_negative_index(self) -> None:
        """-1 is the last field, -N the Nth from the end."""
        self.assertEqual(convert("field", "a.b.c", "-1", "."), "c")
        self.assertEqual(convert("field", "a.b.c", "-3", "."), "a")
        self.assertEqual(convert("field", "a.b.c", "-2", ".", "5"), "a.b")

    def test_missing_field(self) -> None:
        """A field beyond the last gives no value; a count beyond, the rest."""
        self.assertIsNone(convert("field", "a.b.c", "4", "."))
        self.assertIsNone(convert("field", "a.b.c", "-4", "."))
        self.assertEqual(convert("field", "a.b.c", "2", ".", "9"), "b.c")
        self.assertEqual(convert("field", "", "1", "."), "")

    def test_several_delimiters(self) -> None:
        """Any of the delimiter characters separates fields."""
        self.assertEqual(convert("field", "a/b.c", "2", "./"), "b")
        self.assertEqual(convert("field", "a/b.c", "2", "./", "0"), "b.c")

    def test_errors(self) -> None:
        """Index 0, no delimiter and a non-number are errors."""
        self.assertIn("counts fields from 1", compile_error("field", "0", "."))
        self.assertIn("at least one delimiter", compile_error("field", "1", ""))
        self.assertIn("not 'x'", compile_error("field", "x", "."))
        self.assertIn("field(INDEX,DELIMITERS)", compile_error("field", "1"))


class BytesTests(SynchronousTestCase):
    def test_slices(self) -> None:
        """bytes(OFFSET[,LENGTH]) gives the bytes from OFFSET, LENGTH of them."""
        self.assertEqual(convert("bytes", "012345", "0"), b"012345")
        self.assertEqual(convert("bytes", "012345", "1", "3"), b"123")
        self.assertEqual(convert("bytes", 258, "6", source="int"), b"\x01\x02")

    def test_beyond_the_end(self) -> None:
        """An offset beyond the end gives empty bytes, a length the rest."""
        self.assertEqual(convert("bytes", "012345", "6"), b"")
        self.assertEqual(convert("bytes", "012345", "60", "2"), b"")
        self.assertEqual(convert("bytes", "012345", "4", "10"), b"45")

    def test_errors(self) -> None:
        """A negative offset, a length under 1, or a variable are errors."""
        self.assertIn("an offset of 0 or more, not -1", compile_error("bytes", "-1"))
        self.assertIn("a length of 1 or more, not 0", compile_error("bytes", "1", "0"))
        self.assertIn("variables", compile_error("bytes", "txn.start"))
        self.assertIn("bytes(OFFSET)", compile_error("bytes"))


class MapTests(SynchronousTestCase):
    def write(self, text: str) -> str:
        """A map file of C{text}; its absolute path."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w", encoding="latin-1") as f:
            f.write(text)
        return path

    def test_file_format(self) -> None:
        """Comments, blank lines and leading blanks are skipped; the value is
        the rest of the line after spaces or tabs; the first of two equal keys
        is the one found; a key alone has an empty value."""
        path = self.write(MAP)
        self.assertEqual(convert("map", "alice", path), "gold")
        self.assertEqual(
            convert("map", "bob", path), "silver   # not a comment: part of the value"
        )
        self.assertEqual(convert("map", "carol", path), "")
        self.assertIsNone(convert("map", "# users,", path))
        self.assertIsNone(convert("map", "Alice", path))

    def test_bytes_and_line_ends(self) -> None:
        """Keys and values are compared byte for byte, as sent (UTF-8 here),
        and CRLF line ends are allowed."""
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write("zoë platinum\r\nalice gold\r\n".encode())
        # Request text is read as Latin-1: these are the two bytes of "ë".
        self.assertEqual(convert("map", "zo\xc3\xab", path), "platinum")
        self.assertEqual(convert("map", "alice", path), "gold")

    def test_default(self) -> None:
        """Without a match, the default, or no value."""
        path = self.write(MAP)
        self.assertEqual(convert("map_str", "dave", path, "bronze"), "bronze")
        self.assertIsNone(convert("map_str", "dave", path))

    def test_string_matches(self) -> None:
        """beg finds the longest prefix; sub, end and reg the first line that
        matches; dom and dir whole dot- or slash-separated words."""
        path = self.write("/a short\n/a/b long\n")
        self.assertEqual(convert("map_beg", "/a/b/c", path), "long")
        self.assertEqual(convert("map_beg", "/ax", path), "short")
        path = self.write("an first\nna second\n")
        self.assertEqual(convert("map_sub", "banana", path), "first")
        self.assertEqual(convert("map_end", "banana", path), "second")
        path = self.write("^/api/v[0-9]+/ api\n^/ root\n")
        self.assertEqual(convert("map_reg", "/api/v2/x", path), "api")
        self.assertEqual(convert("map_reg", "/app", path), "root")
        path = self.write("example.com ours\n")
        self.assertEqual(convert("map_dom", "www.example.com", path), "ours")
        self.assertIsNone(convert("map_dom", "badexample.com", path))
        path = self.write("img pictures\n")
        self.assertEqual(convert("map_dir", "/static/img/a.png", path), "pictures")
        self.assertIsNone(convert("map_dir", "/static/imgs/a.png", path))

    def test_ip_match(self) -> None:
        """map_ip finds the most precise network, whatever the order of lines;
        an IPv4-mapped IPv6 address is its IPv4 address."""
        path = self.write(
            "10.0.0.0/8 lan\n10.1.2.0/24 lab\n192.0.2.7 host\n2001:db8::/32 v6\n"
        )
        self.assertEqual(convert("map_ip", "10.1.2.3", path, source="ip"), "lab")
        self.assertEqual(convert("map_ip", "10.9.9.9", path, source="ip"), "lan")
        self.assertEqual(convert("map_ip", "192.0.2.7", path, source="ip"), "host")
        self.assertEqual(convert("map_ip", "::ffff:10.1.2.3", path, source="ip"), "lab")
        self.assertEqual(convert("map_ip", "2001:db8::1", path, source="ip"), "v6")
        self.assertIsNone(convert("map_ip", "not an address", path))

    def test_int_match(self) -> None:
        """map_int matches numbers and ranges; text is read as a number."""
        path = self.write("200 ok\n500:599 server\n:99 odd\n")
        self.assertEqual(convert("map_int", 200, path, source="int"), "ok")
        self.assertEqual(convert("map_int", "503", path), "server")
        self.assertEqual(convert("map_int", -5, path, source="int"), "odd")
        self.assertIsNone(convert("map_int", 404, path, source="int"))

    def test_outputs(self) -> None:
        """_int gives integers and _ip addresses, from the file or the default."""
        path = self.write("alice 3\nbob -7\n")
        self.assertEqual(convert("map_str_int", "bob", path), -7)
        self.assertEqual(convert("map_str_int", "carol", path, "0"), 0)
        path = self.write("alice 10.0.0.1\nbob 2001:DB8::1\n")
        self.assertEqual(convert("map_str_ip", "bob", path), "2001:db8::1")
        self.assertEqual(convert("map_str_ip", "eve", path, "127.0.0.1"), "127.0.0.1")

    def test_bad_lines(self) -> None:
        """A value or key that does not fit is an error naming file:line."""
        path = self.write("# tiers\nalice 3\nbob many\n")
        self.assertIn(
            f"map file {path}:3: 'many' is not an integer",
            compile_error("map_str_int", path),
        )
        path = self.write("10.0.0.0/8 lan\nlocalhost me\n")
        self.assertIn(
            f"map file {path}:2: 'localhost' is not an address",
            compile_error("map_ip", path),
        )
        path = self.write("( paren\n")
        self.assertIn(
            f"map file {path}:1: bad regular expression", compile_error("map_reg", path)
        )
        path = self.write("a:b x\n")
        self.assertIn(
            f"map file {path}:1: 'a:b' is not an integer key",
            compile_error("map_int", path),
        )

    def test_bad_arguments(self) -> None:
        """A missing file, a bad default or no file name are errors."""
        path = os.path.abspath(self.mktemp())
        self.assertEqual(
            compile_error("map", path),
            f"cannot read map file {path}: No such file or directory",
        )
        self.assertIn("map(FILE,DEFAULT)", compile_error("map"))
        self.assertIn(
            "the default value must be an integer: 'x' is not an integer",
            compile_error("map_str_int", self.write(MAP), "x"),
        )

    def test_relative_to(self) -> None:
        """A relative name is resolved against the directory of the
        configuration file compiling it, else against the current one."""
        self.assertEqual(resolve("users.map"), os.path.abspath("users.map"))
        self.assertEqual(resolve("/etc/users.map"), "/etc/users.map")
        with relative_to("/etc/certlb/certlb.cfg"):
            self.assertEqual(resolve("maps/users.map"), "/etc/certlb/maps/users.map")
            self.assertEqual(resolve("../users.map"), "/etc/users.map")
        self.assertEqual(resolve("users.map"), os.path.abspath("users.map"))

    def test_read_at_load(self) -> None:
        """The file is read when the converter is compiled, not per request."""
        path = self.write(MAP)
        function = CONVERTERS["map"].compile((path,))
        os.remove(path)
        self.assertEqual(function("alice"), "gold")


class ConfigurationTests(SynchronousTestCase):
    def header(
        self, lines: list[str], name: str, headers: list[tuple[str, str]]
    ) -> str | None:
        """The value of header C{name} after a backend's rules C{lines} ran
        on a request with C{headers}."""
        backend, errors = proxy(*lines)
        self.assertEqual(errors, [])
        request = context(headers=headers)
        compile_rules(backend).apply(request)  # type: ignore[arg-type]
        values = [v for n, v in request.headers if n.lower() == name.lower()]
        return values[-1] if values else None

    def test_digest_chain(self) -> None:
        """A header set to a digest of another, in hexadecimal."""
        value = self.header(
            ["http-request set-header X-Id %[hdr(x-user),sha2(256),hex]"],
            "X-Id",
            [("X-User", "abc")],
        )
        self.assertEqual(value, ABC_DIGESTS["sha256"].upper())
        value = self.header(
            ["http-request set-header X-Id %[hdr(x-user),digest(md5),bytes(0,4),hex]"],
            "X-Id",
            [("X-User", "abc")],
        )
        self.assertEqual(value, "90015098")

    def test_regsub_quoted_arguments(self) -> None:
        """Quoted arguments may hold commas and parentheses; a backslash
        outside quotes is kept for the regex."""
        lines = [
            "http-request set-header X-A \"%[hdr(x-in),regsub(' ',',',g)]\"",
            "http-request set-header X-B \"%[hdr(x-in),regsub('[()]','',g)]\"",
            "http-request set-header X-C %[hdr(x-in),regsub(\\d+,N,g)]",
            "http-request set-header X-D %[path,regsub(/+,/,g),field(-1,/)]",
            "http-request set-header X-E "
            "%[hdr(x-in),regsub((foo|bar)([0-9]+)?,\\2\\1,i)]",
        ]
        headers = [("X-In", "a b(1) 22")]
        self.assertEqual(self.header(lines, "X-A", headers), "a,b(1),22")
        self.assertEqual(self.header(lines, "X-B", headers), "a b1 22")
        self.assertEqual(self.header(lines, "X-C", headers), "a b(N) N")
        self.assertEqual(self.header(lines, "X-D", headers), "b")
        self.assertEqual(self.header(lines, "X-E", [("X-In", "/FOO12")]), "/12FOO")

    def test_url_enc_and_field(self) -> None:
        """url_enc and field chain after a header fetch."""
        lines = [
            "http-request set-header X-Q %[hdr(x-in),field(2,;),url_enc]",
        ]
        self.assertEqual(
            self.header(lines, "X-Q", [("X-In", "a;b c&d;e")]), "b%20c%26d"
        )

    def test_map_in_acl(self) -> None:
        """An ACL matches a map's value with -m str; the header takes the
        map's value, or the default."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write(MAP)
        lines = [
            f"acl vip hdr(x-user),map({path}) -m str gold",
            "http-request set-header X-Vip yes if vip",
            f"http-request set-header X-Tier %[hdr(x-user),map({path},none)]",
        ]
        self.assertEqual(self.header(lines, "X-Vip", [("X-User", "alice")]), "yes")
        self.assertIsNone(self.header(lines, "X-Vip", [("X-User", "bob")]))
        self.assertEqual(self.header(lines, "X-Tier", [("X-User", "dave")]), "none")

    def test_map_relative_to_configuration(self) -> None:
        """A relative map file name is found next to the configuration file
        that names it, whatever the working directory."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        with open(os.path.join(directory, "users.map"), "w") as f:
            f.write(MAP)
        path = os.path.join(directory, "t.cfg")
        with open(path, "w") as f:
            f.write(
                "backend b\n  mode http\n"
                "  http-request set-header X-Tier %[hdr(x-user),map(users.map)]\n"
                "  server s 10.0.0.1:80\n"
            )
        self.patch(os, "getcwd", lambda: "/")
        config = load_config(path)
        request = context(headers=[("X-User", "alice")])
        compile_rules(config.backends[0]).apply(request)
        self.assertIn(("X-Tier", "gold"), request.headers)

    def test_map_int_output_in_acl(self) -> None:
        """A map with integer values gives an ACL an integer to compare."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("alice 3\nbob 1\n")
        lines = [
            f"acl trusted hdr(x-user),map_str_int({path},0) ge 2",
            "http-request set-header X-Trusted yes if trusted",
        ]
        self.assertEqual(self.header(lines, "X-Trusted", [("X-User", "alice")]), "yes")
        self.assertIsNone(self.header(lines, "X-Trusted", [("X-User", "bob")]))

    def test_located_errors(self) -> None:
        """Bad arguments and bad map files are configuration errors at the
        line that names them."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("alice 3\nbob lots\n")
        missing = os.path.abspath(self.mktemp())
        _, errors = proxy(
            "http-request set-header X-A %[hdr(x),field(0,/)]",
            "http-request set-header X-B %[hdr(x),digest(sha257)]",
            f"acl a hdr(x),map_str_int({path}) gt 1",
            f"acl b hdr(x),map({missing}) gold",
            "http-request deny if a || b",
        )
        self.assertEqual(len(errors), 4, errors)
        self.assertTrue(errors[0].startswith("t.cfg:3: error: "), errors)
        self.assertIn("'field' counts fields from 1", errors[0])
        self.assertTrue(errors[1].startswith("t.cfg:4: error: "), errors)
        self.assertIn("unknown digest algorithm 'sha257'", errors[1])
        self.assertTrue(errors[2].startswith("t.cfg:5: error: "), errors)
        self.assertIn(f"map file {path}:2: 'lots' is not an integer", errors[2])
        self.assertTrue(errors[3].startswith("t.cfg:6: error: "), errors)
        self.assertIn(f"cannot read map file {missing}: No such file", errors[3])

    def test_cast_errors(self) -> None:
        """A converter given a type it cannot take is an error, as before."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("1 one\n")
        _, errors = proxy(f"http-request set-header X-A %[hdr(x),sha1,map_int({path})]")
        self.assertEqual(len(errors), 1, errors)
        self.assertIn(
            "converter 'map_int' takes int values, but 'sha1' gives bin values",
            errors[0],
        )
