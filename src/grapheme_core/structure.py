"""Host-side structure of a DagNN: stable node and edge ids, kinds, activations.

Nodes and edges live in column arrays kept sorted by id (ids only grow and removal
deletes in place, so "position in the arrays" is the slot used everywhere else).
Every edit validates first and mutates after, so a rejected edit leaves no trace.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

from . import graph_algorithms as algo
from .errors import CycleError, GraphError
from .types import Activation, NodeKind


class _Column:
    """A growable 1-D array with amortised O(1) append."""

    __slots__ = ("_buf", "n")

    def __init__(self, dtype: type) -> None:
        self._buf = np.zeros(16, dtype=dtype)
        self.n = 0

    @property
    def values(self) -> np.ndarray:
        return self._buf[: self.n]

    def extend(self, values: np.ndarray) -> None:
        k = values.shape[0]
        if self.n + k > self._buf.shape[0]:
            grown = np.zeros(max(2 * self._buf.shape[0], self.n + k), dtype=self._buf.dtype)
            grown[: self.n] = self.values
            self._buf = grown
        self._buf[self.n : self.n + k] = values
        self.n += k

    def keep(self, mask: np.ndarray) -> None:
        """Keep the entries where ``mask`` is True, in order."""
        kept = self.values[mask]  # boolean indexing: faster than np.compress(out=)
        self._buf[: kept.shape[0]] = kept
        self.n = kept.shape[0]


class EdgeEdit(NamedTuple):
    """How version ``after`` came from version ``before`` by edges alone: the edges where
    ``keep`` (over the old edge slots; ``None``: all) is True kept their relative order,
    then ``added`` new edges took the last slots. Nodes did not change."""

    before: int
    after: int
    keep: np.ndarray | None
    added: int


class GraphStructure:
    """Topology only: no parameters, no backend. ``version`` bumps on every edit."""

    def __init__(self) -> None:
        self.version = 0
        self.next_node_id = 0
        self.next_edge_id = 0
        self._node_id = _Column(np.int64)
        self._kind = _Column(np.int8)
        self._act = _Column(np.int8)
        self._edge_id = _Column(np.int64)
        self._src = _Column(np.int64)  # node ids, not slots
        self._dst = _Column(np.int64)
        self._kind_cache: dict[int, np.ndarray] = {}
        self._kind_cache_version = -1
        self._levels: tuple[int, np.ndarray] | None = None  # (version, level per slot)
        self._adj: tuple[int, object] | None = None
        # (version, node count, edge count, src slots, dst slots), read-only arrays
        self._ends: tuple[int, int, int, np.ndarray, np.ndarray] | None = None
        # what check_new_edges learnt, for the add_edges that follows it:
        # (version, src, dst, src slots, dst slots, levels after the add or None, and
        # when a full pass found them, the tight counts after the add)
        self._checked: tuple | None = None
        self._fingerprint: tuple[int, str] | None = None  # (version, sha256 hex)
        # (version, per slot: how many in-edges come from the level just below), which
        # lets an edge removal prove in O(removed) that no level changed
        self._tight: tuple[int, np.ndarray] | None = None
        self._degrees: tuple[int, np.ndarray, np.ndarray] | None = None  # (version, in, out)
        # the latest run of consecutive edge-only edits (the newest last, a few at most)
        self._edits: list[EdgeEdit] = []

    # -- views -------------------------------------------------------------------------
    @property
    def node_ids(self) -> np.ndarray:
        return self._node_id.values

    @property
    def kinds(self) -> np.ndarray:
        return self._kind.values

    @property
    def activations(self) -> np.ndarray:
        return self._act.values

    @property
    def edge_ids(self) -> np.ndarray:
        return self._edge_id.values

    @property
    def src(self) -> np.ndarray:
        return self._src.values

    @property
    def dst(self) -> np.ndarray:
        return self._dst.values

    @property
    def node_count(self) -> int:
        return self._node_id.n

    @property
    def edge_count(self) -> int:
        return self._edge_id.n

    def nodes_of_kind(self, kind: NodeKind) -> np.ndarray:
        """Ids of one kind, ascending; cached per version (read-only array)."""
        if self._kind_cache_version != self.version:
            self._kind_cache, self._kind_cache_version = {}, self.version
        ids = self._kind_cache.get(int(kind))
        if ids is None:
            ids = self.node_ids[self.kinds == kind]
            ids.flags.writeable = False
            self._kind_cache[int(kind)] = ids
        return ids

    # -- lookups -----------------------------------------------------------------------
    def node_slots(self, ids: np.ndarray, what: str = "node") -> np.ndarray:
        """Slots of the given node ids; ``GraphError`` naming the first unknown id."""
        return _slots(self.node_ids, ids, what)

    def edge_slots(self, ids: np.ndarray) -> np.ndarray:
        return _slots(self.edge_ids, ids, "edge")

    def src_slots(self) -> np.ndarray:
        """Slot of every edge's source (read-only, cached for the current version)."""
        return self._endpoint_slots()[0]

    def dst_slots(self) -> np.ndarray:
        """Slot of every edge's destination (read-only, cached for the current version)."""
        return self._endpoint_slots()[1]

    def _endpoint_slots(self) -> tuple[np.ndarray, np.ndarray]:
        key = (self.version, self.node_count, self.edge_count)
        if self._ends is None or self._ends[:3] != key:
            src = _slots(self.node_ids, self.src, "source node")
            dst = _slots(self.node_ids, self.dst, "destination node")
            self._ends = (*key, _frozen(src), _frozen(dst))
        return self._ends[3], self._ends[4]

    def _valid_ends(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self._ends is not None and self._ends[:3] == (
            self.version,
            self.node_count,
            self.edge_count,
        ):
            return self._ends[3], self._ends[4]
        return None

    def levels(self) -> np.ndarray:
        """Longest-path level per slot (read-only), cached for the current version and
        carried across edits that provably change no level."""
        cached = self._current(self._levels)
        if cached is None:
            found = algo.levels_and_tight_counts(
                self.node_count, self.src_slots(), self.dst_slots()
            )
            if found is None:  # pragma: no cover - every edit keeps the graph acyclic
                raise GraphError("internal error: the stored graph contains a cycle")
            cached = _frozen(found[0])
            self._levels = (self.version, cached)
            self._tight = (self.version, _frozen(found[1]))
        return cached

    def degrees(self) -> tuple[np.ndarray, np.ndarray]:
        """``(in_degree, out_degree)`` per slot (read-only; multi-edges count each), cached
        for the current version and updated in O(edit) by edge edits."""
        cached = self._current(self._degrees)
        if cached is None:
            n = self.node_count
            indeg = np.bincount(self.dst_slots(), minlength=n)
            outdeg = np.bincount(self.src_slots(), minlength=n)
            self._degrees = (self.version, _frozen(indeg), _frozen(outdeg))
            return indeg, outdeg
        return cached

    def edits_since(self, version: int) -> EdgeEdit | None:
        """The edge-only edits from ``version`` to the current version as one
        :class:`EdgeEdit`, or ``None`` if a node edit (or more than a few edits) came in
        between. What lets :func:`~grapheme_core.plan.compile_plan` update an earlier
        plan instead of compiling from scratch."""
        run = self._edits
        if not run or run[-1].after != self.version:
            return None
        start = next((i for i, e in enumerate(run) if e.before == version), None)
        if start is None:
            return None
        edit = run[start]
        for then in run[start + 1 :]:
            edit = _chain(edit, then)
        return edit

    def cached_degrees(self) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`degrees` if it is already known for this version, else ``None``."""
        return self._current(self._degrees)

    def _current(self, cache: tuple | None):
        """The payload of a ``(version, *payload)`` cache entry if it is for this version."""
        if cache is None or cache[0] != self.version:
            return None
        return cache[1] if len(cache) == 2 else cache[1:]

    # -- edits -------------------------------------------------------------------------
    def add_nodes(self, count: int, kind: NodeKind, activation: Activation) -> np.ndarray:
        ends = self._valid_ends()
        ids = np.arange(self.next_node_id, self.next_node_id + count, dtype=np.int64)
        self._node_id.extend(ids)
        self._kind.extend(np.full(count, int(kind), dtype=np.int8))
        self._act.extend(np.full(count, int(activation), dtype=np.int8))
        self.next_node_id += count
        # New isolated nodes sit on level 0 with no edges: the node caches stay valid.
        zeros = np.zeros(count, np.int64)
        levels, tight = self._current(self._levels), self._current(self._tight)
        degrees = self._current(self._degrees)
        if levels is not None:
            self._levels = (self.version + 1, _frozen(np.concatenate([levels, zeros])))
        if tight is not None:
            self._tight = (self.version + 1, _frozen(np.concatenate([tight, zeros])))
        if degrees is not None:
            self._degrees = (
                self.version + 1,
                *(_frozen(np.concatenate([d, zeros])) for d in degrees),
            )
        if ends is not None:  # new ids are the largest: existing slots do not move
            self._ends = (self.version + 1, self.node_count, self.edge_count, *ends)
        self.version += 1
        return ids

    def check_new_edges(self, src: np.ndarray, dst: np.ndarray) -> None:
        """Raise ``GraphError``/``CycleError`` if adding these edges is invalid. No mutation."""
        src_slot = self.node_slots(src, "source node")
        dst_slot = self.node_slots(dst, "destination node")
        loops = np.flatnonzero(src_slot == dst_slot)
        if loops.size:
            k = int(loops[0])
            raise CycleError(
                f"edge {int(src[k])} -> {int(dst[k])}{_where(k, src)} is a self-loop, which "
                "would close a cycle; the graph was left unchanged",
                int(src[k]),
                int(dst[k]),
                [int(src[k]), int(dst[k])],
            )
        if src.shape[0] == 1:
            levels = self.levels()
            s_slot, d_slot = int(src_slot[0]), int(dst_slot[0])
            if levels[s_slot] < levels[d_slot]:
                # dst cannot reach a node on a lower level; no level changes either
                self._checked = (self.version, src, dst, src_slot, dst_slot, levels, None)
                return
            if not np.any(self.src_slots() == d_slot):
                # dst has no outgoing edge, so it reaches nothing; only its own level moves
                new_levels = levels.copy()
                new_levels[d_slot] = levels[s_slot] + 1
                self._checked = (self.version, src, dst, src_slot, dst_slot, new_levels, None)
                return
            path = algo.find_path(self._adjacency(), int(dst_slot[0]), int(src_slot[0]))
            if path is not None:
                self._raise_cycle(0, src, dst, path)
            self._checked = (self.version, src, dst, src_slot, dst_slot, None, None)
            return
        levels = self._current(self._levels)
        if levels is not None and np.all(levels[src_slot] < levels[dst_slot]):
            # Every new edge climbs the current levels: they stay a strictly increasing
            # potential, so no cycle can close and no longest path gets longer.
            self._checked = (self.version, src, dst, src_slot, dst_slot, levels, None)
            return
        old_src, old_dst = self.src_slots(), self.dst_slots()
        all_src = np.concatenate([old_src, src_slot])
        all_dst = np.concatenate([old_dst, dst_slot])
        if levels is not None:  # a few edges that do not climb: raise what they lift
            raised = algo.levels_after_addition(
                self.node_count, all_src, all_dst, levels, src_slot, dst_slot
            )
            if raised is not None:  # settled, so acyclic
                self._checked = (self.version, src, dst, src_slot, dst_slot, raised, None)
                return
        found = algo.levels_and_tight_counts(self.node_count, all_src, all_dst)
        if found is not None:
            # The levels and slots after the add are known now: hand them to add_edges.
            self._checked = (self.version, src, dst, src_slot, dst_slot, *found)
            return
        k = algo.first_cycle_closing(self.node_count, old_src, old_dst, src_slot, dst_slot)
        adj = algo.adjacency(
            self.node_count,
            np.concatenate([old_src, src_slot[:k]]),
            np.concatenate([old_dst, dst_slot[:k]]),
        )
        path = algo.find_path(adj, int(dst_slot[k]), int(src_slot[k]))
        self._raise_cycle(k, src, dst, path or [])

    def _raise_cycle(self, k: int, src: np.ndarray, dst: np.ndarray, path_slots: list[int]) -> None:
        ids = [int(self.node_ids[s]) for s in path_slots]
        cycle = " -> ".join(str(i) for i in [*ids, ids[0]]) if ids else "?"
        raise CycleError(
            f"edge {int(src[k])} -> {int(dst[k])}{_where(k, src)} would close the cycle "
            f"{cycle}; the graph was left unchanged",
            int(src[k]),
            int(dst[k]),
            ids,
        )

    def add_edges(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Append edges that :meth:`check_new_edges` accepted; returns their new ids."""
        return self.replace_edges(None, src, dst)[1]

    def remove_edges(self, edge_slots: np.ndarray) -> np.ndarray:
        """Delete edges at these slots; returns the boolean keep-mask over old edge slots."""
        keep = self.replace_edges(np.unique(edge_slots), _NO_IDS, _NO_IDS)[0]
        assert keep is not None
        return keep

    def replace_edges(
        self, drop_slots: np.ndarray | None, src: np.ndarray, dst: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """Delete the edges at ``drop_slots`` (distinct) and append ``src -> dst`` (node
        ids, accepted by :meth:`check_new_edges` when non-empty) as ONE structural version.

        Returns ``(keep, ids)``: the boolean keep-mask over the old edge slots (``None``
        when nothing is dropped) and the new edges' ids; the new edges take the last
        slots. The cached endpoint slots, degrees and levels are carried over in
        O(edit) whenever that is provably exact; otherwise they are recomputed on demand.
        """
        checked, self._checked = self._checked, None
        n, k = self.node_count, src.shape[0]
        ends = self._valid_ends()
        levels = self._current(self._levels)
        tight = self._current(self._tight)
        degrees = self._current(self._degrees)
        new_src = new_dst = None
        if k:
            levels_before = levels
            levels = tight = None
            if (
                checked is not None
                and checked[0] == self.version
                and (checked[1] is src and checked[2] is dst)
            ):
                new_src, new_dst, levels, tight = checked[3:]
            if new_src is None and (ends is not None or degrees is not None):
                new_src = self.node_slots(src, "source node")
                new_dst = self.node_slots(dst, "destination node")
            old_tight = self._current(self._tight)
            if (
                tight is None
                and levels is not None
                and levels_before is not None
                and old_tight is not None
            ):
                # the counts over old + new edges for the old levels, then for the new ones
                tight = old_tight + _tight_counts(levels_before, new_src, new_dst, n)
                if levels is not levels_before:  # a few levels rose
                    union_src = np.concatenate([self.src_slots(), new_src])
                    union_dst = np.concatenate([self.dst_slots(), new_dst])
                    tight = _retight(tight, levels_before, levels, union_src, union_dst)
        keep = None
        drop_src = drop_dst = None
        orphans = None  # nodes that lost their last in-edge from the level below
        if drop_slots is not None:
            keep = np.ones(self.edge_count, dtype=bool)
            keep[drop_slots] = False
            if ends is not None:
                drop_src, drop_dst = ends[0][drop_slots], ends[1][drop_slots]
            elif levels is not None or degrees is not None:
                drop_src = self.node_slots(self.src[drop_slots], "source node")
                drop_dst = self.node_slots(self.dst[drop_slots], "destination node")
        # -- levels after the removal: exact iff every node that lost an in-edge from
        # the level just below still has one (the levels stay a potential either way)
        if drop_dst is not None and levels is not None:
            if tight is None:
                all_src, all_dst = self.src_slots(), self.dst_slots()
                if new_src is not None:
                    all_src = np.concatenate([all_src, new_src])
                    all_dst = np.concatenate([all_dst, new_dst])
                tight = _tight_counts(levels, all_src, all_dst, n)
            lost = drop_dst[levels[drop_src] + 1 == levels[drop_dst]]
            tight = tight - np.bincount(lost, minlength=n)
            orphans = lost[tight[lost] == 0]
        # -- mutate (nothing below can fail)
        ids = np.arange(self.next_edge_id, self.next_edge_id + k, dtype=np.int64)
        if keep is not None:
            for col in (self._edge_id, self._src, self._dst):
                col.keep(keep)
        if k:
            self._edge_id.extend(ids)
            self._src.extend(src.astype(np.int64))
            self._dst.extend(dst.astype(np.int64))
            self.next_edge_id += k
        self.version += 1
        v = self.version
        if not self._edits or self._edits[-1].after != v - 1:
            self._edits = []
        self._edits = [*self._edits[-(_EDIT_LOG - 1) :], EdgeEdit(v - 1, v, keep, k)]
        if ends is not None:
            es, ed = ends
            if keep is not None:
                es, ed = es[keep], ed[keep]
            if k:
                es, ed = np.concatenate([es, new_src]), np.concatenate([ed, new_dst])
            self._ends = (v, self.node_count, self.edge_count, _frozen(es), _frozen(ed))
        if levels is not None and orphans is not None and orphans.size:
            # some levels drop: follow them down from the orphans (or recompute on demand)
            final_src, final_dst = self.src_slots(), self.dst_slots()
            dropped = algo.levels_after_removal(n, final_src, final_dst, levels, orphans)
            if dropped is not None and tight is not None:
                tight = _retight(tight, levels, dropped, final_src, final_dst)
            else:
                tight = None
            levels = dropped
        if levels is not None:
            self._levels = (v, _frozen(levels))
        if tight is not None:
            self._tight = (v, _frozen(tight))
        if degrees is not None:
            indeg, outdeg = degrees
            if k:
                indeg = indeg + np.bincount(new_dst, minlength=n)
                outdeg = outdeg + np.bincount(new_src, minlength=n)
            if keep is not None:
                indeg = indeg - np.bincount(drop_dst, minlength=n)
                outdeg = outdeg - np.bincount(drop_src, minlength=n)
            self._degrees = (v, _frozen(indeg), _frozen(outdeg))
        return keep, ids

    def remove_node(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """Delete a node and its edges; returns (node keep-mask, edge keep-mask)."""
        nid = self.node_ids[slot]
        edge_keep = (self.src != nid) & (self.dst != nid)
        for col in (self._edge_id, self._src, self._dst):
            col.keep(edge_keep)
        node_keep = np.ones(self.node_count, dtype=bool)
        node_keep[slot] = False
        for col in (self._node_id, self._kind, self._act):
            col.keep(node_keep)
        self.version += 1
        return node_keep, edge_keep

    def _adjacency(self):
        if self._adj is None or self._adj[0] != self.version:
            self._adj = (
                self.version,
                algo.adjacency(self.node_count, self.src_slots(), self.dst_slots()),
            )
        return self._adj[1]

    def fingerprint(self) -> str:
        """SHA-256 (hex) of ids, kinds, activations, edge endpoints and the next ids;
        cached for the current version."""
        cached = self._fingerprint
        if cached is not None and cached[0] == self.version:
            return cached[1]
        h = hashlib.sha256()
        h.update(np.array([self.next_node_id, self.next_edge_id], dtype="<i8").tobytes())
        columns = (self.node_ids, self.kinds, self.activations, self.edge_ids, self.src, self.dst)
        for column in columns:
            h.update(np.array([column.shape[0]], dtype="<i8").tobytes())
            h.update(np.ascontiguousarray(column, dtype="<i8").data)
        digest = h.hexdigest()
        self._fingerprint = (self.version, digest)
        return digest

    # -- persistence -------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "node_id": self.node_ids.copy(),
            "node_kind": self.kinds.copy(),
            "node_activation": self.activations.copy(),
            "edge_id": self.edge_ids.copy(),
            "edge_src": self.src.copy(),
            "edge_dst": self.dst.copy(),
        }

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], next_node_id: int, next_edge_id: int
    ) -> GraphStructure:
        """Rebuild from :meth:`arrays`; validates ids, kinds and acyclicity."""
        g = cls()
        node_id = np.asarray(arrays["node_id"], dtype=np.int64)
        edge_id = np.asarray(arrays["edge_id"], dtype=np.int64)
        if np.any(np.diff(node_id) <= 0) or np.any(np.diff(edge_id) <= 0):
            raise GraphError("node and edge ids must be strictly increasing")
        if (node_id.size and node_id[-1] >= next_node_id) or (
            edge_id.size and edge_id[-1] >= next_edge_id
        ):
            raise GraphError("an id is not below the recorded next id")
        kinds = np.asarray(arrays["node_kind"], dtype=np.int8)
        acts = np.asarray(arrays["node_activation"], dtype=np.int8)
        if kinds.size and (kinds.min() < 0 or kinds.max() > max(NodeKind)):
            raise GraphError("unknown node kind code")
        if acts.size and (acts.min() < 0 or acts.max() > max(Activation)):
            raise GraphError("unknown activation code")
        g._node_id.extend(node_id)
        g._kind.extend(kinds)
        g._act.extend(acts)
        src = np.asarray(arrays["edge_src"], dtype=np.int64)
        dst = np.asarray(arrays["edge_dst"], dtype=np.int64)
        if not (src.shape == dst.shape == edge_id.shape):
            raise GraphError("edge tables have different lengths")
        g.node_slots(src, "source node")
        g.node_slots(dst, "destination node")
        g._edge_id.extend(edge_id)
        g._src.extend(src)
        g._dst.extend(dst)
        g.next_node_id, g.next_edge_id = int(next_node_id), int(next_edge_id)
        if algo.longest_path_levels(g.node_count, g.src_slots(), g.dst_slots()) is None:
            raise GraphError("the stored edges contain a cycle")
        return g


def _slots(sorted_ids: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    """Positions of ``ids`` in the strictly increasing ``sorted_ids``.

    Without removals the ids are contiguous and a slot is ``id - first``; a bulk lookup
    after removals uses a dense table over the id range; small lookups binary-search.
    """
    n = sorted_ids.shape[0]
    if n and ids.size:
        first, last = int(sorted_ids[0]), int(sorted_ids[-1])
        if last - first == n - 1:  # contiguous ids
            slots = ids - first
            ok = (slots >= 0) & (slots < n)
        elif 8 * ids.size >= n and last - first < 4 * n + 1024:
            table = np.full(last - first + 1, -1, dtype=np.int64)
            table[sorted_ids - first] = np.arange(n)
            rel = ids - first
            inside = (rel >= 0) & (rel <= last - first)
            slots = np.where(inside, table[np.where(inside, rel, 0)], -1)
            ok = slots >= 0
        elif ids.size > 256:  # sorted queries walk the table in order: far fewer misses
            order = np.argsort(ids, kind="stable")
            slots = np.empty(ids.shape[0], dtype=np.int64)
            slots[order] = np.searchsorted(sorted_ids, ids[order])
            ok = slots < n
            ok[ok] = sorted_ids[slots[ok]] == ids[ok]
        else:
            slots = np.searchsorted(sorted_ids, ids)
            ok = slots < n
            ok[ok] = sorted_ids[slots[ok]] == ids[ok]
    else:
        slots = np.searchsorted(sorted_ids, ids)
        ok = slots < n
        ok[ok] = sorted_ids[slots[ok]] == ids[ok]
    if not ok.all():
        bad = int(ids[np.flatnonzero(~ok)[0]])
        raise GraphError(f"unknown {what} id {bad} (it was never created or has been removed)")
    return slots


_NO_IDS = np.zeros(0, dtype=np.int64)


_EDIT_LOG = 8  # edge edits remembered for edits_since


def _chain(first: EdgeEdit, then: EdgeEdit) -> EdgeEdit:
    """One :class:`EdgeEdit` for ``first`` followed by the consecutive ``then``. The
    survivors of ``first``'s new edges stay contiguous, right after the original
    survivors, so the pair is again "keep some, append some"."""
    if then.keep is None:
        return EdgeEdit(first.before, then.after, first.keep, first.added + then.added)
    n_old = then.keep.shape[0] - first.added  # slots that came from before ``first``
    survived_new = int(np.count_nonzero(then.keep[n_old:]))
    if first.keep is None:
        keep = then.keep[:n_old].copy()
    else:
        keep = first.keep.copy()
        keep[np.flatnonzero(first.keep)] = then.keep[:n_old]
    return EdgeEdit(first.before, then.after, keep, survived_new + then.added)


def _tight_counts(levels: np.ndarray, src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    """Per node slot: how many of the edges ``src -> dst`` (slots) come from the level
    just below it. Where every node above level 0 has one, ``levels`` are exactly the
    longest-path levels (given that they increase along every edge)."""
    return np.bincount(dst[levels[src] + 1 == levels[dst]], minlength=n)


def _retight(
    tight: np.ndarray, old: np.ndarray, new: np.ndarray, src: np.ndarray, dst: np.ndarray
) -> np.ndarray:
    """Tight in-edge counts for the levels ``new``, from ``tight``, the counts for the
    levels ``old`` over the same edges: only the nodes whose level moved and their
    successors are counted again."""
    n = tight.shape[0]
    moved = np.flatnonzero(new != old)
    if moved.size == 0:
        return tight
    again = np.zeros(n, dtype=bool)
    again[moved] = True
    again[dst[again[src]]] = True  # and their successors
    into = np.flatnonzero(again[dst])
    recount = _tight_counts(new, src[into], dst[into], n)
    out = tight.copy()
    out[again] = recount[again]
    return out


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def _where(k: int, batch: np.ndarray) -> str:
    return f" (position {k} of the batch)" if batch.shape[0] > 1 else ""
