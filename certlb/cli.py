"""The C{certlb} command: C{check}, C{demo} and C{pki}.

certlb itself runs under twistd: C{twistd -n certlb --config FILE}.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from certlb._version import __version__


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
    args = build_parser().parse_args(argv)
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
