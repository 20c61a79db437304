"""Checks of a server line's TLS options (C{ssl}, C{verify}, C{ca-file}, ...).

As HAProxy (with its default C{ssl-server-verify required}), a server
reached over TLS has its certificate verified unless its line says C{verify
none}, and that needs a C{ca-file}: without one, the configuration is
refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from certlb.config.errors import WARNING, Problem
from certlb.config.model import TLS_VERSIONS, Server
from certlb.rules.acl import RuleError
from certlb.tls.names import compile_sni
from certlb.tls.pem import PemError, load_ca_certificates, load_crls, load_key_pair


def check_server_tls(server: Server) -> list[Problem]:
    """The problems of the TLS options of C{server}."""
    problems: list[Problem] = []

    def error(message: str) -> None:
        problems.append(Problem(server.location, f"server '{server.name}': {message}"))

    def warning(message: str) -> None:
        problems.append(
            Problem(server.location, f"server '{server.name}': {message}", WARNING)
        )

    if not server.ssl and not server.check_ssl:
        given = _given(server, verify=server.verify is not None)
        if given:
            error(
                f"{_quoted(given)} {_verb(given, 'needs', 'need')} TLS; add 'ssl' "
                "to this server line (or 'check-ssl' for its health checks only)"
            )
        return problems
    if server.verifies and server.ca_file is None:
        error(
            "its certificate is verified by default ('verify required'), which "
            "needs the CAs it must come from; add 'ca-file FILE', or 'verify "
            "none' to accept any certificate (anyone in between could then "
            "read and change the traffic)"
        )
    for path, load in (
        (server.crt, load_key_pair),
        (server.ca_file, load_ca_certificates),
        (server.crl_file, load_crls),
    ):
        if path is not None:
            try:
                load(path)
            except PemError as e:
                error(str(e))
    if not server.verifies:
        idle = [
            name
            for name, present in (
                ("ca-file", server.ca_file is not None),
                ("crl-file", server.crl_file is not None),
                ("verifyhost", server.verifyhost is not None),
            )
            if present
        ]
        if idle:
            warning(
                f"{_quoted(idle)} {_verb(idle, 'has', 'have')} no effect with "
                "'verify none'; remove 'verify none' to verify the server"
            )
    if server.sni is not None:
        try:
            compile_sni(server.sni)
        except RuleError as e:
            problems.append(
                Problem(e.location, f"server '{server.name}': 'sni': {e.message}")
            )
    low, high = server.ssl_min_ver, server.ssl_max_ver
    if low and high and TLS_VERSIONS.index(low) > TLS_VERSIONS.index(high):
        error(f"'ssl-min-ver {low}' is above 'ssl-max-ver {high}'; swap them")
    return problems


def _given(server: Server, verify: bool) -> list[str]:
    """The TLS options written on C{server}'s line."""
    options = [
        ("verify", verify),
        ("ca-file", server.ca_file is not None),
        ("crl-file", server.crl_file is not None),
        ("crt", server.crt is not None),
        ("sni", server.sni is not None),
        ("verifyhost", server.verifyhost is not None),
        ("check-sni", server.check_sni is not None),
        ("ssl-min-ver", server.ssl_min_ver is not None),
        ("ssl-max-ver", server.ssl_max_ver is not None),
    ]
    return [name for name, present in options if present]


def _quoted(names: Sequence[str]) -> str:
    """C{'a'}, C{'a' and 'b'}, C{'a', 'b' and 'c'}."""
    quoted = [f"'{name}'" for name in names]
    return " and ".join([", ".join(quoted[:-1]), quoted[-1]] if quoted[1:] else quoted)


def _verb(names: Sequence[str], one: str, several: str) -> str:
    return one if len(names) == 1 else several
