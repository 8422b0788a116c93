"""bench-sparse runs end to end at toy sizes (figures come from the command, not tests)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from grapheme_train.cli import cli


def test_bench_sparse_toy_parts_run_and_report():
    args = ["bench-sparse", "--json", "--part", "speed", "--part", "set-cost", "--width", "64",
            "--runs", "1", "--speed-backends", "numpy", "--set-backends", "numpy",
            "--set-edges", "20000", "--sparsities", "0.9,0.99"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    rows = out["speed"]["rows"]
    assert [r["sparsity"] for r in rows] == [0.9, 0.99]
    assert rows[0]["edges"] > rows[1]["edges"] > 0
    assert all(r["numpy_ms"] > 0 and r["torch_dense_masked_ms"] > 0 for r in rows)
    cost = out["set-cost"]["backends"]["numpy"]
    assert cost["replaced"] == round(0.01 * cost["edges"])  # 1% of the edges, count kept
    assert cost["edges"] == 20000
