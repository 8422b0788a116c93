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
after it (``dW_e = dL/dz[dst_e] . h[src_e]``, gathered in cache-sized chunks), instead of
one call per level.
"""

from __future__ import annotations

from collections.abc import Callable

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

    @property
    def act(self) -> Activation | None:
        """The level's one activation (``None`` when its rows mix several)."""
        return self.groups[0][0] if len(self.groups) == 1 else None


@attrs.frozen(eq=False)
class HostRun:
    """Consecutive host levels covering positions ``start:stop`` and entries ``k0:k1``.

    ``dst``/``src`` are the destination and source position of each entry, for the fused
    weight-gradient pass.
    """

    levels: tuple[HostLevel, ...]
    start: int
    stop: int
    k0: int
    k1: int
    dst: np.ndarray | None = None
    src: np.ndarray | None = None


def make_run(
    levels: tuple[HostLevel, ...], dst: np.ndarray | None = None, src: np.ndarray | None = None
) -> HostRun:
    """The :class:`HostRun` of consecutive ``levels`` (entries contiguous)."""
    return HostRun(levels, levels[0].start, levels[-1].stop, levels[0].k0, levels[-1].k1, dst, src)


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
    for lv in run.levels:
        block = h[lv.start : lv.stop]
        if lv.indptr is not None and batch:
            csr_matvecs(
                lv.stop - lv.start, lv.start, batch, lv.indptr, lv.indices,
                values[lv.k0 : lv.k1], flat[: lv.start * batch],
                flat[lv.start * batch : lv.stop * batch],
            )  # fmt: skip
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
        if act is not None and act is not Activation.LINEAR:  # level's dL/dh is complete
            d = grad(act, h[lo:hi])  # only once the levels above it are done)
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
            if lv.indptr is not None and batch:
                csc_matvecs(
                    lv.start, lv.stop - lv.start, batch, lv.indptr, lv.indices,
                    values[lv.k0 : lv.k1], flat[lv.start * batch : lv.stop * batch],
                    flat[: lv.start * batch],
                )  # fmt: skip
        i = j


def run_edge_grads(
    run: HostRun, h: np.ndarray, g: np.ndarray, out: np.ndarray, chunk_elements: int
) -> None:
    """``out[k] = g[dst_k] . h[src_k]`` for the run's entries (``out`` is the run's slice
    of the entry gradients), in chunks of ``chunk_elements // B`` entries so the gathered
    rows stay in cache."""
    chunk = max(1, chunk_elements // max(1, h.shape[1]))
    n = run.k1 - run.k0
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        dz, hs = g.take(run.dst[a:b], axis=0), h.take(run.src[a:b], axis=0)
        np.einsum("eb,eb->e", dz, hs, out=out[a:b])
