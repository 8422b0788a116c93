"""Dense blocks: the layout that lets a backend run a dense level as one matrix product.

A level of an :class:`~grapheme_core.plan.ExecutionPlan` is a sparse matrix ``A_l`` (rows:
the level's nodes, columns: earlier positions). When most of the cells between the
level's rows and the *distinct* source positions it reads are edges (a fully connected
layer is the extreme), a dense product ``W_l @ H[cols]`` (BLAS GEMM / ``torch.mm`` /
``jnp.dot``) is several times faster than the sparse kernels, and its backward is two
more GEMMs: ``dL/dH[cols] += W_l^T @ delta`` and ``dL/dW_l = delta @ H[cols]^T``, whose
cells are the weight gradients of the edges (a multi-edge's edges all get the gradient of
their cell, exactly as in the sparse kernels, since the cell holds their sum).

:func:`dense_layout` is plain host code shared by every backend; the policy (which levels
go dense) is the backend's: see ``NumpyBackend.dense_layout``, the seam a third-party
backend overrides or calls.


Backends that want dense blocks inherit :class:`DensePolicy` (the numpy and torch
backends do): it holds the tunable thresholds and the :meth:`DensePolicy.dense_layout`
seam.
"""

from __future__ import annotations

import attrs
import numpy as np

from .plan import ExecutionPlan

#: Default density (edges / cells of the level's rows x distinct source columns) from
#: which a level runs dense. Measured with ``grapheme-train bench-regimes --regime
#: density`` on the development machine (see docs/performance.md): the dense path of the
#: numpy and torch backends wins from about 0.05-0.1 at batch 1-64; 0.2 leaves a margin
#: for the memory a dense matrix costs.
DENSE_THRESHOLD = 0.2
#: Largest dense matrix (cells) a level may use: 2^24 cells is 64 MiB in float32.
MAX_DENSE_CELLS = 1 << 24
#: Levels with fewer edges stay sparse: the dense path's few extra calls would not pay.
MIN_DENSE_EDGES = 256


@attrs.frozen(eq=False)
class DenseLayout:
    """How one level's edges sit in a dense ``[rows, n_cols]`` matrix.

    ``cells[e]`` is the flat cell (``row * n_cols + column index``) of the level's edge
    ``e`` (plan order). The columns are the distinct source positions ``cols``
    (ascending); ``col_start``/``col_stop`` are set when they are one contiguous range,
    so a backend can slice the state instead of gathering it. ``identity`` means
    ``cells == arange(E_l)``: the level's plan-ordered weights *are* the matrix in
    row-major order (a layer added row by row), no scatter needed. ``duplicates`` means
    some cell holds several edges (multi-edges), which a backend must sum.
    """

    rows: int
    cols: np.ndarray
    col_start: int | None
    col_stop: int | None
    cells: np.ndarray
    identity: bool
    duplicates: bool

    @property
    def n_cols(self) -> int:
        return int(self.cols.shape[0])

    @property
    def contiguous(self) -> bool:
        return self.col_start is not None


def dense_layout(
    plan: ExecutionPlan,
    level: int,
    threshold: float = DENSE_THRESHOLD,
    max_cells: int = MAX_DENSE_CELLS,
    min_edges: int = MIN_DENSE_EDGES,
) -> DenseLayout | None:
    """The dense layout of ``level`` when it has at least ``min_edges`` edges, at most
    ``max_cells`` cells and a density of at least ``threshold``; otherwise ``None``.

    Vectorized over the level's edges (a unique and a searchsorted), run once per plan.
    """
    edges = plan.level_edges(level)
    n_edges = edges.stop - edges.start
    if n_edges == 0 or n_edges < min_edges:
        return None
    nodes = plan.level_nodes(level)
    rows = nodes.stop - nodes.start
    src = plan.edge_src[edges]
    row = plan.edge_row[edges].astype(np.int64)
    lo, hi = int(src.min()), int(src.max()) + 1
    if n_edges == rows * (hi - lo):  # maybe a fully connected layer: no sort needed
        distinct_cols = hi - lo
    else:
        distinct_cols = int(np.count_nonzero(np.bincount(src - lo, minlength=hi - lo)))
    if distinct_cols * 5 >= (hi - lo) * 4:  # the range is mostly used: slice, not gather
        cols = np.arange(lo, hi, dtype=np.int64)
        index = src.astype(np.int64) - lo
    else:
        cols = np.unique(src).astype(np.int64)
        index = np.searchsorted(cols, src).astype(np.int64)
    n_cols = cols.shape[0]
    cell_count = rows * n_cols
    if cell_count > max_cells:
        return None
    cells = row * n_cols + index
    identity = bool(cells.shape[0] == cell_count and np.array_equal(cells, np.arange(cell_count)))
    if identity:
        distinct, duplicates = cell_count, False
    else:
        distinct = int(np.count_nonzero(np.bincount(cells, minlength=cell_count)))
        duplicates = distinct < n_edges
    if distinct < threshold * cell_count:
        return None
    contiguous = n_cols == hi - lo  # cols is the range lo:hi
    return DenseLayout(
        rows=rows,
        cols=cols,
        col_start=lo if contiguous else None,
        col_stop=hi if contiguous else None,
        cells=cells,
        identity=identity,
        duplicates=duplicates,
    )


class DensePolicy:
    """Mixin for backends: which levels run dense (the seam is :meth:`dense_layout`).

    Tune per instance (``backend.dense_threshold = 1.1`` turns dense blocks off) or
    override :meth:`dense_layout` for another policy; the kernels stay the backend's.
    """

    #: a level runs dense from this density (distinct cells / rows x distinct sources)
    dense_threshold: float = DENSE_THRESHOLD
    #: and only when its dense matrix has at most this many cells
    max_dense_cells: int = MAX_DENSE_CELLS
    #: and at least this many edges
    min_dense_edges: int = MIN_DENSE_EDGES

    def dense_layout(self, plan: ExecutionPlan, level: int) -> DenseLayout | None:
        """Called once per level at compile time: return the level's
        :class:`DenseLayout` to run it as dense matrix products, ``None`` to keep the
        sparse kernels. The default applies :func:`dense_layout` with this object's
        thresholds."""
        return dense_layout(
            plan, level, self.dense_threshold, self.max_dense_cells, self.min_dense_edges
        )
