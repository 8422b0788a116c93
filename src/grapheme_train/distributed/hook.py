"""The trainer hook: gradients are all-reduced once per optimizer step.

Plugs into the unified trainer's hooks (``Trainer(..., hooks=[...])``): ``on_gradients``
runs after every brain's backward pass and before the optimizer step; put this hook
**before** any topology hook, so a rule such as RigL sees the summed gradients and every
rank edits from the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grapheme_train.distributed.parallel import DataParallel

__all__ = ["DistributedHook"]


class DistributedHook:
    """Trainer hook named ``"distributed"`` around a :class:`DataParallel`.

    ``on_gradients`` sums (or averages, per the DataParallel) the gradients of the model
    across ranks, after checking that every rank has the same structure;
    ``on_epoch_end`` adds ``world_size`` to the epoch record; the state records the
    world size of the run (a resume may use another: the global batch, not the world
    size, defines the numbers).
    """

    name = "distributed"

    def __init__(self, parallel: DataParallel) -> None:
        self.parallel = parallel
        self.world_sizes: list[int] = [parallel.world_size]

    def on_gradients(self, trainer: Any, step: int) -> None:
        """All-reduce the gradients of ``trainer.model`` (collective)."""
        if trainer.model is not self.parallel.model:
            raise ValueError("the distributed hook wraps another model than the trainer's")
        self.parallel.all_reduce_gradients()

    def reduce_sum(self, values: Sequence[float]) -> list[float]:
        """Sum ``values`` across ranks (collective): what the trainer calls on its loss
        sums (each a shard's sum divided by the global batch) so that every rank
        reports the global-batch losses."""
        return self.parallel.all_reduce_sum(values).tolist()

    def on_epoch_end(self, trainer: Any, epoch: int, record: Any) -> dict[str, Any]:
        """Extra metrics for the epoch record."""
        return {"world_size": self.parallel.world_size}

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state: the world sizes this run has trained with, in order."""
        return {"world_sizes": list(self.world_sizes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (this run's world size is appended if it changed)."""
        sizes = [int(s) for s in state.get("world_sizes", [])]
        if not sizes or sizes[-1] != self.parallel.world_size:
            sizes.append(self.parallel.world_size)
        self.world_sizes = sizes
