"""Gradual magnitude pruning (Zhu & Gupta 2017) to a target density on a schedule."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import TopologyRule, replace_edges, smallest
from .region import LayersArg
from .report import TopologyReport
from .schedules import check_schedule, decay


class MagnitudePrune(TopologyRule):
    """Remove the smallest-``|w|`` edges until the region reaches ``target_density``.

    At the first update the rule records each group's edge count ``n0`` and the region's
    density ``d0``; at step ``t`` the density goal is
    ``d(t) = target + (d0 - target) * decay(t)`` with ``decay`` falling from 1 at
    ``begin_step`` to 0 at ``end_step`` (``"cubic"``: ``(1 - progress)^3``, the usual
    choice; ``"linear"``; ``"cosine"``), and group ``g`` keeps ``round(n0_g * d(t) / d0)``
    edges: every group shrinks by the same factor, so from ``end_step`` on the edge count
    is exactly the one promised. Edges are only removed, never added.
    """

    name = "prune"

    def __init__(
        self,
        *,
        target_density: float,
        end_step: int,
        begin_step: int = 0,
        schedule: str = "cubic",
        layers: LayersArg = None,
        seed: int = 0,
    ) -> None:
        super().__init__(layers=layers, seed=seed)
        target_density = float(target_density)
        if not 0.0 <= target_density <= 1.0:
            raise ValueError(f"target_density must be in [0, 1], got {target_density}")
        self.target_density = target_density
        self.schedule = check_schedule(schedule, end_step, ("cubic", "linear", "cosine"))
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        if self.end_step <= self.begin_step:
            raise ValueError(f"end_step ({end_step}) must be after begin_step ({begin_step})")
        self.initial_edges: list[int] | None = None
        self.initial_density: float | None = None

    def density_at(self, step: int) -> float | None:
        """The density goal at ``step`` (``None`` before the first update)."""
        if self.initial_density is None:
            return None
        d0, target = self.initial_density, self.target_density
        if d0 <= target or step < self.begin_step:
            return d0
        return target + (d0 - target) * decay(self.schedule, step, self.begin_step, self.end_step)

    def target_edges(self, step: int) -> list[int] | None:
        """Edges per group the schedule keeps at ``step``."""
        goal = self.density_at(step)
        if goal is None:
            return None
        d0 = self.initial_density
        return [round(n * goal / d0) if d0 else n for n in self.initial_edges]

    def _update(self, dag: Any, step: int) -> TopologyReport:
        region = self.region(dag)
        if self.initial_edges is None:
            self.initial_edges = [int(g.edges.shape[0]) for g in region.groups]
            self.initial_density = region.density() or 0.0
        if len(self.initial_edges) != len(region.groups):
            raise ValueError(
                f"the rule started with {len(self.initial_edges)} layer groups, the layers "
                f"now give {len(region.groups)}; keep layers= the same across updates"
            )
        targets = self.target_edges(step)
        magnitude = np.abs(dag.get_parameters()["weight"])
        drops = [
            g.edges[smallest(magnitude[g.edges], g.edges.shape[0] - t)]
            for g, t in zip(region.groups, targets, strict=True)
        ]
        drop = np.concatenate(drops).astype(np.int64)
        empty = np.zeros(0, dtype=np.int64)
        replace_edges(dag, drop, empty, empty, None)
        return self._report(dag, step, region, removed=drop.shape[0])

    def state_dict(self) -> dict[str, Any]:
        """The base state plus the edge counts and density of the first update."""
        state = super().state_dict()
        state.update(initial_edges=self.initial_edges, initial_density=self.initial_density)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        super().load_state_dict(state)
        edges = state.get("initial_edges")
        self.initial_edges = None if edges is None else [int(n) for n in edges]
        d0 = state.get("initial_density")
        self.initial_density = None if d0 is None else float(d0)
