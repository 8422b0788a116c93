"""Who this package is: its distribution name on the package index and its version.

The import packages are ``grapheme_core``, ``grapheme_backends`` and ``grapheme_train``;
the distribution that installs them is :data:`DISTRIBUTION` (``pip install grapheme-dagnn``).
The name ``grapheme`` on the index belongs to an unrelated project (Unicode helpers).
"""

from __future__ import annotations

import importlib.metadata

__all__ = ["DISTRIBUTION", "__version__", "install_hint", "version"]

DISTRIBUTION = "grapheme-dagnn"
"""The distribution (``pip install``) name of this project."""

__version__ = "0.1.0"
"""The version of this source tree (pyproject.toml reads it from here)."""


def version() -> str:
    """The installed distribution's version, or the source tree's when run uninstalled.

    Reads the installed metadata first (what ``pip show grapheme-dagnn`` reports); a source
    checkout on ``PYTHONPATH`` without an install falls back to the version in the code.
    """
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return __version__


def install_hint(extra: str) -> str:
    """The pip command that installs an optional extra of this distribution.

    ``install_hint("torch")`` is ``pip install 'grapheme-dagnn[torch]'``.
    """
    return f"pip install '{DISTRIBUTION}[{extra}]'"
