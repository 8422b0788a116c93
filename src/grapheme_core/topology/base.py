"""What every topology rule shares: a seeded generator, the region, state for resume,
and the one way edges are replaced (drop and grow as one all-or-nothing edit)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .region import LayersArg, Region, resolve_layers
from .report import TopologyReport


class TopologyRule:
    """Base class: subclasses implement :meth:`_update` and may extend the state.

    ``layers``: node-id arrays (or a callable returning them) restricting edits to edges
    between consecutive layers; ``None``: the whole graph. ``seed``: the rule's own
    generator (candidates, tie-free choices), saved by :meth:`state_dict`.
    """

    name = "rule"

    def __init__(self, *, layers: LayersArg = None, seed: int = 0) -> None:
        self.layers = layers
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self.updates = 0  # how many times update() ran
        self.last_step: int | None = None
        self._region: Region | None = None  # the last region, carried across own edits

    # -- the public method ------------------------------------------------------------
    def update(self, dag: Any, step: int) -> TopologyReport:
        """Edit ``dag`` in place for training step ``step`` and say what changed. Call it
        after ``backward_accumulate`` and before ``zero_grad`` (RigL reads the gradients)."""
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        report = self._update(dag, step)
        self.updates += 1
        self.last_step = step
        return report

    def _update(self, dag: Any, step: int) -> TopologyReport:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- state ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (counters and the generator) for checkpoints."""
        return {
            "rule": self.name,
            "seed": self.seed,
            "updates": self.updates,
            "last_step": self.last_step,
            "rng": _json_rng(self._rng),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (so a resumed run continues bit for bit)."""
        if state.get("rule") != self.name:
            raise ValueError(
                f"state is for a {state.get('rule')!r} rule, this is a {self.name!r} rule"
            )
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        self._rng = rng
        self.seed = int(state["seed"])
        self.updates = int(state["updates"])
        self.last_step = None if state["last_step"] is None else int(state["last_step"])

    # -- helpers ----------------------------------------------------------------------
    def region(self, dag: Any) -> Region:
        """The rule's region on ``dag``'s current version (the one this rule carried
        across its own last edit when it still applies, else built afresh)."""
        layers = resolve_layers(self.layers)
        cached = self._region
        if cached is not None and cached.is_current(dag, layers):
            return cached
        self._region = Region(dag, layers)
        return self._region

    def _report(
        self, dag: Any, step: int, region: Region, removed: int = 0, added: int = 0, **fields: Any
    ) -> TopologyReport:
        """The report after an edit of ``region`` (the region *before* it: its capacity
        does not change, its edge count moved by ``added - removed``)."""
        cap = region.capacity
        density = (region.edge_count + added - removed) / cap if cap else None
        return TopologyReport(
            step=step, removed=removed, added=added, edges=dag.edge_count, density=density,
            **fields,
        )  # fmt: skip


def replace_edges(
    dag: Any,
    drop_slots: np.ndarray,
    src_slots: np.ndarray,
    dst_slots: np.ndarray,
    weights: np.ndarray | float | None,
) -> np.ndarray:
    """Remove edges (edge slots) and add edges (node slots) of the current version in one
    structural edit (:meth:`DagNN.replace_edges`).

    The new edges are checked against the graph before the removal, so a rejected add
    leaves the graph as it was; every surviving edge keeps its weight, gradient and
    optimizer moments, new edges start with zero gradient and zero moments.
    """
    ids = dag._structure.node_ids
    return dag._replace_edge_slots(drop_slots, ids[src_slots], ids[dst_slots], weights)


def smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest ``values`` (linear-time selection; deterministic for
    the same input, which is what bit-exact resume needs)."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= values.shape[0]:
        return np.arange(values.shape[0])
    return np.argpartition(values, k - 1)[:k]


def _json_rng(rng: np.random.Generator) -> dict[str, Any]:
    state = rng.bit_generator.state

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, np.integer):
            return int(v)
        return v

    return plain(state)
