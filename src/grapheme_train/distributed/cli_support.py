"""What ``grapheme-train --nproc N`` and ``torchrun ... -m grapheme_train`` need from the CLI.

:func:`data_parallel_run` is the one call the ``train`` command makes:

* in a plain process with ``--nproc N > 1``: start N local workers running the same
  command line (without ``--nproc``) through :func:`~.launcher.launch_local`, wait for
  them, and end the command with their status;
* in a worker (``WORLD_SIZE > 1``, set by torchrun or the launcher): join the process
  group and return a :class:`WorkerRun`, which gives the trainer its
  ``shard=(rank, world_size)`` and ``hooks`` and says whether this rank writes outputs;
* otherwise: ``None`` (an ordinary one-process run).
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Sequence
from typing import Any

import attrs
import click

from grapheme_train.distributed.context import DistContext, env_world_size, init_from_env
from grapheme_train.distributed.errors import DistributedError
from grapheme_train.distributed.hook import DistributedHook
from grapheme_train.distributed.launcher import LAUNCHED_ENV, launch_local, strip_option
from grapheme_train.distributed.parallel import DataParallel

__all__ = ["ARGV_KEY", "WorkerRun", "data_parallel_run", "trainer_supports_sharding"]

ARGV_KEY = "grapheme.argv"
"""``click.Context.meta`` key under which the CLI keeps its own argument list."""


@attrs.frozen
class WorkerRun:
    """One rank of a data-parallel ``grapheme-train`` run."""

    context: DistContext

    @property
    def shard(self) -> tuple[int, int]:
        """``(rank, world_size)`` for the trainer's minibatch step."""
        return self.context.shard

    @property
    def is_writer(self) -> bool:
        """Rank 0 prints, writes metrics and checkpoints; the others only train."""
        return self.context.is_writer

    def hooks(self, model: Any) -> list[DistributedHook]:
        """The ``distributed`` hook for ``model`` (put it before any topology hook).
        Collective: checks the structure and broadcasts rank 0's state."""
        return [DistributedHook(DataParallel(model, self.context))]


def trainer_supports_sharding(trainer_cls: type) -> bool:
    """Whether ``trainer_cls`` takes ``hooks=`` and ``shard=`` (the minibatch trainer)."""
    try:
        params = inspect.signature(trainer_cls).parameters
    except (TypeError, ValueError):
        return False
    return "hooks" in params and "shard" in params


def data_parallel_run(
    nproc: int,
    trainer_cls: type,
    device: str | None = None,
    argv: Sequence[str] | None = None,
    *,
    connected: bool = False,
) -> WorkerRun | None:
    """See the module docstring. ``argv``: the command's arguments (default: those the
    CLI stored in the click context, else ``sys.argv[1:]``). ``connected``: the caller
    passes the returned run's :meth:`WorkerRun.hooks` and :attr:`WorkerRun.shard` to
    ``trainer_cls`` and writes outputs only where :attr:`WorkerRun.is_writer`; until it
    does, a data-parallel run is refused (N unsynchronised copies would train otherwise)."""
    worker = env_world_size() > 1 or os.environ.get(LAUNCHED_ENV) == "1"
    if (nproc > 1 or env_world_size() > 1) and not (
        connected and trainer_supports_sharding(trainer_cls)
    ):
        raise click.UsageError(
            "data-parallel training of the unified model needs a trainer that takes hooks= "
            "and shard=(rank, world_size), connected to the train command; this build does "
            "not have it yet. `python -m grapheme_train.distributed train --nproc N` trains "
            "a DagNN data-parallel."
        )
    if nproc > 1 and not worker:
        if argv is None:
            ctx = click.get_current_context(silent=True)
            argv = ctx.meta.get(ARGV_KEY) if ctx is not None else None
        args = strip_option(list(sys.argv[1:] if argv is None else argv), "--nproc")
        try:
            launch_local(["-m", "grapheme_train", *args], nproc)
        except DistributedError as exc:
            raise click.ClickException(f"data-parallel run failed: {exc}") from None
        click.get_current_context().exit(0)
    if env_world_size() <= 1:
        return None
    try:
        return WorkerRun(init_from_env(device))
    except DistributedError as exc:
        raise click.ClickException(str(exc)) from None
