"""Where certlb finds plugins: the modules of this package.

A plugin is a module-level object that provides L{twisted.plugin.IPlugin}
and one of certlb's extension interfaces (L{certlb.rules.interfaces}).  It
is found in a module of a directory C{certlb/plugins/} (without an
C{__init__.py}) anywhere on C{sys.path}, as Twisted's own plugins are in
C{twisted/plugins/}, or in a directory a configuration names with
C{plugin-dir}.  See L{certlb.rules.registry}.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []
