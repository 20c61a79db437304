"""The API reference: pydoctor renders certlb's docstrings without error."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from twisted.trial.unittest import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ApiReferenceTests(TestCase):
    def test_pydoctor_renders(self) -> None:
        """pydoctor (as in 'pydoctor certlb') finds no docstring it cannot read."""
        with tempfile.TemporaryDirectory() as output:
            run = subprocess.run(
                [
                    sys.executable, "-m", "pydoctor", "--quiet",
                    "--docformat=epytext", "--project-name=certlb",
                    f"--html-output={output}", os.path.join(ROOT, "certlb"),
                ],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            self.assertTrue(
                os.path.exists(os.path.join(output, "certlb.rules.interfaces.html"))
            )
        # Links to Twisted's own objects cannot be resolved offline.
        problems = [
            line
            for line in run.stdout.splitlines() + run.stderr.splitlines()
            if line.strip() and 'Cannot find link target for "twisted.' not in line
        ]
        self.assertEqual(problems, [])
