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
    "DEFAULT_EPOCHS",
    "Launch",
    "PreparedData",
    "ResumeWithoutEpochsError",
    "RunSettings",
    "SettingsConflictError",
    "continue_command",
    "merge_launch",
    "merge_settings",
    "prepare_data",
]

DEFAULT_EPOCHS = 10
"""``--epochs`` of a fresh run when none is given."""

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
class Launch:
    """Where and how a run computes and reports: recorded in its checkpoints, so that
    ``--resume`` continues on the same backend, device and options and keeps writing the
    same metrics file unless the command line says otherwise.

    ``backend``: the backend's name; ``device``/``options``: what was passed to
    ``get_backend``; ``metrics_out``: the ``--metrics-out`` path; ``epochs``: the epoch the
    run was asked to reach.
    """

    backend: str | None = None
    device: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    metrics_out: str | None = None
    epochs: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``run["launch"]`` record of a checkpoint."""
        return attrs.asdict(self)

    def backend_options(self) -> dict[str, Any]:
        """Keyword arguments for ``get_backend``: the options plus the device."""
        return {**self.options, **({} if self.device is None else {"device": self.device})}


class ResumeWithoutEpochsError(GraphemeTrainError):
    """``--resume`` was given without ``--epochs``: training on is never implied."""


def merge_launch(
    given: Launch, saved: Mapping[str, Any] | None, checkpoint: str | Path | None = None
) -> tuple[Launch, list[str]]:
    """The launch of a run: what was given, completed by a resumed checkpoint's record.

    Returns the launch and notes for the user (what was taken over, what was changed).
    A fresh run (``saved`` is None) gets ``epochs`` :data:`DEFAULT_EPOCHS` when not given.
    When resuming, ``epochs`` must be given (``ResumeWithoutEpochsError`` says so), and
    the checkpoint's backend, device, options and metrics file are used unless given; a
    different ``--backend`` starts from no device and no options, since those belonged to
    the other backend.
    """
    if saved is None:
        epochs = DEFAULT_EPOCHS if given.epochs is None else given.epochs
        return attrs.evolve(given, epochs=epochs), []
    record = Launch(**{k: v for k, v in saved.items() if k in attrs.fields_dict(Launch)})
    if given.epochs is None:
        planned = f" (the run was started with --epochs {record.epochs})" if record.epochs else ""
        raise ResumeWithoutEpochsError(
            f"--resume {checkpoint} needs --epochs N: the epoch to train up to{planned}. "
            "Nothing was trained or written. To look at a checkpoint without training, use "
            f"`grapheme-train evaluate {checkpoint}` or `grapheme-train show {checkpoint}`."
        )
    notes: list[str] = []
    same_backend = given.backend is None or given.backend == record.backend
    if same_backend:
        backend = record.backend
        device = record.device if given.device is None else given.device
        options = {**record.options, **given.options}
        if given.device is not None and record.device not in (None, given.device):
            notes.append(f"--device {given.device} replaces the checkpoint's {record.device}")
        for key, value in given.options.items():
            if key in record.options and record.options[key] != value:
                notes.append(
                    f"--option {key}={value} replaces the checkpoint's {record.options[key]}"
                )
    else:
        backend, device, options = given.backend, given.device, dict(given.options)
        dropped = [f"--device {record.device}"] if record.device else []
        dropped += [f"--option {k}={v}" for k, v in record.options.items()]
        notes.append(
            f"--backend {given.backend} replaces the checkpoint's {record.backend}"
            + (f" (its {', '.join(dropped)} not carried over)" if dropped else "")
        )
    metrics_out = record.metrics_out if given.metrics_out is None else given.metrics_out
    launch = Launch(backend, device, options, metrics_out, given.epochs)
    return launch, notes


def continue_command(checkpoint: str | Path, launch: Launch, data: Sequence[str | Path]) -> str:
    """The shell command that continues a run from ``checkpoint`` with the same launch."""
    import json
    import shlex

    parts = ["grapheme-train", "--resume", str(checkpoint), "--epochs", str(launch.epochs)]
    if launch.backend:
        parts += ["--backend", launch.backend]
    if launch.device:
        parts += ["--device", launch.device]
    for key, value in launch.options.items():
        parts += ["--option", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    if launch.metrics_out:
        parts += ["--metrics-out", launch.metrics_out]
    for path in data:
        parts += ["--data", str(path)]
    return shlex.join(parts)


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
