"""The names of servers: the SNI sent to them, and the name their
certificate must hold.

Pure Python over C{cryptography} and C{service_identity}: the configuration
checker compiles C{sni} expressions with it, the TLS client checks names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from cryptography import x509
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)

from certlb.config.model import SampleExpression
from certlb.rules.acl import RuleError, compile_expression
from certlb.rules.converters import to_text
from certlb.rules.fetches import FETCHES
from certlb.rules.interfaces import IRequestContext

ServerName = Callable[[IRequestContext | None], str | None]


def compile_sni(expression: SampleExpression) -> tuple[ServerName, str | None]:
    """Compile the expression of C{sni}.

    C{str(NAME)} is the constant C{NAME}; any other expression is evaluated
    per request (C{req.hdr(host)}), and gives no name without a request (a
    health check) or when it finds nothing.

    @return: the function giving the name for a request, and the name when
        it is a constant (for health checks), else C{None}.
    @raise RuleError: the expression does not compile.
    """
    if expression.fetch == "str" and not expression.converters:
        if len(expression.args) != 1 or not expression.args[0]:
            raise RuleError(
                expression.location,
                "'str' takes one name, as in str(www.example.com)",
            )
        constant = expression.args[0]
        return (lambda request: constant), constant
    if expression.fetch == "str" and "str" not in FETCHES:
        raise RuleError(
            expression.location,
            f"'{expression}': write the name as it is to be sent, without "
            "converters, as in str(www.example.com)",
        )
    sample, _ = compile_expression(expression)

    def server_name(request: IRequestContext | None) -> str | None:
        if request is None:
            return None
        value = sample(request)
        if value is None:
            return None
        return to_text(value).strip() or None

    return server_name, None


def is_address(name: str) -> bool:
    """Whether C{name} is an IP address (which SNI cannot carry)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def name_mismatch(certificate: x509.Certificate, name: str) -> str | None:
    """Why C{certificate} is not one for C{name}, or C{None} when it is.

    As RFC 6125 and browsers: the name is looked for in the certificate's
    subjectAltName only (DNS names, wildcards in the left-most label allowed,
    or IP addresses when C{name} is one), never in its CN.
    """
    try:
        if is_address(name):
            verify_certificate_ip_address(certificate, name)
        else:
            verify_certificate_hostname(certificate, name)
    except (VerificationError, CertificateError):
        return (
            f"certificate name mismatch: the server's certificate is for "
            f"{_names(certificate)}, not for {name}"
        )
    return None


def _names(certificate: x509.Certificate) -> str:
    try:
        extension = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except x509.ExtensionNotFound:
        return "no name (it has no subjectAltName)"
    names = [str(n) for n in extension.value.get_values_for_type(x509.DNSName)]
    names += [str(a) for a in extension.value.get_values_for_type(x509.IPAddress)]
    return ", ".join(names) or "no DNS name or IP address"
