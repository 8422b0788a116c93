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
ones before it), but the activation derivatives of the whole run are computed in one
pass before its reverse sweep, and the weight gradients of every run in one chunked pass
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


@attrs.frozen(eq=False)
class HostRun:
    """Consecutive host levels covering positions ``start:stop`` and entries ``k0:k1``.

    ``act_parts`` give the activation of every position of the run (``rows`` relative to
    ``start``, ``None`` = all of them); ``dst``/``src`` the destination and source
    position of each entry, for the fused weight-gradient pass.
    """

    levels: tuple[HostLevel, ...]
    start: int
    stop: int
    k0: int
    k1: int
    act_parts: tuple[tuple[Activation, np.ndarray | None], ...]
    dst: np.ndarray | None = None
    src: np.ndarray | None = None


def make_run(
    levels: tuple[HostLevel, ...],
    activation: np.ndarray,
    dst: np.ndarray | None = None,
    src: np.ndarray | None = None,
) -> HostRun:
    """The :class:`HostRun` of consecutive ``levels`` (entries contiguous);
    ``activation`` is the plan's activation code per position."""
    start, stop = levels[0].start, levels[-1].stop
    codes = activation[start:stop]
    present = np.unique(codes)
    if present.shape[0] == 1:
        parts = ((Activation(int(present[0])), None),)
    else:
        parts = tuple((Activation(int(c)), np.flatnonzero(codes == c)) for c in present)
    return HostRun(levels, start, stop, levels[0].k0, levels[-1].k1, parts, dst, src)


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


def run_derivative(
    run: HostRun,
    h: np.ndarray,
    grad: Callable[[Activation, np.ndarray], np.ndarray | None] = activation_grad,
) -> np.ndarray | None:
    """``act'(z)`` of every position of the run (``[stop - start, B]``; ``None``: all 1),
    from ``grad(activation, h)`` (the elementwise seam), one call per activation."""
    hr = h[run.start : run.stop]
    if len(run.act_parts) == 1 and run.act_parts[0][1] is None:
        return grad(run.act_parts[0][0], hr)
    d = np.ones_like(hr)
    for act, rows in run.act_parts:
        part = grad(act, hr[rows])
        if part is not None:
            d[rows] = part
    return d


def reverse_run(run: HostRun, d: np.ndarray | None, g: np.ndarray, values: np.ndarray) -> None:
    """The run's levels in reverse: turn ``g[level]`` (``dL/dh``) into ``dL/dz`` in place
    (times ``d``, the run's :func:`run_derivative`) and add ``A_l^T dL/dz`` into
    ``g[:start]``."""
    batch = g.shape[1]
    flat = g.reshape(-1)
    base = run.start
    for lv in reversed(run.levels):
        delta = g[lv.start : lv.stop]
        if d is not None:
            delta *= d[lv.start - base : lv.stop - base]
        if lv.indptr is not None and batch:
            csc_matvecs(
                lv.start, lv.stop - lv.start, batch, lv.indptr, lv.indices,
                values[lv.k0 : lv.k1], flat[lv.start * batch : lv.stop * batch],
                flat[: lv.start * batch],
            )  # fmt: skip


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
