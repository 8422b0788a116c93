"""Conformance checks of the API 1.1 kernel ``candidate_edge_grads`` (RigL regrowth).

The gradient of an edge that does not exist yet must equal the gradient that edge gets
once it is added with weight 0 (the forward is unchanged by such an edge), as computed by
the float64 oracle, and must match central finite differences. Checks here declare the
capability ``candidate_edge_grads``; a backend without it is "n/a" for them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..dagnn import DagNN
from ..oracle import Oracle
from .checks import Context, check
from .graphs import Case
from .tolerances import FD_EPS, FINITE_DIFFERENCES, GRAD, CheckFailure, compare

_REQUIRES = ("candidate_edge_grads",)


def _check(check_id: str, title: str) -> Callable:
    """``@check`` for a check of the API 1.1 candidate-gradient kernel."""
    return check(check_id, title, requires=_REQUIRES)


def _candidates(dag: DagNN, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random non-existing, acyclic-by-order candidate edges (source earlier in the plan's
    topological order, destination not an input node)."""
    rng = np.random.default_rng(seed)
    ids = dag.nodes()
    pos = dag.plan.position
    inputs = set(dag.input_nodes)
    _, src, dst = dag.edges()
    existing = set(zip(src.tolist(), dst.tolist(), strict=True))
    a = rng.integers(0, ids.shape[0], 8 * count)
    b = rng.integers(0, ids.shape[0], 8 * count)
    pairs: list[tuple[int, int]] = []
    for i, j in zip(a.tolist(), b.tolist(), strict=True):  # a test helper on tiny graphs
        pair = (int(ids[i]), int(ids[j]))
        if pos[i] < pos[j] and pair[1] not in inputs and pair not in existing:
            existing.add(pair)
            pairs.append(pair)
        if len(pairs) == count:
            break
    s, d = (np.array(v, dtype=np.int64) for v in zip(*pairs, strict=True))
    return s, d


def _with_edges(dag: DagNN, src: np.ndarray, dst: np.ndarray) -> DagNN:
    meta, arrays = dag.state()
    copy = DagNN.from_state(meta, arrays, backend="numpy")
    copy.add_edges(src, dst, weights=0.0)
    return copy


@_check(
    "candidate.oracle",
    "candidate_edge_grads equals the oracle's gradient of 0-weight edges, summed over backwards",
)
def _candidate_oracle(ctx: Context) -> None:
    for dtype in ctx.dtypes:  # one small graph per dtype: each new graph compiles on JAX
        case: Case = ctx.case("random_small", dtype, batch=4)
        dag = case.dag
        src, dst = _candidates(dag, 12, seed=3)
        grown = _with_edges(dag, src, dst)
        k = src.shape[0]
        x2, p1, p2 = case.inputs(11), case.probe(1), case.probe(2)
        want = 0.0
        for step, (x, p) in enumerate(((case.x, p1), (x2, p2))):
            dag.forward(x)
            dag.backward_accumulate(p)
            want = want + Oracle(grown).gradients(x, p)["weight"][-k:]
            what = "one backward" if step == 0 else "two backwards (they add up)"
            got = dag.candidate_gradients(src, dst)
            compare(
                f"random_small [{dtype}] candidate gradients vs oracle, {what}",
                got,
                want,
                GRAD[dtype],
            )
        dag.zero_grad()
        dag.forward(x2)
        dag.backward_accumulate(p2)
        compare(
            f"random_small [{dtype}] candidate gradients after zero_grad and one backward",
            dag.candidate_gradients(src, dst),
            Oracle(grown).gradients(x2, p2)["weight"][-k:],
            GRAD[dtype],
        )


@_check("candidate.fd", "candidate gradients (float64) equal central finite differences")
def _candidate_fd(ctx: Context) -> None:
    case = ctx.case("random_small", "float64", batch=4)
    dag = case.dag
    src, dst = _candidates(dag, 8, seed=5)
    probe = case.probe()
    dag.forward(case.x)
    dag.backward_accumulate(probe)
    got = dag.candidate_gradients(src, dst)
    grown = _with_edges(dag, src, dst)
    k = src.shape[0]
    base = grown.get_parameters()["weight"]
    fd = np.empty(k)
    for i in range(k):  # k tiny forwards; a conformance check, not a hot path
        vals = []
        for sign in (1.0, -1.0):
            w = base.copy()
            w[-k + i] = sign * FD_EPS
            grown.set_parameters({"weight": w})
            vals.append(float(np.sum(grown.forward(case.x) * probe)))
        fd[i] = (vals[0] - vals[1]) / (2 * FD_EPS)
    err = float(np.max(np.abs(got - fd)) / max(1.0, float(np.max(np.abs(fd)))))
    if not err <= FINITE_DIFFERENCES:
        raise CheckFailure(
            f"random_small [float64] candidate gradients vs central finite differences: "
            f"relative error {err:.3e} > {FINITE_DIFFERENCES:g}",
            error=err,
            ratio=err / FINITE_DIFFERENCES,
        )


@_check(
    "candidate.dense_level",
    "candidate gradients into a level dense enough for the dense-block kernels equal the oracle's",
)
def _candidate_dense_level(ctx: Context) -> None:
    rng = np.random.default_rng(7)
    for dtype in ctx.dtypes:
        dag = ctx.dag(dtype, seed=7)
        ins = dag.add_nodes(24, "input")
        hid = dag.add_nodes(16, "hidden", "tanh")
        out = dag.add_nodes(4, "output")
        src, dst = np.repeat(ins, hid.shape[0]), np.tile(hid, ins.shape[0])
        kept = rng.random(src.shape[0]) < 0.8  # ~307 of 384 cells: a dense block
        dag.add_edges(src[kept], dst[kept])
        dag.add_edges(np.repeat(hid, out.shape[0]), np.tile(out, hid.shape[0]))
        cand_src, cand_dst = src[~kept], dst[~kept]
        x = rng.normal(size=(5, ins.shape[0]))
        probe = rng.normal(size=(5, out.shape[0]))
        dag.forward(x)
        dag.backward_accumulate(probe)
        grown = _with_edges(dag, cand_src, cand_dst)
        compare(
            f"dense level 24 -> 16 at 80% [{dtype}] candidate gradients vs oracle",
            dag.candidate_gradients(cand_src, cand_dst),
            Oracle(grown).gradients(x, probe)["weight"][-cand_src.shape[0] :],
            GRAD[dtype],
        )
