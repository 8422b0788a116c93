"""``grapheme-train bench --regime``: the regimes run end to end on tiny graphs and report
their baselines, ratios and targets (speed targets themselves are not asserted)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from grapheme_train.bench import bench
from grapheme_train.bench_regimes import DEEP, deep_edges, set_edit


@pytest.mark.slow
def test_regimes_cli_tiny_numpy():
    pytest.importorskip("torch")
    args = ["--backend", "numpy", "--regime", "dense", "--regime", "deep", "--regime", "edit"]
    result = CliRunner().invoke(bench, [*args, "--tiny", "--runs", "1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)["regimes"]
    dense = out["dense"]
    assert dense["edges"] == 24 * 8 + 8 * 40
    for fig in dense["batches"].values():
        assert fig["loss_rel_diff"] < 1e-5  # same model, same loss as nn.Sequential
        # 8 x 40 = 320 edges run dense; 24 x 8 = 192 are below min_dense_edges
        assert fig["dense_levels"] == 1 and fig["ratio"] > 0
    assert out["deep"]["chain"]["trains"]
    assert out["deep"]["deep"]["plan_levels"] == 33  # depth is real: 32 layers + inputs
    assert out["edit"]["relative_speed"] > 0


def test_deep_edges_give_the_full_depth_and_set_edit_keeps_the_edge_count():
    src, dst = deep_edges(DEEP)
    assert src.shape == dst.shape == (DEEP.edges,)
    assert np.all(src < dst)
    from grapheme_train.bench import GraphShape, build_graph

    shape = GraphShape(inputs=4, levels=5, width=3, fan_in=2, batch=2)
    dag = build_graph("numpy", shape, *deep_edges(shape))
    assert dag.plan.num_levels == 6
    before = dag.edge_count
    set_edit(dag, shape, np.random.default_rng(0), 0.2)
    assert dag.edge_count == before and len(dag.nodes()) == shape.nodes
    assert dag.plan.num_levels >= 2  # still a DAG (add_edges would have raised otherwise)
