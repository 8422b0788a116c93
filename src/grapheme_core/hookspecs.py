"""The plugin seam. A backend plugin is any module or object with a ``grapheme_backends``
hook implementation, advertised under the ``grapheme.backends`` entry-point group::

    # my_plugin.py
    from grapheme_core import BackendSpec, hookimpl

    @hookimpl
    def grapheme_backends():
        return [BackendSpec("mine", "my_plugin.backend:MyBackend", api_version="1.0")]

    # pyproject.toml
    [project.entry-points."grapheme.backends"]
    mine = "my_plugin"
"""

from __future__ import annotations

import pluggy

PROJECT = "grapheme"
ENTRY_POINT_GROUP = "grapheme.backends"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def grapheme_backends() -> list:  # list[BackendSpec]
    """Return the backends this plugin provides, as cheap ``BackendSpec`` records.

    Must not import heavy libraries: the spec's ``factory`` is the only place that does.
    """
