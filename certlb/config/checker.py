"""Checks across a whole configuration: references, names, files, rules.

Each check adds L{Problem}s naming the file, the line and the word at fault;
none stops the others, so C{certlb check} can print them all at once.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import NameOID

from certlb.config.conditions import SyntaxProblem, parse_expression
from certlb.config.errors import ERROR, WARNING, Location, Problem, suggest
from certlb.config.lexer import Word
from certlb.config.model import (
    AclDef,
    Backend,
    Bind,
    Condition,
    Config,
    Frontend,
    HeaderRule,
)
from certlb.config.plugin_checks import check_plugins
from certlb.config.rule_checks import check_rules
from certlb.config.server_tls import check_server_tls
from certlb.rules.acl import (
    RuleError,
    acls_by_name,
    compile_acl,
    compile_condition,
    compile_expression,
    never_matches,
    undefined_acls,
)
from certlb.rules.registry import active, for_config
from certlb.tls.pem import PemError, load_ca_certificates, load_crls, load_key_pair
from certlb.tls.state import VerifyPolicy
from certlb.tls.verify_codes import VERIFY_CODES


def check(config: Config, incomplete: Iterable[str] = ()) -> list[Problem]:
    """Every problem of C{config} that the parser could not see alone.

    @param incomplete: proxies (C{"frontend NAME"}, C{"backend NAME"}) that
        had a line the parser could not read: what is missing from them (no
        bind, no server, an undefined ACL) is then most likely that line,
        already reported, and not said again.
    """
    with active(for_config(config.global_.plugin_dirs)):
        return _check(config, frozenset(incomplete))


def _check(config: Config, skip: frozenset[str]) -> list[Problem]:
    problems: list[Problem] = []
    _unique(problems, "frontend", config.frontends)
    _unique(problems, "backend", config.backends)
    _binds_unique(problems, config.frontends)
    backends = {b.name: b for b in config.backends}
    for frontend in config.frontends:
        _frontend(problems, frontend, backends, f"frontend {frontend.name}" not in skip)
    for backend in config.backends:
        _backend(problems, backend, f"backend {backend.name}" not in skip)
        _stick_tables(problems, backend, backends)
    problems += check_rules(config, skip)
    problems += check_plugins(config)
    return problems


def _unique(
    problems: list[Problem], kind: str, proxies: Iterable[Frontend | Backend]
) -> None:
    seen: dict[str, Location] = {}
    for proxy in proxies:
        if proxy.name in seen:
            problems.append(
                Problem(
                    proxy.location,
                    f"{kind} '{proxy.name}' is already defined at "
                    f"{seen[proxy.name]}; give each {kind} its own name",
                )
            )
        else:
            seen[proxy.name] = proxy.location


def _binds_unique(problems: list[Problem], frontends: Iterable[Frontend]) -> None:
    seen: dict[tuple[str, int], Location] = {}
    for frontend in frontends:
        for bind in frontend.binds:
            key = (bind.host, bind.port)
            if bind.port and key in seen:
                problems.append(
                    Problem(
                        bind.location,
                        f"bind {bind.address} is already used at {seen[key]}; "
                        "each address and port can be bound once",
                    )
                )
            seen.setdefault(key, bind.location)


def _frontend(
    problems: list[Problem],
    frontend: Frontend,
    backends: dict[str, Backend],
    complete: bool,
) -> None:
    if not frontend.binds and complete:
        problems.append(
            Problem(
                frontend.location,
                f"frontend '{frontend.name}' has no 'bind' line, so it accepts "
                "nothing; add one, as in 'bind 127.0.0.1:8443 ssl crt server.pem', "
                "or make it a backend",
            )
        )
    for bind in frontend.binds:
        _bind(problems, bind)
    if not complete:
        pass
    elif frontend.default_backend is None and not frontend.use_backends:
        # Rules that answer (a static page, a redirect) may be all it does.
        answers = any(not isinstance(r, HeaderRule) for r in frontend.http_request)
        problems.append(
            Problem(
                frontend.location,
                f"frontend '{frontend.name}' has no route to any backend"
                + (
                    ": requests that its rules do not answer will get 503"
                    if answers
                    else "; add 'default_backend NAME' or 'use_backend NAME if "
                    "CONDITION'"
                ),
                WARNING if answers or frontend.redirects else ERROR,
            )
        )
    elif frontend.default_backend is None:
        problems.append(
            Problem(
                frontend.location,
                f"frontend '{frontend.name}' has no default_backend: requests "
                "that match no use_backend rule will get 503",
                WARNING,
            )
        )
    targets = [(u.backend, u.location, "use_backend") for u in frontend.use_backends]
    if frontend.default_backend is not None:
        targets.append(
            (
                frontend.default_backend,
                frontend.default_backend_location,
                "default_backend",
            )
        )
    for name, location, keyword in targets:
        if name not in backends:
            known = ", ".join(backends) or "none"
            problems.append(
                Problem(
                    location,
                    f"{keyword} '{name}': no backend has this name"
                    + suggest(name, backends)
                    + f" (backends: {known})",
                )
            )
    conditions = [u.condition for u in frontend.use_backends if u.condition]
    _rules(problems, frontend.acls, conditions, complete)


def _rules(
    problems: list[Problem],
    acls: Sequence[AclDef],
    conditions: Sequence[Condition],
    complete: bool,
) -> None:
    named = acls_by_name(acls)
    for acl in acls:
        try:
            compile_acl(acl)
        except RuleError as e:
            problems.append(Problem(e.location, e.message))
            continue
        if never_matches(acl):
            problems.append(
                Problem(
                    acl.location,
                    f"ACL '{acl.name}' has no pattern, so it never matches; add "
                    "the values to match",
                    WARNING,
                )
            )
    for condition in conditions:
        undefined = undefined_acls(condition, named)
        if undefined:
            if complete:
                problems.extend(Problem(e.location, e.message) for e in undefined)
            continue
        try:
            compile_condition(condition, named)
        except RuleError as e:
            if not any(p.location == e.location for p in problems):
                problems.append(Problem(e.location, e.message))


def _bind(problems: list[Problem], bind: Bind) -> None:
    def error(message: str) -> None:
        problems.append(Problem(bind.location, f"bind {bind.address}: {message}"))

    def warning(message: str) -> None:
        problems.append(
            Problem(bind.location, f"bind {bind.address}: {message}", WARNING)
        )

    verification = _verification_options(bind)
    if not bind.ssl:
        given = [
            name
            for name, present in (
                ("crt", bind.crt is not None),
                ("ca-file", bind.ca_file is not None),
                ("verify", bind.verify != "none"),
            )
            if present
        ] + verification
        if given:
            error(
                f"{_quoted(given)} {_verb(given, 'needs', 'need')} TLS; add 'ssl' "
                "to this bind line"
            )
        return
    if bind.crt is None:
        error(
            "'ssl' needs a certificate; add 'crt FILE' (certificate and key in one PEM)"
        )
    else:
        try:
            load_key_pair(bind.crt)
        except PemError as e:
            error(str(e))
    if bind.verify != "none" and bind.ca_file is None:
        error(
            f"'verify {bind.verify}' needs the CAs that client certificates must "
            "come from; add 'ca-file FILE'"
        )
    authorities = crls = None
    if bind.ca_file is not None:
        try:
            authorities = load_ca_certificates(bind.ca_file)
        except PemError as e:
            error(str(e))
    if bind.crl_file is not None:
        try:
            crls = load_crls(bind.crl_file)
        except PemError as e:
            error(str(e))
    if bind.verify == "none":
        idle = (["ca-file"] if bind.ca_file is not None else []) + verification
        if idle:
            warning(
                f"{_quoted(idle)} {_verb(idle, 'has', 'have')} no effect with "
                "'verify none'; add 'verify optional' or 'verify required'"
            )
    elif authorities and crls and bind.crl_file is not None:
        for message in _crl_coverage(
            bind.crl_file,
            crls,
            authorities,
            VerifyPolicy(bind.crt_ignore_err, bind.ca_ignore_err),
        ):
            warning(message)


def _verification_options(bind: Bind) -> list[str]:
    """The options of C{bind} that only matter when clients are verified
    (C{ca-file} aside)."""
    given = [
        ("crl-file", bind.crl_file is not None),
        ("crt-ignore-err", bool(bind.crt_ignore_err)),
        ("ca-ignore-err", bool(bind.ca_ignore_err)),
    ]
    return [name for name, present in given if present]


def _quoted(names: Sequence[str]) -> str:
    """C{'a'}, C{'a' and 'b'}, C{'a', 'b' and 'c'}."""
    quoted = [f"'{name}'" for name in names]
    return " and ".join([", ".join(quoted[:-1]), quoted[-1]] if quoted[1:] else quoted)


def _verb(names: Sequence[str], one: str, several: str) -> str:
    return one if len(names) == 1 else several


def _crl_coverage(
    path: str,
    crls: Sequence[x509.CertificateRevocationList],
    authorities: Sequence[x509.Certificate],
    policy: VerifyPolicy,
    now: datetime.datetime | None = None,
) -> list[str]:
    """What will go wrong with the CRLs of C{path} for the CAs of a C{ca-file}.

    OpenSSL, checking the whole chain, wants for every certificate a CRL of
    its issuer that it signed and that is current: without one, the
    certificate gets error 3 (no CRL), 8 (a CRL signed by another key), 12
    (expired) or 11 (not yet valid).  A CRL of no CA of the C{ca-file} serves
    only clients that send its CA in their chain.

    @param policy: the bind's C{crt-ignore-err} and C{ca-ignore-err}, which
        decide whether those errors refuse clients.
    @param now: the time to check the CRLs' dates at; by default, now.
    @return: one warning per problem, for the user.
    """
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    messages = []
    subjects = {ca.subject for ca in authorities}
    for number, crl in enumerate(crls, start=1):
        if crl.issuer not in subjects:
            messages.append(
                f"CRL number {number} of crl-file {path!r} is from "
                f"'{_common_name(crl.issuer)}', which is not a CA of ca-file: "
                "it serves only clients that send that CA in their chain, and "
                "the clients of that CA also get errors 35 and 8 from it"
            )
    for ca in authorities:
        name = _common_name(ca.subject)
        own = [(n, crl) for n, crl in enumerate(crls, 1) if crl.issuer == ca.subject]
        signed = [crl for _, crl in own if _signed_by(crl, ca)]
        for number, crl in own:
            if not _signed_by(crl, ca):
                messages.append(
                    f"CRL number {number} of crl-file {path!r} names CA "
                    f"'{name}' as its issuer but is not signed by that CA: "
                    + _consequence(policy, 8, "clients of that CA")
                    + "; remove it, or put the CRL this CA signed instead"
                )
        if not own:
            messages.append(
                f"crl-file {path!r} has no CRL of CA '{name}': "
                + _consequence(policy, 3, "its clients")
                + "; add its CRL to that file"
            )
        if not signed or any(_current(crl, now) for crl in signed):
            continue
        due = [crl.next_update_utc for crl in signed if crl.next_update_utc]
        if due and all(when < now for when in due):
            messages.append(
                f"the CRL of CA '{name}' in crl-file {path!r} expired on "
                f"{_date(max(due))}: "
                + _consequence(policy, 12, "clients of that CA")
                + "; put the CA's current CRL in that file"
            )
        else:
            start = min(crl.last_update_utc for crl in signed)
            messages.append(
                f"the CRL of CA '{name}' in crl-file {path!r} is valid only "
                f"from {_date(start)}: "
                + _consequence(policy, 11, "clients of that CA")
                + "; check this machine's clock and the CRL's dates"
            )
    return messages


def _consequence(policy: VerifyPolicy, code: int, clients: str) -> str:
    """What error C{code} does to C{clients} (of a CA), under C{policy}."""
    error = f"error {code} ({VERIFY_CODES[code][1]})"
    if policy.ignores(code, 0):
        return (
            f"{clients} will get {error}, which crt-ignore-err lets through, "
            "so their ssl_c_verify will not be 0"
        )
    return (
        f"{clients} will fail verification with {error} unless "
        "crt-ignore-err ignores it (ca-ignore-err, for the CAs it signed)"
    )


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    try:
        # A key that cannot sign (X25519, X448) raises TypeError.
        return crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError, UnsupportedAlgorithm):
        return True  # cannot tell: let OpenSSL judge


def _current(crl: x509.CertificateRevocationList, now: datetime.datetime) -> bool:
    due = crl.next_update_utc
    return crl.last_update_utc <= now and (due is None or now <= due)


def _date(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _common_name(name: x509.Name) -> str:
    """The CN of C{name}, or the whole name if it has none."""
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else name.rfc4514_string()


def _backend(problems: list[Problem], backend: Backend, complete: bool) -> None:
    seen: dict[str, Location] = {}
    for server in backend.servers:
        if server.name in seen:
            problems.append(
                Problem(
                    server.location,
                    f"server '{server.name}' is already defined in backend "
                    f"'{backend.name}' at {seen[server.name]}; give each server "
                    "its own name",
                )
            )
        seen.setdefault(server.name, server.location)
        problems.extend(check_server_tls(server))
        if server.port == 0:
            problems.append(
                Problem(
                    server.location, f"server '{server.name}': port 0 is not a port"
                )
            )
        if server.observe and not server.check:
            problems.append(
                Problem(
                    server.location,
                    f"server '{server.name}': 'observe' has no effect without "
                    "'check': what requests see counts against health checks",
                    WARNING,
                )
            )
    if not complete:
        pass
    elif not backend.servers:
        problems.append(
            Problem(
                backend.location,
                f"backend '{backend.name}' has no server: requests sent to it "
                "will get 503",
                WARNING,
            )
        )
    elif not any(s.weight and not s.disabled for s in backend.servers):
        problems.append(
            Problem(
                backend.location,
                f"backend '{backend.name}': every server is disabled or has "
                "weight 0, so requests sent to it will get 503",
                WARNING,
            )
        )
    _balance_expression(problems, backend)
    _rules(problems, backend.acls, [], complete)


def _stick_tables(
    problems: list[Problem], backend: Backend, backends: dict[str, Backend]
) -> None:
    """Each C{stick} rule needs a table: its backend's, or the one it names."""
    for rule in backend.stick_rules:
        name = rule.table or backend.name
        target = backends.get(name)
        if target is not None and target.stick_table is not None:
            continue
        if rule.table is None:
            why = (
                f"backend '{backend.name}' has no stick-table; add one, as in "
                "'stick-table type string size 100k expire 30m', or name another "
                "backend's with 'table NAME'"
            )
        elif target is None:
            why = f"there is no backend '{name}'" + suggest(name, list(backends))
        else:
            why = f"backend '{name}' has no stick-table"
        problems.append(Problem(rule.location, f"'stick {rule.kind}': {why}"))


def _balance_expression(problems: list[Problem], backend: Backend) -> None:
    """The expression of C{balance hash EXPR} must compile."""
    balance = backend.balance
    if balance.algorithm != "hash" or balance.argument is None:
        return
    try:
        compile_expression(parse_expression(Word(balance.argument, balance.location)))
    except (RuleError, SyntaxProblem) as e:
        problems.append(
            Problem(
                e.location,
                f"backend '{backend.name}': 'balance hash {balance.argument}': "
                f"{e.message}",
            )
        )
