"""The small core additions data parallelism needs: gradient access, in-place restore,
structure hashes."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_core import DagNN, Embedding, ShapeError


def _dag(seed: int = 0, dtype: str = "float64") -> DagNN:
    dag = DagNN(dtype=dtype, seed=seed, optimizer="adam")
    ins = dag.add_nodes(3, "input")
    hid = dag.add_nodes(4, "hidden", "tanh")
    out = dag.add_nodes(2, "output")
    dag.add_edges(np.repeat(ins, 4), np.tile(hid, 3))
    dag.add_edges(np.repeat(hid, 2), np.tile(out, 4))
    return dag


def test_set_gradients_mirrors_get_gradients_and_copies() -> None:
    dag = _dag()
    g = np.arange(dag.edge_count, dtype=np.float64)
    dag.set_gradients({"weight": g})
    g[:] = -1.0  # the model holds a copy, not the caller's buffer
    np.testing.assert_array_equal(dag.get_gradients()["weight"], np.arange(dag.edge_count))
    np.testing.assert_array_equal(dag.get_gradients()["bias"], np.zeros(dag.node_count))


def test_set_gradients_bad_input_changes_nothing() -> None:
    dag = _dag()
    before = dag.get_gradients()
    with pytest.raises(ShapeError, match=r"bias gradient must have shape \[9\]"):
        dag.set_gradients({"weight": np.ones(dag.edge_count), "bias": np.ones(3)})
    with pytest.raises(KeyError, match="unknown gradient group"):
        dag.set_gradients({"weights": np.ones(dag.edge_count)})
    after = dag.get_gradients()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_gradient_arrays_are_the_live_arrays() -> None:
    dag = _dag()
    dag.forward(np.ones((2, 3)))
    dag.backward_accumulate(np.ones((2, 2)))
    live = dag.gradient_arrays()["weight"]
    live *= 2.0  # an in-place collective on the numpy backend
    dag2 = _dag()
    dag2.forward(np.ones((2, 3)))
    dag2.backward_accumulate(np.ones((2, 2)))
    np.testing.assert_array_equal(dag.get_gradients()["weight"], 2 * dag2.get_gradients()["weight"])


def test_embedding_gradients_roundtrip_and_validate() -> None:
    emb = Embedding(16, 3, seed=1, dtype="float64")
    g = np.random.default_rng(0).standard_normal((16, 3))
    emb.set_gradients({"table": g})
    np.testing.assert_array_equal(emb.get_gradients()["table"], g)
    assert emb.gradient_arrays()["table"] is emb.grad
    with pytest.raises(ShapeError, match=r"table gradient must have shape \[16, 3\]"):
        emb.set_gradients({"table": np.ones((3, 16))})
    np.testing.assert_array_equal(emb.get_gradients()["table"], g)


def test_restore_state_in_place_keeps_identity_and_moves_version() -> None:
    src = _dag(seed=5)
    src.forward(np.ones((1, 3)))
    src.backward_accumulate(np.ones((1, 2)))
    src.step(0.1)  # Adam moments and a step count to carry over
    meta, arrays = src.state()
    dst = _dag(seed=9)
    version = dst.version
    holder = dst
    dst.restore_state(meta, arrays)
    assert holder is dst and dst.version > version
    for k, v in src.get_parameters().items():
        np.testing.assert_array_equal(dst.get_parameters()[k], v)
    # the same RNG: the next drawn weights agree
    a = src.add_edge(src.input_nodes[0], src.output_nodes[0])
    b = dst.add_edge(dst.input_nodes[0], dst.output_nodes[0])
    assert a == b
    np.testing.assert_array_equal(src.get_parameters()["weight"], dst.get_parameters()["weight"])


def test_restore_state_rejects_inconsistent_snapshot_unchanged() -> None:
    dag = _dag(seed=2)
    meta, arrays = dag.state()
    before = dag.get_parameters()["weight"]
    with pytest.raises(ShapeError):
        dag.restore_state(meta, {**arrays, "weight": np.ones(3)})
    np.testing.assert_array_equal(dag.get_parameters()["weight"], before)


def test_embedding_restore_state() -> None:
    a, b = Embedding(8, 2, seed=1), Embedding(8, 2, seed=2)
    b.restore_state(*a.state())
    np.testing.assert_array_equal(a.get_parameters()["table"], b.get_parameters()["table"])


def test_structure_hash_tracks_topology_not_parameters() -> None:
    a, b = _dag(seed=0), _dag(seed=1)  # different weights, same graph
    assert a.structure_hash() == b.structure_hash()
    a.set_parameters({"weight": np.zeros(a.edge_count)})
    assert a.structure_hash() == b.structure_hash()
    eid = int(a.edges()[0][0])
    a.remove_edge(eid)
    assert a.structure_hash() != b.structure_hash()
    b.remove_edge(eid)
    assert a.structure_hash() == b.structure_hash()
    a.add_hidden("relu")
    b.add_hidden("tanh")  # same ids, another activation
    assert a.structure_hash() != b.structure_hash()
