"""Structure: ids, cycles, removal, from_text, bulk edits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from grapheme_core import Activation, CycleError, DagNN, GraphError, NodeKind, ShapeError


def chain(n: int = 4, **kw) -> tuple[DagNN, list[int]]:
    dag = DagNN(dtype="float64", **kw)
    ids = [
        dag.add_input(),
        *[dag.add_hidden(Activation.TANH) for _ in range(n - 2)],
        dag.add_output(),
    ]
    for a, b in itertools.pairwise(ids):
        dag.add_edge(a, b)
    return dag, ids


def snapshot(dag: DagNN):
    eids, src, dst = dag.edges()
    p = dag.get_parameters()
    return (
        dag.version,
        dag.nodes().tolist(),
        eids.tolist(),
        src.tolist(),
        dst.tolist(),
        p["weight"].tolist(),
        p["bias"].tolist(),
        dag.input_nodes,
        dag.output_nodes,
    )


def test_single_edge_cycle_is_rejected_and_graph_unchanged():
    dag, (a, b, c, d) = chain(4)
    before = snapshot(dag)
    with pytest.raises(CycleError) as info:
        dag.add_edge(d, a)
    msg = str(info.value)
    assert f"edge {d} -> {a}" in msg and "unchanged" in msg
    assert info.value.path[0] == a and info.value.path[-1] == d
    assert snapshot(dag) == before


def test_self_loop_is_a_cycle():
    dag, (a, b, *_rest) = chain(3)
    with pytest.raises(CycleError, match=f"edge {b} -> {b}"):
        dag.add_edge(b, b)


def test_edge_to_lower_level_that_is_not_a_cycle_is_accepted():
    dag, (a, b, c, d) = chain(4)
    extra = dag.add_hidden()
    dag.add_edge(c, extra)  # extra sits above a
    dag.add_edge(extra, d)
    dag.add_edge(a, extra)
    assert dag.edge_count == 6


def test_bulk_cycle_names_first_closing_edge_and_changes_nothing():
    dag, (a, b, c, d) = chain(4)
    e = dag.add_hidden()
    before = snapshot(dag)
    # position 0 and 1 are fine; position 2 (d -> e after e -> b... ) closes b->c->d->e->b
    with pytest.raises(CycleError) as info:
        dag.add_edges([a, e, d, c], [e, b, e, a])
    assert f"edge {d} -> {e}" in str(info.value)
    assert "position 2 of the batch" in str(info.value)
    assert snapshot(dag) == before


def test_bulk_cycle_inside_the_batch_only():
    dag = DagNN()
    n = dag.add_nodes(3, "hidden").tolist()
    with pytest.raises(CycleError, match="position 2"):
        dag.add_edges([n[0], n[1], n[2]], [n[1], n[2], n[0]])
    assert dag.edge_count == 0


def test_bulk_add_with_unknown_node_changes_nothing():
    dag, ids = chain(3)
    before = snapshot(dag)
    with pytest.raises(GraphError, match="unknown destination node id 99"):
        dag.add_edges([ids[0], ids[1]], [ids[2], 99])
    assert snapshot(dag) == before


def test_bad_edge_arguments_are_clear_errors():
    dag, ids = chain(3)
    with pytest.raises(ShapeError, match="same length"):
        dag.add_edges([0, 1], [2])
    with pytest.raises(ShapeError, match="length 2"):
        dag.add_edges([0, 0], [1, 2], weights=[1.0, 2.0, 3.0])
    with pytest.raises(GraphError, match="finite"):
        dag.add_edge(0, 2, weight=float("nan"))
    with pytest.raises(ShapeError, match="integer"):
        dag.add_edges([0.5], [2])


def test_multi_edges_are_separate_parameters():
    dag = DagNN(dtype="float64")
    x, y = dag.add_input(), dag.add_output()
    e1 = dag.add_edge(x, y, 0.5)
    e2 = dag.add_edge(x, y, 0.25)
    assert e1 != e2 and dag.edge_count == 2
    assert dag.forward(np.array([2.0]))[0] == pytest.approx(1.5)
    dag.backward_accumulate(np.array([1.0]))
    np.testing.assert_allclose(dag.get_gradients()["weight"], [2.0, 2.0])


def test_ids_are_stable_after_removals_and_never_reused():
    dag = DagNN()
    ins = [dag.add_input() for _ in range(3)]
    hid = [dag.add_hidden() for _ in range(3)]
    out = [dag.add_output() for _ in range(2)]
    for i in ins:
        for h in hid:
            dag.add_edge(i, h)
    for h in hid:
        for o in out:
            dag.add_edge(h, o)
    dag.remove_node(ins[1])
    dag.remove_node(hid[0])
    assert dag.input_nodes == [ins[0], ins[2]]
    assert dag.output_nodes == out
    assert dag.hidden_nodes == hid[1:]
    eids, src, dst = dag.edges()
    assert not set(src.tolist()) & {ins[1], hid[0]} and not set(dst.tolist()) & {ins[1], hid[0]}
    assert dag.edge_count == 2 * 2 + 2 * 2
    new = dag.add_hidden()
    assert new == out[-1] + 1  # ids keep counting up
    assert dag.node_kind(out[0]) is NodeKind.OUTPUT
    with pytest.raises(GraphError, match=f"unknown source node id {ins[1]}"):
        dag.add_edge(ins[1], new)
    # forward takes the remaining two inputs
    assert dag.forward(np.ones((4, 2))).shape == (4, 2)


def test_remove_edge_keeps_weights_and_grads_of_survivors():
    dag, (a, b, c, d) = chain(4)
    skip = dag.add_edge(a, d)
    dag.forward(np.array([[0.3], [-0.7]]))
    dag.backward_accumulate(np.ones((2, 1)))
    eids, _, _ = dag.edges()
    w = dict(zip(eids.tolist(), dag.get_parameters()["weight"].tolist(), strict=True))
    g = dict(zip(eids.tolist(), dag.get_gradients()["weight"].tolist(), strict=True))
    middle = int(eids[1])
    dag.remove_edge(middle)
    eids2, _, _ = dag.edges()
    assert middle not in eids2.tolist() and skip in eids2.tolist()
    assert dag.get_parameters()["weight"].tolist() == [w[e] for e in eids2.tolist()]
    assert dag.get_gradients()["weight"].tolist() == [g[e] for e in eids2.tolist()]
    with pytest.raises(GraphError, match="unknown edge id"):
        dag.remove_edge(middle)


def test_remove_keeps_adam_state_of_survivors():
    dag, (a, b, c, d) = chain(4, optimizer="adam")
    dag.forward(np.array([[0.5]]))
    dag.backward_accumulate(np.array([[1.0]]))
    dag.step(0.01)
    _, arrays = dag.state()
    m_before = arrays["m_weight"].copy()
    eids, _, _ = dag.edges()
    dag.remove_edge(int(eids[0]))
    _, arrays = dag.state()
    np.testing.assert_array_equal(arrays["m_weight"], m_before[1:])
    np.testing.assert_array_equal(arrays["v_bias"].shape, (dag.node_count,))


def test_from_text_structure():
    text = "héllo ☃"
    dag = DagNN.from_text(text)
    assert dag.node_count == len(text) == 7
    assert dag.input_nodes == list(range(7)) and dag.output_nodes == []
    eids, src, dst = dag.edges()
    assert src.tolist() == list(range(6)) and dst.tolist() == list(range(1, 7))
    assert np.all(dag.get_parameters()["weight"] == 1.0)
    assert all(dag.node_kind(n) is NodeKind.INPUT for n in dag.nodes())
    assert DagNN.from_text("").node_count == 0
    assert DagNN.from_text("a").edge_count == 0


def test_counts_and_num_parameters():
    dag, _ = chain(4)
    dag.add_input()
    assert dag.node_count == 5 and dag.edge_count == 3
    assert dag.num_parameters == 3 + 3  # 3 weights + biases of 2 hidden + 1 output


def test_seed_reproducible_initialisation():
    def build(seed):
        dag = DagNN(seed=seed)
        dag.add_nodes(4, "input")
        dag.add_nodes(4, "hidden")
        dag.add_edges(np.repeat(np.arange(4), 4), np.tile(np.arange(4, 8), 4))
        return dag.get_parameters()["weight"]

    np.testing.assert_array_equal(build(3), build(3))
    assert not np.array_equal(build(3), build(4))
    limit = np.sqrt(6 / (4 + 4))
    assert np.all(np.abs(build(0)) <= limit)


def test_unknown_activation_and_kind():
    dag = DagNN()
    with pytest.raises(ValueError, match="unknown activation"):
        dag.add_hidden("swish")
    with pytest.raises(ValueError, match="unknown node kind 'bogus'"):
        dag.add_nodes(1, "bogus")
    with pytest.raises(ValueError, match="count must be an integer"):
        dag.add_nodes(2.7)


def test_empty_edits_are_not_edits():
    dag = DagNN()
    x, y = dag.add_input(), dag.add_output()
    dag.add_edge(x, y)
    dag.forward([1.0])
    version = dag.version
    assert dag.add_nodes(0).size == 0
    dag.remove_edges([])
    assert dag.version == version
    dag.backward_accumulate([1.0])  # the forward is still current


def test_degree_counting_paths_agree():
    from grapheme_core.dagnn import _degrees_after

    rng = np.random.default_rng(0)
    old = rng.integers(0, 50, size=1000)
    for k in (1, 3, 8, 9, 40):
        new = rng.integers(0, 50, size=k)
        expected = (np.bincount(old, minlength=50) + np.bincount(new, minlength=50))[new]
        np.testing.assert_array_equal(_degrees_after(old, new, 50), expected)


def test_levels_stay_exact_through_single_edge_edits():
    from grapheme_core import graph_algorithms

    rng = np.random.default_rng(1)
    dag = DagNN()
    dag.add_nodes(4, "input")
    for _ in range(60):
        nodes = dag.nodes()
        if rng.random() < 0.3:
            dag.add_hidden()
            continue
        a, b = (int(v) for v in rng.choice(nodes, size=2, replace=False))
        try:
            dag.add_edge(a, b)
        except CycleError:
            continue
        s = dag._structure
        fresh = graph_algorithms.longest_path_levels(s.node_count, s.src_slots(), s.dst_slots())
        np.testing.assert_array_equal(s.levels(), fresh)
