"""Reverse mode: finite differences, the oracle, accumulation, optimizers, clipping."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_core import Activation, DagNN, NodeKind
from grapheme_core.generators import random_dag
from grapheme_core.gradcheck import check_dagnn_gradients
from grapheme_core.oracle import Oracle


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_200_node_dag_gradients_match_finite_differences(seed):
    dag = random_dag(n_inputs=8, n_hidden=180, n_outputs=12, seed=seed, dtype="float64")
    assert dag.node_count >= 200
    acts = {dag.activation(n) for n in dag.hidden_nodes + dag.output_nodes}
    assert acts == set(Activation)
    _, src, dst = dag.edges()
    assert len(set(zip(src.tolist(), dst.tolist(), strict=True))) < dag.edge_count  # multi-edges
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 8))
    probe = rng.standard_normal((3, 12))
    result = check_dagnn_gradients(dag, x, probe)
    assert result.worst < 1e-6, result


def test_gradients_match_the_oracle():
    dag = random_dag(seed=5, dtype="float64")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, len(dag.input_nodes)))
    g = rng.standard_normal((4, len(dag.output_nodes)))
    dag.forward(x)
    gx = dag.backward_accumulate(g)
    ref = Oracle(dag).gradients(x, g)
    grads = dag.get_gradients()
    np.testing.assert_allclose(grads["weight"], ref["weight"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["bias"], ref["bias"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gx, ref["input"], rtol=1e-9, atol=1e-12)


def test_nonlinear_inputs_with_incoming_edges_gradcheck():
    dag = DagNN.from_text("abcd", dtype="float64", seed=3)
    a, b, c, d = dag.input_nodes
    h = dag.add_hidden(Activation.TANH)
    o = dag.add_output(Activation.SIGMOID)
    s = dag.add_input(Activation.TANH)
    dag.add_edges([a, c, d, h, s, s], [h, h, h, o, b, o])
    rng = np.random.default_rng(0)
    result = check_dagnn_gradients(dag, rng.standard_normal((2, 5)), rng.standard_normal((2, 1)))
    assert result.worst < 1e-6, result
    assert dag.get_gradients()["bias"][np.isin(dag.nodes(), dag.input_nodes)].tolist() == [0.0] * 5


def test_float32_gradients_close_to_float64():
    d64 = random_dag(seed=7, dtype="float64")
    meta, arrays = d64.state()
    d32 = DagNN.from_state({**meta, "dtype": "float32"}, arrays)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, len(d64.input_nodes)))
    g = rng.standard_normal((3, len(d64.output_nodes)))
    for dag in (d64, d32):
        dag.forward(x)
        dag.backward_accumulate(g)
    for key in ("weight", "bias"):
        got = d32.get_gradients()[key]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, d64.get_gradients()[key], rtol=1e-4, atol=1e-5)


def test_backward_accumulates_and_zero_grad_resets():
    dag = random_dag(n_hidden=30, n_outputs=3, seed=1, dtype="float64")
    x = np.random.default_rng(1).standard_normal((2, len(dag.input_nodes)))
    g = np.ones((2, 3))
    dag.forward(x)
    dag.backward_accumulate(g)
    once = dag.get_gradients()
    dag.backward_accumulate(g)
    twice = dag.get_gradients()
    for k in once:
        np.testing.assert_allclose(twice[k], 2 * once[k])
    dag.zero_grad()
    assert dag.gradient_norm() == 0.0


def test_mapping_gradient_equals_dense_gradient():
    dag = random_dag(n_hidden=20, n_outputs=3, seed=4, dtype="float64")
    x = np.random.default_rng(4).standard_normal((2, len(dag.input_nodes)))
    out = dag.output_nodes
    dag.forward(x)
    gx_dense = dag.backward_accumulate(np.array([[0.0, 1.0, 0.0], [0.0, -2.0, 0.0]]))
    dense = dag.get_gradients()
    dag.zero_grad()
    gx_map = dag.backward_accumulate({out[1]: [1.0, -2.0]})
    np.testing.assert_allclose(gx_map, gx_dense)
    for k, v in dag.get_gradients().items():
        np.testing.assert_allclose(v, dense[k])


def test_one_dimensional_forward_and_backward():
    dag = random_dag(n_hidden=10, n_outputs=2, seed=2, dtype="float64")
    x = np.random.default_rng(0).standard_normal(len(dag.input_nodes))
    y = dag.forward(x)
    assert y.shape == (2,)
    gx = dag.backward_accumulate(np.array([1.0, 0.0]))
    assert gx.shape == x.shape


def test_sgd_step_is_exact():
    dag = random_dag(n_hidden=10, n_outputs=2, seed=3, dtype="float64")
    dag.forward(np.ones((1, len(dag.input_nodes))))
    dag.backward_accumulate(np.ones((1, 2)))
    p, g = dag.get_parameters(), dag.get_gradients()
    dag.step(0.1)
    for k in p:
        np.testing.assert_allclose(dag.get_parameters()[k], p[k] - 0.1 * g[k], rtol=1e-15)
    assert dag.get_gradients()["weight"].tolist() == g["weight"].tolist()  # step keeps grads


def test_adam_steps_follow_the_formula():
    dag = random_dag(n_hidden=10, n_outputs=2, seed=3, dtype="float64", optimizer="adam")
    w = dag.get_parameters()["weight"]
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t in (1, 2, 3):
        dag.zero_grad()
        dag.forward(np.full((1, len(dag.input_nodes)), 0.5 * t))
        dag.backward_accumulate(np.ones((1, 2)))
        g = dag.get_gradients()["weight"]
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        dag.step(0.01)
        np.testing.assert_allclose(dag.get_parameters()["weight"], w, rtol=1e-12)


def test_gradient_norm_and_clipping():
    dag = random_dag(n_hidden=10, n_outputs=2, seed=3, dtype="float64")
    dag.forward(np.ones((1, len(dag.input_nodes))))
    dag.backward_accumulate(np.full((1, 2), 50.0))
    g = dag.get_gradients()
    expected = np.sqrt(np.sum(g["weight"] ** 2) + np.sum(g["bias"] ** 2))
    assert dag.gradient_norm() == pytest.approx(expected)
    assert dag.clip_gradients(1.0) == pytest.approx(expected)
    assert dag.gradient_norm() == pytest.approx(1.0)
    np.testing.assert_allclose(dag.get_gradients()["weight"], g["weight"] / expected, rtol=1e-9)
    with pytest.raises(ValueError):
        dag.clip_gradients(0.0)
    with pytest.raises(ValueError, match="learning rate"):
        dag.step(float("nan"))


def test_set_parameters_validates():
    dag = random_dag(n_hidden=5, n_outputs=1, seed=0)
    with pytest.raises(ValueError, match="shape"):
        dag.set_parameters({"weight": np.zeros(3)})
    with pytest.raises(KeyError, match="unknown parameter"):
        dag.set_parameters({"weights": np.zeros(3)})
    bias = np.zeros(dag.node_count)
    bias[0] = 1.0  # node 0 is an input
    with pytest.raises(ValueError, match="input nodes have no bias"):
        dag.set_parameters({"bias": bias})
    assert dag.node_kind(0) is NodeKind.INPUT


def test_training_reduces_loss():
    dag = random_dag(
        n_inputs=4,
        n_hidden=40,
        n_outputs=2,
        seed=9,
        dtype="float64",
        optimizer="adam",
        activations=(Activation.TANH,),
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4))
    t = np.stack([np.sin(x[:, 0]), x[:, 1] * 0.5], axis=1)
    losses = []
    for _ in range(300):
        dag.zero_grad()
        y = dag.forward(x)
        losses.append(float(np.mean((y - t) ** 2)))
        dag.backward_accumulate(2 * (y - t) / y.size)
        dag.step(0.03)
    assert losses[-1] < 0.01 * losses[0]


def test_backward_uses_the_weights_of_its_forward_pass():
    x = np.random.default_rng(0).standard_normal((2, 8))
    a = random_dag(n_hidden=30, n_outputs=3, seed=6, dtype="float64")
    b = random_dag(n_hidden=30, n_outputs=3, seed=6, dtype="float64")
    for dag in (a, b):
        dag.forward(x)
        dag.backward_accumulate(np.ones((2, 3)))
    b.zero_grad()
    b.forward(x)
    b.step(0.5)  # in-place update between forward and backward
    b.backward_accumulate(np.ones((2, 3)))
    np.testing.assert_array_equal(b.get_gradients()["weight"], a.get_gradients()["weight"])
