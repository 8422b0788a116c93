"""A worker for tests/test_distributed_*.py, started by the launcher (not a test module).

``python tests/distributed_worker.py OUT_DIR BACKEND[,BACKEND...]`` (as a worker): on every
backend and dtype, train the shared test model data-parallel (each rank starts from
*different* weights, so the broadcast is what makes them equal) and save every rank's
result; then make an edit on rank 1 only and record the StructureMismatchError each rank
gets.

``python tests/distributed_worker.py report BACKEND[,BACKEND...]`` (plain process): launch
two workers, train the one-process reference here and print the relative differences.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from grapheme_core import Activation, DagNN, NodeKind
from grapheme_train.distributed import (
    DataParallel,
    SeededRewire,
    StructureMismatchError,
    init_from_env,
    shutdown,
    train_data_parallel,
)

STEPS, BATCH, LR, REWIRE_EVERY = 20, 16, 0.01, 7


def build(backend: str, dtype: str, seed: int) -> DagNN:
    dag = DagNN(backend=backend, dtype=dtype, seed=seed, optimizer="adam")
    ins = dag.add_nodes(6, NodeKind.INPUT)
    h1 = dag.add_nodes(12, NodeKind.HIDDEN, Activation.TANH)
    h2 = dag.add_nodes(8, NodeKind.HIDDEN, Activation.TANH)
    outs = dag.add_nodes(3, NodeKind.OUTPUT)
    for a, b in ((ins, h1), (h1, h2), (h2, outs), (ins, h2)):
        dag.add_edges(np.repeat(a, b.size), np.tile(b, a.size))
    return dag


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((48, 6))
    return x, np.sin(x[:, :3]) * np.cos(x[:, 3:])


def train(dag: DagNN, parallel: DataParallel | None) -> list[float]:
    x, t = data()
    return train_data_parallel(
        dag, x, t, steps=STEPS, batch=BATCH, lr=LR, parallel=parallel,
        rule=SeededRewire(0.05, seed=1), rule_every=REWIRE_EVERY,
    )  # fmt: skip


def main() -> None:
    out, backends = Path(sys.argv[1]), sys.argv[2].split(",")
    ctx = init_from_env(timeout_s=20)
    for backend in backends:
        for dtype in ("float64", "float32"):
            dag = build(backend, dtype, seed=3 + ctx.rank)
            parallel = DataParallel(dag)
            losses = train(dag, parallel)
            p = dag.get_parameters()
            np.savez(
                out / f"{backend}-{dtype}-rank{ctx.rank}.npz",
                weight=p["weight"], bias=p["bias"], edge_ids=dag.edges()[0],
                losses=np.array(losses), version=dag.version,
            )  # fmt: skip
    dag = build(backends[0], "float64", seed=3)
    parallel = DataParallel(dag)
    if ctx.rank == 1:
        dag.add_hidden()
    result = {"raised": False}
    try:
        parallel.all_reduce_gradients()
    except StructureMismatchError as exc:
        result = {"raised": True, "message": str(exc), "differing": exc.differing}
    (out / f"mismatch-rank{ctx.rank}.json").write_text(json.dumps(result))
    shutdown()


def report(backends: str) -> None:
    import tempfile

    from grapheme_train.distributed import launch_local

    with tempfile.TemporaryDirectory() as tmp:
        launch_local([__file__, tmp, backends], 2)
        for backend in backends.split(","):
            for dtype in ("float64", "float32"):
                r0 = np.load(Path(tmp) / f"{backend}-{dtype}-rank0.npz")
                r1 = np.load(Path(tmp) / f"{backend}-{dtype}-rank1.npz")
                ref = build(backend, dtype, seed=3)
                train(ref, None)
                p = ref.get_parameters()
                rel = max(float(np.abs(r0[k] - p[k]).max() / np.abs(p[k]).max()) for k in p)
                same = all(np.array_equal(r0[k], r1[k]) for k in ("weight", "bias", "edge_ids"))
                print(
                    f"{backend:6s} {dtype}: max relative difference 2 processes vs 1: {rel:.2e}; "
                    f"ranks identical: {same}; edges changed: "
                    f"{not np.array_equal(r0['edge_ids'], build(backend, dtype, 3).edges()[0])}"
                )


if __name__ == "__main__":
    if sys.argv[1] == "report":
        report(sys.argv[2])
    else:
        main()
