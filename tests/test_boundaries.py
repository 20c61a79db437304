"""The architecture's boundaries (DESIGN.md), checked on the source."""

from __future__ import annotations

import ast
import os

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.join(os.path.dirname(__file__), "..", "certlb")


def _module_file(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "certlb":
        return None
    base = os.path.join(ROOT, *parts[1:])
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.exists(candidate):
            return candidate
    return None


def _imports(path: str, top_level_only: bool) -> set[str]:
    """Modules imported by a file (at module level only, if asked)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If):  # TYPE_CHECKING blocks do not run
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _closure(start: str) -> set[str]:
    """Every module that importing C{start} imports, following certlb's own."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # a package's __init__ runs first
            path = _module_file(".".join(parts[:i]))
            if path is not None:
                todo.extend(_imports(path, top_level_only=True))
    return seen


class BoundaryTests(SynchronousTestCase):
    def test_config_is_pure(self) -> None:
        """Loading the configuration package imports nothing of twisted.internet
        (no sockets, no reactor)."""
        imported = _closure("certlb.config")
        self.assertEqual(
            sorted(m for m in imported if m.startswith("twisted.internet")), []
        )

    def test_rules_see_no_twisted_web(self) -> None:
        """Rules know requests through their own context, not twisted.web."""
        imported = _closure("certlb.rules.acl")
        self.assertEqual(sorted(m for m in imported if m.startswith("twisted.web")), [])

    def test_tls_knows_no_http(self) -> None:
        """The TLS package imports nothing of HTTP (certlb.proxy, twisted.web)."""
        imported = _closure("certlb.tls.server")
        self.assertEqual(
            sorted(
                m for m in imported if m.startswith(("certlb.proxy", "twisted.web"))
            ),
            [],
        )

    def test_no_reactor_at_import_time(self) -> None:
        """No certlb module imports the global reactor at module level."""
        offenders = []
        for directory, _, files in os.walk(ROOT):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    if "twisted.internet.reactor" in _imports(
                        path, top_level_only=True
                    ):
                        offenders.append(os.path.relpath(path, ROOT))
        self.assertEqual(offenders, [])
