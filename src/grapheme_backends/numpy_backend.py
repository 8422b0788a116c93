"""The NumPy/SciPy reference backend: complete, readable, and fast enough to be the default.

Kernels work level by level on a node-major state ``H`` of shape ``[N, B]`` (rows in the
plan's topological order, so each level is a contiguous block):

* forward:  ``H[level] = act(A_l @ H[:start] + b[level] + X[level])`` with ``A_l`` a SciPy
  CSR matrix whose data is a view of the level's slice of the sorted weights;
* backward: ``delta = G[level] * act'(H[level])``, ``G[:start] += A_l.T @ delta``, and the
  weight gradient ``dW_e = delta[dst_e] . H[src_e]`` (a sampled dense-dense product),
  computed in edge chunks so no ``E x B`` array is ever materialised.

Subclass and override any method; :meth:`activate` and :meth:`activation_grad` are the
elementwise seams, :meth:`edge_grads` the weight-gradient kernel.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import scipy.sparse as sp

from grapheme_core.backend import API_VERSION
from grapheme_core.plan import ExecutionPlan
from grapheme_core.types import LEAKY_SLOPE, Activation

_DTYPES = {"float32": np.float32, "float64": np.float64}


@attrs.frozen(eq=False)
class CompiledPlan:
    plan: ExecutionPlan
    matrices: tuple[sp.csr_matrix | None, ...]  # per level; data refilled each call
    transposes: tuple[sp.csc_matrix | None, ...]
    has_bias: np.ndarray


class NumpyBackend:
    """Reference implementation of :class:`grapheme_core.backend.Backend`."""

    name = "numpy"
    api_version = API_VERSION
    #: edges per chunk of the weight-gradient kernel is ``edge_chunk_elements // batch``
    edge_chunk_elements = 1 << 20

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
        if activation is Activation.RELU:
            np.maximum(z, 0, out=z)
        elif activation is Activation.LEAKY_RELU:
            np.multiply(z, np.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype), out=z)
        elif activation is Activation.SIGMOID:
            # 1/(1+exp(-z)) written to avoid overflow warnings for large |z|
            e = np.exp(-np.abs(z))
            np.divide(np.where(z >= 0, 1.0, e), 1.0 + e, out=z)
        elif activation is Activation.TANH:
            np.tanh(z, out=z)
        return z

    def activation_grad(self, activation: Activation, h: np.ndarray) -> np.ndarray | None:
        """``act'(z)`` expressed through the output ``h = act(z)``; ``None`` means 1."""
        if activation is Activation.LINEAR:
            return None
        if activation is Activation.RELU:
            return (h > 0).astype(h.dtype)
        if activation is Activation.LEAKY_RELU:
            return np.where(h > 0, 1.0, LEAKY_SLOPE).astype(h.dtype)
        if activation is Activation.SIGMOID:
            return h * (1 - h)
        return 1 - h * h  # tanh

    # -- kernels ---------------------------------------------------------------------
    def compile(self, plan: ExecutionPlan, dtype: str) -> CompiledPlan:
        np_dtype = _DTYPES[dtype]
        matrices: list[sp.csr_matrix | None] = []
        for lv, nodes, edges, _ in plan.levels():
            if edges.stop == edges.start:
                matrices.append(None)
                continue
            data = np.zeros(edges.stop - edges.start, dtype=np_dtype)
            shape = (nodes.stop - nodes.start, nodes.start)
            a = sp.csr_matrix(
                (data, plan.edge_src[edges], plan.level_indptr(lv)), shape=shape, copy=False
            )
            matrices.append(a)
        transposes = tuple(None if a is None else a.T for a in matrices)
        return CompiledPlan(plan, tuple(matrices), transposes, plan.has_bias.astype(np_dtype))

    def _load_weights(self, compiled: CompiledPlan, weight: np.ndarray) -> None:
        """Copy the weights, in plan order, into each level's CSR data (in place)."""
        sorted_w = weight[compiled.plan.edge_order]
        for (_, _, edges, _), a in zip(compiled.plan.levels(), compiled.matrices, strict=True):
            if a is not None:
                a.data[:] = sorted_w[edges]

    def forward(
        self, compiled: CompiledPlan, weight: np.ndarray, bias: np.ndarray, x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        plan = compiled.plan
        self._load_weights(compiled, weight)
        h = np.zeros((plan.num_nodes, x.shape[0]), dtype=weight.dtype)
        h[plan.input_positions] = x.T
        h += (bias[plan.order] * compiled.has_bias)[:, None]
        for (lv, nodes, _, groups), a in zip(plan.levels(), compiled.matrices, strict=True):
            block = h[nodes]
            if a is not None:
                block += a @ h[: nodes.start]
            for g in groups:
                if g.rows is None:
                    self.activate(g.activation, block)
                else:
                    block[g.rows] = self.activate(g.activation, block[g.rows])
            del lv
        return h[plan.output_positions].T.copy(), h

    def backward(
        self,
        compiled: CompiledPlan,
        weight: np.ndarray,
        bias: np.ndarray,
        cache: np.ndarray,
        grad_out: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        plan = compiled.plan
        h = cache
        # The level matrices still hold the weights of the forward pass that made ``h``.
        g = np.zeros_like(h)
        np.add.at(g, plan.output_positions, grad_out.T)  # positions are distinct; add.at is safe
        grad_sorted_w = np.zeros(plan.num_edges, dtype=h.dtype)
        levels = list(plan.levels())
        for (lv, nodes, edges, groups), at in zip(
            reversed(levels), reversed(compiled.transposes), strict=True
        ):
            delta = g[nodes]  # becomes dL/dz of this level, in place
            for grp in groups:
                if grp.rows is None:
                    d = self.activation_grad(grp.activation, h[nodes])
                    if d is not None:
                        delta *= d
                else:
                    d = self.activation_grad(grp.activation, h[nodes][grp.rows])
                    if d is not None:
                        delta[grp.rows] *= d
            if at is not None:
                g[: nodes.start] += at @ delta
                grad_sorted_w[edges] = self.edge_grads(
                    delta, h, plan.edge_row[edges], plan.edge_src[edges]
                )
            del lv
        grad_w = np.empty_like(grad_sorted_w)
        grad_w[plan.edge_order] = grad_sorted_w
        grad_b = np.empty(plan.num_nodes, dtype=h.dtype)
        grad_b[plan.order] = g.sum(axis=1) * compiled.has_bias
        grad_x = g[plan.input_positions].T.copy()
        return grad_w, grad_b, grad_x

    def edge_grads(
        self, delta: np.ndarray, h: np.ndarray, rows: np.ndarray, cols: np.ndarray
    ) -> np.ndarray:
        """``out[e] = delta[rows[e]] . h[cols[e]]``, chunked to bound temporary memory."""
        out = np.empty(rows.shape[0], dtype=h.dtype)
        chunk = max(1, self.edge_chunk_elements // max(1, h.shape[1]))
        for start in range(0, rows.shape[0], chunk):
            stop = start + chunk
            np.einsum("eb,eb->e", delta[rows[start:stop]], h[cols[start:stop]], out=out[start:stop])
        return out

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
