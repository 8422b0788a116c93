"""The ``grapheme-train`` console script's first code: a Ctrl-C while the (heavy) CLI
modules are still importing exits 130 with one line instead of a traceback.

It imports nothing of grapheme until :func:`main` runs, so the interrupt is caught
wherever it lands during start-up; once the CLI runs, it handles Ctrl-C itself.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Import and run :func:`grapheme_train.cli.main`; Ctrl-C during the import exits 130."""
    try:
        from grapheme_train.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    cli_main()
