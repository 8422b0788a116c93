"""Checks of a training checkpoint's metadata, before a resume trusts it.

The core checks the container and the DagNN/Embedding parts; this adds the trainer's
position (epoch, learning rate, history) and the run settings a resume reuses (a
held-out count or trunk size from a crafted file must not hang or exhaust the machine).
Keys this module does not know are left to their owners.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from grapheme_core import CheckpointError, limits
from grapheme_core.checkpoint_validate import check_dagnn, check_embedding, integer, number

__all__ = ["check_run", "check_training"]


def _obj(value: Any, what: str, path: str | Path) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CheckpointError(f"{path}: {what} must be a JSON object")
    return value


def check_run(run: Mapping[str, Any], path: str | Path) -> None:
    """The run settings (``meta["run"]``) a resume merges with the command line."""
    run = _obj(run, "run", path)
    if "epochs" in run:
        integer(run["epochs"], "run.epochs", path, hi=limits.get("epochs"))
    if "lr" in run and number(run["lr"], "run.lr", path, lo=0.0) <= 0:
        raise CheckpointError(f"{path}: run.lr must be > 0")
    if "optimizer" in run and run["optimizer"] not in ("sgd", "adam"):
        raise CheckpointError(f"{path}: unknown optimizer {run['optimizer']!r:.40}")
    if "dtype" in run and run["dtype"] not in ("float32", "float64"):
        raise CheckpointError(f"{path}: unknown dtype {run['dtype']!r:.40}")
    if "seed" in run:
        integer(run["seed"], "run.seed", path, hi=2**63 - 1)
    if "hidden" in run:
        integer(run["hidden"], "run.hidden", path, lo=1, hi=limits.get("hidden"))
    for key in ("heldout", "train_limit"):  # None: the whole split
        if run.get(key) is not None:
            integer(run[key], f"run.{key}", path, hi=limits.get("heldout"))
    if "batch_size" in run:
        integer(run["batch_size"], "run.batch_size", path, lo=1, hi=_MAX_BATCH)
    if "threshold" in run:
        number(run["threshold"], "run.threshold", path)
    if "fingerprint" in run and not isinstance(run["fingerprint"], str):
        raise CheckpointError(f"{path}: run.fingerprint must be a string")


#: the largest minibatch a checkpoint may ask for (a crafted value must not allocate)
_MAX_BATCH = 1 << 20


def check_trainer(state: Mapping[str, Any], path: str | Path) -> None:
    """The trainer's position: epoch, learning rate and per-epoch history."""
    state = _obj(state, "trainer", path)
    epoch = integer(state.get("epoch"), "trainer.epoch", path, hi=limits.get("epochs"))
    if number(state.get("lr"), "trainer.lr", path, lo=0.0) <= 0:
        raise CheckpointError(f"{path}: trainer.lr must be > 0")
    if "batch_size" in state:
        integer(state["batch_size"], "trainer.batch_size", path, lo=1, hi=_MAX_BATCH)
    if "seed" in state:
        integer(state["seed"], "trainer.seed", path, hi=2**63 - 1)
    if "min_lr_ratio" in state:
        number(state["min_lr_ratio"], "trainer.min_lr_ratio", path, lo=0.0)
    if not isinstance(state.get("hooks", {}), dict):
        raise CheckpointError(f"{path}: trainer.hooks must be an object (hook name -> state)")
    history = state.get("history", [])
    if not isinstance(history, list) or len(history) > epoch:
        raise CheckpointError(f"{path}: trainer.history must be a list of at most {epoch} epochs")
    for i, record in enumerate(history):
        record = _obj(record, f"trainer.history[{i}]", path)
        integer(record.get("epoch"), f"trainer.history[{i}].epoch", path, hi=epoch)
        number(record.get("loss"), f"trainer.history[{i}].loss", path)
        losses = _obj(record.get("domain_loss", {}), f"trainer.history[{i}].domain_loss", path)
        for name, value in losses.items():
            number(value, f"trainer.history[{i}].domain_loss.{name}", path)
        if record.get("delta") is not None:
            number(record["delta"], f"trainer.history[{i}].delta", path)


def check_training(
    meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], path: str | Path
) -> None:
    """Every part of a training checkpoint that a resume reads."""
    check_run(meta["run"], path)
    check_trainer(meta["trainer"], path)
    model = _obj(meta["model"], "model", path)
    strays = sorted(k for k in arrays if k.split(".", 1)[0] not in model or "." not in k)
    if strays:
        raise CheckpointError(f"{path}: arrays {strays[:5]} belong to no part of the model")
    for key, check in (("dag", check_dagnn), ("embedding", check_embedding)):
        if key in model:
            prefix = f"{key}."
            part = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            try:
                check(model[key], part, path)
            except CheckpointError as exc:
                why = str(exc).removeprefix(f"{path}: ")
                raise CheckpointError(f"{path}: inconsistent {key} ({why})") from None
