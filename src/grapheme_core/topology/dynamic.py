"""Dynamic sparse training at constant edge count: SET and RigL.

Both drop, in every group of the region, the ``drop_fraction`` of edges with the smallest
``|w|`` and grow as many new edges in the same group, so each group keeps its edge
count exactly (unless it has fewer free pairs than that, then it drops only as many as it
can grow). They differ in where the new edges go: SET draws them uniformly at random,
RigL takes the candidates with the largest ``|dL/dw|`` (from the API 1.1 kernel).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import backend_capabilities
from ..errors import CapabilityError
from .base import TopologyRule, replace_edges, smallest
from .region import Group, LayersArg, Region
from .report import TopologyReport
from .schedules import check_schedule, decay


class _DropAndGrow(TopologyRule):
    """Shared drop-by-magnitude machinery; subclasses choose the new edges."""

    def __init__(
        self,
        *,
        drop_fraction: float = 0.3,
        schedule: str | None = None,
        begin_step: int = 0,
        end_step: int | None = None,
        layers: LayersArg = None,
        seed: int = 0,
    ) -> None:
        super().__init__(layers=layers, seed=seed)
        drop_fraction = float(drop_fraction)
        if not 0.0 <= drop_fraction <= 1.0:
            raise ValueError(f"drop_fraction must be in [0, 1], got {drop_fraction}")
        self.drop_fraction = drop_fraction
        if schedule is None:
            schedule = "constant" if end_step is None else "cosine"
        self.schedule = check_schedule(schedule, end_step, ("constant", "cosine", "linear"))
        self.begin_step = int(begin_step)
        self.end_step = None if end_step is None else int(end_step)

    def fraction(self, step: int) -> float:
        """The drop fraction the schedule gives at ``step`` (0 before ``begin_step``)."""
        if step < self.begin_step:
            return 0.0
        return self.drop_fraction * decay(self.schedule, step, self.begin_step, self.end_step)

    def _update(self, dag: Any, step: int) -> TopologyReport:
        frac = self.fraction(step)
        region = self.region(dag)
        wanted = [round(frac * g.edges.shape[0]) for g in region.groups]
        if not any(wanted):
            return self._report(dag, step, region, drop_fraction=frac)
        self._check(dag)
        grown = self._choose(dag, region, wanted)  # per group: local keys, best first
        magnitude = np.abs(dag.backend.to_numpy(dag._params["weight"]))
        drops, srcs, dsts, dropped, added = [], [], [], [], []
        for g, keys, k in zip(region.groups, grown, wanted, strict=True):
            k = min(k, keys.shape[0])
            dropped.append(smallest(magnitude[g.edges], k))
            drops.append(g.edges[dropped[-1]])
            s, d = region.endpoints(g, keys[:k])
            srcs.append(s)
            dsts.append(d)
            added.append(keys[:k])
        drop, src, dst = (np.concatenate(a).astype(np.int64) for a in (drops, srcs, dsts))
        replace_edges(dag, drop, src, dst, self._new_weights())
        self._region = region.after_replace(dag, dropped, added)
        return self._report(
            dag, step, region, removed=drop.shape[0], added=src.shape[0], drop_fraction=frac
        )

    def _check(self, dag: Any) -> None:
        """Raise before any edit if this rule cannot run on ``dag``."""

    def _choose(self, dag: Any, region: Region, wanted: list[int]) -> list[np.ndarray]:
        raise NotImplementedError  # pragma: no cover - abstract

    def _new_weights(self) -> float | None:
        raise NotImplementedError  # pragma: no cover - abstract


class SET(_DropAndGrow):
    """Sparse Evolutionary Training (Mocanu et al. 2018): drop the smallest-``|w|``
    ``drop_fraction`` of each group's edges, regrow as many uniformly random free pairs.

    ``new_weights``: ``"init"`` draws them with the DagNN's init strategy (its own seeded
    generator), ``"zero"`` starts them at 0. ``schedule``: ``"constant"`` (default),
    ``"cosine"`` or ``"linear"`` decay of the fraction to 0 at ``end_step``.
    """

    name = "set"

    def __init__(self, *, new_weights: str = "init", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if new_weights not in ("init", "zero"):
            raise ValueError(f"new_weights must be 'init' or 'zero', got {new_weights!r}")
        self.new_weights = new_weights

    def _choose(self, dag: Any, region: Region, wanted: list[int]) -> list[np.ndarray]:
        return [region.sample(g, k, self._rng) for g, k in zip(region.groups, wanted, strict=True)]

    def _new_weights(self) -> float | None:
        return None if self.new_weights == "init" else 0.0


class RigL(_DropAndGrow):
    """Rigging the Lottery (Evci et al. 2020): drop by magnitude, grow the free pairs with
    the largest ``|dL/dw|``, new weights 0 (so the function does not change).

    The gradients come from :meth:`DagNN.candidate_gradients` (the backward passes since
    the last ``zero_grad``), so call :meth:`update` after ``backward_accumulate``. A group
    with at most ``exhaustive_pairs`` pairs scores every free pair; a larger one scores a
    uniform sample of ``pool_factor`` times the edges it regrows. Default schedule:
    cosine decay to 0 at ``end_step`` when given (the paper's), else constant.
    Needs a backend with the API 1.1 capability ``candidate_edge_grads``.
    """

    name = "rigl"

    def __init__(
        self, *, exhaustive_pairs: int = 1 << 20, pool_factor: int = 10, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if int(pool_factor) < 1:
            raise ValueError(f"pool_factor must be >= 1, got {pool_factor}")
        self.exhaustive_pairs = int(exhaustive_pairs)
        self.pool_factor = int(pool_factor)

    def _check(self, dag: Any) -> None:
        if "candidate_edge_grads" not in backend_capabilities(dag.backend):
            raise CapabilityError(
                f"RigL cannot run on backend {dag.backend.name!r}: it implements kernel API "
                f"{getattr(dag.backend, 'api_version', '?')} without candidate_edge_grads "
                "(API 1.1), which RigL needs to score edges that do not exist yet. Use a "
                "backend that has it (numpy, torch, jax) or SET, which needs no gradients."
            )

    def _pool(self, region: Region, g: Group, k: int) -> np.ndarray:
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        if g.pairs <= self.exhaustive_pairs:
            return region.free_pairs(g)
        return region.sample(g, self.pool_factor * k, self._rng)

    def _choose(self, dag: Any, region: Region, wanted: list[int]) -> list[np.ndarray]:
        pools = [self._pool(region, g, k) for g, k in zip(region.groups, wanted, strict=True)]
        ends = [region.endpoints(g, p) for g, p in zip(region.groups, pools, strict=True)]
        ids = dag._structure.node_ids
        src = ids[np.concatenate([e[0] for e in ends])]
        dst = ids[np.concatenate([e[1] for e in ends])]
        score = np.abs(dag.candidate_gradients(src, dst).astype(np.float64))
        out, start = [], 0
        for pool, k in zip(pools, wanted, strict=True):
            part = score[start : start + pool.shape[0]]
            start += pool.shape[0]
            best = smallest(-part, min(k, pool.shape[0]))
            out.append(pool[best])
        return out

    def _new_weights(self) -> float | None:
        return 0.0
