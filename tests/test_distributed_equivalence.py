"""Two gloo workers on loopback train exactly like one process on the same global batch.

One launch (2 processes) covers numpy and torch in float64 and float32, with two seeded
SET-style topology updates in 20 Adam steps, each rank starting from different weights
(so the start-state broadcast is what makes them agree), then an edit on rank 1 only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import distributed_worker as worker
from grapheme_train.distributed import launch_local

BACKENDS = ("numpy", "torch")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    script = str(Path(worker.__file__))
    assert launch_local([script, str(out), ",".join(BACKENDS)], 2, grace_s=5) == 0
    return out


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_processes_match_one(two_workers: Path, backend: str, dtype: str) -> None:
    ranks = [np.load(two_workers / f"{backend}-{dtype}-rank{r}.npz") for r in (0, 1)]
    for key in ("weight", "bias", "edge_ids", "losses"):  # the ranks agree bit for bit
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key])
    ref = worker.build(backend, dtype, seed=3)
    losses = worker.train(ref, None)
    start = worker.build(backend, dtype, seed=3).edges()[0]
    ids = ref.edges()[0]
    assert not np.array_equal(ids, start)  # the topology did change ...
    np.testing.assert_array_equal(ranks[0]["edge_ids"], ids)  # ... identically
    params = ref.get_parameters()
    tol = 1e-12 if dtype == "float64" else 1e-5
    for key in ("weight", "bias"):
        assert _relative(ranks[0][key], params[key]) <= tol, key
    assert _relative(ranks[0]["losses"], np.array(losses)) <= tol
    assert losses[-1] < losses[0]  # it trained


def test_an_edit_on_one_rank_is_a_clear_error_on_every_rank(two_workers: Path) -> None:
    for rank in (0, 1):
        result = json.loads((two_workers / f"mismatch-rank{rank}.json").read_text())
        assert result["raised"] and result["differing"] == [1]
        message = result["message"]
        assert "rank 1 differs from rank 0" in message
        assert "30 nodes" in message and "29 nodes" in message
