"""A graph large enough to cross kernel size thresholds.

Every other suite graph is tiny (edges x batch never above 65,536), so chunked or batched
kernels that only start above some size (the reference's ``level_edge_grads``, any
backend's edge chunking) would never run. This graph has a level of about 68,000
incoming edges (rows of equal in-degree in interleaved blocks, rows of small distinct
in-degrees, multi-edges) and a second level of uniform in-degree, at batch 16: about
1.2 million edge x batch elements. The large level fills about 13 % of its
``rows x sources`` cells, below the density at which the built-in backends switch to
dense blocks, so their sparse kernels run; the output level is dense (about 41 %), so
the dense-block kernels run too. It is checked once forward and once backward per
dtype against :class:`LevelOracle`, a float64 reference vectorised over the batch and
over each node level (the node-by-node oracle would take minutes here).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..dagnn import DagNN
from ..types import Activation, NodeKind
from . import graphs
from .checks import Context, check
from .tolerances import FORWARD, GRAD, compare

N_IN, N_OUT, BATCH = 512, 8, 16  # 512 sources keep the large level sparse (~13 % of cells)
#: (number of hidden rows, in-degree) of the large level; the last entry draws degrees
DEGREES = ((600, 64), (280, 100), (144, None))
OUT_DEGREE = 600  # hidden -> each output, plus 32 input -> output skip edges


def _act(code: int, z: np.ndarray) -> np.ndarray:
    a = Activation(code)
    if a is Activation.RELU:
        return np.maximum(z, 0.0)
    if a is Activation.LEAKY_RELU:
        return np.where(z > 0, z, 0.01 * z)
    if a is Activation.SIGMOID:
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if a is Activation.TANH:
        return np.tanh(z)
    return z.copy()


def _dact(code: int, z: np.ndarray) -> np.ndarray:
    a = Activation(code)
    if a is Activation.RELU:
        return (z > 0).astype(np.float64)
    if a is Activation.LEAKY_RELU:
        return np.where(z > 0, 1.0, 0.01)
    if a is Activation.SIGMOID:
        s = _act(code, z)
        return s * (1.0 - s)
    if a is Activation.TANH:
        return 1.0 - np.tanh(z) ** 2
    return np.ones_like(z)


class LevelOracle:
    """Float64 forward and reverse mode, one node level at a time, for large graphs.

    Its own levelling (longest path from the sources, computed by repeated relaxation
    over the edge list), its own activation math on ``z``; it shares no code with plans
    or backends. Same interface as :class:`grapheme_core.oracle.Oracle`.
    """

    def __init__(self, dag: DagNN) -> None:
        ids = dag.nodes()
        self.n = ids.size
        params = dag.get_parameters()
        _, src, dst = dag.edges()
        self.src = np.searchsorted(ids, src)
        self.dst = np.searchsorted(ids, dst)
        self.w = params["weight"].astype(np.float64)
        self.bias = params["bias"].astype(np.float64)
        self.act = np.array([int(dag.activation(int(i))) for i in ids])
        kinds = np.array([int(dag.node_kind(int(i))) for i in ids])
        self.inputs = np.flatnonzero(kinds == int(NodeKind.INPUT))
        self.outputs = np.flatnonzero(kinds == int(NodeKind.OUTPUT))
        self.bias[self.inputs] = 0.0
        level = np.zeros(self.n, dtype=np.int64)
        for _ in range(self.n + 1):
            new = level.copy()
            np.maximum.at(new, self.dst, level[self.src] + 1)
            if np.array_equal(new, level):
                break
            level = new
        self.level = level

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = x.shape[0]
        z = np.repeat(self.bias[:, None], b, axis=1)
        z[self.inputs] += x.T
        h = np.zeros_like(z)
        for lv in range(int(self.level.max(initial=0)) + 1):
            into = self.level[self.dst] == lv
            np.add.at(z, self.dst[into], self.w[into, None] * h[self.src[into]])
            for code in np.unique(self.act[self.level == lv]):
                rows = np.flatnonzero((self.level == lv) & (self.act == code))
                h[rows] = _act(int(code), z[rows])
        return z, h

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``[B, n_inputs]`` -> ``[B, n_outputs]`` in float64."""
        return self._forward(np.atleast_2d(np.asarray(x, dtype=np.float64)))[1][self.outputs].T

    def gradients(self, x: np.ndarray, grad_out: np.ndarray) -> dict[str, np.ndarray]:
        """``{"weight", "bias", "input"}`` for ``dL/dy = grad_out``, summed over the batch."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        z, h = self._forward(x)
        dh = np.zeros_like(z)
        dh[self.outputs] = np.atleast_2d(grad_out).T
        dz = np.zeros_like(z)
        for lv in range(int(self.level.max(initial=0)), -1, -1):
            rows = np.flatnonzero(self.level == lv)
            for code in np.unique(self.act[rows]):
                r = rows[self.act[rows] == code]
                dz[r] = dh[r] * _dact(int(code), z[r])
            into = self.level[self.dst] == lv
            np.add.at(dh, self.src[into], self.w[into, None] * dz[self.dst[into]])
        gw = np.einsum("eb,eb->e", dz[self.dst], h[self.src])
        gb = dz.sum(axis=1)
        gb[self.inputs] = 0.0
        return {"weight": gw, "bias": gb, "input": dz[self.inputs].T}


def large_graph(backend: Any, dtype: str, seed: int = 0) -> tuple[DagNN, np.ndarray]:
    """The large layered graph (node ids not in topological order, edge ids shuffled)."""
    rng = np.random.default_rng([seed, 424242])
    dag = DagNN(backend=backend, dtype=dtype, seed=seed)
    outs = dag.add_nodes(N_OUT, NodeKind.OUTPUT, Activation.TANH)
    hidden = []
    for act in (Activation.TANH, Activation.RELU, Activation.LEAKY_RELU, Activation.SIGMOID):
        hidden.append(dag.add_nodes(sum(n for n, _ in DEGREES) // 4, NodeKind.HIDDEN, act))
    hid = rng.permutation(np.concatenate(hidden))  # degree blocks interleave the rows
    ins = dag.add_nodes(N_IN, NodeKind.INPUT)
    src, dst = [], []
    start = 0
    for count, degree in DEGREES:
        rows = hid[start : start + count]
        start += count
        deg = np.full(count, degree) if degree else rng.integers(1, 30, size=count)
        dst.append(np.repeat(rows, deg))
        src.append(rng.choice(ins, size=int(deg.sum()), replace=True))  # multi-edges too
    dst.append(np.repeat(outs, OUT_DEGREE + 32))
    src.append(
        np.concatenate(
            [
                np.concatenate([rng.choice(hid, OUT_DEGREE), rng.choice(ins, 32)])
                for _ in range(N_OUT)
            ]
        )
    )
    s, d = np.concatenate(src), np.concatenate(dst)
    order = rng.permutation(s.size)
    s, d = s[order], d[order]
    fan_in = np.bincount(d, minlength=dag.node_count)[d]
    w = graphs._weights(rng, s.size, 0.5, 1.5) * np.sqrt(3.0 / fan_in)
    dag.add_edges(s, d, w)
    bias = rng.uniform(-0.3, 0.3, dag.node_count)
    bias[np.isin(dag.nodes(), dag.input_nodes)] = 0.0
    dag.set_parameters({"bias": bias})
    x = graphs._round(rng.uniform(-1.5, 1.5, (BATCH, N_IN)), dtype)
    return dag, x


#: digest of (structure, parameters, x, probe) -> the reference's results: the graph is
#: seeded, so every backend of a run (and each run in one process) asks for the same ones
_REFERENCE: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}


def _reference(
    dag: DagNN, x: np.ndarray, probe: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:class:`LevelOracle` forward and gradients, computed once per distinct input (a
    pure function of what is hashed: node ids, kinds, activations, edges, parameters)."""
    ids = dag.nodes()
    eids, src, dst = dag.edges()
    params = dag.get_parameters()
    kinds = [int(dag.node_kind(int(i))) for i in ids]
    acts = [int(dag.activation(int(i))) for i in ids]
    digest = hashlib.blake2b()
    for arr in (ids, eids, src, dst, np.array(kinds), np.array(acts), params["weight"],
                params["bias"], x, probe):  # fmt: skip
        arr = np.ascontiguousarray(arr)
        digest.update(f"{arr.dtype}{arr.shape}".encode())
        digest.update(arr.tobytes())
    key = digest.hexdigest()
    if key not in _REFERENCE:
        if len(_REFERENCE) >= 8:
            _REFERENCE.clear()
        ref = LevelOracle(dag)
        _REFERENCE[key] = (ref.forward(x), ref.gradients(x, probe))
    forward, grads = _REFERENCE[key]
    return forward.copy(), {k: v.copy() for k, v in grads.items()}


@check(
    "scale.large_graph",
    "a level with ~68,000 incoming edges at batch 16 (1.2M edge x batch elements): forward "
    "and gradients equal a float64 reference",
)
def _large_graph(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        dag, x = large_graph(ctx.backend, dtype)
        probe = graphs._round(np.random.default_rng(1).uniform(-1, 1, (x.shape[0], N_OUT)), dtype)
        ref_forward, want = _reference(dag, x, probe)
        label = f"large graph ({dag.edge_count} edges, batch {x.shape[0]}) [{dtype}]"
        compare(f"{label} forward output", dag.forward(x), ref_forward, FORWARD[dtype])
        gx = dag.backward_accumulate(probe)
        got = dag.get_gradients()
        tol = GRAD[dtype]
        compare(f"{label} weight gradients (order of edges())", got["weight"], want["weight"], tol)
        compare(f"{label} bias gradients (order of nodes())", got["bias"], want["bias"], tol)
        compare(f"{label} input gradients dL/dx", gx, want["input"], tol)
