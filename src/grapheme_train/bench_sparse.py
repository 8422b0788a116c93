"""``grapheme-train bench-sparse``: dynamic sparse training, accuracy and speed.

Parts (``--part``, repeatable; default all):

* ``digits``: scikit-learn's digits, a 64-256-256-10 ReLU MLP at ``--density`` (0.1, i.e.
  90% sparse, ERK allocation), dense vs static mask vs SET vs RigL, ``--seeds`` seeds,
  Adam, held-out accuracy (a fixed 20% split that never trains) as mean and spread.
* ``chars``: next-character prediction on ``pydoc_data.topics``: the previous
  ``CONTEXT`` characters one-hot -> 256 -> 256 -> vocabulary at ``--char-density``
  (0.02), static vs SET vs RigL; bits per character on held-out topics (every fifth
  topic, by sorted name, never trains).
* ``speed``: one SGD training step (forward, MSE gradient, backward, update) of a sparse
  ``W -> W -> W`` network (``--width``, default 4096) at 90/99/99.9% sparsity against the
  dense-masked PyTorch step people use today (``(W * M) @ x``, autograd, masked update)
  on the same weights; the losses are compared first. Medians of ``--runs``.
* ``set-cost``: one SET update replacing 1% of a 1M-edge graph's edges against one
  training step of that graph, per backend (``update``: the rule itself, median over
  ``--runs`` updates of one rule as in training, where the rule carries its region from
  one update to the next; ``first_update``: that rule's first update, which builds the
  region; ``recompile``: the extra time of the first step after the edit, when the new
  plan is compiled). Wall times, plus the update and the step in process CPU time
  (``*_cpu_ms``), which a busy machine disturbs less.
* ``scale``: a sparse MLP with ``--scale-hidden`` (1,000,000) hidden units trained on
  digits for a few steps: steps per second and peak memory (``VmHWM``; run this part
  alone, the peak is per process).

Each part prints its figures as indented JSON; ``--json`` prints one JSON object.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import click
import numpy as np

from grapheme_core import DagNN, get_backend
from grapheme_core.losses import softmax_cross_entropy
from grapheme_core.topology import SET, RigL, layered_dag

PARTS = ("digits", "chars", "speed", "set-cost", "scale")
CONTEXT = 4


# -- training loop shared by the accuracy parts ---------------------------------------------
#: how SET initialises regrown edges in the accuracy parts (``--set-init``)
SET_INIT = {"value": "zero"}


def _make_rule(mode: str, layers, total_steps: int, seed: int):
    end = int(0.75 * total_steps)
    if mode == "set":
        return SET(
            drop_fraction=0.3, end_step=end, schedule="cosine", layers=layers, seed=seed,
            new_weights=SET_INIT["value"],
        )  # fmt: skip
    if mode == "rigl":
        return RigL(drop_fraction=0.3, end_step=end, layers=layers, seed=seed)
    return None


def _fit(
    sizes: list[int],
    mode: str,
    density: float,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch: int,
    lr: float,
    seed: int,
    every: int,
    backend: str,
) -> DagNN:
    d = 1.0 if mode == "dense" else density
    dag, layers = layered_dag(
        sizes, d, allocation="erk", optimizer="adam", seed=seed, backend=backend, init="he"
    )
    steps_per_epoch = math.ceil(x.shape[0] / batch)
    rule = _make_rule(mode, layers, epochs * steps_per_epoch, seed)
    rng = np.random.default_rng(seed)
    step = 0
    for _ in range(epochs):
        order = rng.permutation(x.shape[0])
        for b in range(steps_per_epoch):
            idx = order[b * batch : (b + 1) * batch]
            out = softmax_cross_entropy(dag.forward(x[idx]), y[idx])
            dag.backward_accumulate(out.grad)
            if rule is not None and step > 0 and step % every == 0:
                rule.update(dag, step)
            dag.step(lr)
            dag.zero_grad()
            step += 1
    return dag


def _predict(dag: DagNN, x: np.ndarray, chunk: int = 2048) -> np.ndarray:
    return np.concatenate([dag.forward(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)])


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


# -- digits ----------------------------------------------------------------------------------
def digits_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised digits, split 80/20 once (seed 0); the test rows never train."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise click.ClickException(
            "the digits parts need scikit-learn, a dependency of grapheme: pip install scikit-learn"
        ) from None

    data = load_digits()
    x, y = data.data.astype(np.float64) / 16.0, data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(x.shape[0])
    cut = int(0.8 * x.shape[0])
    tr, te = order[:cut], order[cut:]
    mean, std = x[tr].mean(0), x[tr].std(0) + 1e-6
    return (x[tr] - mean) / std, y[tr], (x[te] - mean) / std, y[te]


def run_digits(
    seeds: int, epochs: int, density: float, backend: str, every: int = 50
) -> dict[str, Any]:
    xtr, ytr, xte, yte = digits_data()
    out: dict[str, Any] = {
        "density": density, "epochs": epochs, "seeds": seeds, "update_every": every,
        "set_init": SET_INIT["value"], "modes": {},
    }  # fmt: skip
    for mode in ("dense", "static", "set", "rigl"):
        accs, edges = [], 0
        for seed in range(seeds):
            dag = _fit(
                [64, 256, 256, 10], mode, density, xtr, ytr,
                epochs=epochs, batch=32, lr=2e-3, seed=seed, every=every, backend=backend,
            )  # fmt: skip
            accs.append(float(np.mean(_predict(dag, xte).argmax(1) == yte)))
            edges = dag.edge_count
        out["modes"][mode] = {"accuracy": _stats(accs), "edges": edges, "runs": accs}
    return out


# -- characters ------------------------------------------------------------------------------
def char_data(limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """One-hot contexts of ``CONTEXT`` characters -> next character. Held out: every fifth
    topic by sorted name. Characters outside printable ASCII map to one "other" class."""
    from pydoc_data.topics import topics

    names = sorted(topics)
    held = set(names[4::5])

    def encode(text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("ascii", "replace"), dtype=np.uint8).astype(np.int64)
        codes = codes - 32
        codes[(codes < 0) | (codes >= 95)] = 95  # newline, tab, others
        return codes

    vocab = 96
    train = np.concatenate([encode(topics[n]) for n in names if n not in held])
    test = np.concatenate([encode(topics[n]) for n in names if n in held])

    def windows(codes: np.ndarray, count: int, seed: int):
        rng = np.random.default_rng(seed)
        at = rng.integers(CONTEXT, codes.shape[0], size=min(count, codes.shape[0] - CONTEXT))
        ctx = codes[at[:, None] - np.arange(CONTEXT, 0, -1)]
        x = np.zeros((at.shape[0], CONTEXT * vocab))
        x[np.arange(at.shape[0])[:, None], np.arange(CONTEXT) * vocab + ctx] = 1.0
        return x, codes[at]

    xtr, ytr = windows(train, limit, 1)
    xte, yte = windows(test, max(2000, limit // 5), 2)
    return xtr, ytr, xte, yte, vocab


def run_chars(
    epochs: int, density: float, limit: int, backend: str, seeds: int, every: int = 50
) -> dict:
    xtr, ytr, xte, yte, vocab = char_data(limit)
    sizes = [CONTEXT * vocab, 256, 256, vocab]
    out: dict[str, Any] = {
        "density": density, "train_windows": int(xtr.shape[0]), "epochs": epochs,
        "update_every": every, "modes": {},
    }  # fmt: skip
    for mode in ("static", "set", "rigl"):
        bits = []
        for seed in range(seeds):
            dag = _fit(
                sizes, mode, density, xtr, ytr,
                epochs=epochs, batch=64, lr=3e-3, seed=seed, every=every, backend=backend,
            )  # fmt: skip
            ce = softmax_cross_entropy(_predict(dag, xte), yte).value
            bits.append(float(ce / math.log(2)))
        out["modes"][mode] = {"bits_per_char": _stats(bits), "runs": bits}
    return out


# -- speed against dense-masked torch ----------------------------------------------------------
def _median_time(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _grapheme_step(dag: DagNN, x: np.ndarray, t: np.ndarray, lr: float) -> Callable[[], float]:
    def step() -> float:
        dag.zero_grad()
        y = dag.forward(x)
        diff = y - t
        dag.backward_accumulate(diff / x.shape[0])
        dag.step(lr)
        return float(0.5 * np.sum(diff * diff) / x.shape[0])

    return step


def _dense_masked(dag: DagNN, layers, sizes):
    """Dense weight matrices, masks and biases (torch) holding ``dag``'s parameters."""
    import torch

    params = dag.get_parameters()
    _, src, dst = dag.edges()
    pos = []
    for layer in layers:
        p = np.full(dag._structure.next_node_id, -1, dtype=np.int64)
        p[layer] = np.arange(layer.size)
        pos.append(p)
    ws, ms, bs = [], [], []
    node_slots = dag._structure.node_slots
    for i in range(len(layers) - 1):
        sel = (pos[i][src] >= 0) & (pos[i + 1][dst] >= 0)
        w = np.zeros((sizes[i + 1], sizes[i]), dtype=np.float32)
        np.add.at(w, (pos[i + 1][dst[sel]], pos[i][src[sel]]), params["weight"][sel])
        m = np.zeros_like(w)
        m[pos[i + 1][dst[sel]], pos[i][src[sel]]] = 1.0
        ws.append(torch.tensor(w, requires_grad=True))
        ms.append(torch.tensor(m))
        bs.append(torch.tensor(params["bias"][node_slots(layers[i + 1])], requires_grad=True))
    return ws, ms, bs


def _torch_step(ws, ms, bs, x, t, lr: float) -> Callable[[], float]:
    import torch

    xt, tt = torch.tensor(x, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)

    def step() -> float:
        h = xt
        for i, (w, m, b) in enumerate(zip(ws, ms, bs, strict=True)):
            h = h @ (w * m).T + b
            if i < len(ws) - 1:
                h = torch.relu(h)
        loss = 0.5 * ((h - tt) ** 2).sum() / xt.shape[0]
        for p in (*ws, *bs):
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for w, m in zip(ws, ms, strict=True):
                w -= lr * w.grad * m
            for b in bs:
                b -= lr * b.grad
        return float(loss.detach())

    return step


def run_speed(
    width: int, batch: int, runs: int, backends: list[str], sparsities, threads: int
) -> dict:
    import torch

    torch.set_num_threads(threads)  # both sides: grapheme's torch backend and the baseline

    sizes = [width, width, width]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, width)).astype(np.float32)
    t = rng.normal(size=(batch, width)).astype(np.float32)
    rows = []
    for sparsity in sparsities:
        density = 1.0 - sparsity
        dag, layers = layered_dag(sizes, density, seed=0, init="he")
        ws, ms, bs = _dense_masked(dag, layers, sizes)
        torch_step = _torch_step(ws, ms, bs, x, t, 0.0)  # lr 0: every run sees the same weights
        loss_t = torch_step()
        row: dict[str, Any] = {"sparsity": sparsity, "edges": dag.edge_count}
        for name in backends:
            model = dag.to_backend(name)
            step = _grapheme_step(model, x, t, 0.0)
            loss_g = step()
            if not math.isclose(loss_g, loss_t, rel_tol=1e-4):
                raise RuntimeError(f"{name}: loss {loss_g} differs from torch dense {loss_t}")
            row[f"{name}_ms"] = 1e3 * _median_time(step, runs)
        row["loss"] = loss_t
        row["torch_dense_masked_ms"] = 1e3 * _median_time(torch_step, runs)
        for name in backends:
            row[f"{name}_speedup"] = row["torch_dense_masked_ms"] / row[f"{name}_ms"]
        rows.append(row)
        del ws, ms, bs
    out: dict[str, Any] = {
        "width": width, "batch": batch, "runs": runs, "torch_threads": threads, "rows": rows,
    }  # fmt: skip
    for name in backends:  # t(d) ~ a + b d fitted over the measured densities
        d = np.array([1 - r["sparsity"] for r in rows])
        tg = np.array([r[f"{name}_ms"] for r in rows])
        td = float(np.median([r["torch_dense_masked_ms"] for r in rows]))
        if len(rows) >= 2:
            b, a = np.polyfit(d, tg, 1)
            # above 1: faster than the dense-masked step even with every edge present
            out[f"{name}_break_even_density"] = float((td - a) / b) if b > 0 else None
    return out


# -- SET update cost --------------------------------------------------------------------------
def run_set_cost(edges: int, batch: int, runs: int, backends: list[str], threads: int = 1) -> dict:
    width = 4096
    density = edges / (2 * width * width)
    base, layers = layered_dag([width, width, width], density, seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, width)).astype(np.float32)
    t = rng.normal(size=(batch, width)).astype(np.float32)
    rows = {}
    for name in backends:
        # torch with a fixed thread count, as in the speed part: its default of one OpenMP
        # thread per core makes a step several times slower whenever another process holds
        # a core, which would flatter the update-over-step ratio
        backend = get_backend(name, num_threads=threads) if name == "torch" else name
        dag = base.to_backend(backend)
        step = _grapheme_step(dag, x, t, 1e-3)
        t_step = _median_time(step, runs)
        cpu_steps = []
        for _ in range(runs):
            c0 = time.process_time()
            step()
            cpu_steps.append(time.process_time() - c0)
        rule = SET(drop_fraction=0.01, layers=layers, seed=0)
        updates, cpu_updates, recompiles = [], [], []
        for r in range(runs + 1):  # update 0: the rule's first, which builds its region
            dag.forward(x)
            t0, c0 = time.perf_counter(), time.process_time()
            report = rule.update(dag, r)
            updates.append(time.perf_counter() - t0)
            cpu_updates.append(time.process_time() - c0)
            t0 = time.perf_counter()
            step()
            recompiles.append(time.perf_counter() - t0 - t_step)
        update = statistics.median(updates[1:])
        cpu_step, cpu_update = statistics.median(cpu_steps), statistics.median(cpu_updates[1:])
        rows[name] = {
            "edges": dag.edge_count,
            "replaced": report.added,
            "train_step_ms": 1e3 * t_step,
            "update_ms": 1e3 * update,
            "first_update_ms": 1e3 * updates[0],
            "recompile_ms": 1e3 * statistics.median(recompiles[1:]),
            "update_over_step": update / t_step,
            # process CPU time (all threads): steadier than wall time on a busy machine
            "train_step_cpu_ms": 1e3 * cpu_step,
            "update_cpu_ms": 1e3 * cpu_update,
            "update_over_step_cpu": cpu_update / cpu_step,
        }
    return {"batch": batch, "runs": runs, "torch_threads": threads, "backends": rows}


# -- scale --------------------------------------------------------------------------------------
def _peak_rss_mib() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_scale(hidden: int, steps: int, batch: int, backend: str) -> dict:
    xtr, ytr, xte, yte = digits_data()
    fan_in, fan_out = 2, 1  # edges per hidden unit from the inputs / to the outputs
    density = [fan_in / 64, fan_out / 10]
    dag = DagNN(backend=backend, optimizer="adam", seed=0, init="he")
    ins = dag.add_nodes(64, "input")
    hid = dag.add_nodes(hidden, "hidden", "relu")
    outs = dag.add_nodes(10, "output")
    rng = np.random.default_rng(0)
    src = np.concatenate([rng.integers(0, 64, hidden * fan_in) + ins[0], np.repeat(hid, fan_out)])
    dst = np.concatenate([np.repeat(hid, fan_in), rng.integers(0, 10, hidden * fan_out) + outs[0]])
    dag.add_edges(src, dst)
    del src, dst
    losses = []
    t0 = time.perf_counter()
    for s in range(steps):
        idx = np.random.default_rng(s).integers(0, xtr.shape[0], batch)
        out = softmax_cross_entropy(dag.forward(xtr[idx]), ytr[idx])
        dag.backward_accumulate(out.grad)
        dag.step(1e-3)
        dag.zero_grad()
        losses.append(out.value)
    elapsed = time.perf_counter() - t0
    acc = float(np.mean(_predict(dag, xte, 128).argmax(1) == yte))
    return {
        "hidden_units": hidden,
        "edges": dag.edge_count,
        "density": density,
        "steps": steps,
        "batch": batch,
        "steps_per_second": steps / elapsed,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "heldout_accuracy": acc,
        "peak_rss_mib": _peak_rss_mib(),
    }


# -- the command ----------------------------------------------------------------------------------
@click.command("bench-sparse")
@click.option("--part", "parts", type=click.Choice(PARTS), multiple=True, help="[default: all]")
@click.option(
    "--backend", default="numpy", show_default=True, help="Backend of the accuracy parts."
)
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option(
    "--density", type=click.FloatRange(0, 1, min_open=True), default=0.1, show_default=True
)
@click.option(
    "--char-density", type=click.FloatRange(0, 1, min_open=True), default=0.02, show_default=True
)
@click.option("--char-epochs", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--char-windows", type=click.IntRange(min=100), default=40000, show_default=True)
@click.option("--char-seeds", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--width", type=click.IntRange(min=8), default=4096, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--runs", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--speed-backends", default="numpy,torch", show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="torch threads in the speed part (both sides) and the set-cost part.",
)
@click.option("--sparsities", default="0.9,0.99,0.999", show_default=True)
@click.option("--set-edges", type=click.IntRange(min=1000), default=1_000_000, show_default=True)
@click.option("--set-backends", default="numpy,torch,jax", show_default=True)
@click.option("--scale-hidden", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("--scale-steps", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--update-every", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--set-init", type=click.Choice(["zero", "init"]), default="zero", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_sparse(update_every, set_init, parts, backend, seeds, epochs, density,
                 char_density, char_epochs, char_windows, char_seeds, width, batch, runs,
                 speed_backends, threads, sparsities, set_edges, set_backends, scale_hidden,
                 scale_steps, as_json) -> None:  # fmt: skip
    """Sparse training: accuracy (digits, characters), speed vs dense-masked torch, SET
    update cost, a 1M-hidden-unit MLP. Each --part runs alone; see docs/topology.md."""
    result: dict[str, Any] = {}
    SET_INIT["value"] = set_init
    for part in parts or PARTS:
        if part == "digits":
            result[part] = run_digits(seeds, epochs, density, backend, update_every)
        elif part == "chars":
            result[part] = run_chars(
                char_epochs, char_density, char_windows, backend, char_seeds, update_every
            )
        elif part == "speed":
            sp = [float(s) for s in sparsities.split(",")]
            result[part] = run_speed(width, batch, runs, speed_backends.split(","), sp, threads)
        elif part == "set-cost":
            result[part] = run_set_cost(set_edges, batch, runs, set_backends.split(","), threads)
        else:
            result[part] = run_scale(scale_hidden, scale_steps, 32, backend)
        if not as_json:
            click.echo(f"== {part}")
            click.echo(json.dumps(result[part], indent=1, default=float))
    if as_json:
        click.echo(json.dumps(result, default=float))
