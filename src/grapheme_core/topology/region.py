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
        self._structure, self.version, self.layers = s, s.version, layers
        # the levels the position derives from (None: it depends on the edges too)
        self._levels: np.ndarray | None = None
        self._bitmaps: dict[int, np.ndarray] = {}  # group index -> taken-pairs table
        if layers is None:
            self.position = dag.plan.position  # slot -> topological position
            self._levels = s.levels()  # the plan's order is a function of the levels
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
            self.position = self._levels = levels
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

    # -- following the rule's own edit ------------------------------------------------
    def is_current(self, dag: Any, layers: list[np.ndarray] | None) -> bool:
        """Whether this region is still the region of ``dag``'s current version for
        ``layers`` (same structure object, same version, same layers)."""
        s = dag._structure
        if s is not self._structure or s.version != self.version:
            return False
        if layers is None or self.layers is None:
            return layers is None and self.layers is None
        return len(layers) == len(self.layers) and all(
            a.shape == b.shape and np.array_equal(a, b)
            for a, b in zip(layers, self.layers, strict=True)
        )

    def after_replace(
        self, dag: Any, dropped: Sequence[np.ndarray], grown: Sequence[np.ndarray]
    ) -> Region | None:
        """The region of ``dag`` right after ``dag._replace_edge_slots`` removed the edges
        ``g.edges[dropped[i]]`` of every group ``i`` (distinct indices into ``g.edges``)
        and appended, in this order, the pairs ``grown[i]`` (local keys) of every group.

        Equal, array for array, to ``Region(dag, layers)`` built from scratch (kept edges
        keep their relative order, new edges take the last slots), but O(edit) plus a
        few passes of cheap gathers instead of a rebuild. ``None`` where that cannot be
        guaranteed (the edit changed a level, or the order depends on the edges); then
        build a new one. Computes the new levels if the edit did not carry them. The
        taken-pair tables move to the new region.
        """
        s = dag._structure
        if s is not self._structure or self._levels is None:
            return None
        if not any(d.shape[0] for d in dropped) and not any(k.shape[0] for k in grown):
            return self if s.version == self.version else None
        if s.version != self.version + 1:
            return None
        levels = s.levels()  # carried by the edit when provably unchanged, else recomputed
        if levels is not self._levels and not np.array_equal(levels, self._levels):
            return None
        new = object.__new__(Region)
        new._structure, new.version, new.layers = s, s.version, self.layers
        new._levels, new.position, new._bitmaps = levels, self.position, {}
        kept_count = s.edge_count - sum(k.shape[0] for k in grown)
        new_slot = None
        if any(d.shape[0] for d in dropped):  # old slot -> new slot of a kept edge
            keep = np.ones(kept_count + sum(d.shape[0] for d in dropped), dtype=bool)
            for g, d in zip(self.groups, dropped, strict=True):
                keep[g.edges[d]] = False
            dtype = np.int32 if keep.shape[0] < 1 << 31 else np.int64  # int32: 10x faster
            new_slot = (np.cumsum(keep, dtype=dtype) - 1).astype(np.int64)
        groups, start = [], kept_count
        for i, (g, add, d) in enumerate(zip(self.groups, grown, dropped, strict=True)):
            bitmap = self._bitmaps.pop(i, None)
            kept = g.edges.shape[0] - d.shape[0]
            edges = np.empty(kept + add.shape[0], dtype=np.int64)
            keys = np.empty(kept + add.shape[0], dtype=g.keys.dtype)
            if d.shape[0]:
                alive = np.ones(g.edges.shape[0], dtype=bool)
                alive[d] = False
                if bitmap is not None:
                    bitmap[g.keys[d]] = False
                np.take(new_slot, g.edges[alive], out=edges[:kept])
                keys[:kept] = g.keys[alive]
            else:
                edges[:kept] = g.edges if new_slot is None else new_slot[g.edges]
                keys[:kept] = g.keys
            edges[kept:] = np.arange(start, start + add.shape[0])
            keys[kept:] = add
            start += add.shape[0]
            if bitmap is not None:
                bitmap[add] = True
                new._bitmaps[i] = bitmap
            groups.append(Group(g.src, g.dst, edges, keys, g.capacity, g.ordered))
        new.groups = groups
        return new

    def _taken_bitmap(self, g: Group) -> np.ndarray:
        """A boolean table over ``g``'s local keys, True where an edge exists (cached;
        read it, do not write it)."""
        i = next(j for j, h in enumerate(self.groups) if h is g)
        bitmap = self._bitmaps.get(i)
        if bitmap is None:
            bitmap = np.zeros(g.pairs, dtype=bool)
            bitmap[g.keys] = True
            # only a table without multi-edges can follow removals key by key
            if np.count_nonzero(bitmap) == g.keys.shape[0]:
                self._bitmaps[i] = bitmap
        return bitmap

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
        free = np.flatnonzero(~self._taken_bitmap(g))
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
            bitmap = self._taken_bitmap(g)

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
