"""Runs of small sparse levels executed with NumPy/SciPy on host memory.

Why: a level of a few hundred edges costs microseconds of arithmetic, but every torch
operator call costs about 5-20 us of dispatch on the CPU (a sparse CSR ``addmm_`` about
15 us, ``sampled_addmm`` about 20 us, measured on the development machine), so a deep
graph (hundreds or thousands of such levels) spends its time in dispatch. SciPy's
``csr_matvecs``/``csc_matvecs`` kernels (the loops behind ``csr @ dense``) accumulate
straight into a NumPy view in about 4 us for such a level. A CPU torch tensor and
``tensor.numpy()`` share memory, so the torch backend runs these levels on views of its
own state: no copies, the same numbers (float32 or float64 arithmetic, summation order
of the CSR row), and its large levels stay on torch's kernels (faster above a few
thousand edges). CUDA never takes this path.

A :class:`HostRun` is a maximal run of consecutive such levels (levels without edges
included). Forward and the reverse sweep still go level by level (each level reads the
ones before it), but the activation derivatives of consecutive levels are computed
in blocks (:data:`DERIVATIVE_BLOCK`), and the weight gradients of every run in one chunked pass
after it (``dW_e = dL/dz[dst_e] . h[src_e]``, rows of equal in-degree batched as in the
reference backend: :func:`grouped_edge_grads`), instead of one call per level.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from grapheme_core.types import LEAKY_SLOPE, Activation

try:  # the kernels behind SciPy's own ``csr @ dense``
    from scipy.sparse import _sparsetools

    csr_matvecs = _sparsetools.csr_matvecs
    csc_matvecs = _sparsetools.csc_matvecs
except (ImportError, AttributeError):  # pragma: no cover - other SciPy layouts
    csr_matvecs = csc_matvecs = None

#: whether this SciPy exposes the kernels (otherwise no level runs on the host)
AVAILABLE = csr_matvecs is not None


@attrs.frozen(eq=False)
class HostLevel:
    """One level: nodes ``start:stop`` read earlier positions through entries ``k0:k1``
    (one per edge, plan order) with level-relative row pointers ``indptr`` and source
    positions ``indices`` (same integer dtype, as SciPy's kernels require)."""

    start: int
    stop: int
    k0: int
    k1: int
    indptr: np.ndarray | None
    indices: np.ndarray | None
    groups: tuple[tuple[Activation, np.ndarray | None], ...]
    #: the level's one activation (``None`` when its rows mix several)
    act: Activation | None = attrs.field(init=False)
    #: ``(rows, start, indptr, indices, k0, k1)``: the kernel arguments, unpacked at once
    #: in the hot loops (``None`` for a level without edges)
    call: tuple | None = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        single = self.groups[0][0] if len(self.groups) == 1 else None
        object.__setattr__(self, "act", single)
        call = None
        if self.indptr is not None:
            call = (self.stop - self.start, self.start, self.indptr, self.indices, self.k0, self.k1)
        object.__setattr__(self, "call", call)


@attrs.frozen(eq=False)
class HostRun:
    """Consecutive host levels covering positions ``start:stop`` and entries ``k0:k1``.

    ``grads`` holds the run's edges grouped for :func:`grouped_edge_grads` (the fused
    weight-gradient pass; rows relative to ``start``), when the backend uses it.
    """

    levels: tuple[HostLevel, ...]
    start: int
    stop: int
    k0: int
    k1: int
    grads: EdgeGroups | None = None


def make_run(levels: tuple[HostLevel, ...], grads: EdgeGroups | None = None) -> HostRun:
    """The :class:`HostRun` of consecutive ``levels`` (entries contiguous)."""
    return HostRun(levels, levels[0].start, levels[-1].stop, levels[0].k0, levels[-1].k1, grads)


def activate(activation: Activation, z: np.ndarray) -> np.ndarray:
    """Apply ``activation`` to ``z`` in place (NumPy) and return it."""
    if activation is Activation.TANH:
        np.tanh(z, out=z)
    elif activation is Activation.RELU:
        np.maximum(z, 0, out=z)
    elif activation is Activation.LEAKY_RELU:
        np.multiply(z, np.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype), out=z)
    elif activation is Activation.SIGMOID:
        e = np.exp(-np.abs(z))  # 1/(1+exp(-z)) without overflow warnings
        np.divide(np.where(z >= 0, 1.0, e), 1.0 + e, out=z)
    return z


def activation_grad(activation: Activation, h: np.ndarray) -> np.ndarray | None:
    """``act'(z)`` through the output ``h = act(z)`` (a new array); ``None`` means 1."""
    if activation is Activation.LINEAR:
        return None
    if activation is Activation.RELU:
        return (h > 0).astype(h.dtype)
    if activation is Activation.LEAKY_RELU:
        return np.where(h > 0, 1.0, LEAKY_SLOPE).astype(h.dtype)
    if activation is Activation.SIGMOID:
        return h * (1 - h)
    d = h * h
    np.subtract(1, d, out=d)
    return d


def forward_run(
    run: HostRun,
    h: np.ndarray,
    values: np.ndarray,
    act: Callable[[Activation, np.ndarray], np.ndarray] = activate,
) -> None:
    """The run's levels in order on the node-major state ``h`` ``[N, B]`` (C-contiguous,
    biases and inputs already in it): ``h[l] = act(h[l] + A_l @ h[:start])``, with
    ``act`` the elementwise seam (applied in place, returns its argument)."""
    batch = h.shape[1]
    flat = h.reshape(-1)
    kernel = csr_matvecs
    for lv in run.levels:
        call = lv.call
        if call is not None and batch:
            rows, start, indptr, indices, k0, k1 = call
            a = start * batch
            kernel(rows, start, batch, indptr, indices, values[k0:k1], flat[:a],
                   flat[a : a + rows * batch])  # fmt: skip
        code = lv.act
        if code is not None:
            act(code, h[lv.start : lv.stop])
            continue
        block = h[lv.start : lv.stop]
        for code, rows in lv.groups:
            if rows is None:
                act(code, block)
            else:
                block[rows] = act(code, block[rows])


#: the reverse sweep computes ``act'(z)`` for consecutive levels of one activation
#: together, in blocks of at most this many values: few calls, and temporaries small
#: enough to come from the allocator's free lists (a run-sized array would be fresh
#: pages, page-faulted on every backward)
DERIVATIVE_BLOCK = 1 << 14


def reverse_run(
    run: HostRun,
    h: np.ndarray,
    g: np.ndarray,
    values: np.ndarray,
    grad: Callable[[Activation, np.ndarray], np.ndarray | None] = activation_grad,
) -> None:
    """The run's levels in reverse: turn ``g[level]`` (``dL/dh``) into ``dL/dz`` in place
    (times ``act'(z)`` from ``grad(activation, h_block)``, the elementwise seam, called
    once per block of consecutive levels sharing one activation) and add
    ``A_l^T dL/dz`` into ``g[:start]``."""
    batch = g.shape[1]
    flat = g.reshape(-1)
    levels = run.levels
    cap = max(1, DERIVATIVE_BLOCK // max(1, batch))
    i = len(levels)
    while i:
        j = i - 1
        act, hi = levels[j].act, levels[j].stop
        if act is not None:  # grow the block down while one activation and under the cap
            while j and levels[j - 1].act is act and hi - levels[j - 1].start <= cap:
                j -= 1
        lo = levels[j].start
        d = None  # act'(z) of the block (computed at once, applied level by level: a
        if act is not None:  # level's dL/dh is complete only once the levels above
            d = grad(act, h[lo:hi])  # it are done; None: act' = 1)
        for lv in levels[i - 1 : j - 1 if j else None : -1]:
            delta = g[lv.start : lv.stop]
            if d is not None:
                delta *= d[lv.start - lo : lv.stop - lo]
            elif act is None:  # mixed activations (a block of one level): per group
                for code, rows in lv.groups:
                    part = grad(
                        code, h[lv.start : lv.stop] if rows is None else h[lv.start : lv.stop][rows]
                    )
                    if part is not None:
                        if rows is None:
                            delta *= part
                        else:
                            delta[rows] *= part
            call = lv.call
            if call is not None and batch:
                rows, start, indptr, indices, k0, k1 = call
                a = start * batch
                csc_matvecs(start, rows, batch, indptr, indices, values[k0:k1],
                            flat[a : a + rows * batch], flat[:a])  # fmt: skip
        i = j


def run_edge_grads(
    run: HostRun, h: np.ndarray, g: np.ndarray, out: np.ndarray, chunk_elements: int
) -> None:
    """The weight gradients of the run's entries into ``out`` (the run's slice of the
    entry gradients), after the reverse sweep: :func:`grouped_edge_grads` over the whole
    run at once."""
    grouped_edge_grads(run.grads, g[run.start : run.stop], h, out, chunk_elements)


@attrs.frozen(eq=False)
class EdgeBlock:
    """Rows of one level that share an in-degree ``k``, for the weight-gradient kernel.

    ``rows`` are level-relative destination rows (``[n]``, ascending), ``src`` the source
    positions of their edges (``[n, k]``, row-major: the ``k`` edges of each row together)
    and ``slots`` where each edge's gradient goes in the level's slice of the plan-ordered
    gradient vector (``[n, k]``). ``contiguous`` means the rows are consecutive, so their
    edges are consecutive too and ``slots`` is ``None`` (results are written in place).
    """

    degree: int
    rows: np.ndarray
    src: np.ndarray
    slots: np.ndarray | None
    contiguous: bool


def edge_blocks(
    indptr: np.ndarray, src: np.ndarray, min_edges: int
) -> tuple[tuple[EdgeBlock, ...], np.ndarray]:
    """Group a level's rows by in-degree for :func:`grouped_edge_grads`.

    Returns the blocks and the level-relative slots of the edges left to the generic pass.
    The loop runs over distinct in-degrees, never over nodes or edges.
    """
    deg = np.diff(indptr).astype(np.int64)
    n_rows = deg.shape[0]
    none = np.zeros(0, dtype=np.intp)
    if n_rows == 0 or src.shape[0] == 0:
        return (), none
    if deg[0] > 0 and np.all(deg == deg[0]):  # uniform in-degree: one block, no index copies
        k = int(deg[0])
        rows = np.arange(n_rows, dtype=np.intp)
        return (EdgeBlock(k, rows, src.reshape(n_rows, k), None, True),), none
    order = np.argsort(deg, kind="stable")
    degrees, first, counts = np.unique(deg[order], return_index=True, return_counts=True)
    blocks = []
    rest = []
    for k, f, c in zip(degrees.tolist(), first.tolist(), counts.tolist(), strict=True):
        if k == 0:
            continue
        rows = order[f : f + c].astype(np.intp)  # ascending (stable sort)
        slots = indptr[rows].astype(np.intp)[:, None] + np.arange(k, dtype=np.intp)
        if c * k < min_edges:
            rest.append(slots.reshape(-1))
            continue
        contiguous = bool(rows[-1] - rows[0] == c - 1)
        blocks.append(EdgeBlock(k, rows, src[slots], None if contiguous else slots, contiguous))
    rest_slots = np.sort(np.concatenate(rest)) if rest else none
    return tuple(blocks), rest_slots


@attrs.frozen(eq=False)
class EdgeGroups:
    """Edges ``edge_start:edge_stop`` grouped for :func:`grouped_edge_grads`: row pointers
    ``indptr`` relative to the first row, each edge's row and source, the blocks of equal
    in-degree and the rest (see :func:`edge_blocks`)."""

    edge_start: int
    edge_stop: int
    indptr: np.ndarray
    edge_rows: np.ndarray
    src: np.ndarray
    blocks: tuple[EdgeBlock, ...]
    rest_slots: np.ndarray
    rest_rows: np.ndarray
    rest_src: np.ndarray


def edge_groups(indptr: np.ndarray, src: np.ndarray, min_block_edges: int) -> EdgeGroups:
    """:class:`EdgeGroups` of the edges of consecutive rows (``indptr`` starts at 0)."""
    rows = np.repeat(np.arange(indptr.shape[0] - 1, dtype=np.intp), np.diff(indptr))
    blocks, rest = edge_blocks(indptr, src, min_block_edges)
    return EdgeGroups(0, src.shape[0], indptr, rows, src, blocks, rest, rows[rest], src[rest])


def grouped_edge_grads(
    kernel: Any, delta: np.ndarray, h: np.ndarray, out: np.ndarray, chunk_elements: int
) -> None:
    """``out[e] = delta[row_e] . h[src_e]`` for the edges of ``kernel`` (any object with
    ``edge_start``/``edge_stop``, level-relative ``indptr``, ``edge_rows``, ``src``,
    ``blocks`` and ``rest_*`` as made by :func:`edge_blocks`; ``delta`` is ``dL/dz`` of
    its rows): the batched sampled dense-dense product of the reference backend.

    Rows of equal in-degree ``k`` form blocks: for a chunk of ``n`` such rows the source
    rows are gathered once into ``[n, k, B]`` and multiplied by ``delta[rows]`` as
    ``[n, B, 1]`` (one batched matmul), so ``delta`` is never replicated per edge and no
    temporary exceeds ``chunk_elements`` values (it stays in cache).
    """
    batch = h.shape[1]
    chunk_edges = max(1, chunk_elements // max(1, batch))
    if kernel.edge_stop - kernel.edge_start <= chunk_edges:  # small: one generic pass
        dz, hs = delta.take(kernel.edge_rows, axis=0), h.take(kernel.src, axis=0)
        np.einsum("eb,eb->e", dz, hs, out=out)
        return
    for blk in kernel.blocks:
        per = max(1, chunk_edges // blk.degree)
        n = blk.rows.shape[0]
        for r0 in range(0, n, per):
            r1 = min(n, r0 + per)
            src = blk.src[r0:r1].reshape(-1)
            gathered = h.take(src, axis=0).reshape(r1 - r0, blk.degree, batch)
            if blk.contiguous:
                first = int(blk.rows[r0])
                e0 = int(kernel.indptr[first])
                target = out[e0 : e0 + src.shape[0]].reshape(r1 - r0, blk.degree, 1)
                np.matmul(gathered, delta[first : first + (r1 - r0), :, None], out=target)
            else:
                d = delta.take(blk.rows[r0:r1], axis=0)[:, :, None]
                out[blk.slots[r0:r1].reshape(-1)] = np.matmul(gathered, d).reshape(-1)
    rest = kernel.rest_slots
    for e0 in range(0, rest.shape[0], chunk_edges):
        e1 = e0 + chunk_edges
        out[rest[e0:e1]] = np.einsum(
            "eb,eb->e",
            delta.take(kernel.rest_rows[e0:e1], axis=0),
            h.take(kernel.rest_src[e0:e1], axis=0),
        )
