"""Forward semantics, plan compilation and invalidation, input validation."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_core import Activation, DagNN, NodeKind, ShapeError, StateError
from grapheme_core.generators import random_dag
from grapheme_core.oracle import Oracle


def diamond() -> tuple[DagNN, list[int]]:
    dag = DagNN(dtype="float64")
    x = dag.add_input()
    l, r = dag.add_hidden(Activation.TANH), dag.add_hidden(Activation.SIGMOID)
    y = dag.add_output()
    dag.add_edges([x, x, l, r, x], [l, r, y, y, y], weights=[0.5, -1.0, 2.0, 1.5, 0.25])
    return dag, [x, l, r, y]


def test_node_value_formula():
    dag, (x, l, r, y) = diamond()
    dag.set_parameters({"bias": [0.0, 0.1, -0.2, 0.3]})
    v = 0.7
    hl = np.tanh(0.5 * v + 0.1)
    hr = 1 / (1 + np.exp(-(-1.0 * v - 0.2)))
    expected = 2.0 * hl + 1.5 * hr + 0.25 * v + 0.3
    assert dag.forward(np.array([v]))[0] == pytest.approx(expected, rel=1e-12)


def test_levels_are_longest_paths():
    dag, (x, l, r, y) = diamond()
    plan = dag.plan
    level_of = {}
    for lv in range(plan.num_levels):
        for pos in range(*plan.level_offsets[lv : lv + 2]):
            level_of[int(dag.nodes()[plan.order[pos]])] = lv
    assert level_of == {x: 0, l: 1, r: 1, y: 2}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_dag_matches_oracle(dtype):
    dag = random_dag(seed=1, dtype=dtype)
    x = np.random.default_rng(0).standard_normal((5, len(dag.input_nodes)))
    y = dag.forward(x)
    assert y.dtype == np.dtype(dtype)
    expected = Oracle(dag).forward(x)
    if dtype == "float64":
        np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_float32_agrees_with_float64():
    d64 = random_dag(seed=2, dtype="float64")
    d32 = DagNN.from_state({**d64.state()[0], "dtype": "float32"}, d64.state()[1])
    x = np.random.default_rng(1).standard_normal((4, len(d64.input_nodes)))
    np.testing.assert_allclose(d32.forward(x), d64.forward(x), rtol=1e-5, atol=1e-6)


def test_disconnected_and_empty_graphs():
    dag = DagNN()
    assert dag.forward(np.zeros((3, 0))).shape == (3, 0)
    a = dag.add_input()
    o = dag.add_output(Activation.SIGMOID)
    dag.set_parameters({"bias": [0.0, 0.0]})
    y = dag.forward(np.array([[5.0]]))
    assert y.tolist() == [[0.5]]  # output not connected: sigmoid(bias)
    del a, o


def test_nonlinear_input_nodes_and_edges_into_inputs():
    dag = DagNN.from_text("abc", dtype="float64")
    for nid in dag.input_nodes:
        assert dag.node_kind(nid) is NodeKind.INPUT
    y_nodes = dag.add_output()
    dag.add_edge(dag.input_nodes[-1], y_nodes, 1.0)
    # values chain: h2 = x2 + h1 = x2 + x1 + x0
    assert dag.forward(np.array([1.0, 2.0, 4.0]))[0] == pytest.approx(7.0)


def test_plan_is_invalidated_by_every_edit():
    dag, (x, l, r, y) = diamond()
    xs = np.array([[0.3], [-1.2]])
    edits = [
        lambda: dag.add_hidden(Activation.LEAKY_RELU),
        lambda: dag.add_edge(x, dag.hidden_nodes[-1], 0.7),
        lambda: dag.add_edges([dag.hidden_nodes[-1]], [y], [1.3]),
        lambda: dag.remove_edge(int(dag.edges()[0][0])),
        lambda: dag.remove_node(r),
        lambda: dag.add_nodes(2, NodeKind.OUTPUT, Activation.RELU),
    ]
    for edit in edits:
        plan_before = dag.plan
        version_before = dag.version
        dag.forward(xs)
        edit()
        assert dag.version > version_before
        assert dag.plan is not plan_before and dag.plan.version == dag.version
        np.testing.assert_allclose(dag.forward(xs), Oracle(dag).forward(xs), rtol=1e-12)


def test_new_nodes_are_never_skipped():
    dag, (x, l, r, y) = diamond()
    before = dag.forward(np.array([1.0]))[0]
    h = dag.add_hidden(Activation.LINEAR)
    dag.add_edges([x, h], [h, y], [1.0, 10.0])
    after = dag.forward(np.array([1.0]))[0]
    assert after == pytest.approx(before + 10.0)


def test_plan_is_cached_between_forwards():
    dag, _ = diamond()
    p = dag.plan
    dag.forward(np.array([1.0]))
    assert dag.plan is p


def test_wrong_input_shapes_are_clear_errors():
    dag, _ = diamond()
    with pytest.raises(ShapeError, match=r"shape \[batch, 1\] or \[1\].*got shape \(2, 3\)"):
        dag.forward(np.zeros((2, 3)))
    with pytest.raises(ShapeError):
        dag.forward(np.zeros((2, 1, 1)))
    dag.forward(np.zeros((2, 1)))
    with pytest.raises(ShapeError, match=r"expects dL/dy of shape \[2, 1\]"):
        dag.backward_accumulate(np.zeros((3, 1)))
    with pytest.raises(Exception, match="not an output node"):
        dag.backward_accumulate({0: [1.0, 1.0]})


def test_backward_requires_a_current_forward():
    dag, (x, *_rest) = diamond()
    with pytest.raises(StateError, match="forward"):
        dag.backward_accumulate(np.zeros((1, 1)))
    dag.forward(np.zeros((1, 1)))
    dag.add_hidden()
    with pytest.raises(StateError, match="edited after the last forward"):
        dag.backward_accumulate(np.zeros((1, 1)))


def test_dtype_validation():
    with pytest.raises(ValueError, match="float32"):
        DagNN(dtype="int8")
    assert DagNN(dtype=np.float64).dtype == "float64"
