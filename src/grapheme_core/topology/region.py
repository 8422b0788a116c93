"""Where a topology rule may drop and grow edges, and acyclic candidate pools.

A :class:`Region` is a list of *groups*. With ``layers`` (node-id arrays ``L0, L1, ...``)
group ``i`` holds the edges ``L[i] -> L[i+1]``; without, one group holds every edge from
a non-output node to a non-input node. A candidate ``s -> d`` is only ever proposed when
``s`` comes before ``d`` in the current plan's topological order, so the old order stays
a topological order of the grown graph: **any set of candidates keeps the graph acyclic**,
by construction (``add_edges`` checks again anyway).

Pairs inside a group are addressed by a *local key* ``i * |D| + j`` (``i`` indexes the
group's sources, ``j`` its destinations); capacity is the number of order-legal pairs.
Everything is vectorised: boolean tables over node slots and key arrays, no Python loop
per node or edge.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from .. import graph_algorithms as algo
from ..errors import GraphError
from ..types import NodeKind

#: groups with at most this many (source, destination) pairs keep a dense "taken" table
#: and enumerate their free pairs exactly; larger groups use sorted keys and sampling
DENSE_PAIRS = 1 << 24

LayersArg = Sequence[Any] | Callable[[], Sequence[Any]] | None


@attrs.frozen(eq=False)
class Group:
    """One block of the region: sources ``src`` and destinations ``dst`` (node slots),
    the existing edges in it (``edges``: edge slots; ``keys``: their local keys), and how
    many order-legal pairs it has (``capacity``)."""

    src: np.ndarray
    dst: np.ndarray
    edges: np.ndarray
    keys: np.ndarray
    capacity: int
    ordered: bool  # every (src, dst) pair is order-legal (layers in forward order)

    @property
    def pairs(self) -> int:
        """``|src| * |dst|``: the number of local keys (order-legal or not)."""
        return self.src.shape[0] * self.dst.shape[0]


def resolve_layers(layers: LayersArg) -> list[np.ndarray] | None:
    """The layer list (a callable is called), as int64 arrays; ``None`` stays ``None``."""
    if layers is None:
        return None
    if callable(layers):
        layers = layers()
    out = [np.asarray(layer, dtype=np.int64).reshape(-1) for layer in layers]
    if len(out) < 2:
        raise ValueError(f"layers= needs at least two node-id arrays, got {len(out)}")
    if any(a.size == 0 for a in out):
        raise ValueError("layers= contains an empty layer; every layer needs a node")
    return out


class Region:
    """The groups of a DagNN's current version for the given layers (see module doc)."""

    def __init__(self, dag: Any, layers: list[np.ndarray] | None) -> None:
        s = dag._structure
        n = s.node_count
        src_slot, dst_slot = s.src_slots(), s.dst_slots()
        if layers is None:
            self.position = dag.plan.position  # slot -> topological position
            kinds = s.kinds
            src_nodes = np.flatnonzero(kinds != NodeKind.OUTPUT)
            dst_nodes = np.flatnonzero(kinds != NodeKind.INPUT)
            member_src = np.zeros(n, dtype=bool)
            member_src[src_nodes] = True
            member_dst = np.zeros(n, dtype=bool)
            member_dst[dst_nodes] = True
            edges = np.flatnonzero(member_src[src_slot] & member_dst[dst_slot])
            self.groups = [self._group(src_nodes, dst_nodes, edges, src_slot, dst_slot, n)]
            return
        layer_of = np.full(n, -1, dtype=np.int64)
        slots = []
        for i, ids in enumerate(layers):
            sl = s.node_slots(ids, f"layer {i} node")
            if np.any(layer_of[sl] >= 0):
                raise GraphError(f"layers overlap: a node of layer {i} is in an earlier layer")
            layer_of[sl] = i
            slots.append(np.sort(sl))
        levels = s.levels()  # cached per version; enough when the layers are level-ordered
        if all(levels[a].max() < levels[b].min() for a, b in itertools.pairwise(slots)):
            self.position = levels
        else:
            self.position = _layered_order(n, src_slot, dst_slot, slots)
        ls, ld = layer_of[src_slot], layer_of[dst_slot]
        gid = np.where((ls >= 0) & (ld == ls + 1), ls, -1)
        self.groups = []
        for i in range(len(layers) - 1):  # one pass per layer pair, none per edge
            edges = np.flatnonzero(gid == i)
            self.groups.append(self._group(slots[i], slots[i + 1], edges, src_slot, dst_slot, n))

    def _group(self, src, dst, edges, src_slot, dst_slot, n) -> Group:
        pos = self.position
        local_s = np.full(n, -1, dtype=np.int64)
        local_s[src] = np.arange(src.shape[0])
        local_d = np.full(n, -1, dtype=np.int64)
        local_d[dst] = np.arange(dst.shape[0])
        keys = local_s[src_slot[edges]] * dst.shape[0] + local_d[dst_slot[edges]]
        ordered = bool(pos[src].max() < pos[dst].min())
        if ordered:
            capacity = src.shape[0] * dst.shape[0]
        else:  # count pairs with pos(s) < pos(d): for each d, the sources placed before it
            capacity = int(np.searchsorted(np.sort(pos[src]), pos[dst]).sum())
        return Group(src, dst, edges, keys, capacity, ordered)

    # -- queries ---------------------------------------------------------------------
    @property
    def edge_count(self) -> int:
        """Edges inside the region (summed over groups)."""
        return int(sum(g.edges.shape[0] for g in self.groups))

    @property
    def capacity(self) -> int:
        """Order-legal pairs of the region: what density is measured against."""
        return int(sum(g.capacity for g in self.groups))

    def density(self) -> float | None:
        """``edge_count / capacity`` (``None`` for an empty region)."""
        cap = self.capacity
        return self.edge_count / cap if cap else None

    # -- candidates ------------------------------------------------------------------
    def free_pairs(self, g: Group) -> np.ndarray:
        """Every order-legal local key of ``g`` without an edge (dense groups only)."""
        taken = np.zeros(g.pairs, dtype=bool)
        taken[g.keys] = True
        free = np.flatnonzero(~taken)
        if not g.ordered:
            free = free[self._legal(g, free)]
        return free

    def sample(self, g: Group, count: int, rng: np.random.Generator) -> np.ndarray:
        """Up to ``count`` distinct free, order-legal local keys of ``g``, drawn uniformly
        by ``rng`` (fewer only when the group has fewer free pairs).

        A small or crowded group (``count`` or the edges above a quarter of the pairs)
        draws from the exact list of free pairs; otherwise rejection sampling of random
        keys against a table of taken pairs (a bitmap up to ``DENSE_PAIRS`` pairs, sorted
        keys beyond), which never touches the free pairs one by one.
        """
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        crowded = 4 * max(count, g.keys.shape[0]) > g.pairs
        if g.pairs <= DENSE_PAIRS and crowded:
            free = self.free_pairs(g)
            if free.shape[0] <= count:
                return free
            return np.sort(rng.choice(free, size=count, replace=False))
        if g.pairs <= DENSE_PAIRS:
            bitmap = np.zeros(g.pairs, dtype=bool)
            bitmap[g.keys] = True

            def taken(keys: np.ndarray) -> np.ndarray:
                return bitmap[keys]
        else:
            existing = np.sort(g.keys)

            def taken(keys: np.ndarray) -> np.ndarray:
                return _contains(existing, keys)

        found = np.zeros(0, dtype=np.int64)
        for _ in range(64):  # rejection rounds; at least 3/4 of the pairs are free
            need = count - found.shape[0]
            if need <= 0:
                break
            draw = rng.integers(0, g.pairs, size=2 * need + 16, dtype=np.int64)
            draw = draw[~taken(draw)]
            if not g.ordered:
                draw = draw[self._legal(g, draw)]
            draw = draw[~_contains(np.sort(found), draw)]
            _, first = np.unique(draw, return_index=True)
            found = np.concatenate([found, draw[np.sort(first)][:need]])
        return np.sort(found)

    def _legal(self, g: Group, keys: np.ndarray) -> np.ndarray:
        n_dst = g.dst.shape[0]
        pos = self.position
        return pos[g.src[keys // n_dst]] < pos[g.dst[keys % n_dst]]

    def endpoints(self, g: Group, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Node slots ``(src, dst)`` of local keys."""
        n_dst = g.dst.shape[0]
        return g.src[keys // n_dst], g.dst[keys % n_dst]


def _layered_order(
    n: int, src: np.ndarray, dst: np.ndarray, layers: list[np.ndarray]
) -> np.ndarray:
    """Longest-path levels of the graph plus, per consecutive layer pair, a virtual hub
    ``L[i] -> hub -> L[i+1]``: an order in which every pair of every group is legal, so
    any candidate set keeps the graph acyclic. ``GraphError`` if the layers are not in
    forward order (some existing path leads from a later layer back to an earlier one)."""
    pairs = range(len(layers) - 1)
    hub_in = [np.full(layers[i].shape[0], n + i) for i in pairs]  # L[i] -> hub i
    hub_out = [np.full(layers[i + 1].shape[0], n + i) for i in pairs]  # hub i -> L[i+1]
    all_src = np.concatenate([src, *layers[:-1], *hub_out])
    all_dst = np.concatenate([dst, *hub_in, *layers[1:]])
    levels = algo.longest_path_levels(n + len(pairs), all_src, all_dst)
    if levels is None:
        raise GraphError(
            "layers= are not in forward order: an existing path leads from a later layer "
            "back to an earlier one, so edges between them could close a cycle"
        )
    return levels[:n]


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    if sorted_keys.shape[0] == 0 or keys.shape[0] == 0:
        return np.zeros(keys.shape[0], dtype=bool)
    at = np.searchsorted(sorted_keys, keys)
    at[at == sorted_keys.shape[0]] = 0
    return sorted_keys[at] == keys
