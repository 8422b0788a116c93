"""Topology rules on every installed backend: acyclic, edge counts kept, survivors' state
bit-identical, node growth function-preserving, RigL's candidate gradients and choices."""

from __future__ import annotations

import json

import numpy as np
import pytest

from grapheme_backends.numpy_backend import NumpyBackend
from grapheme_core import CapabilityError, DagNN, GraphError, list_backends
from grapheme_core.graph_algorithms import longest_path_levels
from grapheme_core.topology import (
    SET,
    MagnitudePrune,
    NodeGrowth,
    Region,
    RigL,
    layered_dag,
    pair_densities,
)

AVAILABLE = {r.name for r in list_backends() if r.available}
BACKENDS = [b for b in ("numpy", "torch", "jax") if b in AVAILABLE]
SIZES = [6, 16, 12, 3]
X = np.random.default_rng(0).normal(size=(8, SIZES[0]))
PROBE = np.random.default_rng(1).normal(size=(8, SIZES[-1]))


def _model(backend: str, density: float = 0.3, dtype: str = "float64", seed: int = 3, **kw):
    return layered_dag(
        SIZES, density, backend=backend, dtype=dtype, optimizer="adam", seed=seed, **kw
    )


def _train_step(dag: DagNN, lr: float = 0.01) -> None:
    dag.forward(X)
    dag.backward_accumulate(PROBE)
    dag.step(lr)


def _acyclic(dag: DagNN) -> bool:
    s = dag._structure
    return longest_path_levels(s.node_count, s.src_slots(), s.dst_slots()) is not None


def _group_counts(dag: DagNN, layers) -> list[int]:
    return [g.edges.shape[0] for g in Region(dag, layers).groups]


def _edge_state(dag: DagNN) -> dict[int, tuple[float, float, float, float]]:
    """Per edge id: (weight, grad, adam m, adam v)."""
    meta, arrays = dag.state()
    ids = arrays["edge_id"]
    grad = dag.get_gradients()["weight"]
    cols = (arrays["weight"], grad, arrays["m_weight"], arrays["v_weight"])
    return {int(e): tuple(float(c[i]) for c in cols) for i, e in enumerate(ids)}


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    return request.param


NO_JAX = [b for b in BACKENDS if b != "jax"]


def _rules(layers):
    return [
        SET(drop_fraction=0.3, layers=layers, seed=1),
        RigL(drop_fraction=0.3, layers=layers, seed=1),
        SET(drop_fraction=0.25, seed=2),  # whole graph: order-legal pairs anywhere
        RigL(drop_fraction=0.25, seed=2),
    ]


def _check_update(dag: DagNN, rule, layers) -> None:
    """Run ``rule`` once on a trained ``dag`` and check everything it promises."""
    region_layers = layers if rule.layers is not None else None
    before = _edge_state(dag)
    counts = _group_counts(dag, region_layers)
    edges = dag.edge_count
    report = rule.update(dag, step=3)
    assert report.removed == report.added > 0
    assert dag.edge_count == edges == report.edges
    assert _group_counts(dag, region_layers) == counts  # every group keeps its count
    assert _acyclic(dag)
    after = _edge_state(dag)
    survivors = before.keys() & after.keys()
    assert len(survivors) == edges - report.removed
    for eid in survivors:
        assert after[eid] == before[eid]  # weight, grad, m, v: bit for bit
    new = sorted(after.keys() - before.keys())
    assert len(new) == report.added
    for eid in new:
        w, g, m, v = after[eid]
        assert (g, m, v) == (0.0, 0.0, 0.0)
        if isinstance(rule, RigL):
            assert w == 0.0
    if region_layers is not None:  # the new edges are inside the region
        _, src, dst = dag.edges()
        mask = np.isin(dag._structure.edge_ids, new)
        s, d = src[mask], dst[mask]
        pairs = [np.isin(s, layers[i]) & np.isin(d, layers[i + 1]) for i in range(3)]
        assert np.all(np.any(pairs, axis=0))


def _trained(backend: str, **kw):
    dag, layers = _model(backend, **kw)
    _train_step(dag)
    dag.zero_grad()
    _train_step(dag)  # gradients and moments are non-zero now
    return dag, layers


@pytest.mark.parametrize("which", range(4), ids=["set-layers", "rigl-layers", "set", "rigl"])
@pytest.mark.parametrize("backend", NO_JAX)
def test_rules_keep_graph_acyclic_counts_and_survivor_state(backend, which):
    dag, layers = _trained(backend)
    _check_update(dag, _rules(layers)[which], layers)
    _train_step(dag)  # the edited model trains on


@pytest.mark.slow
@pytest.mark.skipif("jax" not in BACKENDS, reason="jax is not installed")
def test_rules_on_jax():
    """JAX compiles per structure, so one model goes through two rules in turn."""
    dag, layers = _trained("jax")
    rigl, set_whole_graph = _rules(layers)[1:3]
    _check_update(dag, rigl, layers)
    _train_step(dag)  # the edited model trains on
    _check_update(dag, set_whole_graph, layers)


def test_drop_takes_the_smallest_magnitudes_of_each_group():
    dag, layers = _model("numpy")
    _train_step(dag)
    region = Region(dag, layers)
    w = np.abs(dag.get_parameters()["weight"])
    ids = dag._structure.edge_ids.copy()
    SET(drop_fraction=0.5, layers=layers, seed=0).update(dag, 0)
    alive = np.isin(ids, dag._structure.edge_ids)
    for g in region.groups:
        kept, gone = g.edges[alive[g.edges]], g.edges[~alive[g.edges]]
        assert gone.size == round(0.5 * g.edges.size)
        assert w[kept].min() >= w[gone].max()


def test_rigl_grows_the_largest_candidate_gradients():
    dag, layers = _model("numpy")
    _train_step(dag)
    region = Region(dag, layers)
    ids = dag._structure.node_ids
    best = []
    for g in region.groups:
        free = region.free_pairs(g)
        s, d = region.endpoints(g, free)
        score = np.abs(dag.candidate_gradients(ids[s], ids[d]))
        top = np.argsort(-score)[: round(0.3 * g.edges.shape[0])]
        best.append(set(zip(ids[s][top].tolist(), ids[d][top].tolist(), strict=True)))
    old = set(dag._structure.edge_ids.tolist())
    RigL(drop_fraction=0.3, layers=layers).update(dag, 0)
    eids, src, dst = dag.edges()
    new = {(int(a), int(b)) for e, a, b in zip(eids, src, dst, strict=True) if int(e) not in old}
    assert new == set().union(*best)


def test_candidate_gradients_equal_finite_differences(backend):
    # tanh: a unit without inputs sits exactly on ReLU's kink, where differences disagree
    dag, layers = _model(backend, dtype="float64", hidden_activation="tanh")
    dag.forward(X)
    dag.backward_accumulate(PROBE)
    region = Region(dag, layers)
    ids = dag._structure.node_ids
    src, dst = [], []
    for g in region.groups:
        keys = region.sample(g, 3, np.random.default_rng(4))
        s, d = region.endpoints(g, keys)
        src.append(ids[s])
        dst.append(ids[d])
    src, dst = np.concatenate(src), np.concatenate(dst)
    got = dag.candidate_gradients(src, dst)
    meta, arrays = dag.state()
    probe = DagNN.from_state(meta, arrays, backend="numpy")
    probe.add_edges(src, dst, weights=0.0)
    base = probe.get_parameters()["weight"]
    k, eps = src.size, 1e-6
    fd = np.empty(k)
    for i in range(k):
        vals = []
        for sign in (1, -1):
            w = base.copy()
            w[-k + i] = sign * eps
            probe.set_parameters({"weight": w})
            vals.append(np.sum(probe.forward(X) * PROBE))
        fd[i] = (vals[0] - vals[1]) / (2 * eps)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)
    assert np.any(np.abs(fd) > 1e-3)  # a meaningful comparison


def test_node_growth_keeps_the_function(backend):
    dag, layers = _model(backend, dtype="float64")
    _train_step(dag)
    for mode in ("zero_out", "split", "cascade"):
        y0 = dag.forward(X)
        nodes, edges = dag.node_count, dag.edge_count
        rule = NodeGrowth(mode=mode, units=3, layers=layers, seed=5)
        report = rule.update(dag, 0)
        assert report.nodes_added == 3 and dag.node_count == nodes + 3
        assert dag.edge_count == edges + report.added
        assert _acyclic(dag)
        np.testing.assert_allclose(dag.forward(X), y0, rtol=0, atol=1e-12, err_msg=mode)
        grown = rule.current_layers()
        assert sum(a.size for a in grown) == sum(a.size for a in layers) + 3
    if backend == "jax":  # one more XLA compile of the backward is not worth it here
        return
    dag.zero_grad()
    _train_step(dag)  # trains on; the last grown units' edges get gradients
    assert np.abs(dag.get_gradients()["weight"][-report.added :]).max() > 0


def test_split_without_layers_and_growth_errors():
    dag, layers = _model("numpy")
    y0 = dag.forward(X)
    NodeGrowth(mode="split", units=2, seed=1).update(dag, 0)
    np.testing.assert_allclose(dag.forward(X), y0, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="needs layers"):
        NodeGrowth(mode="zero_out")
    with pytest.raises(ValueError, match="mode must be"):
        NodeGrowth(mode="grow")
    with pytest.raises(ValueError, match="hidden layer"):
        NodeGrowth(mode="zero_out", layers=layers, layer=3).update(dag, 0)


def test_prune_reaches_the_promised_edge_count_on_schedule():
    dag, layers = _model("numpy", density=0.5)
    rule = MagnitudePrune(target_density=0.1, end_step=10, layers=layers)
    start = _group_counts(dag, layers)
    seen = []
    for step in range(0, 14, 2):
        _train_step(dag)
        rep = rule.update(dag, step)
        dag.zero_grad()
        seen.append(dag.edge_count)
        assert rep.added == 0 and _acyclic(dag)
    assert seen == sorted(seen, reverse=True) and seen[0] > seen[-1]
    d0 = rule.initial_density
    assert _group_counts(dag, layers) == [round(n * 0.1 / d0) for n in start]
    assert abs(Region(dag, layers).density() - 0.1) < 0.01
    # cubic: most of the pruning happens early
    assert seen[0] - seen[2] > seen[2] - seen[4]


def test_rigl_on_a_backend_without_the_kernel_says_why():
    class OldBackend(NumpyBackend):
        name = "old"
        api_version = "1.0"
        capabilities = ("float64",)

    dag, layers = layered_dag(SIZES, 0.3, backend=OldBackend(), dtype="float64", seed=1)
    dag.forward(X)
    dag.backward_accumulate(PROBE)
    edges_before = dag.edges()
    with pytest.raises(CapabilityError, match=r"candidate_edge_grads.*SET"):
        RigL(layers=layers).update(dag, 0)
    for a, b in zip(dag.edges(), edges_before, strict=True):
        np.testing.assert_array_equal(a, b)  # unchanged
    SET(layers=layers).update(dag, 0)  # SET needs no gradients


def test_rigl_needs_a_backward_first():
    dag, layers = _model("numpy")
    with pytest.raises(Exception, match="backward_accumulate"):
        RigL(layers=layers).update(dag, 0)


def test_constructor_densities_and_skip_connections():
    dag, layers = layered_dag([10, 40, 30, 5], 0.2, seed=0)
    caps = [400, 1200, 150]
    assert dag.edge_count == sum(round(0.2 * c) for c in caps)
    dens = pair_densities([(10, 40), (40, 30), (30, 5)], 0.2, "erk")
    assert abs(np.dot(dens, caps) - 0.2 * sum(caps)) < 1e-9
    assert dens[2] > dens[0] > dens[1]  # small blocks get denser
    dens = pair_densities([(784, 300), (300, 100), (100, 10)], 0.5, "erk")
    assert dens.max() == 1.0 and abs(np.dot(dens, [235200, 30000, 1000]) - 0.5 * 266200) < 1e-6
    skip, sl = layered_dag([4, 6, 6, 2], 1.0, skip=True, seed=0)
    assert skip.edge_count == 4 * 6 + 4 * 6 + 4 * 2 + 6 * 6 + 6 * 2 + 6 * 2
    assert _acyclic(skip)
    with pytest.raises(ValueError, match="allocation"):
        pair_densities([(2, 2)], 0.5, "magic")


def test_bad_arguments_are_clear_errors():
    dag, layers = _model("numpy")
    with pytest.raises(ValueError, match="drop_fraction"):
        SET(drop_fraction=1.5)
    with pytest.raises(ValueError, match="end_step"):
        SET(schedule="cosine")
    with pytest.raises(ValueError, match="target_density"):
        MagnitudePrune(target_density=2, end_step=3)
    with pytest.raises(GraphError, match="overlap"):
        SET(layers=[layers[0], layers[0]]).update(dag, 0)
    with pytest.raises(GraphError, match="unknown"):
        SET(layers=[layers[0], np.array([10_000])]).update(dag, 0)
    with pytest.raises(GraphError, match="forward order"):
        SET(layers=[layers[2], layers[1]]).update(dag, 0)
    with pytest.raises(ValueError, match="at least two"):
        SET(layers=[layers[0]]).update(dag, 0)


def test_state_dict_is_json_and_schedules_decay():
    rule = RigL(drop_fraction=0.4, end_step=100, seed=9)
    assert rule.fraction(0) == pytest.approx(0.4)
    assert rule.fraction(50) == pytest.approx(0.2)
    assert rule.fraction(100) == 0.0
    state = json.loads(json.dumps(rule.state_dict()))
    other = RigL(drop_fraction=0.4, end_step=100, seed=0)
    other.load_state_dict(state)
    assert other._rng.random() == rule._rng.random()
    with pytest.raises(ValueError, match="rigl"):
        SET().load_state_dict(state)


def test_candidate_gradients_bad_input():
    dag, layers = _model("numpy")
    with pytest.raises(Exception, match="backward_accumulate"):
        dag.candidate_gradients(layers[0][:1], layers[1][:1])
    _train_step(dag)
    with pytest.raises(ValueError, match="same length"):
        dag.candidate_gradients(layers[0][:2], layers[1][:1])
    with pytest.raises(GraphError, match="unknown"):
        dag.candidate_gradients([10_000], layers[1][:1])
    assert dag.candidate_gradients([], []).shape == (0,)
    dag.remove_edges(dag.edges()[0][:1])  # an edit: the logged backward no longer applies
    with pytest.raises(Exception, match="structural edit"):
        dag.candidate_gradients(layers[0][:1], layers[1][:1])
