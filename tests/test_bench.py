"""``grapheme-train bench`` in a tiny configuration: fields and sane values, no timing limits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from grapheme_train import bench as B
from grapheme_train.options import backend_options

TINY = ["--levels", "2", "--width", "32", "--fan-in", "4", "--inputs", "8", "--batch", "4"]
FIGURES = {
    "build",
    "plan_compile",
    "backend_compile",
    "build_compile",
    "first_train_step",
    "forward",
    "backward",
    "step",
    "train_step",
}


def _run(*args: str) -> dict:
    result = CliRunner().invoke(B.bench, [*args, "--json", "--runs", "2", "--tiny"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


@pytest.mark.slow
def test_json_has_every_figure_with_sane_values():
    out = _run("--backend", "numpy", *TINY)
    assert out["backend"] == "numpy"
    assert out["runs"] == 2
    std = out["standard"]
    g = std["graph"]
    assert (g["inputs"], g["levels"], g["width"], g["fan_in"], g["batch"]) == (8, 2, 32, 4, 4)
    assert g["edges"] == 2 * 32 * 4 and g["nodes"] == 8 + 2 * 32 and g["outputs"] == 32
    assert g["dtype"] == "float32" and g["seed"] == 0
    assert std["plan_levels"] == 3
    assert set(std["figures"]) == FIGURES
    for name, fig in std["figures"].items():
        assert _positive(fig["median_s"]), name
        assert 0 < fig["min_s"] <= fig["median_s"], name
        assert _positive(fig["ratio"]) and _positive(fig["ratio_of_minima"]), name
        assert len(fig["runs_s"]) == (1 if name == "first_train_step" else 2), name
    build = std["figures"]["build_compile"]["runs_s"]
    parts = zip(
        *(std["figures"][k]["runs_s"] for k in ("build", "plan_compile", "backend_compile")),
        strict=True,
    )
    assert build == pytest.approx([sum(p) for p in parts])
    base = std["baseline"]
    assert _positive(base["median_s"]) and base["ratio"] == pytest.approx(1.0)
    assert "SciPy" in base["what"]
    assert base["max_abs_diff_vs_forward"] < 1e-5  # the baseline computes the same function
    mem = std["memory"]
    assert mem["peak_bytes"] >= 0 and mem["tracemalloc_peak_bytes"] > 0
    assert mem["process_peak_rss_bytes"] > 0 and mem["method"]
    assert set(out["targets"]) == {"train_step_ratio", "build_compile_s", "peak_memory_bytes"}
    for chk in out["targets"].values():
        assert isinstance(chk["ok"], bool) and _positive(chk["limit"])
    assert out["targets"]["train_step_ratio"]["limit"] == 6.0
    small = out["small"]
    assert set(small["batches"]) == {"1", "4", "16"}
    for v in small["batches"].values():
        assert _positive(v["steps_per_s"]) and v["step_s"] == pytest.approx(1 / v["steps_per_s"])
    naive = out["naive"]
    assert naive["max_abs_diff_forward"] < 1e-5
    for key in ("naive_forward_s", "naive_train_step_s", "forward_s", "train_step_s"):
        assert _positive(naive[key]), key
    assert naive["train_step_speedup"] == pytest.approx(
        naive["naive_train_step_s"] / naive["train_step_s"]
    )
    m = out["machine"]
    assert m["cores"] >= 1 and m["numpy"] == np.__version__ and m["cpu"]


def test_small_mode_skips_the_standard_graph():
    out = _run("--small")
    assert "standard" not in out and out["targets"] == {}
    assert out["small"]["batches"] and out["naive"]["train_step_s"] > 0


@pytest.mark.slow
def test_human_table():
    result = CliRunner().invoke(B.bench, [*TINY, "--runs", "1", "--tiny"])
    assert result.exit_code == 0, result.output
    for text in ("baseline: SciPy CSR forward sweep", "full training step", "peak memory",
                 "steps/s", "naive node-by-node", "target train_step_ratio"):  # fmt: skip
        assert text in result.output


def test_unknown_backend_is_a_usage_error():
    result = CliRunner().invoke(B.bench, ["--backend", "no-such-backend", "--small"])
    assert result.exit_code == 2
    assert "no-such-backend" in result.output


def test_layered_edges_shape():
    shape = B.GraphShape(inputs=5, levels=3, width=7, fan_in=4)
    src, dst = B.layered_edges(shape)
    assert src.shape == dst.shape == (shape.edges,)
    level = np.where(np.arange(shape.nodes) < 5, 0, 1 + (np.arange(shape.nodes) - 5) // 7)
    assert np.all(level[src] < level[dst])  # every edge goes to a later level
    assert np.all(np.bincount(dst, minlength=shape.nodes)[5:] == 4)


def test_naive_reference_trains_exactly_like_the_dagnn():
    shape = B.GraphShape(inputs=6, levels=2, width=9, fan_in=3, batch=3, dtype="float64")
    src, dst = B.layered_edges(shape)
    dag = B.build_graph("numpy", shape, src, dst)
    x, t = B.batch_data(shape)
    naive = B.NaiveReference(dag)
    np.testing.assert_allclose(naive.forward(x), dag.forward(x), rtol=1e-12, atol=1e-12)
    naive.train_step(x, t, lr=0.1)
    B.train_step(dag, x, t, lr=0.1)
    params = dag.get_parameters()
    np.testing.assert_allclose(naive.weight, params["weight"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(naive.bias, params["bias"], rtol=1e-12, atol=1e-12)


def test_scipy_sweep_matches_forward_with_zero_bias():
    shape = B.GraphShape(inputs=4, levels=3, width=6, fan_in=5, batch=2)
    src, dst = B.layered_edges(shape)
    dag = B.build_graph("numpy", shape, src, dst)
    sweep = B.SciPySweep(shape, src, dst, dag.get_parameters()["weight"])
    x, _ = B.batch_data(shape)
    np.testing.assert_allclose(sweep(x).T, dag.forward(x), rtol=1e-5, atol=1e-6)


def test_backend_options_are_recorded_and_bad_ones_are_usage_errors():
    out = _run("--small")
    assert out["options"] == {}
    result = CliRunner().invoke(B.bench, ["--small", "--option", "no_such_option=1"])
    assert result.exit_code == 2 and "no_such_option" in result.output
    result = CliRunner().invoke(B.bench, ["--small", "--option", "novalue"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.output
    parsed = backend_options(None, None, ("a=1", "b=x", "c=true"))
    assert parsed == {"a": 1, "b": "x", "c": True}
