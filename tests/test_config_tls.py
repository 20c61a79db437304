"""Bind options for client verification: crt-ignore-err, ca-ignore-err and
crl-file, from the configuration text to the checker's messages and the TLS
they give."""

from __future__ import annotations

import datetime
import os
import shutil

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from certlb.config import parse_config
from certlb.config.errors import ERROR, WARNING, Problem
from certlb.config.model import ALL_ERRORS, Bind
from certlb.pki import Identity
from certlb.tls.server import ServerTLS
from certlb.tls.state import VerifyPolicy
from tests.helpers import pki, pki_files
from tests.test_tls import Refused, Verified, verdict

BACKEND = "backend b\n  mode http\n  server s1 10.0.0.1:80\n"
DAY = datetime.timedelta(days=1)
# The files of the test PKI that the configurations below name.
FILES = (
    "server.pem",
    "ca.crt",
    "ca.pem",
    "ca_crl.pem",
    "ca1_crl.pem",
    "chain_crl.pem",
    "expired_crl.pem",
)


def crl_pem(
    ca: Identity,
    days: tuple[int, int] = (-1, 30),
    key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """A PEM CRL of C{ca}, updated and due C{days} from now, signed by
    C{key} (by default, the CA's)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now + days[0] * DAY)
        .next_update(now + days[1] * DAY)
        .sign(key or ca.key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.PEM)


class BindTestCase(SynchronousTestCase):
    """Configurations written next to copies of the test PKI's files."""

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        for name in FILES:
            shutil.copy(pki_files()[name], self.directory)
        self.config = os.path.join(self.directory, "t.cfg")

    def write(self, name: str, data: bytes) -> str:
        """Write C{data} into file C{name} of the directory; its path."""
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def parse(self, options: str) -> tuple[list[Bind], list[Problem]]:
        """The binds of a frontend whose bind line (line 3) has C{options},
        and the problems of the configuration."""
        text = f"frontend f\n  mode http\n  bind :443 {options}\n  default_backend b\n"
        config, problems = parse_config(text + BACKEND, self.config, environ={})
        return [b for f in config.frontends for b in f.binds], problems

    def bind(self, options: str) -> Bind:
        """The bind of a line with C{options}, which must have no problem."""
        binds, problems = self.parse(options)
        self.assertEqual(problems, [])
        (bind,) = binds
        return bind

    def problems(self, options: str, severity: str) -> list[str]:
        """The messages of the problems of a bind line with C{options}, which
        must all be of C{severity} and at line 3, without the bind's name."""
        _, problems = self.parse(options)
        self.assertEqual(
            [(p.severity, str(p.location)) for p in problems],
            [(severity, f"{self.config}:3")] * len(problems),
            problems,
        )
        prefix = f"{self.config}:3: {severity}: "
        for problem in problems:
            self.assertTrue(str(problem).startswith(prefix), problem)
        return [p.message.removeprefix("bind 0.0.0.0:443: ") for p in problems]

    def error(self, options: str) -> str:
        """The one problem of a bind line, which must be an error."""
        (message,) = self.problems(options, ERROR)
        return message

    def warning(self, options: str) -> str:
        """The one problem of a bind line, which must be a warning."""
        (message,) = self.problems(options, WARNING)
        return message

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)


VERIFY = "ssl crt server.pem ca-file ca.pem verify optional"
ERROR_CODES_HELP = (
    "write 'all', numbers such as 10,23 or names such as "
    "X509_V_ERR_CERT_HAS_EXPIRED (certlb.cfg(5) lists them)"
)


class IgnoreErrParseTests(BindTestCase):
    def test_default(self) -> None:
        """Without the options, no error is ignored and no CRL is checked."""
        bind = self.bind(VERIFY)
        self.assertEqual(
            (bind.crt_ignore_err, bind.ca_ignore_err, bind.crl_file),
            (frozenset(), frozenset(), None),
        )

    def test_number(self) -> None:
        """crt-ignore-err 10 ignores error 10 at depth 0 only."""
        bind = self.bind(f"{VERIFY} crt-ignore-err 10")
        self.assertEqual(
            (bind.crt_ignore_err, bind.ca_ignore_err), (frozenset({10}), frozenset())
        )

    def test_list(self) -> None:
        """ca-ignore-err takes a comma-separated list of numbers."""
        bind = self.bind(f"{VERIFY} ca-ignore-err 10,23,3")
        self.assertEqual(
            (bind.crt_ignore_err, bind.ca_ignore_err),
            (frozenset(), frozenset({3, 10, 23})),
        )

    def test_all(self) -> None:
        """'all' is kept as such, for both options."""
        bind = self.bind(f"{VERIFY} crt-ignore-err all ca-ignore-err all")
        self.assertEqual(
            (bind.crt_ignore_err, bind.ca_ignore_err), (ALL_ERRORS, ALL_ERRORS)
        )

    def test_names_as_numbers(self) -> None:
        """X509_V_ERR_* names mean their numbers, alone or mixed with numbers."""
        by_name = self.bind(
            f"{VERIFY} crt-ignore-err X509_V_ERR_CERT_HAS_EXPIRED,"
            "X509_V_ERR_CERT_REVOKED ca-ignore-err 10,X509_V_ERR_UNABLE_TO_GET_CRL"
        )
        self.assertEqual(by_name.crt_ignore_err, frozenset({10, 23}))
        self.assertEqual(by_name.ca_ignore_err, frozenset({3, 10}))

    def test_codes_above_31(self) -> None:
        """Codes above 31 (HAProxy 1.5 knew only up to 31) are accepted, by
        number or name."""
        bind = self.bind(
            f"{VERIFY} crt-ignore-err 34,X509_V_ERR_KEYUSAGE_NO_CRL_SIGN,94"
        )
        self.assertEqual(bind.crt_ignore_err, frozenset({34, 35, 94}))

    def test_unknown_name(self) -> None:
        """A misspelt name is an error naming it, saying what to write, with
        a suggestion."""
        self.assertEqual(
            self.error(f"{VERIFY} crt-ignore-err 10,X509_V_ERR_CERT_HAS_EXPRED"),
            "'X509_V_ERR_CERT_HAS_EXPRED' is not a certificate verification "
            f"error; {ERROR_CODES_HELP}; did you mean 'X509_V_ERR_CERT_HAS_EXPIRED'?",
        )

    def test_unknown_number(self) -> None:
        """A number that is no verification error is an error naming it,
        without a suggestion."""
        self.assertEqual(
            self.error(f"{VERIFY} ca-ignore-err 23,999"),
            f"'999' is not a certificate verification error; {ERROR_CODES_HELP}",
        )

    def test_all_in_a_list(self) -> None:
        """'all' stands alone: in a list it is an error."""
        self.assertEqual(
            self.error(f"{VERIFY} crt-ignore-err all,10"),
            "'all' already means every error: write it alone",
        )

    def test_missing_codes(self) -> None:
        """crt-ignore-err or ca-ignore-err at the end of the line is an error
        saying what it needs."""
        for option in ("crt-ignore-err", "ca-ignore-err"):
            self.assertEqual(
                self.error(f"{VERIFY} {option}"),
                f"'bind :443 {VERIFY} {option}' needs 'all', or error codes or "
                "names separated by commas",
            )


class CrlFileParseTests(BindTestCase):
    def test_relative_to_config(self) -> None:
        """A relative crl-file is resolved against the configuration file's
        directory, whatever the working directory."""
        os.makedirs(self.path("crl"))
        shutil.copy(self.path("ca_crl.pem"), self.path("crl"))
        os.makedirs(self.path("conf"))
        self.config = self.path("conf/t.cfg")
        bind = self.bind(
            "ssl crt ../server.pem ca-file ../ca.pem verify optional "
            "crl-file ../crl/ca_crl.pem"
        )
        self.assertEqual(bind.crl_file, self.path("crl/ca_crl.pem"))

    def test_absolute(self) -> None:
        """An absolute crl-file is kept."""
        bind = self.bind(f"{VERIFY} crl-file {self.path('ca_crl.pem')}")
        self.assertEqual(bind.crl_file, self.path("ca_crl.pem"))

    def test_missing_file_name(self) -> None:
        """crl-file at the end of the line is an error saying it needs a file
        name."""
        self.assertEqual(
            self.error(f"{VERIFY} crl-file"),
            f"'bind :443 {VERIFY} crl-file' needs a file name",
        )


class CrlFileCheckTests(BindTestCase):
    def test_good(self) -> None:
        """The article's phase 5 bind, with the CRLs of both CAs, is fine."""
        self.bind(f"{VERIFY} crt-ignore-err all crl-file ca_crl.pem")

    def test_missing(self) -> None:
        """A crl-file that does not exist is an error naming it, resolved
        against the configuration's directory."""
        self.assertEqual(
            self.error(f"{VERIFY} crl-file nope.pem"),
            f"CRL file {self.path('nope.pem')!r} does not exist",
        )

    def test_directory(self) -> None:
        """A crl-file that is a directory says to give a PEM file."""
        self.assertEqual(
            self.error(f"{VERIFY} crl-file ."),
            f"CRL file {self.directory!r} is a directory; give a PEM file",
        )

    def test_unreadable(self) -> None:
        """A crl-file that cannot be read says why."""
        if os.geteuid() == 0:
            raise SkipTest("root reads any file, whatever its mode")
        os.chmod(self.path("ca_crl.pem"), 0)
        self.assertEqual(
            self.error(f"{VERIFY} crl-file ca_crl.pem"),
            f"CRL file {self.path('ca_crl.pem')!r} cannot be read: Permission denied",
        )

    def test_no_crl(self) -> None:
        """A crl-file without a CRL is an error; one of certificates says
        what to give instead."""
        self.write("empty.pem", b"")
        self.assertEqual(
            self.error(f"{VERIFY} crl-file empty.pem"),
            f"CRL file {self.path('empty.pem')!r} holds no PEM CRL "
            "(-----BEGIN X509 CRL-----)",
        )
        self.assertEqual(
            self.error(f"{VERIFY} crl-file ca.crt"),
            f"CRL file {self.path('ca.crt')!r} holds certificates but no CRL; "
            "give the CAs' revocation lists (PEM, -----BEGIN X509 CRL-----)",
        )

    def test_damaged(self) -> None:
        """A damaged CRL is an error giving its number in the file."""
        with open(self.path("ca_crl.pem"), "rb") as f:
            good = f.read()
        self.write("bad.pem", good.replace(b"\n", b"\n!", 30))
        self.assertIn(
            f"CRL file {self.path('bad.pem')!r}: CRL number 1 is damaged: ",
            self.error(f"{VERIFY} crl-file bad.pem"),
        )

    def test_problems_without_verify(self) -> None:
        """A missing crl-file is an error even under verify none (where it
        has no effect), as a missing ca-file is."""
        _, problems = self.parse("ssl crt server.pem crl-file nope.pem")
        self.assertEqual(
            sorted((p.severity, p.message) for p in problems),
            [
                (
                    ERROR,
                    "bind 0.0.0.0:443: CRL file "
                    f"{self.path('nope.pem')!r} does not exist",
                ),
                (
                    WARNING,
                    "bind 0.0.0.0:443: 'crl-file' has no effect with 'verify "
                    "none'; add 'verify optional' or 'verify required'",
                ),
            ],
        )


class TlsNeededTests(BindTestCase):
    def test_each_option_without_ssl(self) -> None:
        """crl-file, crt-ignore-err or ca-ignore-err without ssl is an error
        naming the option and saying to add ssl."""
        for options, name in [
            ("crl-file ca_crl.pem", "'crl-file' needs"),
            ("crt-ignore-err 10", "'crt-ignore-err' needs"),
            ("ca-ignore-err all", "'ca-ignore-err' needs"),
            (
                "ca-ignore-err all crt-ignore-err 10 crl-file ca_crl.pem",
                "'crl-file', 'crt-ignore-err' and 'ca-ignore-err' need",
            ),
        ]:
            self.assertEqual(
                self.error(options), f"{name} TLS; add 'ssl' to this bind line"
            )

    def test_with_crt_options(self) -> None:
        """With crt, ca-file or verify too, one error says it all."""
        self.assertEqual(
            self.error("crt server.pem crl-file ca_crl.pem crt-ignore-err all"),
            "'crt', 'crl-file' and 'crt-ignore-err' need TLS; add 'ssl' to this "
            "bind line",
        )


class VerifyNoneTests(BindTestCase):
    def test_each_option(self) -> None:
        """crl-file, crt-ignore-err or ca-ignore-err with verify none is a
        warning that it has no effect."""
        for option, name in [
            ("crl-file ca_crl.pem", "crl-file"),
            ("crt-ignore-err all", "crt-ignore-err"),
            ("ca-ignore-err 10", "ca-ignore-err"),
        ]:
            self.assertEqual(
                self.warning(f"ssl crt server.pem verify none {option}"),
                f"'{name}' has no effect with 'verify none'; add 'verify "
                "optional' or 'verify required'",
            )

    def test_one_warning(self) -> None:
        """Several options without effect are named in one warning."""
        self.assertEqual(
            self.warning(
                "ssl crt server.pem ca-file ca.pem crt-ignore-err all "
                "ca-ignore-err 10 crl-file ca_crl.pem"
            ),
            "'ca-file', 'crl-file', 'crt-ignore-err' and 'ca-ignore-err' have "
            "no effect with 'verify none'; add 'verify optional' or 'verify "
            "required'",
        )


MISSING_CA2 = "has no CRL of CA 'certlb test CA 2': its clients will"
REFUSED_3 = (
    "fail verification with error 3 (unable to get certificate CRL) unless "
    "crt-ignore-err ignores it (ca-ignore-err, for the CAs it signed); add its "
    "CRL to that file"
)
LET_THROUGH_3 = (
    "get error 3 (unable to get certificate CRL), which crt-ignore-err lets "
    "through, so their ssl_c_verify will not be 0; add its CRL to that file"
)


class CrlCoverageTests(BindTestCase):
    def test_ca_without_crl(self) -> None:
        """A CA of ca-file without a CRL in crl-file is a warning naming it:
        its clients will fail verification with error 3."""
        self.assertEqual(
            self.warning(f"{VERIFY} crl-file ca1_crl.pem"),
            f"crl-file {self.path('ca1_crl.pem')!r} {MISSING_CA2} {REFUSED_3}",
        )

    def test_ca_without_crl_ignored(self) -> None:
        """When crt-ignore-err lets error 3 through, the warning says that
        the CA's clients get it, so ssl_c_verify is not 0 for them."""
        for codes in ("all", "3", "X509_V_ERR_UNABLE_TO_GET_CRL,10"):
            self.assertEqual(
                self.warning(f"{VERIFY} crt-ignore-err {codes} crl-file ca1_crl.pem"),
                f"crl-file {self.path('ca1_crl.pem')!r} {MISSING_CA2} {LET_THROUGH_3}",
            )

    def test_ca_without_crl_other_codes_ignored(self) -> None:
        """crt-ignore-err without 3, or ca-ignore-err 3, does not let error 3
        of a CA's clients through."""
        for ignore in ("crt-ignore-err 10,23", "ca-ignore-err 3"):
            self.assertEqual(
                self.warning(f"{VERIFY} {ignore} crl-file ca1_crl.pem"),
                f"crl-file {self.path('ca1_crl.pem')!r} {MISSING_CA2} {REFUSED_3}",
            )

    def test_crl_of_no_ca(self) -> None:
        """A CRL of a CA that is not in ca-file is a warning giving its
        number and its CA: it serves only clients that send that CA."""
        self.assertEqual(
            self.warning(
                "ssl crt server.pem ca-file ca.crt verify optional crl-file ca_crl.pem"
            ),
            f"CRL number 2 of crl-file {self.path('ca_crl.pem')!r} is from "
            "'certlb test CA 2', which is not a CA of ca-file: it serves only "
            "clients that send that CA in their chain, and the clients of that "
            "CA also get errors 35 and 8 from it",
        )

    def test_intermediate_crls(self) -> None:
        """The CRLs of intermediate CAs that clients send (not in ca-file)
        get that warning too, one per CRL."""
        messages = self.problems(f"{VERIFY} crl-file chain_crl.pem", WARNING)
        self.assertEqual(
            messages,
            [
                f"CRL number {number} of crl-file {self.path('chain_crl.pem')!r} "
                f"is from 'certlb {kind} intermediate CA', which is not a CA of "
                "ca-file: it serves only clients that send that CA in their chain, "
                "and the clients of that CA also get errors 35 and 8 from it"
                for number, kind in [(3, "test"), (4, "expired"), (5, "revoked")]
            ],
        )

    def test_expired_crl(self) -> None:
        """An expired CRL is a warning giving the date it expired: its CA's
        clients will fail verification with error 12."""
        expired = pki().expired_crl
        assert expired is not None and expired.next_update_utc is not None
        self.assertEqual(
            self.warning(f"{VERIFY} crl-file expired_crl.pem"),
            f"the CRL of CA 'certlb test CA 1' in crl-file "
            f"{self.path('expired_crl.pem')!r} expired on "
            f"{expired.next_update_utc:%Y-%m-%d %H:%M} UTC: clients of that CA "
            "will fail verification with error 12 (CRL has expired) unless "
            "crt-ignore-err ignores it (ca-ignore-err, for the CAs it signed); "
            "put the CA's current CRL in that file",
        )

    def test_expired_crl_next_to_current_one(self) -> None:
        """An expired CRL next to a current one of the same CA is no problem:
        OpenSSL uses the current one."""
        with open(self.path("expired_crl.pem"), "rb") as f:
            expired = f.read()
        with open(self.path("ca_crl.pem"), "rb") as f:
            current = f.read()
        self.write("both.pem", expired + current)
        self.bind(f"{VERIFY} crl-file both.pem")

    def test_crl_not_yet_valid(self) -> None:
        """A CRL that is valid only from tomorrow is a warning: error 11."""
        p = pki()
        self.write("future.pem", crl_pem(p.ca1, (1, 30)) + crl_pem(p.ca2))
        message = self.warning(f"{VERIFY} crt-ignore-err all crl-file future.pem")
        self.assertTrue(
            message.startswith(
                f"the CRL of CA 'certlb test CA 1' in crl-file "
                f"{self.path('future.pem')!r} is valid only from "
            ),
            message,
        )
        self.assertTrue(
            message.endswith(
                " UTC: clients of that CA will get error 11 (CRL is not yet "
                "valid), which crt-ignore-err lets through, so their "
                "ssl_c_verify will not be 0; check this machine's clock and "
                "the CRL's dates"
            ),
            message,
        )

    def test_crl_of_another_key(self) -> None:
        """A CRL that names a CA of ca-file but is signed by another key (an
        old CA of the same name) is a warning: error 8."""
        p = pki()
        other = ec.generate_private_key(ec.SECP256R1())
        self.write("forged.pem", crl_pem(p.ca1, key=other) + crl_pem(p.ca2))
        self.assertEqual(
            self.warning(f"{VERIFY} crl-file forged.pem"),
            f"CRL number 1 of crl-file {self.path('forged.pem')!r} names CA "
            "'certlb test CA 1' as its issuer but is not signed by that CA: "
            "clients of that CA will fail verification with error 8 (CRL "
            "signature failure) unless crt-ignore-err ignores it (ca-ignore-err, "
            "for the CAs it signed); remove it, or put the CRL this CA signed "
            "instead",
        )

    def test_every_problem(self) -> None:
        """Each CA and each CRL is checked: a CA without a CRL and a CRL of no
        CA of ca-file are two warnings."""
        self.write("ca2_only.pem", crl_pem(pki().ca2) + crl_pem(pki().untrusted_ca))
        path = self.path("ca2_only.pem")
        self.assertEqual(
            self.problems(f"{VERIFY} crl-file ca2_only.pem", WARNING),
            [
                f"CRL number 2 of crl-file {path!r} is from 'certlb untrusted "
                "CA', which is not a CA of ca-file: it serves only clients that "
                "send that CA in their chain, and the clients of that CA also get "
                "errors 35 and 8 from it",
                f"crl-file {path!r} has no CRL of CA 'certlb test CA 1': its "
                f"clients will {REFUSED_3}",
            ],
        )


class ParsedBindTlsTests(BindTestCase):
    def tls(self, options: str) -> ServerTLS:
        """The TLS side of a bind line with C{options}, as certlb builds it."""
        bind = self.bind(options)
        assert bind.crt is not None
        return ServerTLS.for_bind(
            bind.crt,
            bind.ca_file,
            bind.verify,
            "parsed",
            VerifyPolicy(bind.crt_ignore_err, bind.ca_ignore_err),
            bind.crl_file,
        )

    def test_names_and_numbers_alike(self) -> None:
        """crt-ignore-err X509_V_ERR_CERT_HAS_EXPIRED accepts the expired
        client as crt-ignore-err 10 does, with verify 10."""
        for codes in ("10", "X509_V_ERR_CERT_HAS_EXPIRED"):
            self.assertEqual(
                verdict(self.tls(f"{VERIFY} crt-ignore-err {codes}"), "expired"),
                Verified(((10, 0),), verify=10, crt_err=10),
                codes,
            )

    def test_article_phase5_line(self) -> None:
        """The article's phase 5 options accept the expired and revoked
        clients with verify 10 and 23."""
        tls = self.tls(f"{VERIFY} crt-ignore-err all crl-file ./ca_crl.pem")
        self.assertEqual(
            verdict(tls, "revoked"), Verified(((23, 0),), verify=23, crt_err=23)
        )
        self.assertEqual(
            verdict(tls, "expired"), Verified(((10, 0),), verify=10, crt_err=10)
        )

    def test_crl_file_refuses_revoked(self) -> None:
        """crl-file alone refuses the revoked client with 'certificate
        revoked'."""
        tls = self.tls(f"{VERIFY} crl-file ca_crl.pem")
        self.assertEqual(
            verdict(tls, "revoked"), Refused(((23, 0),), "certificate revoked")
        )
