"""Resuming mid-schedule from a real checkpoint file equals an uninterrupted run."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_core import DagNN, list_backends
from grapheme_core.checkpoint import read_checkpoint, write_checkpoint
from grapheme_core.topology import SET, MagnitudePrune, NodeGrowth, RigL, layered_dag

AVAILABLE = {r.name for r in list_backends() if r.available}
SIZES = [5, 12, 10, 3]
STEPS, HALF, EVERY = 8, 4, 2


def _rule(name: str, layers):
    if name == "set":
        return SET(drop_fraction=0.3, end_step=STEPS, schedule="cosine", layers=layers, seed=4)
    if name == "rigl":
        return RigL(drop_fraction=0.3, end_step=STEPS, layers=layers, seed=4)
    if name == "growth":
        return NodeGrowth(mode="zero_out", layers=layers, seed=4)
    return MagnitudePrune(target_density=0.1, end_step=STEPS, layers=layers, seed=4)


def _batch(step: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1000 + step)
    return rng.normal(size=(6, SIZES[0])), rng.normal(size=(6, SIZES[-1]))


def _train(dag: DagNN, rule, start: int, stop: int) -> None:
    for step in range(start, stop):
        x, t = _batch(step)
        y = dag.forward(x)
        dag.backward_accumulate(y - t)
        if step % EVERY == 0:
            rule.update(dag, step)
        dag.step(0.05)
        dag.zero_grad()


@pytest.mark.parametrize("name", ["set", "rigl", "prune", "growth"])
def test_resume_mid_schedule_is_bit_identical_on_numpy(tmp_path, name):
    def fresh():
        dag, layers = layered_dag(SIZES, 0.4, optimizer="adam", dtype="float64", seed=2)
        return dag, _rule(name, layers)

    dag, rule = fresh()
    _train(dag, rule, 0, STEPS)

    first, rule1 = fresh()
    _train(first, rule1, 0, HALF)
    meta, arrays = first.state()
    path = write_checkpoint(
        tmp_path / "run.gph", "test-run", {"dag": meta, "rule": rule1.state_dict()}, arrays
    )
    del first, rule1
    meta2, arrays2 = read_checkpoint(path, "test-run")
    resumed = DagNN.from_state(meta2["dag"], arrays2)
    _, rule2 = fresh()
    rule2.load_state_dict(meta2["rule"])
    _train(resumed, rule2, HALF, STEPS)

    want, got = dag.state(), resumed.state()
    assert want[0] == got[0]
    assert want[1].keys() == got[1].keys()
    for key in want[1]:
        np.testing.assert_array_equal(got[1][key], want[1][key], err_msg=key)
    assert rule2.state_dict() == rule.state_dict()


@pytest.mark.slow
@pytest.mark.skipif("torch" not in AVAILABLE, reason="torch is not installed")
def test_resume_on_torch_matches_closely(tmp_path):
    def fresh():
        dag, layers = layered_dag(SIZES, 0.4, optimizer="adam", backend="torch", seed=2)
        return dag, _rule("rigl", layers)

    dag, rule = fresh()
    _train(dag, rule, 0, STEPS)
    first, rule1 = fresh()
    _train(first, rule1, 0, HALF)
    path = first.save(tmp_path / "dag.gph")
    state = rule1.state_dict()
    resumed = DagNN.load(path, backend="torch")
    _, rule2 = fresh()
    rule2.load_state_dict(state)
    _train(resumed, rule2, HALF, STEPS)
    np.testing.assert_array_equal(resumed.edges()[1], dag.edges()[1])
    np.testing.assert_array_equal(resumed.edges()[2], dag.edges()[2])
    np.testing.assert_allclose(
        resumed.get_parameters()["weight"], dag.get_parameters()["weight"], atol=1e-6
    )
