"""Everything a training run needs before its first epoch: settings, data, modules.

Kept apart from the CLI so that it can be used (and tested) without click.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from grapheme_train.data import (
    Example,
    check_examples,
    fingerprint,
    load_jsonl,
    route_examples,
)
from grapheme_train.datasets import load_splits
from grapheme_train.errors import GraphemeTrainError
from grapheme_train.model import ModelConfig
from grapheme_train.modules import DomainModule, default_modules, fit_modules
from grapheme_train.router import CognitiveRouter

__all__ = [
    "DEFAULTS",
    "PreparedData",
    "RunSettings",
    "SettingsConflictError",
    "merge_settings",
    "prepare_data",
]

DEFAULTS: dict[str, Any] = {
    "lr": 0.01,
    "optimizer": "adam",
    "seed": 0,
    "hidden": 128,
    "dtype": "float32",
    "heldout": None,
    "batch_size": 256,
    "train_limit": None,
}
"""Defaults of the settings that a resumed run must share with its checkpoint."""


class SettingsConflictError(GraphemeTrainError):
    """An option given on the command line contradicts the checkpoint being resumed."""


@attrs.frozen
class RunSettings:
    """The settings of one run (after defaults and the checkpoint are applied)."""

    epochs: int
    lr: float
    optimizer: str
    seed: int
    hidden: int
    dtype: str
    heldout: int | None
    batch_size: int = 256
    train_limit: int | None = None
    threshold: float = 0.5

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            hidden=self.hidden, dtype=self.dtype, seed=self.seed, optimizer=self.optimizer
        )

    def run_meta(self, data_fingerprint: str) -> dict[str, Any]:
        """What a checkpoint records so that a resume can check and reuse it."""
        fixed = {k: getattr(self, k) for k in DEFAULTS}
        return {**fixed, "threshold": self.threshold, "fingerprint": data_fingerprint}


def merge_settings(
    given: Mapping[str, Any], epochs: int, saved: Mapping[str, Any] | None = None
) -> RunSettings:
    """Options given (None = not given) + the checkpoint's run settings + defaults.

    When resuming, an option that was given must equal the checkpoint's value.
    """
    values: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        value = given.get(key)
        if saved is not None and key in saved:
            if value is not None and value != saved[key]:
                raise SettingsConflictError(
                    f"--{key} {value} differs from the checkpoint's {saved[key]}; "
                    f"leave it out to resume with {saved[key]}"
                )
            value = saved[key]
        values[key] = default if value is None else value
    threshold = saved.get("threshold", 0.5) if saved else 0.5
    return RunSettings(epochs=epochs, threshold=threshold, **values)


@attrs.frozen
class PreparedData:
    """Routed and checked training and held-out examples, with the modules sized for them."""

    examples: tuple[Example, ...]
    heldout: tuple[Example, ...]
    modules: tuple[DomainModule, ...]
    router: CognitiveRouter = attrs.field(eq=False)
    fingerprint: str
    notes: tuple[str, ...] = ()


def prepare_data(
    data_files: Sequence[str | Path],
    settings: RunSettings,
    modules: Sequence[DomainModule] | None = None,
) -> PreparedData:
    """The datasets' training split plus ``--data`` files, routed and checked before any
    training, and the held-out split (at most ``settings.heldout`` per domain).

    Without ``modules`` (a fresh run) the modules are sized to fit the data; with them
    (a resume) the data must fit them. Any problem raises ``DataError`` (file:line).
    """
    splits = load_splits(settings.seed, settings.heldout, settings.train_limit)
    examples: list[Example] = []
    for path in data_files:
        examples += load_jsonl(path)
    scoring = CognitiveRouter(settings.threshold, modules or default_modules())
    # The datasets' examples are labelled and right by construction; only files are checked.
    user = route_examples(examples, scoring)
    routed = (*splits.train, *user)
    fitted = tuple(modules) if modules is not None else fit_modules(routed)
    router = CognitiveRouter(settings.threshold, fitted)
    check_examples(user, router)
    heldout = splits.heldout
    return PreparedData(routed, heldout, fitted, router, fingerprint(routed), splits.notes)
