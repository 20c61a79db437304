"""The client's identity for servers: the standard headers certlb writes,
and the headers no client may forge.

Secure by default: before any rule runs, a request loses the standard
identity headers (RFC 9440's C{Client-Cert} and C{Client-Cert-Chain},
Envoy's C{X-Forwarded-Client-Cert}) and every header that a rule of the
configuration sets from the client's certificate (a value or a condition
that reads an C{ssl_c_*} fetch), so that what a server gets under those
names comes from certlb alone.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certlb.config.model import (
    AclDef,
    Backend,
    Condition,
    Config,
    Frontend,
    HeaderRule,
    IdentityHeaders,
)
from certlb.config.rule_checks import LOG_FORMAT_FETCH, condition_acls
from certlb.rules.acl import acls_by_name
from certlb.rules.logformat import header_value
from certlb.tls.certinfo import CertificateFacts
from certlb.tls.state import ClientCertState

CLIENT_CERT = "Client-Cert"
CLIENT_CERT_CHAIN = "Client-Cert-Chain"
XFCC = "X-Forwarded-Client-Cert"


def _of_certificate(fetch: str) -> bool:
    return fetch.startswith("ssl_c_") or fetch == "ssl_fc_has_crt"


def _reads_certificate(
    condition: Condition | None, acls: Mapping[str, Sequence[AclDef]]
) -> bool:
    return any(
        _of_certificate(acl.expression.fetch) for acl in condition_acls(condition, acls)
    )


def certificate_headers(config: Config) -> frozenset[str]:
    """The headers (lower case) that a rule of C{config} sets from the
    client's certificate: in its value, in its condition, or in a backend
    that a C{use_backend} rule chooses by the certificate (a request for
    which the backend's rules add a header was vouched for by it)."""
    chosen = set()
    for frontend in config.frontends:
        acls = acls_by_name(frontend.acls)
        for use in frontend.use_backends:
            if _reads_certificate(use.condition, acls):
                chosen.add(use.backend)
    names: set[str] = set()
    proxies: list[Frontend | Backend] = [*config.frontends, *config.backends]
    for proxy in proxies:
        acls = acls_by_name(proxy.acls)
        for rule in (*proxy.http_request, *proxy.reqadd):
            if not isinstance(rule, HeaderRule) or rule.action == "del-header":
                continue
            fetches: Iterable[str] = (
                acl.expression.fetch for acl in condition_acls(rule.condition, acls)
            )
            if rule.log_format and rule.value:
                fetches = (*fetches, *LOG_FORMAT_FETCH.findall(rule.value))
            if (proxy.name in chosen and isinstance(proxy, Backend)) or any(
                _of_certificate(fetch) for fetch in fetches
            ):
                names.add(rule.name.lower())
    return frozenset(names)


def vouched(tls: ClientCertState | None) -> bool:
    """Whether the connection's client certificate passed verification, so
    that certlb may vouch for it in identity headers (one let in by
    C{crt-ignore-err} or C{ca-ignore-err} is not)."""
    return tls is not None and tls.certificate is not None and tls.verify == 0


def forged(identity: IdentityHeaders, from_rules: frozenset[str]) -> frozenset[str]:
    """The headers to remove from what a client sends, before any rule."""
    names = {CLIENT_CERT.lower(), CLIENT_CERT_CHAIN.lower(), *from_rules}
    if identity.xfcc not in ("forward", "append"):
        names.add(XFCC.lower())
    return frozenset(names)


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


def _item(der: bytes) -> str:
    """A byte sequence of RFC 8941."""
    return ":" + base64.b64encode(der).decode("ascii") + ":"


def rfc9440(
    client: CertificateFacts, chain: Sequence[x509.Certificate]
) -> list[tuple[str, str]]:
    """RFC 9440's headers: the certificate, and the chain that came with it
    (the certificate itself left out), as byte sequences of RFC 8941."""
    headers = [(CLIENT_CERT, _item(client.der))]
    rest = [cert for cert in chain if cert != client.certificate]
    if rest:
        headers.append((CLIENT_CERT_CHAIN, ", ".join(_item(_der(c)) for c in rest)))
    return headers


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pem(certificate: x509.Certificate) -> str:
    return quote(certificate.public_bytes(Encoding.PEM).decode("ascii"), safe="")


def xfcc_element(
    client: CertificateFacts,
    chain: Sequence[x509.Certificate],
    fields: Sequence[str],
) -> str:
    """The element of C{X-Forwarded-Client-Cert} for a client certificate,
    with C{fields} in the order given, in Envoy's syntax."""
    certificate = client.certificate
    parts = []
    for field in fields:
        if field == "Hash":
            parts.append("Hash=" + hashlib.sha256(client.der).hexdigest())
        elif field == "Cert":
            parts.append(f'Cert="{_pem(certificate)}"')
        elif field == "Chain":
            whole = (certificate, *(cert for cert in chain if cert != certificate))
            parts.append(f'Chain="{"".join(_pem(cert) for cert in whole)}"')
        elif field == "Subject":
            parts.append("Subject=" + _quoted(certificate.subject.rfc4514_string()))
        else:
            kind = x509.UniformResourceIdentifier if field == "URI" else x509.DNSName
            parts += [f"{field}={name}" for name in client.san_values(kind)]
    return ";".join(parts)


def identity_headers(
    identity: IdentityHeaders,
    client: CertificateFacts | None,
    chain: Sequence[x509.Certificate],
    received: Sequence[tuple[str, str]],
) -> list[tuple[str, str]]:
    """The headers to add to a request for the client's certificate, as the
    frontend's options say.

    @param client: the client certificate's fields, read once per
        connection.
    @param received: the request's headers, after the rules (for the
        C{append} mode of C{X-Forwarded-Client-Cert}, whose element goes
        after those of the proxies before).
    """
    headers: list[tuple[str, str]] = []
    if client is None:
        return headers
    if identity.client_cert:
        headers += rfc9440(client, chain)
    if identity.xfcc in ("sanitize-set", "append"):
        element = xfcc_element(client, chain, identity.xfcc_fields)
        before = [v for n, v in received if n.lower() == XFCC.lower()]
        if identity.xfcc == "append" and before:
            element = ",".join([*before, element])
        headers.append((XFCC, element))
    # A certificate's names may hold any character, CR and LF included.
    return [(name, header_value(value)) for name, value in headers]
