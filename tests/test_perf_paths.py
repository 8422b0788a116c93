"""The performance paths of issue 13 compute what the oracle computes: dense blocks
(numpy, torch and jax), runs of small levels (deep graphs), and the jax backend's reuse of
compiled programs across edits within capacity and across batch sizes of one bucket."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_backends.numpy_backend import NumpyBackend
from grapheme_core import Activation, DagNN, NodeKind
from grapheme_core.dense import dense_layout
from grapheme_core.oracle import Oracle


def _dense_net(backend, shuffled: bool, seed: int = 0) -> DagNN:
    """7 inputs -> 5 tanh (fully connected, row by row) -> 4 sigmoid outputs; with
    ``shuffled`` the output layer's edges come in random order, with two multi-edges and
    three skip edges from inputs (non-contiguous source columns, scattered cells)."""
    rng = np.random.default_rng(seed)
    dag = DagNN(backend=backend, dtype="float64", seed=seed)
    inp = dag.add_nodes(7, NodeKind.INPUT)
    hid = dag.add_nodes(5, NodeKind.HIDDEN, Activation.TANH)
    out = dag.add_nodes(4, NodeKind.OUTPUT, Activation.SIGMOID)
    dag.add_edges(np.tile(inp, 5), np.repeat(hid, 7))
    src, dst = np.tile(hid, 4), np.repeat(out, 5)
    if shuffled:
        src = np.concatenate([src, hid[:2], inp[:3]])
        dst = np.concatenate([dst, out[:2], out[1:4]])
        p = rng.permutation(src.shape[0])
        src, dst = src[p], dst[p]
    dag.add_edges(src, dst)
    dag.set_parameters({"bias": rng.standard_normal(dag.node_count) * (dag.nodes() >= 7)})
    return dag


def _torch_backend():
    pytest.importorskip("torch")
    from grapheme_backends.torch_backend import TorchBackend

    return TorchBackend()


def _jax_backend():
    pytest.importorskip("jax")
    from grapheme_backends.jax_backend import JaxBackend

    return JaxBackend()


def _backend(name: str, dense: bool):
    makers = {"numpy": NumpyBackend, "torch": _torch_backend, "jax": _jax_backend}
    backend = makers[name]()
    backend.min_dense_edges = 1
    backend.dense_threshold = 0.0 if dense else 2.0  # everything dense / nothing dense
    return backend


#: jax compiles XLA programs: slow
DENSE_BACKENDS = ["numpy", "torch", pytest.param("jax", marks=pytest.mark.slow)]


@pytest.mark.parametrize("name", DENSE_BACKENDS)
@pytest.mark.parametrize("shuffled", [False, True])
def test_dense_blocks_match_the_oracle_and_the_sparse_path(name, shuffled):
    rng = np.random.default_rng(3)
    x, g = rng.standard_normal((3, 7)), rng.standard_normal((3, 4))
    results = []
    for dense in (True, False):
        dag = _dense_net(_backend(name, dense), shuffled)
        levels = dag._compiled_plan().levels
        assert sum(getattr(k, "dense", None) is not None for k in levels) == (2 if dense else 0)
        dag.zero_grad()
        y = dag.forward(x)
        gx = dag.backward_accumulate(g)
        results.append((y, gx, dag.get_gradients(), dag))
    (y, gx, grads, dag), (y_s, gx_s, grads_s, _) = results
    oracle = Oracle(dag)
    ref = oracle.gradients(x, g)
    np.testing.assert_allclose(y, oracle.forward(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["weight"], ref["weight"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["bias"], ref["bias"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gx, ref["input"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(y, y_s, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["weight"], grads_s["weight"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gx, gx_s, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", DENSE_BACKENDS)
def test_dense_backward_uses_the_forward_weights_after_a_step(name):
    """The dense W_l of the forward is what backward differentiates, even after an
    optimizer step moved the weights (torch views the weight vector: steps are out of
    place)."""
    rng = np.random.default_rng(4)
    x, g = rng.standard_normal((2, 7)), rng.standard_normal((2, 4))
    dag = _dense_net(_backend(name, True), shuffled=False)
    before = Oracle(dag).gradients(x, g)
    dag.forward(x)
    dag.backward_accumulate(g)
    w0 = dag.get_parameters()["weight"]
    dag.step(0.1)
    assert not np.allclose(dag.get_parameters()["weight"], w0)
    dag.zero_grad()
    dag.backward_accumulate(g)  # the same forward cache; the weights moved since
    np.testing.assert_allclose(dag.get_gradients()["weight"], before["weight"], rtol=1e-9)


def test_dense_layout_policy():
    dag = _dense_net(NumpyBackend(), shuffled=True)
    plan = dag.plan
    assert dense_layout(plan, 1, threshold=0.5, min_edges=1).identity
    shuffled = dense_layout(plan, 2, threshold=0.5, min_edges=1)
    assert shuffled is not None and not shuffled.identity and shuffled.duplicates
    assert dense_layout(plan, 2, threshold=1.0, min_edges=1) is None  # not every cell
    assert dense_layout(plan, 1, min_edges=1000) is None  # too few edges
    assert dense_layout(plan, 1, max_cells=10, min_edges=1) is None  # too big
    assert dense_layout(plan, 0) is None  # the inputs: no edges


class _NoDense(NumpyBackend):
    def dense_layout(self, plan, level):
        return None


def test_dense_seam_can_be_overridden():
    dag = _dense_net(_NoDense(), shuffled=False)
    assert all(k.dense is None for k in dag._compiled_plan().levels)


def _chain(backend, length: int) -> DagNN:
    dag = DagNN.from_text("ab" * (length // 2), backend=backend, dtype="float64", seed=1)
    out = dag.add_output(Activation.TANH)
    dag.add_edge(dag.input_nodes[-1], out, 0.5)
    dag.add_edges(dag.input_nodes[: length // 2], dag.input_nodes[length // 2 :], 0.01)
    return dag


def test_deep_chain_with_runs_of_small_levels_matches_the_oracle():
    dag = _chain(NumpyBackend(), 60)
    compiled = dag._compiled_plan()
    assert compiled.edge_runs and len(compiled.run_levels) > 50
    rng = np.random.default_rng(5)
    x, g = rng.standard_normal((2, 60)) * 0.1, rng.standard_normal((2, 1))
    dag.forward(x)
    gx = dag.backward_accumulate(g)
    ref = Oracle(dag).gradients(x, g)
    np.testing.assert_allclose(dag.get_gradients()["weight"], ref["weight"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gx, ref["input"], rtol=1e-9, atol=1e-12)


# -- jax: programs reused across edits and batch sizes ----------------------------------------
@pytest.fixture(scope="module")
def jax_backend():
    pytest.importorskip("jax")
    from grapheme_backends.jax_backend import JaxBackend

    return JaxBackend()


def _layers(backend, seed=0) -> DagNN:
    rng = np.random.default_rng(seed)
    dag = DagNN(backend=backend, dtype="float64", seed=seed)
    dag.add_nodes(8, NodeKind.INPUT)
    dag.add_nodes(32, NodeKind.HIDDEN, Activation.TANH)
    dag.add_nodes(16, NodeKind.OUTPUT, Activation.TANH)
    dst = np.concatenate([np.repeat(np.arange(8, 40), 6), np.repeat(np.arange(40, 56), 6)])
    src = np.concatenate([rng.integers(0, 8, 32 * 6), rng.integers(8, 40, 16 * 6)])
    dag.add_edges(src, dst)
    return dag


def _swap_edges(dag: DagNN, rng, k: int) -> None:
    """SET-like: remove ``k`` edges into the output layer, add ``k`` new ones there."""
    ids, _, dst = dag.edges()
    pick = rng.choice(np.flatnonzero(dst >= 40), size=k, replace=False)
    new_dst = dst[pick]
    dag.remove_edges(ids[pick])
    dag.add_edges(rng.integers(8, 40, k), new_dst)


def _step(dag, x, g):
    dag.zero_grad()
    dag.forward(x)
    return dag.backward_accumulate(g)


@pytest.mark.slow
def test_jax_edit_within_capacity_reuses_the_compiled_program(jax_backend):
    dag = _layers(jax_backend)
    rng = np.random.default_rng(6)
    x, g = rng.standard_normal((4, 8)), rng.standard_normal((4, 16))
    _step(dag, x, g)
    programs = set()
    for _ in range(6):  # capacity grows during the first edits at most, then holds
        _swap_edges(dag, rng, 3)
        _step(dag, x, g)
        programs.add(id(dag._compiled_plan().traces))
    traces = dag._compiled_plan().traces
    settled = dict(traces)
    for _ in range(3):
        _swap_edges(dag, rng, 3)
        gx = _step(dag, x, g)
        assert dag._compiled_plan().traces is traces  # the same program
    assert traces == settled  # and no retrace: nothing was compiled for these edits
    assert len(programs) <= 4
    ref = Oracle(dag).gradients(x, g)
    np.testing.assert_allclose(dag.get_gradients()["weight"], ref["weight"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(gx, ref["input"], rtol=1e-8, atol=1e-10)


@pytest.mark.slow
def test_jax_batch_sizes_of_one_bucket_share_a_program(jax_backend):
    from grapheme_backends.jax_backend import batch_bucket

    assert batch_bucket(13) == batch_bucket(16) == 16 and batch_bucket(3) == 3
    dag = _layers(jax_backend, seed=2)
    rng = np.random.default_rng(7)
    seen = []
    for batch in (16, 13, 15):
        x, g = rng.standard_normal((batch, 8)), rng.standard_normal((batch, 16))
        gx = _step(dag, x, g)
        seen.append(dict(dag._compiled_plan().traces))  # shared with earlier graphs
        ref = Oracle(dag).gradients(x, g)
        np.testing.assert_allclose(dag.forward(x), Oracle(dag).forward(x), rtol=1e-10)
        np.testing.assert_allclose(dag.get_gradients()["bias"], ref["bias"], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(gx, ref["input"], rtol=1e-8, atol=1e-10)
        assert gx.shape == (batch, 8)
    assert seen[0] == seen[1] == seen[2]  # 13 and 15 ran the program compiled for 16


# -- runs of small levels on host kernels (numpy; torch on the CPU) --------------------------
def _mixed_chain(backend, length: int = 40, seed: int = 2) -> DagNN:
    """A chain of ``length`` levels whose activations change along it (blocks of equal
    activation of several lengths), one level mixing two activations, skip edges and a
    repeated edge: every branch of the blocked reverse sweep."""
    rng = np.random.default_rng(seed)
    dag = DagNN(backend=backend, dtype="float64", seed=seed)
    inp = dag.add_nodes(3, NodeKind.INPUT)
    acts = [Activation.TANH] * 5 + [Activation.SIGMOID] * 3 + [Activation.LINEAR] * 2
    prev = inp
    for i in range(length):
        act = acts[i % len(acts)]
        ids = dag.add_nodes(2, NodeKind.OUTPUT if i == length - 1 else NodeKind.HIDDEN, act)
        if i == length // 2:  # a level of two activations
            ids = np.concatenate([ids, dag.add_nodes(1, NodeKind.HIDDEN, Activation.RELU)])
        dag.add_edges(np.repeat(prev, ids.shape[0]), np.tile(ids, prev.shape[0]))
        prev = ids
    ids, src, dst = dag.edges()
    skip = rng.integers(0, ids.shape[0], 12)
    dag.add_edges(src[skip], dst[skip])  # multi-edges
    dag.add_edges(inp[:2], dst[-2:])  # skip edges from the inputs to the outputs
    return dag


@pytest.mark.parametrize("name", ["numpy", "torch"])
@pytest.mark.parametrize("block", [4, 1 << 14])
def test_host_runs_match_the_oracle(name, block, monkeypatch):
    """Small derivative blocks (several per run, with tiny weight-gradient chunks so the
    batched blocks of equal in-degree run too) and one block per run give the oracle's
    gradients; the torch plan really runs its levels on the host."""
    from grapheme_backends import host_levels

    monkeypatch.setattr(host_levels, "DERIVATIVE_BLOCK", block)
    backend = NumpyBackend() if name == "numpy" else _torch_backend()
    if block == 4:
        if name == "numpy":
            backend.edge_chunk_elements, backend.min_block_edges = 8, 2
        else:
            backend.host_chunk_elements, backend.host_min_block_edges = 8, 2
    dag = _mixed_chain(backend)
    schedule = dag._compiled_plan().schedule
    assert any(isinstance(s, host_levels.HostRun) for s in schedule)
    rng = np.random.default_rng(6)
    x, g = rng.standard_normal((3, 3)), rng.standard_normal((3, 2))
    y = dag.forward(x)
    gx = dag.backward_accumulate(g)
    oracle = Oracle(dag)
    ref = oracle.gradients(x, g)
    np.testing.assert_allclose(y, oracle.forward(x), rtol=1e-12, atol=1e-12)
    for key in ("weight", "bias"):
        np.testing.assert_allclose(dag.get_gradients()[key], ref[key], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gx, ref["input"], rtol=1e-9, atol=1e-12)


def test_torch_plan_mixing_host_csr_and_dense_levels_matches_the_oracle():
    """One plan with host levels, torch CSR levels (merged multi-edges) and a dense
    level: entries of every kind interleave in one layout."""
    from grapheme_backends import host_levels

    backend = _torch_backend()
    backend.host_level_edges = 6  # the chain's 2x2 levels on the host, wider ones on torch
    backend.min_dense_edges, backend.dense_threshold = 4, 0.9
    dag = _mixed_chain(backend, length=12)
    wide = dag.add_nodes(4, NodeKind.HIDDEN, Activation.TANH)
    out = dag.output_nodes
    dag.add_edges(np.repeat(dag.input_nodes, 4), np.tile(wide, 3))  # dense: 3x4 cells
    dag.add_edges(np.concatenate([wide, wide[:2]]), np.concatenate([np.repeat(out[:1], 4), out]))
    compiled = dag._compiled_plan()
    kinds = {type(s).__name__ for s in compiled.schedule}
    assert kinds == {"HostRun", "_Level"}
    torch_levels = [s for s in compiled.schedule if not isinstance(s, host_levels.HostRun)]
    assert any(lv.dense is not None for lv in torch_levels)
    assert any(lv.crow is not None for lv in torch_levels)
    rng = np.random.default_rng(7)
    x, g = rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    dag.forward(x)
    gx = dag.backward_accumulate(g)
    ref = Oracle(dag).gradients(x, g)
    np.testing.assert_allclose(dag.get_gradients()["weight"], ref["weight"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gx, ref["input"], rtol=1e-9, atol=1e-12)
