"""The NumPy/SciPy reference backend: complete, readable, and fast enough to be the default.

Kernels work level by level on a node-major state ``H`` of shape ``[N, B]`` (rows in the
plan's topological order, so each level is a contiguous block):

* forward:  ``H[level] = act(A_l @ H[:start] + b[level] + X[level])`` with ``A_l`` a SciPy
  CSR matrix whose data is a view of the level's slice of the sorted weights;
* backward: ``delta = G[level] * act'(H[level])``, ``G[:start] += A_l.T @ delta``, and the
  weight gradient ``dW_e = delta[dst_e] . H[src_e]`` (a sampled dense-dense product),
  computed in cache-sized edge chunks so no ``E x B`` array is ever materialised.

Loading the weights is a single gather into plan (destination) order. On the fast path
(SciPy exposes ``csr_matvecs``/``csc_matvecs``, the kernels behind its own ``csr @
dense``, and the state is C-contiguous) the level loop is
:mod:`grapheme_backends.host_levels`: each sparse level is one kernel call on slices of
the plan-ordered weights and of the state, accumulating in place (no matrix objects, no
temporaries); consecutive levels of one activation get ``act'(z)`` from one
:meth:`activation_grad` call per block of levels. Without those kernels the per-level
SciPy CSR matrices (views of :attr:`CompiledPlan.sorted_weight`) do ``A @ X``. The
weight gradient batches rows of equal in-degree: their source rows are gathered once as
``[n, k, B]`` and multiplied by ``delta`` as ``[n, B, 1]``; a run of consecutive small
levels (at most ``small_level_edges`` edges each, a deep graph) is handed to
:meth:`level_edge_grads` as one kernel spanning the run, so its weight gradients cost
one call, not one per level. See ``docs/performance.md`` for what limits each kernel.

**Dense blocks.** A level dense enough (see :mod:`grapheme_core.dense`) runs as dense
matrix products instead: ``H[level] += W_l @ H[cols]`` forward, ``G[cols] += W_l^T @
delta`` and ``dL/dW_l = delta @ H[cols]^T`` backward (BLAS GEMMs), where ``W_l`` is a
view of the plan-ordered weights when the level was added row by row (otherwise one
scatter per forward). :meth:`NumpyBackend.dense_layout` (from
:class:`grapheme_core.dense.DensePolicy`) decides per level at compile time, by the
``dense_threshold``, ``max_dense_cells`` and ``min_dense_edges`` attributes (the seam:
override it to change the policy, or return ``None`` to stay sparse);
:meth:`NumpyBackend.dense_forward`, :meth:`NumpyBackend.dense_backward` and
:meth:`NumpyBackend.dense_edge_grads` are the three kernels.

Subclass and override any method; :meth:`activate` and :meth:`activation_grad` are the
elementwise seams (called on blocks of rows: one level, or consecutive levels of one
activation), :meth:`level_edge_grads` (batched; called per large level and once per
run of small levels) and :meth:`edge_grads` (generic; if a subclass overrides it,
:meth:`backward` calls it per level, dense levels included) the weight-gradient kernels.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import scipy.sparse as sp

from grapheme_backends import host_levels
from grapheme_backends.host_levels import EdgeBlock, HostLevel, HostRun
from grapheme_core.backend import API_VERSION
from grapheme_core.dense import DenseLayout, DensePolicy
from grapheme_core.plan import ActivationGroup, ExecutionPlan
from grapheme_core.types import Activation

_DTYPES = {"float32": np.float32, "float64": np.float64}

try:  # the kernels behind SciPy's own ``csr @ dense``; used to accumulate in place
    from scipy.sparse import _sparsetools

    _csr_matvecs = _sparsetools.csr_matvecs
    _csc_matvecs = _sparsetools.csc_matvecs
except (ImportError, AttributeError):  # pragma: no cover - other SciPy layouts
    _csr_matvecs = _csc_matvecs = None


@attrs.frozen(eq=False)
class LevelKernel:
    """Everything one level's kernels need, as flat arrays (no per-node objects).

    Nodes ``start:stop`` (topological positions) read positions ``< start`` through the
    level's edges ``edge_start:edge_stop`` (plan order). ``matrix`` is the level's CSR
    matrix (rows: the level's nodes, columns: all earlier positions) whose data is a view
    of :attr:`CompiledPlan.sorted_weight`; ``transpose`` its CSC transpose sharing the same
    arrays (both ``None`` for a level without incoming edges). ``src``/``edge_rows`` are
    the edges' source positions and level-relative destination rows; ``blocks`` cover the
    edges for the weight-gradient kernel, ``rest_*`` the edges of rows in blocks too small
    to be worth batching (handled in one generic pass).
    """

    start: int
    stop: int
    edge_start: int
    edge_stop: int
    groups: tuple[ActivationGroup, ...]
    matrix: sp.csr_matrix | None
    transpose: sp.csc_matrix | None
    indptr: np.ndarray
    src: np.ndarray
    edge_rows: np.ndarray
    blocks: tuple[EdgeBlock, ...]
    rest_slots: np.ndarray
    rest_rows: np.ndarray
    rest_src: np.ndarray
    dense: DenseLayout | None = None  # set: the level runs as dense matrix products


@attrs.define(eq=False)
class CompiledPlan:
    """One plan's kernels. ``sorted_weight`` is the weight array the level matrices view
    now; it is swapped (never overwritten) when they are pointed at new weights (the
    fallback path, or ``_load_weights(..., matrices=True)``), so a cache keeps its
    weights. The fast path reads slices of the cache's own plan-ordered weights."""

    plan: ExecutionPlan
    matrices: tuple[sp.csr_matrix | None, ...]  # per level; data views of ``sorted_weight``
    transposes: tuple[sp.csc_matrix | None, ...]
    has_bias: np.ndarray
    sorted_weight: np.ndarray | None = None  # [E] weights in plan (destination) order
    levels: tuple[LevelKernel, ...] = ()
    identity_order: bool = False  # plan edge order == weight vector order
    edge_src: np.ndarray | None = None  # [E] source positions (plan order), small plans only
    edge_dst: np.ndarray | None = None  # [E] destination positions, small plans only
    dense_weights: dict[int, np.ndarray] = attrs.Factory(dict)  # level -> W_l [rows, cols]
    #: runs of consecutive small sparse levels whose weight gradients are computed together:
    #: one :class:`LevelKernel` spanning the run's nodes and edges, for one
    #: :meth:`NumpyBackend.level_edge_grads` call per run
    edge_runs: tuple[LevelKernel, ...] = ()
    run_levels: frozenset[int] = frozenset()  # the levels those runs cover
    #: the forward order of execution on the fast path: runs of consecutive sparse levels
    #: (:class:`~grapheme_backends.host_levels.HostRun`, levels with more than
    #: ``small_level_edges`` edges alone) and ``(level, LevelKernel)`` for dense levels
    schedule: tuple[HostRun | tuple[int, LevelKernel], ...] = ()
    dense_source: np.ndarray | None = None  # the sorted weights ``dense_weights`` come from
    inputs: slice | np.ndarray = attrs.field(default=None)  # input positions (a slice if a range)
    outputs: slice | np.ndarray = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        self.inputs = _as_slice(self.plan.input_positions)
        self.outputs = _as_slice(self.plan.output_positions)


class NumpyBackend(DensePolicy):
    """Reference implementation of :class:`grapheme_core.backend.Backend`."""

    name = "numpy"
    api_version = API_VERSION
    #: edges per chunk of the weight-gradient kernel is ``edge_chunk_elements // batch``
    #: (a chunk's gathered source rows then fit in L2 cache)
    edge_chunk_elements = 1 << 16
    #: consecutive sparse levels with at most this many edges each get their weight
    #: gradients in one chunked pass (deep graphs: no per-level calls)
    small_level_edges = 4096
    #: rows of equal in-degree are batched (one small matmul per chunk) when a group has at
    #: least this many edges; smaller groups share one generic gather-multiply-sum pass
    min_block_edges = 1024

    def __init__(self, device: str = "cpu") -> None:
        if str(device) != "cpu":
            raise ValueError(
                f"the numpy backend runs on the CPU only (device='cpu'), got device={device!r}; "
                "use --backend torch for a GPU"
            )

    def __repr__(self) -> str:
        """Class, registered name, device and dtypes (a subclass shows its own class)."""
        return (
            f"{type(self).__name__}(name={self.name!r}, device='cpu', "
            "dtypes=('float32', 'float64'))"
        )

    # -- conversion ----------------------------------------------------------------
    def asarray(self, value: Any, dtype: str) -> np.ndarray:
        return np.ascontiguousarray(value, dtype=_DTYPES[dtype])

    def to_numpy(self, value: Any) -> np.ndarray:
        return np.array(value, copy=True)

    def zeros(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        return np.zeros(shape, dtype=_DTYPES[dtype])

    def concat(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return np.concatenate([first, second])

    def take(self, value: np.ndarray, index: np.ndarray) -> np.ndarray:
        return value[index]

    def add(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        first += second
        return first

    def scale(self, value: np.ndarray, factor: float) -> np.ndarray:
        value *= value.dtype.type(factor)
        return value

    def sum_squares(self, value: np.ndarray) -> float:
        v = value.ravel()
        return float(np.dot(v, v))

    # -- elementwise seams ---------------------------------------------------------
    def activate(self, activation: Activation, z: np.ndarray) -> np.ndarray:
        """Apply ``activation`` to ``z`` in place and return it."""
        return host_levels.activate(activation, z)

    def activation_grad(self, activation: Activation, h: np.ndarray) -> np.ndarray | None:
        """``act'(z)`` expressed through the output ``h = act(z)``; ``None`` means 1."""
        return host_levels.activation_grad(activation, h)

    # -- kernels ---------------------------------------------------------------------
    def compile(self, plan: ExecutionPlan, dtype: str) -> CompiledPlan:
        np_dtype = _DTYPES[dtype]
        index_dtype = np.int32 if max(plan.num_nodes, plan.num_edges) < 2**31 - 1 else np.int64
        sorted_weight = np.zeros(plan.num_edges, dtype=np_dtype)
        edge_src = plan.edge_src.astype(index_dtype)
        src_all = plan.edge_src.astype(np.intp, copy=False)
        rows_all = plan.edge_row.astype(np.intp, copy=False)
        levels: list[LevelKernel] = []
        for lv, nodes, edges, groups in plan.levels():
            indptr = plan.level_indptr(lv).astype(index_dtype)
            src, rows = src_all[edges], rows_all[edges]
            matrix = transpose = None
            dense = self.dense_layout(plan, lv) if edges.stop > edges.start else None
            blocks, rest = (), np.zeros(0, dtype=np.intp)
            if dense is None and edges.stop > edges.start:
                shape = (nodes.stop - nodes.start, nodes.start)
                matrix = sp.csr_matrix(
                    (sorted_weight[edges], edge_src[edges], indptr), shape=shape, copy=False
                )
                matrix.data = sorted_weight[edges]  # SciPy copies small views: share again
                transpose = _transpose_sharing(matrix)
            if dense is None:
                blocks, rest = host_levels.edge_blocks(indptr, src, self.min_block_edges)
            levels.append(
                LevelKernel(
                    start=nodes.start,
                    stop=nodes.stop,
                    edge_start=edges.start,
                    edge_stop=edges.stop,
                    groups=groups,
                    matrix=matrix,
                    transpose=transpose,
                    indptr=indptr,
                    src=src,
                    edge_rows=rows,
                    blocks=blocks,
                    rest_slots=rest,
                    rest_rows=rows[rest],
                    rest_src=src[rest],
                    dense=dense,
                )
            )
        runs = _edge_runs(plan, levels, src_all, self.small_level_edges, self.min_block_edges)
        schedule = _schedule(plan, levels, self.small_level_edges)
        return CompiledPlan(
            plan,
            tuple(k.matrix for k in levels),
            tuple(k.transpose for k in levels),
            plan.has_bias.astype(np_dtype),
            sorted_weight,
            tuple(levels),
            bool(np.array_equal(plan.edge_order, np.arange(plan.num_edges))),
            *_global_edges(plan, src_all, self.edge_chunk_elements),
            edge_runs=tuple(r[0] for r in runs),
            run_levels=frozenset(lv for r in runs for lv in r[1]),
            schedule=schedule,
        )

    def _load_weights(
        self, compiled: CompiledPlan, weight: np.ndarray, matrices: bool = True
    ) -> np.ndarray:
        """The weights in plan order as a fresh array (one gather), viewed by every level
        matrix (``matrices=False``: by the dense levels' ``W_l`` only; the fast path reads
        slices of it directly). Fresh, so the forward cache keeps the exact weights it was
        computed with even when an optimizer later updates ``weight`` in place."""
        if compiled.identity_order:
            sorted_w = weight.copy()
        else:
            sorted_w = weight.take(compiled.plan.edge_order)
        self._use_weights(compiled, sorted_w, matrices)
        return sorted_w

    def _use_weights(
        self, compiled: CompiledPlan, sorted_w: np.ndarray, matrices: bool = True
    ) -> None:
        """Dense levels get their ``W_l`` from ``sorted_w`` (a view or one scatter); with
        ``matrices`` every level's CSR matrix (and its transpose) views its slice of it
        (:attr:`CompiledPlan.sorted_weight` is then ``sorted_w``)."""
        if compiled.dense_source is not sorted_w:
            for lv, k in enumerate(compiled.levels):
                if k.dense is not None:
                    compiled.dense_weights[lv] = _dense_matrix(
                        k.dense, sorted_w[k.edge_start : k.edge_stop]
                    )
            compiled.dense_source = sorted_w
        if not matrices or compiled.sorted_weight is sorted_w:
            return
        for k in compiled.levels:
            if k.matrix is not None:
                k.matrix.data = sorted_w[k.edge_start : k.edge_stop]
                k.transpose.data = k.matrix.data
        compiled.sorted_weight = sorted_w

    # -- dense blocks ------------------------------------------------------------------
    def dense_forward(
        self, kernel: LevelKernel, weight: np.ndarray, h: np.ndarray, block: np.ndarray
    ) -> None:
        """``block += W_l @ H[cols]`` (``block`` is the level's rows of ``h``)."""
        block += np.dot(weight, _dense_sources(kernel.dense, h))

    def dense_backward(
        self, kernel: LevelKernel, weight: np.ndarray, delta: np.ndarray, g: np.ndarray
    ) -> None:
        """``G[cols] += W_l^T @ delta`` (``delta``: the level's ``dL/dz``)."""
        d = kernel.dense
        if d.contiguous:
            g[d.col_start : d.col_stop] += np.dot(weight.T, delta)
        else:  # distinct columns: fancy ``+=`` adds once per column, as it must
            g[d.cols] += np.dot(weight.T, delta)

    def dense_edge_grads(
        self, kernel: LevelKernel, delta: np.ndarray, h: np.ndarray, out: np.ndarray
    ) -> None:
        """The level's weight gradients into ``out`` (plan order): the cells of
        ``delta @ H[cols]^T``; written in place when the layout is the identity."""
        d = kernel.dense
        src = _dense_sources(d, h)
        if d.identity:  # np.dot, not matmul: matmul's batch-1 outer product is ~8x slower
            np.dot(delta, src.T, out=out.reshape(d.rows, d.n_cols))
        else:
            out[...] = np.dot(delta, src.T).reshape(-1).take(d.cells)

    def forward(
        self, compiled: CompiledPlan, weight: np.ndarray, bias: np.ndarray, x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        plan = compiled.plan
        h = np.empty((plan.num_nodes, x.shape[0]), dtype=weight.dtype)
        fast = _fast_path(compiled, h)
        sorted_w = self._load_weights(compiled, weight, matrices=not fast)
        h[...] = (bias.take(plan.order) * compiled.has_bias)[:, None]
        h[compiled.inputs] = x.T  # input nodes have no bias
        if fast:  # SciPy's kernels straight on slices: no per-level matrix objects
            for step in compiled.schedule:
                if type(step) is HostRun:
                    host_levels.forward_run(step, h, sorted_w, self.activate)
                else:
                    self._dense_level_forward(compiled, *step, h)
            return h[compiled.outputs].T.copy(), (h, sorted_w)
        for lv, k in enumerate(compiled.levels):
            block = h[k.start : k.stop]
            if k.matrix is not None:
                _spmm_add(k.matrix, h[: k.start], block, fast)
            elif k.dense is not None:
                self.dense_forward(k, compiled.dense_weights[lv], h, block)
            self._activate_groups(k, block)
        return h[compiled.outputs].T.copy(), (h, sorted_w)

    def _dense_level_forward(
        self, compiled: CompiledPlan, lv: int, k: LevelKernel, h: np.ndarray
    ) -> None:
        block = h[k.start : k.stop]
        self.dense_forward(k, compiled.dense_weights[lv], h, block)
        self._activate_groups(k, block)

    def _activate_groups(self, k: LevelKernel, block: np.ndarray) -> None:
        """Apply each activation group of level ``k`` to its rows of ``block``, in place."""
        for g in k.groups:
            if g.rows is None:
                self.activate(g.activation, block)
            else:
                block[g.rows] = self.activate(g.activation, block[g.rows])

    def _reverse_sweep(
        self, compiled: CompiledPlan, h: np.ndarray, g: np.ndarray, sorted_w: np.ndarray
    ) -> None:
        """The levels in reverse with the plan-ordered weights ``sorted_w`` of the forward:
        ``g`` (``dL/dh``, outputs filled in) becomes ``dL/dz`` of every position, in place."""
        fast = _fast_path(compiled, g)
        self._use_weights(compiled, sorted_w, matrices=not fast)
        if fast:
            for step in reversed(compiled.schedule):
                if type(step) is HostRun:
                    host_levels.reverse_run(step, h, g, sorted_w, self.activation_grad)
                else:
                    lv, k = step
                    self._level_derivative(k, h, g)
                    self.dense_backward(k, compiled.dense_weights[lv], g[k.start : k.stop], g)
            return
        for lv in range(len(compiled.levels) - 1, -1, -1):
            k = compiled.levels[lv]
            self._level_derivative(k, h, g)
            if k.transpose is not None:
                _spmm_add(k.transpose, g[k.start : k.stop], g[: k.start], fast)
            elif k.dense is not None:
                self.dense_backward(k, compiled.dense_weights[lv], g[k.start : k.stop], g)

    def _level_derivative(self, k: LevelKernel, h: np.ndarray, g: np.ndarray) -> None:
        """``g[level] *= act'(z)``: the level's ``dL/dh`` becomes ``dL/dz`` in place."""
        delta = g[k.start : k.stop]
        for grp in k.groups:
            if grp.rows is None:
                d = self.activation_grad(grp.activation, h[k.start : k.stop])
                if d is not None:
                    delta *= d
            else:
                d = self.activation_grad(grp.activation, h[k.start : k.stop][grp.rows])
                if d is not None:
                    delta[grp.rows] *= d

    def backward(
        self,
        compiled: CompiledPlan,
        weight: np.ndarray,
        bias: np.ndarray,
        cache: np.ndarray,
        grad_out: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        plan = compiled.plan
        h, sorted_w = cache
        g = np.empty_like(h)  # empty + fill reuses freed pages; zeros (calloc) faults fresh ones
        g.fill(0)
        g[compiled.outputs] = grad_out.T  # distinct positions into zeros: a plain add
        grad_sorted_w = np.empty(plan.num_edges, dtype=h.dtype)
        custom_edge_grads = type(self).edge_grads is not NumpyBackend.edge_grads
        self._reverse_sweep(compiled, h, g, sorted_w)  # the gradient of *that* forward pass
        # ``g`` now holds dL/dz of every node, so the weight gradients need no level order.
        if (
            compiled.edge_dst is not None
            and not custom_edge_grads
            and (plan.num_edges * g.shape[1] <= self.edge_chunk_elements)
        ):  # a small graph: one call for all edges instead of one per level
            dz, hs = g.take(compiled.edge_dst, axis=0), h.take(compiled.edge_src, axis=0)
            np.einsum("eb,eb->e", dz, hs, out=grad_sorted_w)
        else:
            if not custom_edge_grads:  # a run of small levels: one call, as one level
                for k in compiled.edge_runs:
                    out = grad_sorted_w[k.edge_start : k.edge_stop]
                    self.level_edge_grads(k, g[k.start : k.stop], h, out)
            for lv, k in enumerate(compiled.levels):
                if k.edge_stop == k.edge_start:
                    continue
                if lv in compiled.run_levels and not custom_edge_grads:
                    continue
                delta = g[k.start : k.stop]
                out = grad_sorted_w[k.edge_start : k.edge_stop]
                if custom_edge_grads:
                    out[...] = self.edge_grads(delta, h, k.edge_rows, k.src)
                elif k.dense is not None:
                    self.dense_edge_grads(k, delta, h, out)
                else:
                    self.level_edge_grads(k, delta, h, out)
        if compiled.identity_order:
            grad_w = grad_sorted_w
        else:
            grad_w = np.empty_like(grad_sorted_w)
            grad_w[plan.edge_order] = grad_sorted_w
        grad_b = np.empty(plan.num_nodes, dtype=h.dtype)
        grad_b[plan.order] = np.einsum("nb->n", g) * compiled.has_bias  # no BLAS threads
        grad_x = g[compiled.inputs].T.copy()
        return grad_w, grad_b, grad_x

    def edge_grads(
        self, delta: np.ndarray, h: np.ndarray, rows: np.ndarray, cols: np.ndarray
    ) -> np.ndarray:
        """``out[e] = delta[rows[e]] . h[cols[e]]``, chunked to bound temporary memory.

        The generic weight-gradient kernel (any ``rows``/``cols``). :meth:`backward` uses
        :meth:`level_edge_grads`, which batches rows of equal in-degree, unless a subclass
        overrides this method, in which case the override is called once per level.
        """
        out = np.empty(rows.shape[0], dtype=h.dtype)
        chunk = max(1, self.edge_chunk_elements // max(1, h.shape[1]))
        for start in range(0, rows.shape[0], chunk):
            stop = start + chunk
            dz, hs = delta.take(rows[start:stop], axis=0), h.take(cols[start:stop], axis=0)
            np.einsum("eb,eb->e", dz, hs, out=out[start:stop])
        return out

    def level_edge_grads(
        self, kernel: LevelKernel, delta: np.ndarray, h: np.ndarray, out: np.ndarray
    ) -> None:
        """Weight gradients of one level's edges into ``out`` (plan order within the level):
        ``out[e] = delta[row_e] . h[src_e]``, the sampled dense-dense product. ``kernel``
        may span a run of consecutive small levels (:attr:`CompiledPlan.edge_runs`): its
        ``start:stop`` and rows then cover those levels, ``delta`` is their ``dL/dz``.

        Rows of equal in-degree ``k`` form blocks: for a chunk of ``n`` such rows the source
        rows are gathered once into ``[n, k, B]`` and multiplied by ``delta[rows]`` as
        ``[n, B, 1]`` (one batched matmul), so ``delta`` is never replicated per edge and
        no temporary exceeds ``edge_chunk_elements`` values (it stays in cache).
        """
        host_levels.grouped_edge_grads(kernel, delta, h, out, self.edge_chunk_elements)

    # -- API 1.1: gradients of candidate edges -------------------------------------------
    def node_deltas(
        self, compiled: CompiledPlan, cache: tuple[np.ndarray, np.ndarray], grad_out: np.ndarray
    ) -> np.ndarray:
        """``dL/dz`` of every node (``[N, B]``, topological positions) for the forward that
        made ``cache`` and the output gradient ``grad_out``: the reverse sweep of
        :meth:`backward` without the weight gradients."""
        plan = compiled.plan
        h, sorted_w = cache
        g = np.zeros_like(h)
        g[plan.output_positions] = grad_out.T
        self._reverse_sweep(compiled, h, g, sorted_w)
        return g

    def candidate_edge_grads(
        self,
        compiled: CompiledPlan,
        weight: np.ndarray,
        bias: np.ndarray,
        cache: tuple[np.ndarray, np.ndarray],
        grad_out: np.ndarray,
        src: np.ndarray,
        dst: np.ndarray,
    ) -> np.ndarray:
        """``out[k] = dL/dz[dst[k]] . h[src[k]]``: the gradient of a not-yet-existing edge
        ``src -> dst`` (topological positions), chunked like :meth:`edge_grads`."""
        del weight, bias
        g = self.node_deltas(compiled, cache, grad_out)
        src = np.asarray(src, dtype=np.intp)
        dst = np.asarray(dst, dtype=np.intp)
        return self.edge_grads(g, cache[0], dst, src)

    # -- optimizers ------------------------------------------------------------------
    def sgd_step(self, param: np.ndarray, grad: np.ndarray, lr: float) -> np.ndarray:
        param -= param.dtype.type(lr) * grad
        return param

    def adam_step(
        self,
        param: np.ndarray,
        grad: np.ndarray,
        m: np.ndarray,
        v: np.ndarray,
        step: int,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = param.dtype.type
        m *= t(beta1)
        m += t(1 - beta1) * grad
        v *= t(beta2)
        v += t(1 - beta2) * grad * grad
        m_hat = m / t(1 - beta1**step)
        v_hat = v / t(1 - beta2**step)
        param -= t(lr) * m_hat / (np.sqrt(v_hat) + t(eps))
        return param, m, v

    # -- embeddings ------------------------------------------------------------------
    def gather_rows(self, table: np.ndarray, index: np.ndarray) -> np.ndarray:
        return table[index]

    def scatter_add_rows(
        self, table: np.ndarray, index: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        np.add.at(table, index, rows)
        return table


# -- level kernels -------------------------------------------------------------------------
def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """``index`` as a slice when it is a contiguous ascending range (cheaper to apply)."""
    n = index.shape[0]
    if n and np.array_equal(index, np.arange(int(index[0]), int(index[0]) + n)):
        return slice(int(index[0]), int(index[0]) + n)
    return index


def _dense_matrix(layout: DenseLayout, level_weights: np.ndarray) -> np.ndarray:
    """``W_l`` ``[rows, n_cols]`` from the level's plan-ordered weights: a view for an
    identity layout, else a scatter (multi-edges summed into their cell)."""
    shape = (layout.rows, layout.n_cols)
    if layout.identity:
        return level_weights.reshape(shape)
    if layout.duplicates:
        flat = np.bincount(layout.cells, level_weights, minlength=shape[0] * shape[1])
        return flat.astype(level_weights.dtype, copy=False).reshape(shape)
    flat = np.zeros(shape[0] * shape[1], dtype=level_weights.dtype)
    flat[layout.cells] = level_weights
    return flat.reshape(shape)


def _dense_sources(layout: DenseLayout, h: np.ndarray) -> np.ndarray:
    """``H[cols]``: a slice when the columns are contiguous, else a gather."""
    if layout.contiguous:
        return h[layout.col_start : layout.col_stop]
    return h.take(layout.cols, axis=0)


def _fast_path(compiled: CompiledPlan, state: np.ndarray) -> bool:
    """Whether SciPy's ``csr_matvecs``/``csc_matvecs`` kernels can be called directly."""
    return (
        _csr_matvecs is not None
        and state.flags.c_contiguous
        and state.dtype == compiled.sorted_weight.dtype
    )


def _spmm_add(a: sp.csr_matrix | sp.csc_matrix, x: np.ndarray, y: np.ndarray, fast: bool) -> None:
    """``y += a @ x`` for a level's CSR matrix or its CSC transpose, dense ``x``/``y``.

    SciPy's own ``a @ x`` allocates a zeroed result that the caller then adds; with
    ``fast`` (C-contiguous row blocks of one state array, same dtype as the weights) the
    ``csr_matvecs``/``csc_matvecs`` kernels that SciPy itself uses accumulate straight
    into ``y``: no temporary, no extra pass, microseconds less overhead per level.
    """
    if fast and a.indptr.dtype == a.indices.dtype:
        kernel = _csr_matvecs if a.format == "csr" else _csc_matvecs
        rows, cols, vecs = y.shape[0], x.shape[0], y.shape[1]
        kernel(rows, cols, vecs, a.indptr, a.indices, a.data, x.reshape(-1), y.reshape(-1))
    else:
        y += a @ x


def _transpose_sharing(a: sp.csr_matrix) -> sp.csc_matrix:
    """``a.T`` as CSC whose data array is ``a.data`` itself (SciPy may copy small views)."""
    at = a.T
    at.data = a.data
    return at


def _edge_runs(
    plan: ExecutionPlan, levels, src_all: np.ndarray, limit: int, min_block_edges: int
) -> list:
    """Maximal runs of at least two consecutive sparse levels with edges, each with at
    most ``limit`` edges: ``(kernel, level indices)``, the kernel spanning the run as if
    it were one level (positions ``start:stop``, edges ``edge_start:edge_stop``, rows
    relative to ``start``), which is all :meth:`NumpyBackend.level_edge_grads` needs."""
    runs, current = [], []

    def close() -> None:
        if len(current) >= 2:
            first, last = levels[current[0]], levels[current[-1]]
            e0, e1 = first.edge_start, last.edge_stop
            lo, hi = first.start, last.stop
            indptr = plan.indptr[lo : hi + 1] - plan.indptr[lo]
            src = src_all[e0:e1]
            dst = np.repeat(np.arange(hi - lo, dtype=np.intp), np.diff(indptr))
            blocks, rest = host_levels.edge_blocks(indptr, src, min_block_edges)
            kernel = LevelKernel(
                start=lo, stop=hi, edge_start=e0, edge_stop=e1, groups=(), matrix=None,
                transpose=None, indptr=indptr, src=src, edge_rows=dst, blocks=blocks,
                rest_slots=rest, rest_rows=dst[rest], rest_src=src[rest],
            )  # fmt: skip
            runs.append((kernel, tuple(current)))
        current.clear()

    for lv, k in enumerate(levels):
        n = k.edge_stop - k.edge_start
        if n == 0:
            continue  # no edges: does not break a run
        if k.dense is None and n <= limit:
            current.append(lv)
        else:
            close()
    close()
    return runs


def _schedule(plan: ExecutionPlan, levels: list[LevelKernel], limit: int) -> tuple:
    """The fast path's order of execution: maximal runs of consecutive sparse levels with
    at most ``limit`` edges each (levels without edges included), a larger sparse level
    as a run of its own, ``(level, kernel)`` for a dense level."""
    steps: list = []
    run: list[HostLevel] = []

    def close() -> None:
        if run:
            steps.append(host_levels.make_run(tuple(run)))
            run.clear()

    for lv, k in enumerate(levels):
        if k.dense is not None:
            close()
            steps.append((lv, k))
            continue
        if k.edge_stop - k.edge_start > limit:
            close()
        indptr = indices = None
        if k.matrix is not None:
            indices = k.matrix.indices
            indptr = k.matrix.indptr.astype(indices.dtype, copy=False)
        groups = tuple((g.activation, g.rows) for g in k.groups)
        run.append(HostLevel(k.start, k.stop, k.edge_start, k.edge_stop, indptr, indices, groups))
        if k.edge_stop - k.edge_start > limit:
            close()
    close()
    return tuple(steps)


def _global_edges(
    plan: ExecutionPlan, src: np.ndarray, limit: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Source and destination positions of all edges, kept only for plans small enough
    that the weight gradients of every level fit in one chunk at batch size 1."""
    if plan.num_edges > limit:
        return None, None
    level_start = np.repeat(plan.level_offsets[:-1], np.diff(plan.edge_offsets))
    return src, (level_start + plan.edge_row).astype(np.intp)
