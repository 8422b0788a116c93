"""Training checkpoints: the model, the trainer's position and the run's settings.

One file (the core's zip format, kind ``grapheme-train``, written atomically), holding
``meta = {"model": ..., "trainer": {"epoch", "lr", "history"}, "run": {...}}`` and the
model's arrays. Loading it on any backend continues training exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grapheme_core import Backend, CheckpointError, read_checkpoint, write_checkpoint
from grapheme_train.checkpoint_validate import check_training
from grapheme_train.data import Example
from grapheme_train.model import SharedAGIModel
from grapheme_train.trainer import EpochRecord, Trainer

__all__ = ["KIND", "load_training", "restore_trainer", "save_training"]

KIND = "grapheme-train"


def save_training(
    path: str | Path,
    snapshot: tuple[Mapping[str, Any], Mapping[str, np.ndarray]],
    run: Mapping[str, Any],
) -> Path:
    """Atomically write a trainer snapshot plus the run settings (``run``)."""
    meta, arrays = snapshot
    return write_checkpoint(path, KIND, {**meta, "run": dict(run)}, arrays)


def load_training(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a training checkpoint; ``CheckpointError`` if it is not one or if its
    settings, trainer position or model parts are out of range (see
    :mod:`grapheme_train.checkpoint_validate`)."""
    meta, arrays = read_checkpoint(path, KIND)
    for key in ("model", "trainer", "run"):
        if key not in meta:
            raise CheckpointError(f"{path}: training checkpoint without {key!r}")
    try:
        check_training(meta, arrays, path)
    except CheckpointError:
        raise
    except Exception as exc:  # anything the checks did not foresee is still the file's fault
        raise CheckpointError(
            f"{path}: inconsistent contents ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
    return meta, arrays


def restore_trainer(
    meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    examples: Sequence[Example],
    backend: str | Backend | None = None,
    path: str | Path = "checkpoint",
    **trainer_options: Any,
) -> Trainer:
    """The trainer saved in a checkpoint, on ``backend``, over ``examples``.

    ``trainer_options`` (e.g. ``hooks=``, ``shard=``) go to :class:`Trainer`; saved hook
    states are handed to the hooks."""
    try:
        model = SharedAGIModel.from_state(meta["model"], arrays, backend=backend)
        state = meta["trainer"]
        history = [EpochRecord.from_json(r) for r in state["history"]]
        trainer = Trainer(
            model,
            examples,
            state["lr"],
            epoch=int(state["epoch"]),
            history=history,
            batch_size=int(state.get("batch_size", 256)),
            total_epochs=state.get("total_epochs"),
            min_lr_ratio=float(state.get("min_lr_ratio", 0.05)),
            half_life=float(state.get("half_life", 3.0)),
            seed=int(state.get("seed", 0)),
            **trainer_options,
        )
        trainer.load_hook_states(state.get("hooks", {}))
        return trainer
    except (RecursionError, MemoryError, Exception) as exc:
        raise CheckpointError(
            f"{path}: inconsistent contents ({type(exc).__name__}: {exc})"
        ) from exc
