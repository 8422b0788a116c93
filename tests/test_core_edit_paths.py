"""Cheap edge edits: levels, degrees and plans carried across edits must equal what a
from-scratch computation gives, and every failed edit must leave the graph unchanged."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from grapheme_core import CycleError, DagNN, GraphError
from grapheme_core.graph_algorithms import longest_path_levels
from grapheme_core.plan import compile_plan
from grapheme_core.topology import SET, RigL, layered_dag
from grapheme_core.topology.region import Region


def _fresh_levels(dag: DagNN) -> np.ndarray:
    s = dag._structure
    return longest_path_levels(s.node_count, s.src_slots(), s.dst_slots())


def _carried_levels(dag: DagNN) -> np.ndarray | None:
    s = dag._structure
    return s._current(s._levels)


def _snapshot(dag: DagNN) -> tuple:
    params = dag.get_parameters()
    return dag.version, dag.structure_hash(), params["weight"].tobytes(), dag.edge_count


def _assert_plans_equal(a, b) -> None:
    for field in attrs.fields(type(a)):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if field.name == "groups":
            assert [[(g.activation, None if g.rows is None else g.rows.tolist()) for g in lv]
                    for lv in x] == [[(g.activation, None if g.rows is None else g.rows.tolist())
                                      for g in lv] for lv in y]  # fmt: skip
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, field.name
            np.testing.assert_array_equal(x, y, err_msg=field.name)
        else:
            assert x == y, field.name


def _chain(n: int = 6) -> DagNN:
    """input 0 -> 1 -> ... -> n-1 (hidden), plus a shortcut 0 -> 2."""
    dag = DagNN(dtype="float64", optimizer="adam")
    dag.add_nodes(1, "input")
    dag.add_nodes(n - 1, "hidden")
    dag.add_edges(np.arange(n - 1), np.arange(1, n), weights=0.5)
    dag.add_edge(0, 2, 0.25)
    return dag


def test_climbing_batch_keeps_levels_and_a_cyclic_batch_changes_nothing():
    dag = _chain()
    levels = dag._structure.levels()
    dag.add_edges([0, 1, 2], [3, 4, 5])  # every edge climbs: no longest-path pass needed
    assert _carried_levels(dag) is levels
    np.testing.assert_array_equal(levels, _fresh_levels(dag))
    before = _snapshot(dag)
    # the first two climb, the third closes 5 -> 1 -> ... -> 5
    with pytest.raises(CycleError, match="would close the cycle"):
        dag.add_edges([0, 2, 5], [4, 5, 1])
    assert _snapshot(dag) == before
    with pytest.raises(CycleError):
        dag.replace_edges(dag.edges()[0][:2], [0, 5], [3, 1])
    assert _snapshot(dag) == before
    with pytest.raises(GraphError, match="unknown edge id"):
        dag.replace_edges([10_000], [0], [3])
    assert _snapshot(dag) == before
    np.testing.assert_array_equal(dag._structure.levels(), _fresh_levels(dag))


def test_removal_keeps_levels_only_while_a_tight_predecessor_remains():
    dag = _chain()
    ids, src, dst = dag.edges()
    dag.add_edge(1, 3)  # node 3 (level 3) now also hears node 1 (level 1), not tight
    levels = dag._structure.levels().copy()
    np.testing.assert_array_equal(levels, [0, 1, 2, 3, 4, 5])
    # removing the shortcut 0 -> 2 leaves 1 -> 2, which is tight: nothing moves
    dag.remove_edges([ids[(src == 0) & (dst == 2)][0]])
    assert _carried_levels(dag) is not None
    np.testing.assert_array_equal(dag._structure.levels(), _fresh_levels(dag))
    # removing 2 -> 3 leaves 3 fed only by 1 -> 3: node 3 and everything after drop a level
    dag.remove_edges([ids[(src == 2) & (dst == 3)][0]])
    carried = _carried_levels(dag)  # followed down from node 3, no full pass
    np.testing.assert_array_equal(carried, [0, 1, 2, 2, 3, 4])
    np.testing.assert_array_equal(carried, _fresh_levels(dag))


def test_edges_that_do_not_climb_raise_levels_exactly_or_are_refused():
    dag = DagNN()
    dag.add_nodes(2, "input")
    chain = dag.add_nodes(30, "hidden")
    dag.add_edges(chain[:-1], chain[1:])
    side = dag.add_nodes(2, "hidden")
    dag.add_edges([0, 1, side[0]], [chain[0], side[0], side[1]])
    dag._structure.levels()
    # side[1] (level 2) -> chain[5] (level 6) climbs; chain[3] -> side[0] does not:
    # side[0] and side[1] rise (a short push, no full pass)
    dag.add_edges([side[1], chain[3]], [chain[5], side[0]])
    np.testing.assert_array_equal(_carried_levels(dag), _fresh_levels(dag))
    # lifting the head of the chain moves all 30 links: more waves than the incremental
    # update takes, so the full pass runs, with the same result
    lift = dag.add_nodes(3, "hidden")
    dag.add_edges([0, lift[0], lift[1]], lift)
    np.testing.assert_array_equal(_carried_levels(dag), _fresh_levels(dag))
    dag.add_edges([lift[2], 1], [chain[0], chain[1]])
    np.testing.assert_array_equal(dag._structure.levels(), _fresh_levels(dag))
    # input, 3 lifts, 30 links, plus one for the detour chain[3] -> side -> chain[5]
    assert dag._structure.levels()[dag._slot(chain[-1])] == 34
    before = _snapshot(dag)
    with pytest.raises(CycleError):  # the tail back to the head: a cycle, refused
        dag.add_edges([0, chain[-1]], [chain[2], chain[0]])
    assert _snapshot(dag) == before


def test_replace_equals_add_then_remove():
    base, _ = layered_dag([6, 8, 3], 0.5, seed=3, optimizer="adam", dtype="float64")
    x = np.random.default_rng(0).normal(size=(4, 6))
    base.forward(x)
    base.backward_accumulate(np.ones((4, 3)))
    base.step(0.1)  # non-zero moments
    a, b = (DagNN.from_state(*base.state()) for _ in range(2))
    drop = base.edges()[0][[0, 3, 7]]
    src, dst = [0, 1, 6], [6, 7, 14]
    version = a.version
    ids_a = a.replace_edges(drop, src, dst)
    ids_b = b.add_edges(src, dst)
    b.remove_edges(drop)
    np.testing.assert_array_equal(ids_a, ids_b)
    assert a.structure_hash() == b.structure_hash()
    assert a.version == version + 1  # one structural version
    for key in ("m", "v"):
        np.testing.assert_array_equal(a._moments["weight"][key], b._moments["weight"][key])
    np.testing.assert_array_equal(a.get_parameters()["weight"], b.get_parameters()["weight"])
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


def test_random_edits_keep_every_carried_cache_exact():
    rng = np.random.default_rng(0)
    updated = 0
    for trial in range(12):
        dag = DagNN(seed=trial)
        dag.add_nodes(4, "input")
        dag.add_nodes(16, "hidden")
        dag.add_nodes(3, "output")

        def pairs(k):
            s, d = rng.integers(0, 20, k), rng.integers(4, 23, k)
            lo, hi = np.minimum(s, d), np.maximum(s, d)
            return lo[lo != hi], hi[lo != hi]

        dag.add_edges(*pairs(60))
        for _ in range(5):
            previous = dag.plan
            for _ in range(rng.integers(1, 3)):  # one or two edits between compiles
                ids = dag.edges()[0]
                op = rng.integers(0, 3)
                if op == 0:
                    dag.remove_edges(rng.choice(ids, size=3, replace=False))
                elif op == 1:
                    dag.add_edges(*pairs(4))
                else:
                    dag.replace_edges(rng.choice(ids, size=3, replace=False), *pairs(4))
            s = dag._structure
            np.testing.assert_array_equal(s.levels(), _fresh_levels(dag))
            degrees = s.cached_degrees()
            if degrees is not None:
                n = s.node_count
                np.testing.assert_array_equal(degrees[0], np.bincount(s.dst_slots(), minlength=n))
                np.testing.assert_array_equal(degrees[1], np.bincount(s.src_slots(), minlength=n))
            tight = s._current(s._tight)
            if tight is not None:  # in-edges from the level just below, per node
                lv, sv, dv = s.levels(), s.src_slots(), s.dst_slots()
                expected = np.bincount(dv[lv[sv] + 1 == lv[dv]], minlength=s.node_count)
                np.testing.assert_array_equal(tight, expected)
            plan = dag.plan
            updated += plan.order is previous.order  # derived from the previous plan
            s._levels = None
            _assert_plans_equal(plan, compile_plan(s))
    assert updated > 0  # the incremental path was exercised


@pytest.mark.parametrize(
    ("rule_cls", "sizes", "fraction"),
    [
        (SET, [10, 12, 12, 4], 0.3),
        (RigL, [10, 12, 12, 4], 0.3),
        (SET, [10, 12, 2], 0.04),  # the second group drops nothing, its slots still move
    ],
)
def test_a_rule_carries_its_region_exactly(rule_cls, sizes, fraction):
    dag, layers = layered_dag(sizes, 0.5, seed=1)
    rule = rule_cls(drop_fraction=fraction, layers=layers, seed=2)
    x = np.random.default_rng(0).normal(size=(3, sizes[0]))
    carried = 0
    for step in range(4):
        dag.backward_accumulate(np.ones_like(dag.forward(x)))
        rule.update(dag, step)
        dag.zero_grad()
        region = rule._region
        if region is None:
            continue
        carried += 1
        assert region.is_current(dag, layers)
        fresh = Region(dag, layers)
        np.testing.assert_array_equal(region.position, fresh.position)
        for g, h in zip(region.groups, fresh.groups, strict=True):
            for name in ("src", "dst", "edges", "keys"):
                np.testing.assert_array_equal(getattr(g, name), getattr(h, name))
            assert (g.capacity, g.ordered) == (h.capacity, h.ordered)
        for i, table in region._bitmaps.items():
            np.testing.assert_array_equal(table, fresh._taken_bitmap(fresh.groups[i]))
        np.testing.assert_array_equal(dag._structure.levels(), _fresh_levels(dag))
    assert carried > 0
