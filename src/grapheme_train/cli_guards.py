"""Small guards the CLI puts in front of hostile or unlucky input.

* :class:`NonEmptyPath`: a ``click.Path`` refusing ``""`` (which would mean ``.``).
* :func:`within_limit`: a click callback capping an option at a limit of
  :mod:`grapheme_core.limits` (the message says how to raise it).
* :func:`check_save_target`: a ``--checkpoint`` that is a directory, device or empty is
  a usage error before any training.
* :func:`uninterruptible`: run a save with Ctrl-C held off, so that a second Ctrl-C
  cannot cut the save (and the message saying where it is) short.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from grapheme_core import CheckpointError, limits
from grapheme_core.checkpoint import check_target

__all__ = ["NonEmptyPath", "check_save_target", "uninterruptible", "within_limit"]

T = TypeVar("T")


class NonEmptyPath(click.Path):
    """``click.Path`` that refuses the empty string."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value == "":
            self.fail("the path is empty; give a file name", param, ctx)
        return super().convert(value, param, ctx)


def within_limit(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback: ``BadParameter`` if the value is over limit ``name``."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            try:
                limits.check(name, value, "the value")
            except limits.LimitExceeded as exc:
                raise click.BadParameter(str(exc), ctx, param) from None
        return value

    return callback


def check_save_target(path: Path | None, option: str) -> None:
    """``click.UsageError``-like exit 2 if a checkpoint cannot be written to ``path``."""
    if path is None:
        return
    try:
        check_target(path)
    except CheckpointError as exc:
        error = click.ClickException(f"{option} {exc}")
        error.exit_code = 2
        raise error from None


def uninterruptible(fn: Callable[[], T]) -> T:
    """``fn()`` with SIGINT ignored (main thread only); the old handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        return fn()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return fn()
    finally:
        signal.signal(signal.SIGINT, previous)
