"""The twistd plugin: found by twistd, options, and how it starts and fails."""

from __future__ import annotations

import io
import sys

from twisted.application.service import IService, IServiceMaker, Service
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from certlb import tap
from certlb.service import ListenError
from tests.helpers import write_config


class PluginTests(SynchronousTestCase):
    def maker(self) -> IServiceMaker:
        makers = [m for m in getPlugins(IServiceMaker) if m.tapname == "certlb"]
        self.assertEqual(len(makers), 1)
        return makers[0]

    def test_found_by_twistd(self) -> None:
        """twistd finds exactly one plugin named certlb, a valid IServiceMaker."""
        maker = self.maker()
        self.assertTrue(verifyObject(IServiceMaker, maker))
        self.assertIs(maker.options, tap.Options)

    def test_no_package_init(self) -> None:
        """twisted/plugins has no __init__.py of certlb's (it would hide
        Twisted's own plugins)."""
        import os

        here = os.path.join(os.path.dirname(__file__), "..", "twisted", "plugins")
        self.assertFalse(os.path.exists(os.path.join(here, "__init__.py")))

    def test_every_package_installed(self) -> None:
        """setup.cfg lists every package of certlb, so that 'pip install .'
        installs them all."""
        import configparser
        import os

        root = os.path.join(os.path.dirname(__file__), "..")
        setup = configparser.ConfigParser()
        setup.read(os.path.join(root, "setup.cfg"))
        listed = set(setup["options"]["packages"].split())
        found = {
            directory.replace(os.sep, ".")
            for directory, _, files in os.walk(os.path.join(root, "certlb"))
            if "__init__.py" in files
            for directory in [os.path.relpath(directory, root)]
        }
        self.assertEqual(found - listed, set())


BROKEN = "frontend f\n mode http\n bind :0\n default_backend nope\n"


class OptionsTests(SynchronousTestCase):
    def test_config_repeatable(self) -> None:
        """--config and -f may be given several times, and keep their order."""
        options = tap.Options()
        options.parseOptions(["--config", "a.cfg", "-f", "b.cfg", "--config=c.cfg"])
        self.assertEqual(options["config"], ["a.cfg", "b.cfg", "c.cfg"])

    def test_config_required(self) -> None:
        """Without a configuration file, the options are refused with a hint."""
        with self.assertRaises(usage.UsageError) as raised:
            tap.Options().parseOptions([])
        self.assertIn("--config FILE", str(raised.exception))

    def test_check_valid(self) -> None:
        """--check on a valid configuration prints that it is valid and exits 0."""
        path = write_config(
            self, "frontend f\n mode http\n bind :0\n default_backend b\n"
            "backend b\n mode http\n server s 127.0.0.1:80\n",
        )  # fmt: skip
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        with self.assertRaises(SystemExit) as raised:
            tap.Options().parseOptions(["--check", "--config", path])
        self.assertEqual(raised.exception.code, 0)
        self.assertIn("configuration is valid", out.getvalue())

    def test_check_invalid(self) -> None:
        """--check on a configuration with an error prints it and exits 1."""
        path = write_config(
            self, "frontend f\n mode http\n bind :0\n default_backend nope\n"
        )
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        with self.assertRaises(SystemExit) as raised:
            tap.Options().parseOptions(["-c", "-f", path])
        self.assertEqual(raised.exception.code, 1)
        self.assertIn(f"{path}:4: error: default_backend 'nope'", out.getvalue())

    def test_make_service_with_errors_exits(self) -> None:
        """makeService prints every problem to stderr and exits 1 when the
        configuration has errors, before anything starts."""
        path = write_config(
            self, "frontend f\n mode http\n bind :0\n default_backend nope\n"
        )
        options = tap.Options()
        options.parseOptions(["--config", path])
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        with self.assertRaises(SystemExit) as raised:
            tap.makeService(options)
        self.assertEqual(raised.exception.code, 1)
        self.assertIn("default_backend 'nope'", err.getvalue())


class _Refuses(Service):
    def privilegedStartService(self) -> None:
        raise ListenError("frontend 'fe' cannot listen on 127.0.0.1:80 (x.cfg:3): busy")


class ListenErrorTests(SynchronousTestCase):
    def test_listen_error_reported_without_traceback(self) -> None:
        """A port that cannot be bound propagates (so that twistd removes its
        PID file and tells a waiting parent), and ends the process with the
        message alone, no traceback."""
        calls: list[object] = []
        self.patch(sys, "excepthook", lambda *args: calls.append(args))
        top = tap._ReportListenError()
        _Refuses().setServiceParent(top)
        with self.assertRaises(ListenError) as raised:
            IService(top).privilegedStartService()
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        sys.excepthook(ListenError, raised.exception, None)
        self.assertEqual(
            err.getvalue(),
            "certlb: frontend 'fe' cannot listen on 127.0.0.1:80 (x.cfg:3): busy\n",
        )
        sys.excepthook(ValueError, ValueError("other"), None)
        self.assertEqual(len(calls), 1, "other errors go to the previous hook")

    def test_version(self) -> None:
        """--version prints certlb's version."""
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        with self.assertRaises(SystemExit):
            tap.Options().parseOptions(["--version"])
        from certlb import __version__

        self.assertEqual(out.getvalue(), f"certlb {__version__}\n")
