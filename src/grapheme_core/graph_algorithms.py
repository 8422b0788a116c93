"""Vectorized graph algorithms on slot-indexed edge lists (slots are 0..n-1).

These are the only places that look at the whole structure; each works in NumPy/SciPy
passes over arrays, never in a Python loop per node or per edge (the loops below are
per level, or per bisection step).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph


def concat_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indices ``[s0, s0+1, .., s0+c0-1, s1, ..]`` for the given range starts and lengths."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(total, dtype=np.int64)


def stable_argsort(keys: np.ndarray, n: int) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for integer keys in ``[0, n)``, in linear time.

    NumPy sorts 16-bit integers stably with a radix sort; wider keys are sorted as an LSD
    radix sort over 16-bit digits (one stable pass per digit), so sorting a million edge
    endpoints takes milliseconds instead of a comparison sort's tens of milliseconds.
    """
    keys = np.asarray(keys)
    if keys.size == 0 or n <= 1:
        return np.arange(keys.size, dtype=np.intp)
    if n > 1 << 48:  # pragma: no cover - beyond any graph that fits in memory
        return np.argsort(keys, kind="stable")
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    shift = 16
    while n > 1 << shift:
        digit = ((keys[order] >> shift) & 0xFFFF).astype(np.uint16)
        order = order[np.argsort(digit, kind="stable")]
        shift += 16
    return order


def longest_path_levels(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """Level of each node: the length of the longest path reaching it from a source.

    Kahn's algorithm, one frontier per iteration. Returns ``None`` if the graph has a cycle.
    """
    found = levels_and_tight_counts(n, src, dst)
    return None if found is None else found[0]


def levels_and_tight_counts(
    n: int, src: np.ndarray, dst: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`longest_path_levels` plus, per node, how many in-edges come from the level
    just below it ("tight" edges; every node above level 0 has at least one), at no extra
    pass: a node becomes ready in the frontier after its last predecessors, and those
    are exactly its tight ones. ``None`` if the graph has a cycle."""
    level = np.zeros(n, dtype=np.int64)
    tight = np.zeros(n, dtype=np.int64)
    if n == 0:
        return level, tight
    indeg = np.bincount(dst, minlength=n).astype(np.int64)
    by_src = stable_argsort(src, n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    dst_by_src = dst[by_src]
    frontier = np.flatnonzero(indeg == 0)
    processed = 0
    depth = 0
    while frontier.size:
        processed += frontier.size
        level[frontier] = depth
        starts = indptr[frontier]
        targets = dst_by_src[concat_ranges(starts, indptr[frontier + 1] - starts)]
        if targets.size == 0:
            break
        if 8 * targets.size >= n:  # wide frontier: a dense count beats sorting the targets
            hits = np.bincount(targets, minlength=n)
            touched = np.flatnonzero(hits)
            hits = hits[touched]
        else:
            touched, hits = np.unique(targets, return_counts=True)
        indeg[touched] -= hits
        ready = indeg[touched] == 0
        frontier = touched[ready]
        tight[frontier] = hits[ready]
        depth += 1
    return (level, tight) if processed == n else None


#: how many waves the incremental level updates below may take before giving up (each
#: wave is a couple of passes of boolean gathers over the edges; a full pass costs more
#: than about this many)
RELEVEL_WAVES = 12


def levels_after_removal(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    levels: np.ndarray,
    seeds: np.ndarray,
    max_waves: int = RELEVEL_WAVES,
) -> np.ndarray | None:
    """Exact longest-path levels of the DAG ``src -> dst`` (slots), given ``levels``, the
    exact levels before some of its edges were removed, and ``seeds``: the nodes that may
    have dropped (every node that lost its last in-edge from the level just below).

    Removing edges only lowers levels and keeps ``levels`` a strictly increasing
    potential, so each wave recomputes the candidates from their in-edges and takes the
    successors of those that dropped as the next candidates. ``None`` if that needs more
    than ``max_waves`` waves (then do a full pass).
    """
    new = levels.copy()
    mark = np.zeros(n, dtype=bool)
    cand = np.unique(seeds)
    for _ in range(max_waves):
        if cand.size == 0:
            return new
        mark[cand] = True
        into = np.flatnonzero(mark[dst])
        mark[cand] = False
        best = np.zeros(n, dtype=np.int64)
        np.maximum.at(best, dst[into], new[src[into]] + 1)
        dropped = cand[best[cand] < new[cand]]
        if dropped.size == 0:
            return new
        new[dropped] = best[dropped]
        mark[dropped] = True
        cand = np.unique(dst[mark[src]])
        mark[dropped] = False
    return None


def levels_after_addition(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    levels: np.ndarray,
    new_src: np.ndarray,
    new_dst: np.ndarray,
    max_waves: int = RELEVEL_WAVES,
) -> np.ndarray | None:
    """Exact longest-path levels of the graph ``src -> dst`` (slots; it includes the new
    edges ``new_src -> new_dst``), given ``levels``, exact before the new edges.

    Adding edges only raises levels, so starting from ``levels`` each wave pushes the
    nodes that rose to their successors. ``None`` if that does not settle within
    ``max_waves`` waves, which is also what a cycle does (it would raise forever): then
    do a full pass, which tells the two apart.
    """
    new = levels.copy()
    touched = np.unique(new_dst)
    before = new[touched]
    np.maximum.at(new, new_dst, new[new_src] + 1)
    rose = touched[new[touched] > before]
    mark = np.zeros(n, dtype=bool)
    for _ in range(max_waves):
        if rose.size == 0:
            return new
        mark[rose] = True
        out = np.flatnonzero(mark[src])
        mark[rose] = False
        targets = dst[out]
        touched = np.unique(targets)
        before = new[touched]
        np.maximum.at(new, targets, new[src[out]] + 1)
        rose = touched[new[touched] > before]
    return None


def adjacency(n: int, src: np.ndarray, dst: np.ndarray) -> sp.csr_matrix:
    """Boolean-ish CSR adjacency ``A[src, dst] = 1`` (duplicates harmless)."""
    data = np.ones(src.shape[0], dtype=np.int8)
    return sp.csr_matrix((data, (src, dst)), shape=(n, n))


def find_path(adj: sp.csr_matrix, start: int, goal: int) -> list[int] | None:
    """A shortest path of slots from ``start`` to ``goal``, or ``None`` if unreachable."""
    if start == goal:
        return [start]
    reached, pred = csgraph.breadth_first_order(adj, start, directed=True, return_predecessors=True)
    if not np.any(reached == goal):
        return None
    path = [goal]
    while path[-1] != start:
        path.append(int(pred[path[-1]]))
    return path[::-1]


def first_cycle_closing(
    n: int, src: np.ndarray, dst: np.ndarray, new_src: np.ndarray, new_dst: np.ndarray
) -> int:
    """Index of the first new edge whose addition (after the earlier new ones) makes a cycle.

    Precondition: ``src/dst`` alone are acyclic and ``src+new`` is cyclic. Bisection over
    prefixes of the new edges, each tested with :func:`longest_path_levels`.
    """
    lo, hi = 0, new_src.shape[0]  # prefix lo is acyclic, prefix hi is cyclic
    while hi - lo > 1:
        mid = (lo + hi) // 2
        s = np.concatenate([src, new_src[:mid]])
        d = np.concatenate([dst, new_dst[:mid]])
        if longest_path_levels(n, s, d) is None:
            hi = mid
        else:
            lo = mid
    return hi - 1
