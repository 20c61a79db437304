"""Checks across a whole configuration: references, names, files, rules.

Each check adds L{Problem}s naming the file, the line and the word at fault;
none stops the others, so C{certlb check} can print them all at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from certlb.config.errors import WARNING, Location, Problem, suggest
from certlb.config.model import AclDef, Backend, Bind, Condition, Config, Frontend
from certlb.rules.acl import (
    RuleError,
    acls_by_name,
    compile_acl,
    compile_condition,
    never_matches,
    undefined_acls,
)
from certlb.tls.pem import PemError, load_ca_certificates, load_key_pair


def check(config: Config, incomplete: Iterable[str] = ()) -> list[Problem]:
    """Every problem of C{config} that the parser could not see alone.

    @param incomplete: proxies (C{"frontend NAME"}, C{"backend NAME"}) that
        had a line the parser could not read: what is missing from them (no
        bind, no server, an undefined ACL) is then most likely that line,
        already reported, and not said again.
    """
    skip = frozenset(incomplete)
    problems: list[Problem] = []
    _unique(problems, "frontend", config.frontends)
    _unique(problems, "backend", config.backends)
    _binds_unique(problems, config.frontends)
    backends = {b.name: b for b in config.backends}
    for frontend in config.frontends:
        _frontend(problems, frontend, backends, f"frontend {frontend.name}" not in skip)
    for backend in config.backends:
        _backend(problems, backend, f"backend {backend.name}" not in skip)
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
        problems.append(
            Problem(
                frontend.location,
                f"frontend '{frontend.name}' has no route to any backend; add "
                "'default_backend NAME' or 'use_backend NAME if CONDITION'",
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

    if not bind.ssl:
        if bind.crt or bind.ca_file or bind.verify != "none":
            error("'crt', 'ca-file' and 'verify' need TLS; add 'ssl' to this bind line")
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
    if bind.ca_file is not None:
        try:
            load_ca_certificates(bind.ca_file)
        except PemError as e:
            error(str(e))
        if bind.verify == "none":
            problems.append(
                Problem(
                    bind.location,
                    f"bind {bind.address}: 'ca-file' has no effect with "
                    "'verify none'; add 'verify optional' or 'verify required'",
                    WARNING,
                )
            )


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
        if server.port == 0:
            problems.append(
                Problem(
                    server.location, f"server '{server.name}': port 0 is not a port"
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
    _rules(problems, backend.acls, [], complete)
