"""Benchmark regimes beyond the standard graph: ``grapheme-train bench --regime NAME``.

Each regime is timed against a baseline run in the same process (paired runs, median of
the per-run ratios, as in :mod:`grapheme_train.bench`), because absolute times on a
shared machine are noise:

* ``dense``: the dense-shaped model (470 inputs -> 64 tanh -> 2212 linear outputs, fully
  connected between consecutive layers, 171,648 edges), one training step (forward,
  backward, SGD) at batch 1, 16 and 64, against ``torch.nn.Sequential(Linear, Tanh,
  Linear)`` with the same weights (the same loss is checked first). Target: at most
  1.5x.
* ``deep``: 100k edges over 512 levels against the 8-level graph of the same edge count
  (same inputs, same fan-in), one training step; target at most 2x. Also the first step
  (the JIT compile of a jax plan) of graphs of 512, 2,000 and 10,000 levels (target
  under 5 s) and a 10,000-character :meth:`DagNN.from_text` chain with one output that
  must train (its loss must fall).
* ``edit``: the standard 1M-edge graph trained with a SET-style edit every 10 steps (1%
  of the edges removed, as many random new ones added, so the edge count stays), against
  the same loop without edits; target at least 80% of the edit-free steps per second
  (70% on jax).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from grapheme_core import Activation, DagNN, NodeKind
from grapheme_train.bench import (
    STANDARD,
    GraphShape,
    _sync,
    _time_once,
    batch_data,
    build_graph,
    layered_edges,
    mse_grad,
    paired_runs,
    train_step,
)

REGIMES = ("dense", "deep", "edit")
DENSE_LAYERS = (470, 64, 2212)
DENSE_BATCHES = (1, 16, 64)
DENSE_TARGET = 1.5
DEEP_TARGET = 2.0
DEEP_COMPILE_TARGET_S = 5.0
EDIT_TARGETS = {"numpy": 0.8, "torch": 0.8, "jax": 0.7}
LR = 1e-3


def _figure(times: list[float], base: list[float]) -> dict[str, Any]:
    ratios = [f / b for f, b in zip(times, base, strict=True)]
    return {
        "median_s": statistics.median(times),
        "baseline_median_s": statistics.median(base),
        "ratio": statistics.median(ratios),
        "ratio_of_minima": min(times) / min(base),
    }


def _block(fn: Callable[[], Any], budget_s: float = 0.05) -> Callable[[], None]:
    """``fn`` repeated enough times to fill about ``budget_s`` (timed as one call)."""
    fn()
    count = max(1, min(200, int(budget_s / max(_time_once(fn), 1e-6))))

    def call() -> None:
        for _ in range(count):
            fn()

    call.count = count  # type: ignore[attr-defined]
    return call


# -- dense ---------------------------------------------------------------------------------
def dense_model(backend: Any, layers=DENSE_LAYERS, seed: int = 0, dtype="float32") -> DagNN:
    """Fully connected layers as a DagNN, edges added row by row (destination-major, the
    layout of ``nn.Linear.weight``): tanh hidden layers, linear outputs."""
    dag = DagNN(backend=backend, dtype=dtype, seed=seed)
    prev = dag.add_nodes(layers[0], NodeKind.INPUT)
    for i, width in enumerate(layers[1:]):
        last = i == len(layers) - 2
        kind, act = (NodeKind.OUTPUT, Activation.LINEAR) if last else (NodeKind.HIDDEN, Activation.TANH)
        ids = dag.add_nodes(width, kind, act)
        dag.add_edges(np.tile(prev, width), np.repeat(ids, prev.shape[0]))
        prev = ids
    return dag


def torch_sequential(dag: DagNN, layers=DENSE_LAYERS):
    """``nn.Sequential(Linear, Tanh, ..., Linear)`` holding ``dag``'s weights and biases."""
    import torch

    params = dag.get_parameters()
    mods: list[Any] = []
    w_at, b_at = 0, layers[0]
    for i in range(1, len(layers)):
        lin = torch.nn.Linear(layers[i - 1], layers[i])
        n = layers[i - 1] * layers[i]
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(params["weight"][w_at : w_at + n].reshape(layers[i], -1)))
            lin.bias.copy_(torch.from_numpy(params["bias"][b_at : b_at + layers[i]]))
        w_at, b_at = w_at + n, b_at + layers[i]
        mods.append(lin)
        if i < len(layers) - 1:
            mods.append(torch.nn.Tanh())
    return torch.nn.Sequential(*mods)


def measure_dense(backend: Any, runs: int, batches=DENSE_BATCHES, layers=DENSE_LAYERS) -> dict:
    import torch

    out: dict[str, Any] = {"layers": list(layers), "edges": 0, "batches": {}}
    rng = np.random.default_rng(1)
    for b in batches:
        dag = dense_model(backend, layers)
        out["edges"] = dag.edge_count
        model = torch_sequential(dag, layers)
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        x = rng.standard_normal((b, layers[0])).astype(np.float32)
        t = rng.uniform(-0.5, 0.5, (b, layers[-1])).astype(np.float32)
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)
        y = dag.forward(x)
        ours = float(np.mean((y - t) ** 2))
        with torch.no_grad():
            theirs = float(torch.nn.functional.mse_loss(model(xt), tt))

        def torch_step() -> None:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(xt), tt)
            loss.backward()
            opt.step()

        def our_step() -> None:
            train_step(dag, x, t, LR)  # noqa: B023

        ours_block, theirs_block = _block(our_step), _block(torch_step)
        fig, base = paired_runs(ours_block, theirs_block, runs)
        fig = [f / ours_block.count for f in fig]  # type: ignore[attr-defined]
        base = [f / theirs_block.count for f in base]  # type: ignore[attr-defined]
        out["batches"][str(b)] = {
            **_figure(fig, base),
            "loss": ours,
            "loss_torch": theirs,
            "loss_rel_diff": abs(ours - theirs) / max(abs(theirs), 1e-30),
            "dense_levels": _dense_levels(dag),
        }
    out["target"] = DENSE_TARGET
    out["ok"] = all(v["ratio"] <= DENSE_TARGET for v in out["batches"].values())
    return out


def _dense_levels(dag: DagNN) -> int | None:
    levels = getattr(dag._compiled_plan(), "levels", None)
    if levels is None or not levels or not hasattr(levels[0], "dense"):
        return None
    return sum(1 for k in levels if getattr(k, "dense", None) is not None)


# -- the run ---------------------------------------------------------------------------------
def run_regimes(backend: Any, regimes: tuple[str, ...], runs: int, quick: bool = False) -> dict:
    """Run the named regimes on ``backend``; ``quick`` shrinks every graph (for tests)."""
    result: dict[str, Any] = {"backend": backend.name, "runs": runs, "regimes": {}}
    for name in regimes:
        if name == "dense":
            layers = (24, 8, 40) if quick else DENSE_LAYERS
            batches = (1, 4) if quick else DENSE_BATCHES
            result["regimes"]["dense"] = measure_dense(backend, runs, batches, layers)
        elif name == "deep":
            result["regimes"]["deep"] = measure_deep(backend, runs, quick)
        elif name == "edit":
            result["regimes"]["edit"] = measure_edit(backend, runs, quick)
        else:
            raise ValueError(f"unknown regime {name!r}; choose from {', '.join(REGIMES)}")
    return result


def _ok(flag: bool) -> str:
    return "ok" if flag else "MISSED"


def render_regimes(result: dict[str, Any]) -> str:
    """The human table of :func:`run_regimes`."""
    lines = [f"grapheme bench regimes: backend {result['backend']}, {result['runs']} runs"]
    r = result["regimes"]
    if "dense" in r:
        d = r["dense"]
        lines.append(
            f"dense: {' -> '.join(map(str, d['layers']))} fully connected ({d['edges']:,} "
            f"edges), training step vs torch nn.Sequential, same weights (target <= "
            f"{d['target']}x): {_ok(d['ok'])}"
        )
        for b, v in d["batches"].items():
            lines.append(
                f"  batch {b:>3}: {v['median_s'] * 1e3:8.3f} ms vs {v['baseline_median_s'] * 1e3:8.3f}"
                f" ms: {v['ratio']:.2f}x (minima {v['ratio_of_minima']:.2f}x); loss rel. diff "
                f"{v['loss_rel_diff']:.1e}; dense levels {v['dense_levels']}"
            )
    if "deep" in r:
        lines.extend(_render_deep(r["deep"]))
    if "edit" in r:
        lines.extend(_render_edit(r["edit"]))
    return "\n".join(lines)


def measure_deep(backend, runs, quick=False):  # placeholder, replaced below
    raise NotImplementedError


def measure_edit(backend, runs, quick=False):  # placeholder, replaced below
    raise NotImplementedError


def _render_deep(d):
    return []


def _render_edit(d):
    return []
