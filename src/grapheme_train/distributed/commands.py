"""``python -m grapheme_train.distributed``: data-parallel training of a DagNN, and its bench.

* ``train``: a seeded regression task (or the 1M-edge bench graph) trained with
  :func:`~grapheme_train.distributed.loop.train_data_parallel`; ``--nproc N`` starts N
  local workers, ``torchrun --nproc-per-node N -m grapheme_train.distributed train``
  works too. Only rank 0 prints and writes the checkpoint (atomically, every
  ``--checkpoint-every`` steps); ``--resume`` continues from it on any world size.
* ``bench``: samples per second of N single-threaded workers against one on the same
  graph and global batch (default: the 1M-edge bench graph, global batch 128).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import click
import numpy as np

from grapheme_core import Activation, CheckpointError, DagNN, GraphemeError, NodeKind
from grapheme_train.distributed.context import env_world_size, init_from_env, shutdown
from grapheme_train.distributed.errors import DistributedError
from grapheme_train.distributed.launcher import LAUNCHED_ENV, launch_local, strip_option
from grapheme_train.distributed.loop import load_progress, save_progress, train_data_parallel
from grapheme_train.distributed.parallel import DataParallel
from grapheme_train.distributed.rewire import SeededRewire

__all__ = ["build_task", "main"]

_SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def build_task(
    graph: str, backend: str | None, dtype: str, seed: int = 0
) -> tuple[DagNN, np.ndarray, np.ndarray]:
    """``(dag, x, t)``: ``"small"`` (8 inputs, 2 tanh layers of 32, 4 outputs, dense,
    512 examples of a seeded teacher) or ``"bench"`` (the 1M-edge graph of
    ``grapheme-train bench``, 1024 seeded examples)."""
    if graph == "bench":
        from grapheme_train.bench import STANDARD, build_graph, layered_edges

        src, dst = layered_edges(STANDARD)
        dag = build_graph(backend, attrs.evolve(STANDARD, dtype=dtype), src, dst)
        rng = np.random.default_rng(seed + 1)
        x = rng.standard_normal((1024, STANDARD.inputs))
        t = rng.uniform(-0.5, 0.5, (1024, STANDARD.width))
        return dag, x, t
    dag = DagNN(backend=backend, dtype=dtype, seed=seed)
    ins = dag.add_nodes(8, NodeKind.INPUT)
    h1 = dag.add_nodes(32, NodeKind.HIDDEN, Activation.TANH)
    h2 = dag.add_nodes(32, NodeKind.HIDDEN, Activation.TANH)
    outs = dag.add_nodes(4, NodeKind.OUTPUT)
    for a, b in ((ins, h1), (h1, h2), (h2, outs)):
        dag.add_edges(np.repeat(a, b.size), np.tile(b, a.size))
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((512, 8))
    teacher = rng.standard_normal((8, 4)) / np.sqrt(8)
    return dag, x, np.tanh(x @ teacher)


def _launch_if_asked(nproc: int, single_thread: bool = False) -> bool:
    """In a plain process with ``nproc > 1``: run this same command as ``nproc`` local
    workers and return True (the caller stops); in a worker or with one process: False."""
    if nproc <= 1 or os.environ.get(LAUNCHED_ENV) == "1" or env_world_size() > 1:
        return False
    argv = ["-m", "grapheme_train.distributed", *strip_option(sys.argv[1:], "--nproc")]
    env = {**os.environ, **(_SINGLE_THREAD if single_thread else {})}
    try:
        launch_local(argv, nproc, env=env)
    except DistributedError as exc:
        raise click.ClickException(str(exc)) from None
    return True


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Data-parallel training of a DagNN on torch.distributed, and its benchmark."""


@main.command()
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--backend", metavar="NAME", help="Compute backend [default: numpy].")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32")
@click.option("--graph", type=click.Choice(["small", "bench"]), default="small", show_default=True)
@click.option("--steps", type=click.IntRange(min=0), default=20, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=float, default=0.05, show_default=True)
@click.option("--rewire-every", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--drop-fraction", type=float, default=0.05, show_default=True)
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--timeout", type=float, default=None, help="Collective timeout, seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary (rank 0).")
def train(
    nproc: int,
    backend: str | None,
    dtype: str,
    graph: str,
    steps: int,
    batch: int,
    lr: float,
    rewire_every: int,
    drop_fraction: float,
    checkpoint: Path | None,
    checkpoint_every: int,
    resume: Path | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Train a DagNN data-parallel (SGD, MSE), with a seeded SET-style rewire."""
    if batch < max(nproc, env_world_size()):
        raise click.BadParameter(
            f"the global batch ({batch}) must be at least the number of workers",
            param_hint="--batch",
        )
    if _launch_if_asked(nproc):
        return
    try:
        ctx = init_from_env(timeout_s=timeout) if env_world_size() > 1 else None
    except DistributedError as exc:
        raise click.ClickException(str(exc)) from None
    rank = ctx.rank if ctx else 0
    dag, x, t = build_task(graph, backend, dtype)
    start = 0
    if resume is not None:
        try:
            dag, meta = load_progress(resume, backend=backend)
        except CheckpointError as exc:
            raise click.ClickException(str(exc)) from None
        start = int(meta["step"])
    save_to = checkpoint or resume
    parallel = DataParallel(dag, ctx) if ctx else None
    rule = SeededRewire(drop_fraction, seed=0) if rewire_every else None

    def on_step(step: int, loss: float) -> None:
        if save_to is not None and rank == 0 and step % checkpoint_every == 0:
            save_progress(save_to, dag, step, loss=loss)

    t0 = time.perf_counter()
    try:
        losses = train_data_parallel(
            dag, x, t, steps=steps, batch=batch, lr=lr, parallel=parallel, rule=rule,
            rule_every=rewire_every, start_step=start, on_step=on_step,
        )  # fmt: skip
    except GraphemeError as exc:
        click.echo(f"grapheme data-parallel: {exc}", err=True)
        sys.exit(1)
    seconds = time.perf_counter() - t0
    world = ctx.world_size if ctx else 1
    if rank == 0:
        summary = {
            "world_size": world,
            "steps": [start, start + steps],
            "first_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None,
            "edges": dag.edge_count,
            "seconds": seconds,
            "samples_per_second": steps * batch / seconds if seconds > 0 else None,
            "checkpoint": None if save_to is None else str(save_to),
        }
        if as_json:
            click.echo(json.dumps(summary))
        else:
            click.echo(
                f"{world} worker(s), steps {start}..{start + steps}: loss "
                f"{summary['first_loss']} -> {summary['final_loss']}, "
                f"{summary['samples_per_second'] or 0:.1f} samples/s"
            )
    shutdown()


@main.command()
@click.option("--nproc", type=click.IntRange(min=2), default=2, show_default=True)
@click.option("--backend", metavar="NAME", default="numpy", show_default=True)
@click.option("--graph", type=click.Choice(["small", "bench"]), default="bench", show_default=True)
@click.option("--batch", type=click.IntRange(min=2), default=128, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench(nproc: int, backend: str, graph: str, batch: int, steps: int, as_json: bool) -> None:
    """Samples/s of NPROC single-threaded workers vs one, same graph and global batch."""
    results: dict[str, Any] = {}
    env = {**os.environ, **_SINGLE_THREAD}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, nproc):
            out = Path(tmp) / f"w{n}.json"
            argv = [
                "-m", "grapheme_train.distributed", "bench-worker", "--backend", backend,
                "--graph", graph, "--batch", str(batch), "--steps", str(steps), "--out", str(out),
            ]  # fmt: skip
            try:
                launch_local(argv, n, env=env)
            except DistributedError as exc:
                raise click.ClickException(str(exc)) from None
            results[str(n)] = json.loads(out.read_text())
    one, many = results["1"]["samples_per_second"], results[str(nproc)]["samples_per_second"]
    summary = {
        "backend": backend,
        "graph": graph,
        "edges": results["1"]["edges"],
        "global_batch": batch,
        "steps": steps,
        "cpus": os.cpu_count(),
        "samples_per_second": {k: v["samples_per_second"] for k, v in results.items()},
        "step_seconds": {k: v["step_seconds"] for k, v in results.items()},
        "reduce_seconds": {k: v["reduce_seconds"] for k, v in results.items()},
        "ratio": many / one,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(
        f"{graph} graph ({summary['edges']} edges), backend {backend}, global batch {batch}, "
        f"{steps} timed steps, {summary['cpus']} CPUs visible\n"
        f"  1 worker : {one:9.1f} samples/s\n"
        f"  {nproc} workers: {many:9.1f} samples/s  (ratio {many / one:.2f}; "
        f"all-reduce {summary['reduce_seconds'][str(nproc)] * 1e3:.1f} ms of "
        f"{summary['step_seconds'][str(nproc)] * 1e3:.1f} ms per step)"
    )


@main.command("bench-worker", hidden=True)
@click.option("--backend", default="numpy")
@click.option("--graph", default="bench")
@click.option("--batch", type=int, default=128)
@click.option("--steps", type=int, default=5)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def bench_worker(backend: str, graph: str, batch: int, steps: int, out: Path) -> None:
    """One worker of ``bench`` (started by it): times ``steps`` steps after a warm-up."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    distributed = env_world_size() > 1
    ctx = init_from_env() if distributed else None
    options = {"num_threads": 1} if backend == "torch" else {}
    from grapheme_core import get_backend

    dag, x, t = build_task(graph, get_backend(backend, **options), "float32")
    parallel = DataParallel(dag, ctx) if ctx else None
    train_data_parallel(dag, x, t, steps=2, batch=batch, lr=1e-3, parallel=parallel)
    if parallel is not None:
        parallel.barrier()
    t0 = time.perf_counter()
    train_data_parallel(dag, x, t, steps=steps, batch=batch, lr=1e-3, parallel=parallel)
    elapsed = time.perf_counter() - t0
    reduce_s = 0.0
    if parallel is not None:  # the all-reduce alone, on this graph's gradient sizes
        t1 = time.perf_counter()
        for _ in range(steps):
            parallel.all_reduce_gradients()
        reduce_s = (time.perf_counter() - t1) / steps
    if ctx is None or ctx.rank == 0:
        out.write_text(
            json.dumps(
                {
                    "samples_per_second": steps * batch / elapsed,
                    "step_seconds": elapsed / steps,
                    "reduce_seconds": reduce_s,
                    "edges": dag.edge_count,
                }
            )
        )
    shutdown()
