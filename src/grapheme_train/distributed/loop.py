"""A data-parallel training loop over a plain DagNN (regression with the MSE loss).

What the unified trainer does with ``shard=(rank, world)`` and the ``distributed`` hook,
in a few lines: every step has one *global* minibatch (the same rows on every rank);
rank ``r`` forwards rows ``r::world``, accumulates ``2 (y - t) / (B * n_out)`` (its
share of the global-batch mean), the gradients are summed across ranks, an optional
topology rule edits the graph (identically everywhere), and every rank takes the same
optimizer step. With one process (``parallel=None``) it is plain minibatch training, so
the two can be compared number for number.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from grapheme_core import DagNN, read_checkpoint, write_checkpoint
from grapheme_train.distributed.parallel import DataParallel

__all__ = [
    "CHECKPOINT_KIND",
    "global_rows",
    "load_progress",
    "save_progress",
    "train_data_parallel",
]

CHECKPOINT_KIND = "grapheme-data-parallel"


def global_rows(step: int, batch: int, n: int) -> np.ndarray:
    """Row indices of step ``step``'s global minibatch: ``batch`` consecutive rows of the
    ``n`` examples, wrapping around (the same on every rank, whatever the world size)."""
    return (step * batch + np.arange(batch)) % n


def train_data_parallel(
    dag: DagNN,
    x: np.ndarray,
    t: np.ndarray,
    *,
    steps: int,
    batch: int,
    lr: float,
    parallel: DataParallel | None = None,
    rule: Any = None,
    rule_every: int = 0,
    start_step: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``dag`` for ``steps`` steps from ``start_step``; returns the global-batch
    mean loss of every step (the same number on every rank).

    ``rule``: anything with ``update(dag, step)`` (a topology rule), run after the
    gradient reduction and before the optimizer step of every ``rule_every``-th step.
    ``on_step(step, loss)`` runs after each step (step counted from 1), e.g. to save.
    """
    rank, world = (0, 1) if parallel is None else (parallel.rank, parallel.world_size)
    x, t = np.asarray(x), np.asarray(t)
    if x.shape[0] != t.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x and t need the same number (> 0) of rows, got {x.shape} and {t.shape}")
    if batch < world:
        raise ValueError(f"the global batch ({batch}) must be at least the world size ({world})")
    n_out = len(dag.output_nodes)
    scale = 1.0 / (batch * n_out)
    losses = []
    for step in range(start_step, start_step + steps):
        mine = global_rows(step, batch, x.shape[0])[rank::world]
        dag.zero_grad()
        err = dag.forward(x[mine]).astype(np.float64) - t[mine]
        dag.backward_accumulate(2.0 * scale * err)
        local = float(np.square(err).sum() * scale)
        loss = local if parallel is None else float(parallel.all_reduce_gradients([local])[0])
        if rule is not None and rule_every and (step + 1) % rule_every == 0:
            rule.update(dag, step)
        dag.step(lr)
        losses.append(loss)
        if on_step is not None:
            on_step(step + 1, loss)
    return losses


def save_progress(path: str | Path, dag: DagNN, step: int, **extra: Any) -> Path:
    """Atomically write ``dag`` and the number of steps done (call on rank 0 only)."""
    meta, arrays = dag.state()
    return write_checkpoint(
        path, CHECKPOINT_KIND, {"dag": meta, "step": int(step), **extra}, arrays
    )


def load_progress(path: str | Path, backend: Any = None) -> tuple[DagNN, dict[str, Any]]:
    """The DagNN and the metadata (``step``, ...) of a :func:`save_progress` file."""
    meta, arrays = read_checkpoint(path, CHECKPOINT_KIND)
    return DagNN.from_state(meta["dag"], arrays, backend=backend), meta
