"""The performance paths of the NumPy backend and of the build/compile code agree with the
straightforward ones: batched weight gradients, in-place SciPy kernels, radix argsort,
id-to-slot lookups and the caches carried from the cycle check to the next version."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_backends.numpy_backend as nb
from grapheme_core import Activation, DagNN, GraphError, NodeKind
from grapheme_core.generators import random_dag
from grapheme_core.graph_algorithms import longest_path_levels, stable_argsort
from grapheme_core.oracle import Oracle


def _layered(backend, width=24, levels=3, fan_in=5, seed=0, ragged=False) -> DagNN:
    """Uniform in-degree (one contiguous block per level) or ragged in-degrees."""
    rng = np.random.default_rng(seed)
    dag = DagNN(backend=backend, dtype="float64", seed=seed)
    dag.add_nodes(6, NodeKind.INPUT)
    start = 6
    src, dst = [], []
    for lv in range(levels):
        kind = NodeKind.OUTPUT if lv == levels - 1 else NodeKind.HIDDEN
        dag.add_nodes(width, kind, Activation.TANH)
        deg = rng.integers(1, 2 * fan_in, width) if ragged else np.full(width, fan_in)
        dst.append(np.repeat(np.arange(start, start + width), deg))
        src.append(rng.integers(0, start, int(deg.sum())))
        start += width
    dag.add_edges(np.concatenate(src), np.concatenate(dst))
    return dag


def _grads(dag: DagNN, x: np.ndarray, g: np.ndarray):
    dag.zero_grad()
    dag.forward(x)
    gx = dag.backward_accumulate(g)
    return dag.get_gradients(), gx


class _Generic(nb.NumpyBackend):
    """Overrides the generic kernel, which makes backward call it per level."""

    calls = 0

    def edge_grads(self, delta, h, rows, cols):
        type(self).calls += 1
        return super().edge_grads(delta, h, rows, cols)


@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("chunk", [1 << 16, 64, 7])
@pytest.mark.parametrize("min_block", [1024, 4, 1])
def test_batched_weight_gradients_match_the_oracle(ragged, chunk, min_block):
    backend = nb.NumpyBackend()
    backend.edge_chunk_elements = chunk
    backend.min_block_edges = min_block
    dag = _layered(backend, ragged=ragged)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 6))
    g = rng.standard_normal((3, 24))
    grads, gx = _grads(dag, x, g)
    ref = Oracle(dag).gradients(x, g)
    np.testing.assert_allclose(grads["weight"], ref["weight"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["bias"], ref["bias"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gx, ref["input"], rtol=1e-9, atol=1e-12)


def test_block_layout_covers_every_edge_once():
    backend = nb.NumpyBackend()
    backend.min_block_edges = 8
    dag = _layered(backend, ragged=True, width=40)
    compiled = backend.compile(dag.plan, dag.dtype)
    kinds = set()
    for k in compiled.levels:
        n = k.edge_stop - k.edge_start
        seen = np.zeros(n, dtype=int)
        for blk in k.blocks:
            kinds.add(blk.contiguous)
            if blk.contiguous:
                e0 = k.indptr[blk.rows[0]]
                seen[e0 : e0 + blk.src.size] += 1
            else:
                seen[blk.slots.reshape(-1)] += 1
            assert blk.src.shape == (blk.rows.shape[0], blk.degree)
        seen[k.rest_slots] += 1
        assert np.all(seen == 1)
    assert kinds == {False, True}


def test_overriding_edge_grads_is_honoured():
    _Generic.calls = 0
    dag = _layered(_Generic())
    ref = _layered(nb.NumpyBackend())
    x = np.ones((2, 6))
    g = np.ones((2, 24))
    (a, ax), (b, bx) = _grads(dag, x, g), _grads(ref, x, g)
    assert _Generic.calls == 3  # once per level with edges
    np.testing.assert_allclose(a["weight"], b["weight"], rtol=1e-12)
    np.testing.assert_allclose(ax, bx, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scipy_public_fallback_gives_the_same_numbers(monkeypatch, dtype):
    dag = random_dag(seed=3, dtype=dtype)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, len(dag.input_nodes)))
    g = rng.standard_normal((4, len(dag.output_nodes)))
    y_fast = dag.forward(x)
    fast, gx_fast = _grads(dag, x, g)
    monkeypatch.setattr(nb, "_csr_matvecs", None)
    dag2 = random_dag(seed=3, dtype=dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12  # summation order differs (bias first)
    np.testing.assert_allclose(dag2.forward(x), y_fast, rtol=tol, atol=tol)
    slow, gx_slow = _grads(dag2, x, g)
    for key in ("weight", "bias"):
        np.testing.assert_allclose(fast[key], slow[key], rtol=tol, atol=tol)
    np.testing.assert_allclose(gx_fast, gx_slow, rtol=tol, atol=tol)


def test_level_matrices_share_the_plan_ordered_weights():
    dag = _layered(nb.NumpyBackend())
    compiled = dag.backend.compile(dag.plan, dag.dtype)
    for k in compiled.levels:
        if k.matrix is not None:
            assert np.shares_memory(k.matrix.data, compiled.sorted_weight)
            assert k.transpose.data is k.matrix.data
    dag.backend._load_weights(compiled, dag.get_parameters()["weight"])
    np.testing.assert_array_equal(
        compiled.sorted_weight, dag.get_parameters()["weight"][dag.plan.edge_order]
    )


@pytest.mark.parametrize("n", [1, 2, 300, 1 << 16, (1 << 16) + 1, 1 << 20, (1 << 33) + 3])
def test_stable_argsort_is_numpys_stable_argsort(n):
    keys = np.random.default_rng(n % 97).integers(0, n, 5000)
    np.testing.assert_array_equal(stable_argsort(keys, n), np.argsort(keys, kind="stable"))


def test_longest_path_levels_wide_and_narrow_frontiers():
    rng = np.random.default_rng(0)
    n = 400
    src = rng.integers(0, n - 1, 3000)
    dst = src + rng.integers(1, 5, 3000)
    keep = dst < n
    src, dst = src[keep], dst[keep]
    levels = longest_path_levels(n, src, dst)
    assert levels is not None and np.all(levels[src] < levels[dst])
    for node in range(n):  # level = 1 + max level of the predecessors (0 for sources)
        preds = src[dst == node]
        assert levels[node] == (levels[preds].max() + 1 if preds.size else 0)
    assert longest_path_levels(3, np.array([0, 1, 2]), np.array([1, 2, 0])) is None


def test_id_lookups_after_removals_and_unknown_ids():
    dag = DagNN()
    ids = dag.add_nodes(200, NodeKind.HIDDEN)
    for nid in (0, 57, 58, 199):
        dag.remove_node(int(nid))
    live = np.setdiff1d(ids, [0, 57, 58, 199])
    src = np.repeat(live[:-1], 3)
    dst = np.repeat(live[1:], 3)
    eids = dag.add_edges(src, dst)  # a bulk lookup: the dense-table path
    _, s, d = dag.edges()
    np.testing.assert_array_equal(s, src)
    np.testing.assert_array_equal(d, dst)
    dag.add_edge(int(live[0]), int(live[-1]))  # a single lookup: binary search
    for bad in (57, 0, 199, 10_000, -1):
        with pytest.raises(GraphError, match=f"unknown source node id {bad}"):
            dag.add_edges(np.append(src, bad), np.append(dst, live[-1]))
    assert dag.edge_count == len(eids) + 1


def test_cached_slots_and_levels_follow_every_edit():
    dag = DagNN(dtype="float64")
    dag.add_nodes(4, NodeKind.INPUT)
    dag.add_nodes(6, NodeKind.HIDDEN, Activation.TANH)
    dag.add_edges([0, 1, 2, 4, 5], [4, 5, 6, 7, 8])
    s = dag._structure
    dag.add_nodes(2, NodeKind.OUTPUT)  # slots carried over, levels extended
    dag.add_edge(8, 10)  # single edge on a higher level: levels kept
    dag.add_edge(3, 4)  # single edge, path check
    dag.add_edges([9, 7], [11, 9])
    dag.remove_edge(int(dag.edges()[0][1]))
    dag.remove_node(6)
    dag.add_edges([10, 3], [11, 11])
    src_slots, dst_slots = s.src_slots(), s.dst_slots()
    assert not src_slots.flags.writeable
    np.testing.assert_array_equal(src_slots, np.searchsorted(s.node_ids, s.src))
    np.testing.assert_array_equal(dst_slots, np.searchsorted(s.node_ids, s.dst))
    fresh = longest_path_levels(s.node_count, src_slots, dst_slots)
    np.testing.assert_array_equal(s.levels(), fresh)
