"""The epoch loop of a run: train, snapshot, checkpoint, record; keep the last good state.

The loop keeps an in-memory snapshot of the last completed epoch, so a caller that
catches ``KeyboardInterrupt`` or :class:`~grapheme_train.trainer.NonFiniteLossError`
can still save (or point to) a consistent state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from grapheme_train.checkpoint import save_training
from grapheme_train.metrics import MetricsWriter
from grapheme_train.trainer import EpochRecord, NonFiniteLossError, Trainer

__all__ = ["EpochLoop"]

Snapshot = tuple[dict[str, Any], dict[str, np.ndarray]]


class EpochLoop:
    """Runs ``trainer`` up to ``epochs``, saving to ``save_to`` after every epoch."""

    def __init__(
        self,
        trainer: Trainer,
        epochs: int,
        run_meta: Mapping[str, Any],
        *,
        save_to: Path | None = None,
        metrics: MetricsWriter | None = None,
        on_epoch: Callable[[EpochRecord], None] = lambda record: None,
    ) -> None:
        self.trainer = trainer
        self.epochs = epochs
        self.run_meta = dict(run_meta)
        self.save_to = save_to
        self.metrics = metrics
        self.on_epoch = on_epoch
        self.last_good: Snapshot = trainer.snapshot()
        self._previous: Snapshot | None = None  # the snapshot before last_good, this run
        self.wrote = False  # whether this run wrote a checkpoint to save_to
        self.seconds = 0.0

    @property
    def good_epoch(self) -> int:
        """The epoch of the last good snapshot."""
        return int(self.last_good[0]["trainer"]["epoch"])

    def run(self) -> None:
        """Train the remaining epochs; ``seconds`` holds the time spent, even on failure."""
        trainer = self.trainer
        started = time.perf_counter()
        try:
            # Overflow is detected (NonFiniteLossError), not warned about by NumPy.
            with np.errstate(all="ignore"):
                while trainer.epoch < self.epochs:
                    try:
                        record = trainer.train_epoch()
                    except NonFiniteLossError:
                        # The loss of the last saved state is not finite: that state is bad.
                        self.discard_last()
                        raise
                    snapshot = trainer.snapshot()
                    if self.save_to is not None:
                        save_training(self.save_to, snapshot, self.run_meta)
                        self.wrote = True
                    self._previous, self.last_good = self.last_good, snapshot
                    if self.metrics is not None:
                        self.metrics.write_epoch(record)
                    self.on_epoch(record)
        finally:
            self.seconds = time.perf_counter() - started

    def discard_last(self) -> None:
        """The last snapshot gives a non-finite loss: fall back to the one before it.

        Its checkpoint (if this run wrote one) is replaced by the previous epoch's, so the
        file kept holds a state whose loss is finite. Without an earlier snapshot from
        this run (the failure is in its first epoch) nothing changes.
        """
        if self._previous is None:
            return
        self.last_good, self._previous = self._previous, None
        if self.save_to is not None:
            save_training(self.save_to, self.last_good, self.run_meta)
            self.wrote = True

    def save_last_good(self, path: Path) -> Path:
        """Write the last good snapshot to ``path`` (atomically)."""
        return save_training(path, self.last_good, self.run_meta)
