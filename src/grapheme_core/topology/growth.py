"""Node growth: add hidden units without changing the function the network computes."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..types import Activation, NodeKind
from .base import TopologyRule
from .region import LayersArg, resolve_layers
from .report import TopologyReport

MODES = ("zero_out", "split", "cascade")


class NodeGrowth(TopologyRule):
    """Grow ``units`` hidden units per update, function-preserving.

    ``mode``:

    * ``"zero_out"`` (needs ``layers``, at least three): a new unit in hidden layer
      ``layers[i]`` reads ``fan_in`` random nodes of ``layers[i-1]`` (weights from the
      DagNN's init) and feeds ``fan_out`` random nodes of ``layers[i+1]`` with weight 0.
      ``fan_in``/``fan_out`` default to the layer's mean degrees. The layer grown is
      ``layer`` (an index into ``layers``) or, by default, the hidden layers in turn.
    * ``"split"``: an existing hidden unit (random; from ``layers[1:-1]`` when given) is
      copied with its incoming edges, weights and bias; each outgoing weight ``w`` becomes
      ``a * w`` on the old unit and ``(1 - a) * w`` on the copy, ``a`` uniform in
      ``[0.25, 0.75]`` per unit (unequal halves break the symmetry, so the two diverge).
    * ``"cascade"``: a new unit reads every earlier node (all non-output nodes, or every
      node of ``layers[:-1]``) and feeds every output (or ``layers[-1]``) with weight 0,
      as in Cascade-Correlation. Units grown in one update do not read each other.

    New units are appended to the rule's own copy of the layers (see :attr:`grown`), so
    later updates grow from them too. A failed update leaves the model unchanged.
    """

    name = "growth"

    def __init__(
        self,
        *,
        mode: str = "zero_out",
        units: int = 1,
        layer: int | None = None,
        fan_in: int | None = None,
        fan_out: int | None = None,
        activation: Activation | str | None = None,
        layers: LayersArg = None,
        seed: int = 0,
    ) -> None:
        super().__init__(layers=layers, seed=seed)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if int(units) < 1:
            raise ValueError(f"units must be >= 1, got {units}")
        if mode == "zero_out" and layers is None:
            raise ValueError(
                "mode='zero_out' needs layers= (which layer to grow and its neighbours)"
            )
        for label, value in (("fan_in", fan_in), ("fan_out", fan_out)):
            if value is not None and int(value) < 1:
                raise ValueError(f"{label} must be >= 1, got {value}")
        self.mode = mode
        self.units = int(units)
        self.layer = None if layer is None else int(layer)
        self.fan_in = None if fan_in is None else int(fan_in)
        self.fan_out = None if fan_out is None else int(fan_out)
        self.activation = None if activation is None else Activation.parse(activation)
        #: node ids this rule grew, per layer index (``-1``: no layers given)
        self.grown: dict[int, list[int]] = {}

    # -- layers including the grown units ---------------------------------------------
    def current_layers(self) -> list[np.ndarray] | None:
        """The layers with every unit this rule grew appended to its layer."""
        layers = resolve_layers(self.layers)
        if layers is None:
            return None
        return [
            np.concatenate([ids, np.asarray(self.grown.get(i, []), dtype=np.int64)])
            for i, ids in enumerate(layers)
        ]

    def _record(self, index: int, ids: np.ndarray) -> None:
        self.grown.setdefault(index, []).extend(int(i) for i in ids)

    def _update(self, dag: Any, step: int) -> TopologyReport:
        layers = self.current_layers()
        if self.mode == "zero_out":
            added = self._zero_out(dag, layers)
        elif self.mode == "split":
            added = self._split(dag, layers)
        else:
            added = self._cascade(dag, layers)
        return TopologyReport(step=step, added=added[1], nodes_added=added[0], edges=dag.edge_count)

    # -- modes ------------------------------------------------------------------------
    def _target_layer(self, layers: list[np.ndarray]) -> int:
        hidden = len(layers) - 2
        if hidden < 1:
            raise ValueError("growing a hidden layer needs layers=[inputs, hidden..., outputs]")
        if self.layer is not None:
            if not 1 <= self.layer <= hidden:
                raise ValueError(f"layer must index a hidden layer (1..{hidden}), got {self.layer}")
            return self.layer
        return 1 + self.updates % hidden

    def _zero_out(self, dag: Any, layers: list[np.ndarray]) -> tuple[int, int]:
        i = self._target_layer(layers)
        prev, here, nxt = layers[i - 1], layers[i], layers[i + 1]
        _, src, dst = dag.edges()
        fan_in = self.fan_in or _mean_degree(np.isin(dst, here) & np.isin(src, prev), here.size)
        fan_out = self.fan_out or _mean_degree(np.isin(src, here) & np.isin(dst, nxt), here.size)
        fan_in, fan_out = min(fan_in, prev.size), min(fan_out, nxt.size)
        u = self.units
        pick_in = _choose_each(self._rng, u, prev.size, fan_in)  # [u, fan_in] indices
        pick_out = _choose_each(self._rng, u, nxt.size, fan_out)
        act = self.activation or dag.activation(int(here[self._rng.integers(here.size)]))

        def edit(new: np.ndarray) -> int:
            s_in, d_in = prev[pick_in].reshape(-1), np.repeat(new, fan_in)
            s_out, d_out = np.repeat(new, fan_out), nxt[pick_out].reshape(-1)
            dag.add_edges(s_in, d_in)  # the DagNN's init for incoming weights
            dag.add_edges(s_out, d_out, weights=0.0)
            return s_in.size + s_out.size

        new, edges = _atomic_grow(dag, u, act, edit)
        self._record(i, new)
        return u, edges

    def _split(self, dag: Any, layers: list[np.ndarray] | None) -> tuple[int, int]:
        if layers is None:
            pool = np.asarray(dag.hidden_nodes, dtype=np.int64)
            owner = np.full(pool.size, -1, dtype=np.int64)
        else:
            hidden = layers[1:-1]
            if not hidden:
                raise ValueError("mode='split' with layers= needs at least one hidden layer")
            pool = np.concatenate(hidden)
            owner = np.repeat(np.arange(1, len(layers) - 1), [h.size for h in hidden])
        if pool.size == 0:
            raise ValueError("mode='split' needs an existing hidden unit to split")
        pick = self._rng.choice(pool.size, size=min(self.units, pool.size), replace=False)
        old, owners = pool[pick], owner[pick]
        ratio = self._rng.uniform(0.25, 0.75, size=old.size)
        s = dag._structure
        params = dag.get_parameters()
        weight = params["weight"].astype(np.float64)
        bias = params["bias"].astype(np.float64)
        _, src, dst = dag.edges()
        local = np.full(s.next_node_id, -1, dtype=np.int64)
        local[old] = np.arange(old.size)
        ins = np.flatnonzero(local[dst] >= 0)
        outs = np.flatnonzero(local[src] >= 0)
        acts = [dag.activation(int(n)) for n in old]  # per grown unit, not per edge

        def edit(new: np.ndarray) -> int:
            dag.add_edges(src[ins], new[local[dst[ins]]], weight[ins])
            r = ratio[local[src[outs]]]
            dag.add_edges(new[local[src[outs]]], dst[outs], (1.0 - r) * weight[outs])
            w = dag.get_parameters()["weight"].astype(np.float64)
            w[outs] = r * weight[outs]  # survivors keep their slots; new edges come after
            b = dag.get_parameters()["bias"].astype(np.float64)
            b[s.node_slots(new)] = bias[s.node_slots(old)]
            dag.set_parameters({"weight": w, "bias": b})
            return ins.size + outs.size

        new, edges = _atomic_grow(dag, old.size, acts, edit)
        for i in np.unique(owners):
            self._record(int(i), new[owners == i])
        return old.size, edges

    def _cascade(self, dag: Any, layers: list[np.ndarray] | None) -> tuple[int, int]:
        s = dag._structure
        if layers is None:
            sources = s.node_ids[s.kinds != NodeKind.OUTPUT]
            targets = np.asarray(dag.output_nodes, dtype=np.int64)
        else:
            sources, targets = np.concatenate(layers[:-1]), layers[-1]
        u = self.units
        act = self.activation or Activation.RELU

        def edit(new: np.ndarray) -> int:
            dag.add_edges(np.tile(sources, u), np.repeat(new, sources.size))
            dag.add_edges(np.repeat(new, targets.size), np.tile(targets, u), weights=0.0)
            return u * (sources.size + targets.size)

        new, edges = _atomic_grow(dag, u, act, edit)
        self._record(len(layers) - 2 if layers is not None else -1, new)
        return u, edges

    # -- state ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The base state plus the ids grown per layer."""
        state = super().state_dict()
        state["grown"] = {str(k): list(v) for k, v in self.grown.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        super().load_state_dict(state)
        self.grown = {int(k): [int(i) for i in v] for k, v in state.get("grown", {}).items()}


def _mean_degree(mask: np.ndarray, nodes: int) -> int:
    return max(1, round(np.count_nonzero(mask) / max(1, nodes)))


def _choose_each(rng: np.random.Generator, rows: int, n: int, k: int) -> np.ndarray:
    """``rows`` independent draws of ``k`` distinct indices out of ``n`` (``[rows, k]``)."""
    return np.argsort(rng.random((rows, n)), axis=1)[:, :k]


def _atomic_grow(dag: Any, count: int, activation: Any, edit: Any) -> tuple[np.ndarray, int]:
    """Add ``count`` hidden nodes (one activation, or one per node), run ``edit(new_ids)``;
    if it raises, remove the new nodes (and with them their edges) and re-raise."""
    if isinstance(activation, list):
        new = np.concatenate([dag.add_nodes(1, NodeKind.HIDDEN, a) for a in activation])
    else:
        new = dag.add_nodes(count, NodeKind.HIDDEN, activation)
    try:
        return new, edit(new)
    except Exception:
        for nid in new.tolist():
            dag.remove_node(nid)
        raise
