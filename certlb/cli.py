"""The C{certlb} command: C{check}, C{demo} and C{pki}.

certlb itself runs under twistd: C{twistd -n certlb --config FILE}.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from certlb._version import __version__

# The kinds of certificate --explain plays (certlb.rules.trace.CERT_KINDS),
# named here so that --help costs no import of the rules.
CERT_KIND_NAMES = (
    "none",
    "valid",
    "expired",
    "not-yet-valid",
    "revoked",
    "no-crl",
    "self-signed",
    "unknown-ca",
    "untrusted",
)


def build_parser() -> argparse.ArgumentParser:
    """The C{certlb} command line: its options and subcommands."""
    parser = argparse.ArgumentParser(
        prog="certlb",
        description="certlb, a TLS load balancer with client-certificate "
        "policies.  Run it with: twistd -n certlb --config FILE",
    )
    parser.add_argument("--version", action="version", version=f"certlb {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="check configuration files and print every problem",
        description="Read the files in order, as one configuration, and print "
        "every problem with its file and line.  Exit 0 when certlb can run "
        "it, 1 otherwise.",
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    explain = check.add_argument_group(
        "explaining a decision",
        "With --explain, play one described request through the rules, "
        "print which rules matched and why, the backend chosen and the server "
        "the balancer would pick; nothing is sent anywhere.",
    )
    explain.add_argument(
        "--explain",
        action="store_true",
        help="print the rule trace of one request (the configuration must be valid)",
    )
    explain.add_argument(
        "--request",
        default="GET /",
        metavar="'METHOD TARGET'",
        help="the request line (default: 'GET /')",
    )
    explain.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header (repeat for several; Host is localhost unless given)",
    )
    explain.add_argument(
        "--cert",
        metavar="KIND",
        help="the client's certificate: " + ", ".join(CERT_KIND_NAMES) + ", or a "
        "verification error number (default: none, or valid with --cert-file)",
    )
    explain.add_argument(
        "--cert-file",
        metavar="PEM",
        help="a client certificate whose fields rules read (its verification "
        "result is that of --cert, valid by default)",
    )
    explain.add_argument(
        "--frontend",
        metavar="NAME",
        help="the frontend (or listen section) receiving the request "
        "(default: the first)",
    )

    demo = commands.add_parser(
        "demo",
        help="run a demonstration: a throw-away PKI, sample servers and certlb",
        description="Generate a throw-away PKI, start four sample servers and "
        "certlb on 127.0.0.1 (ports 8443, 8444, 18001-18004), and print curl "
        "commands to try, with what each should show.  Runs until Ctrl-C.",
    )
    demo.add_argument(
        "--dir",
        metavar="DIR",
        help="where to write the PKI and configuration (default: a new "
        "temporary directory, removed on exit)",
    )

    pki = commands.add_parser(
        "pki",
        help="write a throw-away test PKI into a directory",
        description="Write CAs (two roots, an untrusted one, and intermediates "
        "under CA 1), a server certificate for localhost, 127.0.0.1 and ::1, "
        "CRLs (both CAs', and variants: expired, one CA missing) and client "
        "certificates of every kind (valid, expired, not yet valid, revoked, "
        "self-signed, from an unknown CA, under an expired or revoked "
        "intermediate) into DIR, with the file names the example "
        "configurations use.",
    )
    pki.add_argument("directory", metavar="DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # as in 'certlb check FILE | head'
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 1


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check" and not args.explain:
        given = [
            option
            for option, value in (
                ("--request", args.request != "GET /"),
                ("--header", args.header),
                ("--cert", args.cert),
                ("--cert-file", args.cert_file),
                ("--frontend", args.frontend),
            )
            if value
        ]
        if given:
            parser.error(f"{', '.join(given)}: only with --explain")
    if args.command == "check" and args.explain:
        return _explain(args)
    if args.command == "check":
        return _check(args.files)
    if args.command == "pki":
        return _pki(args.directory)
    return _demo(args.dir)


def _check(files: list[str]) -> int:
    from certlb.config import check_config
    from certlb.report import print_problems

    _, problems = check_config(files)
    return print_problems(problems, files, sys.stdout)


def _explain(args: argparse.Namespace) -> int:
    """C{certlb check --explain}: the trace of one described request."""
    from certlb.config import check_config
    from certlb.config.errors import ERROR
    from certlb.proxy.runtime import build_runtime
    from certlb.report import print_problems
    from certlb.rules.trace import Described, describe_header, describe_request, explain

    try:
        method, target = describe_request(args.request)
        headers = tuple(describe_header(h) for h in args.header)
        certificate = _certificate(args.cert_file) if args.cert_file else None
        kind = args.cert or ("valid" if certificate is not None else "none")
        if kind not in CERT_KIND_NAMES and not kind.isdigit():
            raise ValueError(
                f"--cert {kind!r}: use one of {', '.join(CERT_KIND_NAMES)}, or a "
                "verification error number"
            )
    except (OSError, ValueError) as e:
        print(f"certlb check --explain: {e}", file=sys.stderr)
        return 2
    config, problems = check_config(args.files)
    if any(p.severity == ERROR for p in problems):
        return print_problems(problems, args.files, sys.stdout)
    names = [f.name for f in config.frontends]
    name = args.frontend or (names[0] if names else None)
    if name not in names:
        print(
            f"certlb check --explain: no frontend or listen section is named "
            f"{name!r}; there are: {', '.join(names) or 'none'}",
            file=sys.stderr,
        )
        return 2
    frontend = next(f for f in config.frontends if f.name == name)
    runtime = build_runtime(config)[name]
    request = Described(method, target, headers, kind, certificate)
    if problems:
        count = f"{len(problems)} warning{'' if len(problems) == 1 else 's'}"
        print(f"({count}: 'certlb check {' '.join(args.files)}' lists them)")
    for line in explain(config, frontend, runtime, request):
        print(line)
    return 0


def _certificate(path: str) -> object:
    """The first certificate of a PEM file.

    @raise ValueError: the file holds none.
    """
    from cryptography import x509

    with open(path, "rb") as f:
        data = f.read()
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise ValueError(f"--cert-file {path}: no PEM certificate in it") from None


def _pki(directory: str) -> int:
    from certlb.pki import generate

    paths = generate().write(directory)
    print(f"wrote {len(paths)} files into {directory}: {', '.join(sorted(paths))}")
    return 0


def _demo(directory: str | None) -> int:
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from certlb import demo
    from certlb.config import ConfigError
    from certlb.service import ListenError

    temporary = directory is None
    path = demo.default_directory() if directory is None else os.path.abspath(directory)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    try:
        demo.run(reactor, path)
    except (ListenError, ConfigError) as e:
        print(f"certlb demo: {e}", file=sys.stderr)
        if temporary:
            demo.remove(path)
        return 1
    reactor.run()
    if temporary:
        demo.remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
