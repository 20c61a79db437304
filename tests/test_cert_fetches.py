"""Certificate fetches (ssl_c_*, ssl_f_*): every value, as HAProxy gives it."""

from __future__ import annotations

import base64
import datetime
import ipaddress
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from OpenSSL.crypto import X509
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from certlb.config import parse_config
from certlb.config.errors import Location
from certlb.pki import Identity
from certlb.rules.acl import (
    CompiledCondition,
    RuleError,
)
from certlb.rules.actions import compile_rules
from certlb.rules.cert_fetches import CERTIFICATE_FETCHES, RemainingDaysFetch
from certlb.rules.fetches import FETCHES, FETCHES_LATER
from certlb.rules.interfaces import IFetch
from certlb.rules.logformat import compile_log_format
from certlb.tls.state import ClientCertState
from tests.helpers import pki, pki_files
from tests.test_fetches import context, fetch
from tests.test_rules import condition as rules_condition
from tests.test_tls import Client, handshake, server_tls

HERE = Location("t.cfg", 7)
NOT_BEFORE = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
NOT_AFTER = datetime.datetime(2036, 6, 7, 8, 9, 10, tzinfo=datetime.timezone.utc)
RICH_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certlb test PKI"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "ops"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "admins"),
        x509.NameAttribute(NameOID.COMMON_NAME, "certlb rich client"),
    ]
)
RICH_NAMES = (
    x509.DNSName("rich.example.com"),
    x509.DNSName("alt.example.com"),
    x509.UniformResourceIdentifier("https://example.com/rich"),
    x509.RFC822Name("rich@example.com"),
    x509.IPAddress(ipaddress.ip_address("10.1.2.3")),
    x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
)
# A serial whose first bit is set: DER adds a 0 byte before it, OpenSSL's
# (and so ssl_c_serial's) bytes do not.
RICH_SERIAL = 0x80123456

_issued: dict[str, Identity] = {}


def issue(
    name: str,
    subject: x509.Name,
    alternatives: Sequence[x509.GeneralName] = RICH_NAMES,
    serial: int = RICH_SERIAL,
    not_after: datetime.datetime = NOT_AFTER,
    rsa_key: bool = False,
) -> Identity:
    """A client certificate from CA 1 (made once per test run), with fixed
    dates, serial and subject alternative names."""
    if name not in _issued:
        ca = pki().ca1
        key = (
            rsa.generate_private_key(65537, 2048)
            if rsa_key
            else ec.generate_private_key(ec.SECP256R1())
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(NOT_BEFORE)
            .not_valid_after(not_after)
        )
        if alternatives:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(list(alternatives)), critical=False
            )
        signer = ca.key if not rsa_key else key
        certificate = builder.sign(signer, hashes.SHA256())
        _issued[name] = Identity(name, certificate, key)  # type: ignore[arg-type]
    return _issued[name]


def rich_client() -> Identity:
    """A client with two OUs and a name of each type in subjectAltName."""
    return issue("rich", RICH_SUBJECT)


def clock(now: float) -> Callable[[], float]:
    """A clock that always says C{now}."""
    return lambda: now


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def state(certificate: x509.Certificate | None, **fields: object) -> ClientCertState:
    """The TLS state of a connection on certlb's test server certificate
    where the client sent C{certificate} (None: no certificate), verified
    by CA 1."""
    ca1 = pki().ca1.certificate
    return ClientCertState(
        has_crt=certificate is not None,
        used=certificate is not None,
        certificate=certificate,
        verified_chain=(
            (X509.from_cryptography(certificate), X509.from_cryptography(ca1))
            if certificate is not None
            else ()
        ),
        local_certificate=pki().server.certificate,
        **fields,  # type: ignore[arg-type]
    )


RICH = state(rich_client().certificate)
NONE = state(None)
PEER_NAMES = sorted(f.name for f in CERTIFICATE_FETCHES if f.name.startswith("ssl_c_"))
LOCAL_NAMES = sorted(f.name for f in CERTIFICATE_FETCHES if f.name.startswith("ssl_f_"))


class DistinguishedNameTests(SynchronousTestCase):
    def test_whole_dn(self) -> None:
        """Without arguments, the DN in HAProxy's /C=../O=../CN=.. form."""
        self.assertEqual(
            fetch("ssl_c_s_dn", context(RICH)),
            "/C=FR/O=certlb test PKI/OU=ops/OU=admins/CN=certlb rich client",
        )
        self.assertEqual(
            fetch("ssl_c_i_dn", context(RICH)), "/O=certlb test PKI/CN=certlb test CA 1"
        )
        self.assertEqual(
            fetch("ssl_c_r_dn", context(RICH)), "/O=certlb test PKI/CN=certlb test CA 1"
        )

    def test_entries(self) -> None:
        """An entry, named in any case, gives its first value; an occurrence
        counts from the start (1) or from the end (-1)."""
        request = context(RICH)
        cases = [
            (("CN",), "certlb rich client"),
            (("cn",), "certlb rich client"),
            (("OU",), "ops"),
            (("OU", "1"), "ops"),
            (("OU", "2"), "admins"),
            (("OU", "-1"), "admins"),
            (("OU", "-2"), "ops"),
            (("OU", "3"), None),
            (("OU", "0"), None),
            (("L",), None),
            (("commonName",), None),
        ]
        for args, expected in cases:
            self.assertEqual(fetch("ssl_c_s_dn", request, *args), expected, args)
        self.assertEqual(fetch("ssl_c_i_dn", request, "CN"), "certlb test CA 1")
        self.assertEqual(fetch("ssl_c_r_dn", request, "o"), "certlb test PKI")

    def test_root_of_a_self_signed_client(self) -> None:
        """ssl_c_r_dn is the first self-issued certificate of the verified
        chain: a self-signed client's own, when its error is ignored."""
        selfsigned = pki().clients["selfsigned"].certificate
        tls = ClientCertState(
            has_crt=True,
            used=True,
            certificate=selfsigned,
            verified_chain=(X509.from_cryptography(selfsigned),),
        )
        self.assertEqual(
            fetch("ssl_c_r_dn", context(tls), "CN"), "certlb selfsigned client"
        )

    def test_rfc2253(self) -> None:
        """With an empty entry and the rfc2253 format, the DN as LDAP writes
        it, last attribute first, as cryptography (and OpenSSL) write it."""
        expected = "CN=certlb rich client,OU=admins,OU=ops,O=certlb test PKI,C=FR"
        self.assertEqual(
            fetch("ssl_c_s_dn", context(RICH), "", "0", "rfc2253"), expected
        )
        self.assertEqual(RICH_SUBJECT.rfc4514_string(), expected)
        self.assertEqual(
            fetch("ssl_c_i_dn", context(RICH), "", "", "rfc2253"),
            "CN=certlb test CA 1,O=certlb test PKI",
        )

    def test_escaping(self) -> None:
        """Special characters, non-ASCII text and unknown attributes are
        written exactly as `openssl x509 -subject -nameopt RFC2253` writes
        them; the whole DN keeps the certificate's bytes, as HAProxy does."""
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'A, B+C "q" <x>;=\\'),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "# hash "),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, " Zo\u00eb"),
                x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b.c"),
                x509.NameAttribute(x509.ObjectIdentifier("2.25.1234"), "odd"),
                x509.NameAttribute(NameOID.COMMON_NAME, "odd"),
            ]
        )
        request = context(state(issue("odd", subject).certificate))
        self.assertEqual(
            fetch("ssl_c_s_dn", request, "", "0", "rfc2253"),
            "CN=odd,2.25.1234=#0C036F6464,emailAddress=a@b.c,OU=\\ Zo\\C3\\AB,"
            'OU=\\# hash\\ ,O=A\\, B\\+C \\"q\\" \\<x\\>\\;=\\\\,C=FR',
        )
        self.assertEqual(
            fetch("ssl_c_s_dn", request),
            '/C=FR/O=A, B+C "q" <x>;=\\/OU=# hash /OU= Zo\u00c3\u00ab'
            "/emailAddress=a@b.c/2.25.1234=odd/CN=odd",
        )
        self.assertEqual(fetch("ssl_c_s_dn", request, "2.25.1234"), "odd")
        self.assertEqual(fetch("ssl_c_s_dn", request, "EMAILADDRESS"), "a@b.c")

    def test_embedded_nul(self) -> None:
        """A value with a NUL followed by more data is malformed: neither
        it nor the whole DN has a value (HAProxy refuses them)."""
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "good"),
                x509.NameAttribute(NameOID.COMMON_NAME, "admin\0.evil"),
            ]
        )
        request = context(state(issue("nul", subject).certificate))
        self.assertIsNone(fetch("ssl_c_s_dn", request))
        self.assertIsNone(fetch("ssl_c_s_dn", request, "CN"))
        self.assertEqual(fetch("ssl_c_s_dn", request, "O"), "good")

    def test_bad_arguments(self) -> None:
        """Wrong arguments are refused when the configuration is loaded,
        saying what to write."""
        for args, message in [
            (
                ("CN", "1", "rfc2253", "x"),
                "'ssl_c_s_dn' takes at most 3 arguments, an entry, an occurrence "
                "and a format, as in ssl_c_s_dn(OU,2) or ssl_c_s_dn(,0,rfc2253), "
                "but was given 4",
            ),
            (
                ("OU", "first"),
                "'ssl_c_s_dn' occurrence 'first' is not a number; write 1 for the "
                "first value, 2 for the second, -1 for the last",
            ),
            (
                ("", "0", "ldap"),
                "'ssl_c_s_dn' format 'ldap' is not known; only rfc2253 or an "
                "empty format is supported",
            ),
        ]:
            e = self.assertRaises(ValueError, FETCHES["ssl_c_s_dn"].compile, args)
            self.assertEqual(str(e), message)


class FieldTests(SynchronousTestCase):
    def test_binary_fields(self) -> None:
        """ssl_c_serial is the serial's bytes without DER's sign byte;
        ssl_c_sha1 the certificate's SHA-1 fingerprint; ssl_c_der its DER."""
        certificate = rich_client().certificate
        request = context(RICH)
        self.assertEqual(fetch("ssl_c_serial", request), b"\x80\x12\x34\x56")
        self.assertEqual(
            fetch("ssl_c_sha1", request), certificate.fingerprint(hashes.SHA1())
        )
        self.assertEqual(fetch("ssl_c_der", request), der(certificate))

    def test_chain(self) -> None:
        """ssl_c_chain_der is the certificates sent after the client's own,
        one DER after the other; no value when none was."""
        intermediate = pki().intermediates["intermediate"].certificate
        ca = pki().ca1.certificate
        request = context(state(rich_client().certificate, chain=(intermediate, ca)))
        self.assertEqual(fetch("ssl_c_chain_der", request), der(intermediate) + der(ca))
        self.assertIsNone(fetch("ssl_c_chain_der", context(RICH)))

    def test_dates(self) -> None:
        """ssl_c_notbefore and ssl_c_notafter are YYMMDDhhmmssZ, also for a
        date written as GeneralizedTime (from 2050)."""
        request = context(RICH)
        self.assertEqual(fetch("ssl_c_notbefore", request), "240102030405Z")
        self.assertEqual(fetch("ssl_c_notafter", request), "360607080910Z")
        late = issue(
            "late",
            RICH_SUBJECT,
            not_after=datetime.datetime(2050, 6, 7, 8, 9, 10),
        )
        self.assertEqual(
            fetch("ssl_c_notafter", context(state(late.certificate))), "500607080910Z"
        )

    def test_version_and_algorithms(self) -> None:
        """ssl_c_version is 3 for X.509v3; the algorithms are OpenSSL's
        short names, as HAProxy gives them."""
        request = context(RICH)
        self.assertEqual(
            [
                fetch(n, request)
                for n in ("ssl_c_version", "ssl_c_sig_alg", "ssl_c_key_alg")
            ],
            [3, "ecdsa-with-SHA256", "id-ecPublicKey"],
        )
        signed = issue("rsa", RICH_SUBJECT, rsa_key=True)
        request = context(state(signed.certificate))
        self.assertEqual(
            [fetch(n, request) for n in ("ssl_c_sig_alg", "ssl_c_key_alg")],
            ["RSA-SHA256", "rsaEncryption"],
        )

    def test_remaining_days(self) -> None:
        """ssl_c_remaining_days counts whole days left before notAfter, and
        is negative from the first second after it."""
        end = NOT_AFTER.timestamp()
        for now, expected in [
            (end - 10 * 86400 - 1, 10),
            (end - 10 * 86400 + 1, 9),
            (end - 1, 0),
            (end + 1, -1),
            (end + 3 * 86400, -3),
        ]:
            function = RemainingDaysFetch("d", "peer", clock(now)).compile(())
            self.assertEqual(function(context(RICH)), expected, now)
        self.assertIsNone(
            RemainingDaysFetch("d", "peer", lambda: end).compile(())(context(NONE))
        )

    def test_frontend_certificate(self) -> None:
        """ssl_f_* give certlb's own certificate's fields, with or without
        a client certificate."""
        server = pki().server.certificate
        for tls in (RICH, NONE):
            request = context(tls)
            self.assertEqual(
                fetch("ssl_f_s_dn", request), "/O=certlb test PKI/CN=certlb test server"
            )
            self.assertEqual(fetch("ssl_f_i_dn", request, "CN"), "certlb test CA 1")
            self.assertEqual(fetch("ssl_f_der", request), der(server))
            self.assertEqual(
                fetch("ssl_f_sha1", request), server.fingerprint(hashes.SHA1())
            )
            serial = fetch("ssl_f_serial", request)
            assert isinstance(serial, bytes)
            self.assertEqual(int.from_bytes(serial, "big"), server.serial_number)
            self.assertEqual(
                fetch("ssl_f_notafter", request),
                server.not_valid_after_utc.strftime("%y%m%d%H%M%SZ"),
            )
            self.assertEqual(
                fetch("ssl_f_notbefore", request),
                server.not_valid_before_utc.strftime("%y%m%d%H%M%SZ"),
            )
            self.assertEqual(
                [
                    fetch(n, request)
                    for n in ("ssl_f_version", "ssl_f_sig_alg", "ssl_f_key_alg")
                ],
                [3, "ecdsa-with-SHA256", "id-ecPublicKey"],
            )

    def test_no_certificate(self) -> None:
        """Without a client certificate, no ssl_c_* field has a value (and
        without TLS, no ssl_f_* either)."""
        for name in PEER_NAMES:
            self.assertIsNone(fetch(name, context(NONE)), name)
        for name in PEER_NAMES + LOCAL_NAMES:
            self.assertIsNone(fetch(name, context(None)), name)

    def test_fields_read_once(self) -> None:
        """A connection's certificate is parsed once: every request on it
        sees the same parsed fields."""
        tls = state(rich_client().certificate)
        peer = tls.peer
        assert peer is not None
        self.assertIs(tls.peer, peer)
        self.assertIs(peer.subject, peer.subject)
        self.assertIs(peer.der, peer.der)

    def test_types_and_interfaces(self) -> None:
        """Each fetch provides IFetch and has HAProxy's type; none is still
        listed as to be implemented."""
        binary = {"serial", "sha1", "der", "chain_der"}
        for f in CERTIFICATE_FETCHES:
            self.assertTrue(verifyObject(IFetch, f))
            self.assertIs(FETCHES[f.name], f)
            self.assertNotIn(f.name, FETCHES_LATER)
            suffix = f.name.split("_", 2)[2]
            expected = (
                "bin"
                if suffix in binary
                else "int"
                if suffix in ("version", "remaining_days")
                else "str"
            )
            self.assertEqual(f.output, expected, f.name)


class SubjectAltNameTests(SynchronousTestCase):
    def test_all_names(self) -> None:
        """ssl_c_san gives HAProxy's one string of every name."""
        self.assertEqual(
            fetch("ssl_c_san", context(RICH)),
            "DNS:rich.example.com, DNS:alt.example.com, "
            "URI:https://example.com/rich, email:rich@example.com, "
            "IP Address:10.1.2.3, IP Address:2001:DB8:0:0:0:0:0:1",
        )

    def test_names_of_one_type(self) -> None:
        """With a type, each name of that type is a value: a sample
        expression takes the last, an ACL tries every one."""
        request = context(RICH)
        for kind, expected in [
            ("DNS", "alt.example.com"),
            ("dns", "alt.example.com"),
            ("URI", "https://example.com/rich"),
            ("email", "rich@example.com"),
            ("IP", "2001:db8::1"),
        ]:
            self.assertEqual(fetch("ssl_c_san", request, kind), expected, kind)
        acls = [
            "ok ssl_c_san(DNS) -m str rich.example.com",
            "ip ssl_c_san(IP) 10.1.2.3",
        ]
        self.assertEqual(
            [condition(acls, cond).matches(request) for cond in ("if ok", "if ip")],
            [True, True],
        )

    def test_without_names(self) -> None:
        """No value without a subjectAltName, or without a name of the type."""
        bare = context(state(issue("bare", RICH_SUBJECT, alternatives=()).certificate))
        self.assertIsNone(fetch("ssl_c_san", bare))
        self.assertIsNone(fetch("ssl_c_san", bare, "DNS"))
        only_dns = issue("dns", RICH_SUBJECT, alternatives=RICH_NAMES[:1])
        self.assertIsNone(
            fetch("ssl_c_san", context(state(only_dns.certificate)), "IP")
        )

    def test_bad_type(self) -> None:
        """An unknown type is refused, naming those that exist."""
        e = self.assertRaises(ValueError, FETCHES["ssl_c_san"].compile, ("dirname",))
        self.assertEqual(
            str(e),
            "'ssl_c_san' type 'dirname' is not known; write DNS, URI, email or IP",
        )


def condition(acls: Sequence[str], text: str) -> CompiledCondition:
    """C{use_backend b TEXT} of a frontend verifying client certificates,
    with the C{acl} lines C{acls}, compiled through the configuration
    parser."""
    files = pki_files()
    bind = (
        f":443 ssl crt {files['server.pem']} ca-file {files['ca.crt']} verify optional"
    )
    return rules_condition(acls, text, bind)


class RuleTests(SynchronousTestCase):
    def test_acl_on_common_name(self) -> None:
        """acl admin ssl_c_s_dn(CN) -m str ... matches that client only, and
        never a connection without a certificate."""
        compiled = condition(
            ['admin ssl_c_s_dn(CN) -m str "certlb rich client"'], "if admin"
        )
        other = context(state(pki().clients["client1"].certificate))
        self.assertEqual(
            [compiled.matches(context(t)) for t in (RICH, NONE, None)]
            + [compiled.matches(other)],
            [True, False, False, False],
        )

    def test_acl_on_second_unit_and_binary(self) -> None:
        """ACLs on an OU by occurrence, and on the serial in hexadecimal."""
        compiled = condition(
            [
                "admins ssl_c_s_dn(OU,2) admins",
                "serial ssl_c_serial 80123456",
                "days ssl_c_remaining_days gt 30",
            ],
            "if admins serial days",
        )
        self.assertTrue(compiled.matches(context(RICH)))
        self.assertFalse(compiled.matches(context(NONE)))

    def test_binary_patterns(self) -> None:
        """Binary fetches are matched with hexadecimal patterns, in either
        case; a pattern that is not hexadecimal is refused."""
        sha1 = rich_client().certificate.fingerprint(hashes.SHA1()).hex()
        compiled = condition([f"known ssl_c_sha1 00 {sha1}"], "if known")
        self.assertEqual(
            [compiled.matches(context(t)) for t in (RICH, NONE)], [True, False]
        )
        upper = condition(["s ssl_c_serial -m bin 80123456"], "if s")
        self.assertTrue(upper.matches(context(RICH)))
        e = self.assertRaises(
            AssertionError, condition, ["s ssl_c_serial 8012345"], "if s"
        )
        self.assertIn(
            "'8012345' is not binary data in hexadecimal; write an even number "
            "of hexadecimal digits, as in 0A1B2C",
            str(e),
        )

    def test_log_format(self) -> None:
        """%[ssl_c_s_dn(cn)], %[ssl_c_der,base64], %[ssl_c_serial,hex] and
        %[ssl_c_sha1,hex] render as a user would pass them to a server;
        nothing without a certificate."""
        certificate = rich_client().certificate
        text = (
            "%[ssl_c_s_dn(cn)]|%[ssl_c_der,base64]|%[ssl_c_serial,hex]"
            "|%[ssl_c_sha1,hex]"
        )
        compiled = compile_log_format(text, HERE)
        self.assertEqual(
            compiled.render(context(RICH)),
            "certlb rich client|"
            + base64.b64encode(der(certificate)).decode()
            + "|80123456|"
            + certificate.fingerprint(hashes.SHA1()).hex().upper(),
        )
        self.assertEqual(compiled.render(context(NONE)), "|||")

    def test_set_header(self) -> None:
        """http-request set-header with a certificate field gives the server
        that header."""
        config, problems = parse_config(
            "backend b\n  mode http\n"
            "  http-request set-header X-SSL-Client-CN %[ssl_c_s_dn(cn)]\n"
            "  http-request set-header X-SSL-Client-DN %[ssl_c_s_dn(,0,rfc2253)]\n"
            "  server s 10.0.0.1:80\n",
            "t.cfg",
            {},
        )
        self.assertEqual([p for p in problems if p.severity == "error"], [])
        request = context(RICH, headers=[("Host", "h")])
        compile_rules(config.backends[0]).apply(request)
        self.assertEqual(
            request.headers,
            [
                ("Host", "h"),
                ("X-SSL-Client-CN", "certlb rich client"),
                (
                    "X-SSL-Client-DN",
                    "CN=certlb rich client,OU=admins,OU=ops,O=certlb test PKI,C=FR",
                ),
            ],
        )

    def test_unknown_occurrence_refused_in_config(self) -> None:
        """A bad argument is a configuration error naming the file and line."""
        e = self.assertRaises(
            RuleError, compile_log_format, "%[ssl_c_s_dn(OU,x)]", HERE
        )
        self.assertIn("t.cfg:7", str(e))
        self.assertIn("occurrence 'x' is not a number", str(e))


class HandshakeTests(SynchronousTestCase):
    def test_state_of_a_chained_client(self) -> None:
        """After a real (in-memory) handshake, the state holds the chain the
        client sent, the root CA of the verified chain and certlb's own
        certificate."""
        shake = handshake(server_tls("optional"), Client("chained"))
        tls = shake.state
        assert tls is not None
        request = context(tls)
        intermediate = pki().intermediates["intermediate"].certificate
        self.assertEqual(fetch("ssl_c_chain_der", request), der(intermediate))
        self.assertEqual(fetch("ssl_c_s_dn", request, "CN"), "certlb chained client")
        self.assertEqual(
            fetch("ssl_c_i_dn", request, "CN"), "certlb test intermediate CA"
        )
        self.assertEqual(fetch("ssl_c_r_dn", request, "CN"), "certlb test CA 1")
        self.assertEqual(fetch("ssl_f_s_dn", request, "CN"), "certlb test server")
        self.assertIs(fetch("ssl_fc_is_resumed", request), False)

    def test_own_certificate_read_once_per_bind(self) -> None:
        """certlb's certificate is converted once per bind, not per
        connection."""
        tls = server_tls("optional")
        states = [handshake(tls, Client("client1")).state for _ in range(2)]
        first, second = (s.local_certificate for s in states if s is not None)
        self.assertIs(first, second)
        self.assertEqual(first, pki().server.certificate)

    def test_resumed_session(self) -> None:
        """ssl_fc_is_resumed is true on a resumed session (binds with
        verify none keep a session cache), false on a full handshake."""
        tls = server_tls("none")
        client = Client()
        first = handshake(tls, client)
        assert client.connection is not None
        client.session = client.connection.get_session()
        second = handshake(tls, client)
        self.assertEqual(
            [fetch("ssl_fc_is_resumed", context(s.state)) for s in (first, second)],
            [False, True],
        )

    def test_verifying_bind_resumes(self) -> None:
        """A bind that verifies clients resumes sessions and keeps the
        client's certificate, its chain and its root CA."""
        tls = server_tls("optional")
        client = Client("chained")
        handshake(tls, client)
        assert client.connection is not None
        client.session = client.connection.get_session()
        second = handshake(tls, client)
        request = context(second.state)
        intermediate = pki().intermediates["intermediate"].certificate
        self.assertEqual(
            [
                fetch("ssl_fc_is_resumed", request),
                fetch("ssl_c_s_dn", request, "CN"),
                fetch("ssl_c_chain_der", request),
                fetch("ssl_c_r_dn", request, "CN"),
            ],
            [True, "certlb chained client", der(intermediate), "certlb test CA 1"],
        )
