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
  (same inputs, same fan-in, each node's first source in the layer just below it so the
  depth is real), one training step at batch 64; target at most 2x. Also the first step
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
        kind, act = (
            (NodeKind.OUTPUT, Activation.LINEAR) if last else (NodeKind.HIDDEN, Activation.TANH)
        )
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
            lin.weight.copy_(
                torch.from_numpy(params["weight"][w_at : w_at + n].reshape(layers[i], -1))
            )
            lin.bias.copy_(torch.from_numpy(params["bias"][b_at : b_at + layers[i]]))
        w_at, b_at = w_at + n, b_at + layers[i]
        mods.append(lin)
        if i < len(layers) - 1:
            mods.append(torch.nn.Tanh())
    return torch.nn.Sequential(*mods)


def measure_dense(backend: Any, runs: int, batches=DENSE_BATCHES, layers=DENSE_LAYERS) -> dict:
    """The dense regime: one training step per batch size against torch nn.Sequential."""
    import torch

    out: dict[str, Any] = {"layers": list(layers), "edges": 0, "batches": {}}
    rng = np.random.default_rng(1)
    threads = torch.get_num_threads()
    if backend.name != "torch":  # single-threaded contenders, as the numpy backend is
        torch.set_num_threads(1)
    out["torch_threads"] = torch.get_num_threads()
    try:
        with _blas_threads(1 if backend.name != "torch" else None):
            for b in batches:
                out["edges"], out["batches"][str(b)] = _dense_batch(backend, layers, b, rng, runs)
    finally:
        torch.set_num_threads(threads)
    out["target"] = DENSE_TARGET
    out["ok"] = all(v["ratio"] <= DENSE_TARGET for v in out["batches"].values())
    return out


def _blas_threads(limit: int | None):
    """Limit BLAS threads (threadpoolctl, when installed) so the numpy backend's GEMMs
    run single-threaded like its contender; a no-op for ``None`` or without it."""
    import contextlib

    if limit is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=limit, user_api="blas")


def _dense_batch(backend, layers, b: int, rng, runs: int) -> tuple[int, dict[str, Any]]:
    import torch

    dag = dense_model(backend, layers)
    model = torch_sequential(dag, layers)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    x = rng.standard_normal((b, layers[0])).astype(np.float32)
    t = rng.uniform(-0.5, 0.5, (b, layers[-1])).astype(np.float32)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    ours = float(np.mean((dag.forward(x) - t) ** 2))
    with torch.no_grad():
        theirs = float(torch.nn.functional.mse_loss(model(xt), tt))

    def torch_step() -> None:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(xt), tt).backward()
        opt.step()

    ours_block = _block(lambda: train_step(dag, x, t, LR))
    theirs_block = _block(torch_step)
    fig, base = paired_runs(ours_block, theirs_block, runs)
    fig = [f / ours_block.count for f in fig]  # type: ignore[attr-defined]
    base = [f / theirs_block.count for f in base]  # type: ignore[attr-defined]
    return dag.edge_count, {
        **_figure(fig, base),
        "loss": ours,
        "loss_torch": theirs,
        "loss_rel_diff": abs(ours - theirs) / max(abs(theirs), 1e-30),
        "dense_levels": _dense_levels(dag),
    }


def _dense_levels(dag: DagNN) -> int | None:
    levels = getattr(dag._compiled_plan(), "levels", None)
    if levels is None or not levels or not hasattr(levels[0], "dense"):
        return None
    return sum(1 for k in levels if getattr(k, "dense", None) is not None)


# -- deep ----------------------------------------------------------------------------------
DEEP = GraphShape(inputs=256, levels=512, width=16, fan_in=12, batch=64)
SHALLOW = GraphShape(inputs=256, levels=8, width=1024, fan_in=12, batch=64)
#: graphs whose first step (a jax plan's JIT compile) is timed: (levels, width, fan_in)
COMPILE_SHAPES = ((512, 16, 12), (2000, 8, 6), (10000, 4, 3))
CHAIN_LENGTH = 10_000


def deep_edges(shape: GraphShape) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`grapheme_train.bench.layered_edges`, but each node's first source is in
    the layer just below it, so the plan has exactly ``shape.levels`` levels above the
    inputs (uniform sources from all earlier nodes collapse deep graphs into few levels)."""
    src, dst = layered_edges(shape)
    rng = np.random.default_rng(shape.seed + 7)
    first = np.arange(0, src.shape[0], shape.fan_in)
    layer = (dst[first] - shape.inputs) // shape.width
    below = np.where(layer == 0, 0, shape.inputs + (layer - 1) * shape.width)
    span = np.where(layer == 0, shape.inputs, shape.width)
    src = src.copy()
    src[first] = below + np.floor(rng.random(first.shape[0]) * span).astype(np.int64)
    return src, dst


def _first_step_s(backend: Any, shape: GraphShape) -> tuple[float, DagNN]:
    src, dst = deep_edges(shape)
    dag = build_graph(backend, shape, src, dst)
    x, t = batch_data(shape)
    return _time_once(lambda: train_step(dag, x, t)), dag


def chain_model(backend: Any, length: int = CHAIN_LENGTH, seed: int = 0) -> DagNN:
    """``DagNN.from_text`` of ``length`` characters plus one linear output fed by the
    last character: a graph ``length + 1`` levels deep."""
    text = "".join(chr(97 + (i * 7) % 26) for i in range(length))
    dag = DagNN.from_text(text, backend=backend, seed=seed)
    out = dag.add_output()
    dag.add_edge(dag.input_nodes[-1], out, 0.5)
    return dag


def train_chain(backend: Any, length: int = CHAIN_LENGTH, steps: int = 20) -> dict[str, Any]:
    """Train the chain to map its inputs to a fixed target; the loss must fall."""
    dag = chain_model(backend, length)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, length)) * 0.01).astype(np.float32)
    t = np.full((4, 1), 0.5, dtype=np.float32)
    losses = []
    t0 = time.perf_counter()
    for _ in range(steps):
        dag.zero_grad()
        y = dag.forward(x)
        losses.append(float(np.mean((y - t) ** 2)))
        dag.backward_accumulate(mse_grad(y, t))
        dag.step(3.0 / length)  # a long linear chain needs a small step
    return {
        "length": length,
        "levels": dag.plan.num_levels,
        "steps": steps,
        "seconds": time.perf_counter() - t0,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "trains": bool(np.isfinite(losses[-1]) and losses[-1] < 0.5 * losses[0]),
    }


def measure_deep(backend: Any, runs: int, quick: bool = False) -> dict[str, Any]:
    deep, shallow = DEEP, SHALLOW
    shapes, chain = COMPILE_SHAPES, CHAIN_LENGTH
    if quick:
        deep = GraphShape(inputs=8, levels=32, width=2, fan_in=3, batch=4)
        shallow = GraphShape(inputs=8, levels=2, width=32, fan_in=3, batch=4)
        shapes, chain = ((32, 2, 3),), 200
    dags, data = [], []
    for shape in (deep, shallow):
        src, dst = deep_edges(shape)
        dags.append(build_graph(backend, shape, src, dst))
        data.append(batch_data(shape))
    deep_dag, shallow_dag = dags

    def deep_step() -> None:
        train_step(deep_dag, *data[0])

    def shallow_step() -> None:
        train_step(shallow_dag, *data[1])

    deep_step(), shallow_step()  # compile (and JIT) outside the timing
    fig, base = paired_runs(deep_step, shallow_step, runs)
    compiles = []
    for levels, width, fan_in in shapes:
        shape = GraphShape(inputs=64, levels=levels, width=width, fan_in=fan_in, batch=16)
        seconds, dag = _first_step_s(backend, shape)
        compiles.append(
            {"levels": levels, "plan_levels": dag.plan.num_levels, "edges": dag.edge_count,
             "first_step_s": seconds}
        )  # fmt: skip
        del dag
    chain_result = train_chain(backend, chain)
    step = _figure(fig, base)
    return {
        "deep": {**deep.describe(), "plan_levels": deep_dag.plan.num_levels},
        "shallow": {**shallow.describe(), "plan_levels": shallow_dag.plan.num_levels},
        "step": step,
        "target": DEEP_TARGET,
        "ok": step["ratio"] <= DEEP_TARGET,
        "first_steps": compiles,
        "compile_target_s": DEEP_COMPILE_TARGET_S,
        "compile_ok": all(c["first_step_s"] < DEEP_COMPILE_TARGET_S for c in compiles),
        "chain": chain_result,
    }


def _render_deep(d: dict[str, Any]) -> list[str]:
    g, s, st = d["deep"], d["shallow"], d["step"]
    lines = [
        f"deep: {g['edges']:,} edges over {g['plan_levels']} levels ({g['levels']} x "
        f"{g['width']}, fan-in {g['fan_in']}) vs {s['plan_levels']} levels ({s['levels']} x "
        f"{s['width']}), batch {g['batch']}, training step (target <= {d['target']}x): "
        f"{_ok(d['ok'])}",
        f"  {st['median_s'] * 1e3:8.2f} ms vs {st['baseline_median_s'] * 1e3:8.2f} ms: "
        f"{st['ratio']:.2f}x (minima {st['ratio_of_minima']:.2f}x)",
        f"  first training step (incl. any JIT compile; target < {d['compile_target_s']} s): "
        f"{_ok(d['compile_ok'])}",
    ]
    for c in d["first_steps"]:
        lines.append(
            f"    {c['plan_levels']:>6} levels, {c['edges']:>7,} edges: {c['first_step_s']:.2f} s"
        )
    ch = d["chain"]
    lines.append(
        f"  from_text chain of {ch['length']:,} characters + 1 output ({ch['levels']} levels): "
        f"{ch['steps']} steps in {ch['seconds']:.2f} s, loss {ch['loss_first']:.4f} -> "
        f"{ch['loss_last']:.4f}: {'trains' if ch['trains'] else 'DOES NOT TRAIN'}"
    )
    return lines


# -- edit loop -------------------------------------------------------------------------------
EDIT_EVERY = 10
EDIT_FRACTION = 0.01
EDIT_CYCLES = 3


def set_edit(dag: DagNN, shape: GraphShape, rng: np.random.Generator, fraction: float) -> None:
    """SET-style: remove ``fraction`` of the edges at random and add as many random new
    ones, each from a node of an earlier construction layer than its destination (so the
    graph stays acyclic and the edge count stays)."""
    ids, _, dst = dag.edges()
    k = max(1, round(fraction * ids.shape[0]))
    pick = rng.choice(ids.shape[0], size=k, replace=False)
    new_dst = dst[pick]
    layer_start = shape.inputs + ((new_dst - shape.inputs) // shape.width) * shape.width
    new_src = np.floor(rng.random(k) * layer_start).astype(np.int64)
    dag.remove_edges(ids[pick])
    dag.add_edges(new_src, new_dst)


def measure_edit(backend: Any, runs: int, quick: bool = False) -> dict[str, Any]:
    shape = GraphShape(inputs=16, levels=3, width=64, fan_in=8, batch=8) if quick else STANDARD
    cycles = 2 if quick else EDIT_CYCLES
    src, dst = layered_edges(shape)
    x, t = batch_data(shape)
    dags = [build_graph(backend, shape, src, dst) for _ in range(2)]
    rng = np.random.default_rng(0)

    def loop(dag: DagNN, edits: bool) -> None:
        for _ in range(cycles):
            for _ in range(EDIT_EVERY):
                train_step(dag, x, t)
            if edits:
                set_edit(dag, shape, rng, EDIT_FRACTION)
        _sync(dag)

    loop(dags[0], True)  # warm-up: first compile, first edit (any capacity growth)
    loop(dags[1], False)
    pairs = max(1, min(runs, 3))
    fig, base = [], []
    for _ in range(pairs):
        base.append(_time_once(lambda: loop(dags[1], False)))
        fig.append(_time_once(lambda: loop(dags[0], True)))
    steps = cycles * EDIT_EVERY
    ratio = statistics.median(b / f for f, b in zip(fig, base, strict=True))
    target = EDIT_TARGETS.get(backend.name, 0.8)
    return {
        "graph": shape.describe(),
        "edit_every": EDIT_EVERY,
        "edit_fraction": EDIT_FRACTION,
        "steps_per_run": steps,
        "steps_per_s": steps / statistics.median(fig),
        "steps_per_s_no_edits": steps / statistics.median(base),
        "relative_speed": ratio,
        "target": target,
        "ok": ratio >= target,
    }


def _render_edit(d: dict[str, Any]) -> list[str]:
    g = d["graph"]
    return [
        f"edit loop: {g['edges']:,}-edge graph, {d['edit_fraction']:.0%} of edges replaced "
        f"every {d['edit_every']} steps, batch {g['batch']} (target >= {d['target']:.0%} of "
        f"the edit-free speed): {_ok(d['ok'])}",
        f"  {d['steps_per_s']:.2f} steps/s vs {d['steps_per_s_no_edits']:.2f} without edits: "
        f"{d['relative_speed']:.0%}",
    ]


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
            f"{d['target']}x; torch threads {d['torch_threads']}): {_ok(d['ok'])}"
        )
        for b, v in d["batches"].items():
            lines.append(
                f"  batch {b:>3}: {v['median_s'] * 1e3:8.3f} ms vs "
                f"{v['baseline_median_s'] * 1e3:8.3f} ms: {v['ratio']:.2f}x "
                f"(minima {v['ratio_of_minima']:.2f}x); loss rel. diff "
                f"{v['loss_rel_diff']:.1e}; dense levels {v['dense_levels']}"
            )
    if "deep" in r:
        lines.extend(_render_deep(r["deep"]))
    if "edit" in r:
        lines.extend(_render_edit(r["edit"]))
    return "\n".join(lines)
