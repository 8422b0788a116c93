"""Regression tests for bugs found reviewing grapheme_core and the built-in backends."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_core import DagNN, Embedding


def _one_edge(backend: str = "numpy", dtype: str = "float64") -> DagNN:
    dag = DagNN(backend=backend, dtype=dtype)
    i, o = dag.add_input(), dag.add_output()
    dag.add_edge(i, o, 0.5)
    return dag


# -- set_parameters / from_state must copy, never alias the caller's arrays -------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_set_parameters_does_not_alias_the_callers_array(dtype: str) -> None:
    dag = _one_edge(dtype=dtype)
    weight = np.array([0.5], dtype=dtype)
    dag.set_parameters({"weight": weight})
    weight[0] = 7.0  # the caller reuses its buffer: the model must not see it
    assert dag.get_parameters()["weight"][0] == 0.5
    dag.forward([1.0])
    dag.backward_accumulate([1.0])
    dag.step(0.1)  # an in-place optimizer step must not write into the caller's array
    assert weight[0] == 7.0


def test_embedding_set_parameters_does_not_alias_the_callers_table() -> None:
    emb = Embedding(4, 2, dtype="float64")
    table = np.zeros((4, 2))
    emb.set_parameters({"table": table})
    emb.backward([1], np.ones((1, 2)))
    emb.step(1.0)
    np.testing.assert_array_equal(table, 0.0)


def test_from_state_twice_gives_independent_models() -> None:
    dag = _one_edge()
    dag.optimizer = DagNN(optimizer="adam").optimizer
    dag.forward([1.0])
    dag.backward_accumulate([1.0])
    dag.step(0.1)
    meta, arrays = dag.state()
    saved = {k: v.copy() for k, v in arrays.items()}
    first, second = DagNN.from_state(meta, arrays), DagNN.from_state(meta, arrays)
    first.forward([1.0])
    first.backward_accumulate([1.0])
    first.step(0.1)
    np.testing.assert_array_equal(second.get_parameters()["weight"], saved["weight"])
    np.testing.assert_array_equal(second.state()[1]["m_weight"], saved["m_weight"])
    np.testing.assert_array_equal(arrays["weight"], saved["weight"])


# -- foreign tensors and dtypes -------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_torch_tensors_requiring_grad_are_accepted_on_every_backend(backend: str) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip(backend)
    dag = _one_edge(backend)
    y = dag.forward(torch.ones(2, 1, requires_grad=True))
    np.testing.assert_allclose(y, [[0.5], [0.5]])
    gx = dag.backward_accumulate(torch.ones(2, 1, requires_grad=True))
    np.testing.assert_allclose(gx, [[0.5], [0.5]])
    dag.backward_accumulate({dag.output_nodes[0]: torch.ones(2, requires_grad=True)})
    np.testing.assert_allclose(dag.get_gradients()["weight"], [4.0])
    emb = Embedding(8, 2, backend=backend)
    emb.backward([1], torch.ones(1, 2, requires_grad=True))
    np.testing.assert_allclose(emb.get_gradients()["table"][1], [1.0, 1.0])


def test_dtype_may_be_a_numpy_or_torch_dtype_for_dagnn_and_embedding() -> None:
    assert Embedding(4, 2, dtype=np.float64).dtype == "float64"
    assert DagNN(dtype=np.float64).dtype == "float64"
    torch = pytest.importorskip("torch")
    assert DagNN(dtype=torch.float64).dtype == "float64"
    assert Embedding(4, 2, dtype=torch.float32).dtype == "float32"
    with pytest.raises(ValueError, match="float32"):
        DagNN(dtype=torch.float16)


# -- use_backend with a Backend instance ----------------------------------------------------


def test_use_backend_accepts_a_backend_instance_and_nests() -> None:
    from grapheme_backends.numpy_backend import NumpyBackend
    from grapheme_core import get_backend, use_backend

    mine = NumpyBackend()  # not the registry's cached instance
    with use_backend(mine) as active:
        assert active is mine
        assert DagNN().backend is mine
        assert Embedding(4, 2).backend is mine
        assert get_backend() is mine
        with use_backend("numpy"):
            assert DagNN().backend is get_backend("numpy") is not mine
        assert DagNN().backend is mine
    assert DagNN().backend is not mine


# -- to_backend keeps the accumulated gradients ---------------------------------------------


@pytest.mark.parametrize("target", ["numpy", "torch", "jax"])
def test_to_backend_keeps_accumulated_gradients(target: str) -> None:
    pytest.importorskip(target)
    dag = _one_edge()
    dag.forward([[1.0], [2.0]])
    dag.backward_accumulate([[1.0], [1.0]])
    moved = dag.to_backend(target)
    assert moved.backend.name == target
    for key, grad in dag.get_gradients().items():
        np.testing.assert_array_equal(moved.get_gradients()[key], grad)
    assert moved.gradient_norm() == pytest.approx(dag.gradient_norm())
    dag.step(0.1)
    moved.step(0.1)
    np.testing.assert_allclose(moved.get_parameters()["weight"], dag.get_parameters()["weight"])


def test_embedding_clamps_huge_unsigned_indices() -> None:
    emb = Embedding(10, 2)
    big = np.array([np.iinfo(np.uint64).max, 3], dtype=np.uint64)
    assert emb.indices(big).tolist() == [9, 3]
    np.testing.assert_array_equal(emb.lookup(big)[0], emb.lookup([9])[0])


def test_backward_after_1d_forward_accepts_a_batch_of_one() -> None:
    dag = _one_edge()
    dag.forward([2.0])
    gx = dag.backward_accumulate(np.array([[1.0]]))  # [B, n_outputs] with B = 1
    assert gx.shape == (1,)
    gx = dag.backward_accumulate(np.array([1.0]))
    assert gx.shape == (1,)
    np.testing.assert_allclose(dag.get_gradients()["weight"], [4.0])
