"""A deterministic SET-style topology edit (drop the weakest edges, regrow as many).

It stands in for the topology rules of ``grapheme_core.topology`` (SET, RigL, ...) where
those are not available, and shows what data parallelism needs from any edit: it is a
pure function of the (synchronised) parameters, the structure, a seed and the step, so
every rank makes exactly the same edit.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from grapheme_core import DagNN

__all__ = ["RewireReport", "SeededRewire"]


@attrs.frozen
class RewireReport:
    """What one update changed: edge ids ``removed`` and ``added`` (``nodes_added``
    is always 0, like a SET report)."""

    removed: np.ndarray
    added: np.ndarray
    nodes_added: int = 0


@attrs.define
class SeededRewire:
    """Drop the ``drop_fraction`` of edges with the smallest ``|w|`` and add as many
    random edges (weights from the model's own initialiser), drawn from a generator
    seeded by ``(seed, step)``. New edges go from an earlier to a later position of the
    current topological order, so the graph stays acyclic; sources are non-output nodes,
    destinations non-input nodes. ``rule.update(dag, step)`` edits in place."""

    drop_fraction: float = attrs.field(default=0.05)
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        if not 0 < self.drop_fraction < 1:
            raise ValueError(f"drop_fraction must be in (0, 1), got {self.drop_fraction}")

    def update(self, dag: DagNN, step: int) -> RewireReport:
        """Rewire ``dag`` in place; returns the report."""
        eids, _src, _dst = dag.edges()
        k = math.ceil(self.drop_fraction * eids.shape[0]) if eids.shape[0] else 0
        if k == 0:
            empty = np.zeros(0, dtype=np.int64)
            return RewireReport(empty, empty)
        weights = np.abs(dag.get_parameters()["weight"])
        removed = eids[np.argsort(weights, kind="stable")[:k]]
        src, dst = self._candidates(dag, k, step)
        dag.remove_edges(removed)
        added = dag.add_edges(src, dst)
        return RewireReport(removed, added)

    def _candidates(self, dag: DagNN, k: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        nodes = dag.nodes()
        position = dag.plan.position  # node slot -> topological position
        outputs = np.isin(nodes, dag.output_nodes)
        inputs = np.isin(nodes, dag.input_nodes)
        sources, targets = np.flatnonzero(~outputs), np.flatnonzero(~inputs)
        if sources.size == 0 or targets.size == 0:
            raise ValueError("the graph has no possible new edge (no source or no destination)")
        rng = np.random.default_rng([int(self.seed), int(step)])
        src_out: list[np.ndarray] = []
        dst_out: list[np.ndarray] = []
        found = 0
        for _ in range(64):
            s = rng.choice(sources, size=4 * k)
            d = rng.choice(targets, size=4 * k)
            ok = position[s] < position[d]
            src_out.append(s[ok])
            dst_out.append(d[ok])
            found += int(ok.sum())
            if found >= k:
                break
        else:
            raise ValueError("could not draw enough acyclic candidate edges")
        s_slots, d_slots = np.concatenate(src_out)[:k], np.concatenate(dst_out)[:k]
        return nodes[s_slots], nodes[d_slots]
