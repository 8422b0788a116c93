"""``grapheme-train bench``: a reproducible benchmark with an in-process baseline.

Three regimes, each measured in one process so the ratios mean something on a noisy
machine:

* **standard graph** (the default): 256 inputs, 8 levels of 4096 tanh nodes, each with 32
  incoming edges drawn uniformly (with replacement) from all earlier nodes, about 1.05M
  edges, batch 64, float32, seed 0. The last level's nodes are the outputs (kind OUTPUT,
  tanh), so the loss depends on every level. Medians (and minima) over ``--runs`` runs
  after a warm-up of: build (bulk ``add_nodes``/``add_edges``), plan compile (host plan +
  backend compile), forward, backward, optimizer step (SGD), full training step
  (zero_grad + forward + MSE gradient + backward + step), the first training step on a
  fresh plan (includes any JIT compilation), and peak memory. The **baseline** is a
  plain SciPy CSR forward sweep over the same levels with the same weights (one sparse
  product + ``tanh`` per level), timed in the same process; every figure is also given
  as a ratio to it. Each timed run is paired with a baseline run just before it (both
  timed warm, on their second consecutive call); ``ratio`` is the median of the per-run
  ratios, so drift in the machine's load cancels, and ``ratio_of_minima`` (best run over
  best baseline run) is given as the steadier figure on a busy machine.
* **small graph** (``--small`` runs only this and the naive comparison): a few hundred
  nodes at batch 1, 4 and 16, the regime of the unified trainer, where Python overhead
  per level dominates; reported as training steps per second.
* **naive reference**: node-by-node, edge-by-edge pure Python (the way the original
  evaluated) on a 10,240-edge graph, against the backend on the same graph and batch.

Memory: the peak resident set size (``VmHWM`` from ``/proc/self/status``, reset through
``/proc/self/clear_refs`` just before building) minus the resident size before building.
RSS is used because it sees every allocator (NumPy, SciPy's C++ temporaries, torch, XLA);
``tracemalloc`` only sees allocations reported to Python (NumPy data buffers included),
so its peak is given too as a cross-check. Where ``clear_refs`` is unavailable the
process-lifetime ``ru_maxrss`` is reported instead (an upper bound) and the method says so.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import attrs
import click
import numpy as np
import scipy
import scipy.sparse as sp

from grapheme_core import (
    Activation,
    Backend,
    BackendLoadError,
    BackendNotFoundError,
    DagNN,
    IncompatibleBackendError,
    NodeKind,
    get_backend,
)
from grapheme_train import jsonout
from grapheme_train.options import backend_options
from grapheme_train.progress import Status

#: Ratio targets of the full training step to the baseline forward sweep, per backend.
TRAIN_STEP_TARGETS = {"numpy": 6.0, "torch": 4.0, "jax": 6.0}
BUILD_COMPILE_TARGET_S = 2.0
PEAK_MEMORY_TARGET_BYTES = 1 << 30
LEARNING_RATE = 1e-3


# -- graphs ------------------------------------------------------------------------------
@attrs.frozen
class GraphShape:
    """A layered random DAG: ``levels`` levels of ``width`` nodes above ``inputs`` inputs;
    every non-input node draws ``fan_in`` sources uniformly from all earlier nodes."""

    inputs: int = 256
    levels: int = 8
    width: int = 4096
    fan_in: int = 32
    batch: int = 64
    seed: int = 0
    dtype: str = "float32"

    @property
    def nodes(self) -> int:
        return self.inputs + self.levels * self.width

    @property
    def edges(self) -> int:
        return self.levels * self.width * self.fan_in

    def describe(self) -> dict[str, Any]:
        return {
            **attrs.asdict(self),
            "nodes": self.nodes,
            "edges": self.edges,
            "outputs": self.width if self.levels else 0,
        }


STANDARD = GraphShape()
SMALL = GraphShape(inputs=32, levels=4, width=64, fan_in=8, batch=1)
NAIVE = GraphShape(inputs=64, levels=4, width=80, fan_in=32, batch=8)
SMALL_BATCHES = (1, 4, 16)


def layered_edges(shape: GraphShape) -> tuple[np.ndarray, np.ndarray]:
    """``(src, dst)`` node ids of the layered graph (ids in build order: inputs first)."""
    rng = np.random.default_rng(shape.seed)
    src, dst = [], []
    start = shape.inputs
    for _ in range(shape.levels):
        dst.append(np.repeat(np.arange(start, start + shape.width), shape.fan_in))
        src.append(rng.integers(0, start, size=shape.width * shape.fan_in))
        start += shape.width
    if not src:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(src), np.concatenate(dst)


def build_graph(backend: Any, shape: GraphShape, src: np.ndarray, dst: np.ndarray) -> DagNN:
    """The bulk build that is timed: one ``add_nodes`` per level, one ``add_edges``."""
    dag = DagNN(backend=backend, dtype=shape.dtype, seed=shape.seed)
    dag.add_nodes(shape.inputs, NodeKind.INPUT)
    for lv in range(shape.levels):
        kind = NodeKind.OUTPUT if lv == shape.levels - 1 else NodeKind.HIDDEN
        dag.add_nodes(shape.width, kind, Activation.TANH)
    dag.add_edges(src, dst)
    return dag


def batch_data(shape: GraphShape, batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded inputs ``[B, inputs]`` and targets ``[B, outputs]`` in the graph's dtype."""
    rng = np.random.default_rng(shape.seed + 1)
    b = shape.batch if batch is None else batch
    x = rng.standard_normal((b, shape.inputs)).astype(shape.dtype)
    t = rng.uniform(-0.5, 0.5, (b, shape.width if shape.levels else 0)).astype(shape.dtype)
    return x, t


class SciPySweep:
    """The baseline: what one would write by hand with SciPy. One CSR matrix per
    construction level (rows: the level's nodes, columns: every earlier node), applied as
    ``H[level] = tanh(A_l @ H[:start])`` on a node-major ``[N, B]`` state."""

    def __init__(self, shape: GraphShape, src: np.ndarray, dst: np.ndarray, weight: np.ndarray):
        self.shape = shape
        self.matrices: list[tuple[int, sp.csr_matrix]] = []
        start = shape.inputs
        for _ in range(shape.levels):
            m = (dst >= start) & (dst < start + shape.width)
            a = sp.csr_matrix((weight[m], (dst[m] - start, src[m])), shape=(shape.width, start))
            self.matrices.append((start, a))
            start += shape.width
        self._h = np.zeros((shape.nodes, shape.batch), dtype=shape.dtype)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = self._h
        h[: self.shape.inputs] = x.T
        for start, a in self.matrices:
            np.tanh(a @ h[:start], out=h[start : start + a.shape[0]])
        return h[self.shape.nodes - self.shape.width :]


# -- timing helpers ----------------------------------------------------------------------
def _sync(dag: DagNN) -> None:
    """Wait for asynchronous backends (JAX dispatches lazily) so timings are real."""
    for group in (getattr(dag, "_params", {}), getattr(dag, "_grads", {})):
        for value in group.values():
            ready = getattr(value, "block_until_ready", None)
            if ready is not None:
                ready()


def time_calls(
    fn: Callable[[], Any], runs: int, warmup: int = 1, setup: Callable[[], Any] | None = None
) -> list[float]:
    """Wall-clock seconds of ``runs`` calls of ``fn`` after ``warmup`` untimed calls;
    ``setup`` (untimed) runs before every call."""
    times = []
    for i in range(warmup + runs):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - t0
        if i >= warmup:
            times.append(elapsed)
    return times


def _time_once(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paired_runs(
    fn: Callable[[], Any],
    baseline: Callable[[], Any],
    runs: int,
    setup: Callable[[], Any] | None = None,
) -> tuple[list[float], list[float]]:
    """``runs`` pairs of timings: ``baseline`` then ``fn``, each timed on its second
    consecutive call (so both run warm, not right after the other's working set evicted
    theirs). ``setup`` runs untimed before every call of ``fn``. Returns
    ``(fn_times, base_times)``."""
    fig: list[float] = []
    base: list[float] = []
    for _ in range(runs):
        baseline()
        base.append(_time_once(baseline))
        for timed in (False, True):
            if setup is not None:
                setup()
            if timed:
                fig.append(_time_once(fn))
            else:
                fn()
    return fig, base


def _figure(times: list[float], base_times: list[float]) -> dict[str, Any]:
    """Median, minimum and runs of a figure; ``ratio`` is the median of the per-run ratios
    to the paired baseline runs, ``ratio_of_minima`` the best run over the best paired
    baseline run (on a busy machine noise only adds time, so it is the steadier of the
    two; the targets use ``ratio``)."""
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "runs_s": times,
        "ratio": statistics.median(f / b for f, b in zip(times, base_times, strict=True)),
        "ratio_of_minima": min(times) / min(base_times),
    }


def mse_grad(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``dL/dy`` of the mean squared error, ``2 (y - t) / n``."""
    return (2.0 / y.size) * (y - t)


def train_step(dag: DagNN, x: np.ndarray, t: np.ndarray, lr: float = LEARNING_RATE) -> None:
    """One full training step, as the trainer does it."""
    dag.zero_grad()
    y = dag.forward(x)
    dag.backward_accumulate(mse_grad(y, t))
    dag.step(lr)
    _sync(dag)


# -- memory ------------------------------------------------------------------------------
def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            m = re.search(rf"^{field}:\s+(\d+) kB", fh.read(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return _proc_status_kib("VmHWM") is not None


def measure_memory(fn: Callable[[], Any]) -> dict[str, Any]:
    """Peak memory of ``fn()`` (see the module docstring for the method)."""
    gc.collect()
    resettable = _reset_peak_rss()
    rss_before = (_proc_status_kib("VmRSS") or 0) * 1024
    tracemalloc.start()
    try:
        result = fn()
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if resettable:
        peak = (_proc_status_kib("VmHWM") or 0) * 1024
        method = "peak RSS (VmHWM, reset via /proc/self/clear_refs) minus RSS before"
    else:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        method = "process-lifetime ru_maxrss minus RSS before (upper bound)"
    del result
    return {
        "method": method,
        "peak_bytes": max(0, peak - rss_before),
        "process_peak_rss_bytes": peak,
        "tracemalloc_peak_bytes": traced_peak,
    }


# -- the standard graph --------------------------------------------------------------------
def measure_standard(backend: Any, shape: GraphShape, runs: int) -> dict[str, Any]:
    """The 1M-edge figures. Every timed run is paired with a baseline sweep run just
    before it; a figure's ratio is the median of its per-run ratios, which cancels most of
    the drift of a shared machine (the medians and minima of the raw times are reported
    too)."""
    src, dst = layered_edges(shape)
    x, t = batch_data(shape)

    def build_compile_train() -> DagNN:
        dag = build_graph(backend, shape, src, dst)
        train_step(dag, x, t)
        return dag

    memory = measure_memory(build_compile_train)
    gc.collect()

    # The warm-up build also provides the baseline's weights (the same on every build).
    dag = build_graph(backend, shape, src, dst)
    sweep = SciPySweep(shape, *_edge_arrays(dag), dag.get_parameters()["weight"])
    agreement = _baseline_agreement(dag, sweep, x)
    del dag
    gc.collect()

    def baseline() -> None:
        sweep(x)

    baseline()
    # Build and compile: a fresh graph every run.
    times: dict[str, list[float]] = {k: [] for k in ("build", "plan_compile", "backend_compile")}
    base_build: list[float] = []
    for _ in range(runs):
        gc.collect()
        baseline()
        base_build.append(_time_once(baseline))
        t0 = time.perf_counter()
        dag = build_graph(backend, shape, src, dst)
        t1 = time.perf_counter()
        plan = dag.plan
        t2 = time.perf_counter()
        compiled = dag.backend.compile(plan, dag.dtype)
        t3 = time.perf_counter()
        times["build"].append(t1 - t0)
        times["plan_compile"].append(t2 - t1)
        times["backend_compile"].append(t3 - t2)
        del compiled, plan
    times["build_compile"] = [
        sum(parts)
        for parts in zip(
            times["build"], times["plan_compile"], times["backend_compile"], strict=True
        )
    ]

    # First training step on the last fresh graph: the host plan is cached, the backend
    # compiles (and a JIT backend traces and compiles) inside this call.
    baseline()
    base_first = [_time_once(baseline)]
    first_step = [_time_once(lambda: train_step(dag, x, t))]

    def forward() -> None:
        dag.forward(x)

    def backward() -> None:
        dag.backward_accumulate(grad)
        _sync(dag)

    def step() -> None:
        dag.step(LEARNING_RATE)
        _sync(dag)

    grad = mse_grad(dag.forward(x), t)
    figures = {k: _figure(v, base_build) for k, v in times.items()}
    figures["first_train_step"] = _figure(first_step, base_first)
    all_base = base_build + base_first
    for name, fn, setup in (
        ("forward", forward, None),
        ("backward", backward, forward),
        ("step", step, None),
        ("train_step", lambda: train_step(dag, x, t), None),
    ):
        fig, base = paired_runs(fn, baseline, runs, setup=setup)
        figures[name] = _figure(fig, base)
        all_base += base
    return {
        "graph": shape.describe(),
        "plan_levels": dag.plan.num_levels,
        "baseline": {
            "what": "SciPy CSR forward sweep (sparse product + tanh per level)",
            **_figure(all_base, all_base),
            "max_abs_diff_vs_forward": agreement,
        },
        "figures": figures,
        "memory": memory,
    }


def _edge_arrays(dag: DagNN) -> tuple[np.ndarray, np.ndarray]:
    _, src, dst = dag.edges()
    return src, dst


def _baseline_agreement(dag: DagNN, sweep: SciPySweep, x: np.ndarray) -> float:
    """Max |forward - sweep| with the biases set to zero (the sweep has none)."""
    dag.set_parameters({"bias": np.zeros(dag.node_count)})
    y = dag.forward(x)
    ref = np.asarray(sweep(x)).T
    return float(np.max(np.abs(y - ref))) if y.size else 0.0


# -- small graphs ----------------------------------------------------------------------
def measure_small(backend: Any, shape: GraphShape, runs: int, batches=SMALL_BATCHES) -> dict:
    src, dst = layered_edges(shape)
    out: dict[str, Any] = {"graph": {**shape.describe(), "batch": list(batches)}, "batches": {}}
    for b in batches:
        dag = build_graph(backend, shape, src, dst)
        x, t = batch_data(shape, b)
        steps = _calls_per_block(lambda: train_step(dag, x, t), 0.1)  # noqa: B023
        times = time_calls(_repeat(train_step, steps, dag, x, t), runs)
        per_step = statistics.median(times) / steps
        out["batches"][str(b)] = {"step_s": per_step, "steps_per_s": 1.0 / per_step}
    return out


def _repeat(fn: Callable[..., Any], count: int, *args: Any) -> Callable[[], None]:
    def call() -> None:
        for _ in range(count):
            fn(*args)

    return call


def _calls_per_block(fn: Callable[[], Any], budget_s: float = 0.05) -> int:
    """How many calls of ``fn`` fill about ``budget_s`` (after one warm-up call), so that
    fast operations are timed in blocks rather than one call at a time."""
    fn()
    one = max(_time_once(fn), 1e-6)
    return max(1, min(1000, int(budget_s / one)))


# -- the naive reference ------------------------------------------------------------------
class NaiveReference:
    """Node by node, edge by edge, sample by sample in pure Python floats, like the
    original: forward, reverse-mode backward and an SGD update over Python lists."""

    def __init__(self, dag: DagNN) -> None:
        node_ids = [int(i) for i in dag.nodes()]
        index = {nid: k for k, nid in enumerate(node_ids)}
        _, src, dst = dag.edges()
        params = dag.get_parameters()
        self.weight = params["weight"].astype(float).tolist()
        self.bias = params["bias"].astype(float).tolist()
        self.inputs = [index[i] for i in dag.input_nodes]
        self.outputs = [index[i] for i in dag.output_nodes]
        self.is_input = [False] * len(node_ids)
        for i in self.inputs:
            self.is_input[i] = True
        acts = [dag.activation(i) for i in node_ids]
        if not set(acts) <= {Activation.TANH, Activation.LINEAR}:
            raise ValueError("the naive reference handles tanh and linear nodes only")
        self.is_tanh = [a is Activation.TANH for a in acts]
        self.incoming: list[list[tuple[int, int]]] = [[] for _ in node_ids]
        for e, (s, d) in enumerate(zip(src.tolist(), dst.tolist(), strict=True)):
            self.incoming[index[d]].append((index[s], e))
        self.order = _topological(len(node_ids), self.incoming)

    def forward_one(self, x: list[float]) -> list[float]:
        h = [0.0] * len(self.bias)
        for k, i in enumerate(self.inputs):
            h[i] = x[k]
        for n in self.order:
            z = h[n] if self.is_input[n] else self.bias[n]
            for s, e in self.incoming[n]:
                z += self.weight[e] * h[s]
            h[n] = math.tanh(z) if self.is_tanh[n] else z
        return h

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = [self.forward_one(row) for row in x.tolist()]
        return np.array([[h[o] for o in self.outputs] for h in out])

    def train_step(self, x: np.ndarray, t: np.ndarray, lr: float = LEARNING_RATE) -> None:
        gw = [0.0] * len(self.weight)
        gb = [0.0] * len(self.bias)
        n = float(t.size)
        for row, target in zip(x.tolist(), t.tolist(), strict=True):
            h = self.forward_one(row)
            dh = [0.0] * len(h)
            for o, tv in zip(self.outputs, target, strict=True):
                dh[o] = 2.0 * (h[o] - tv) / n
            for node in reversed(self.order):
                dz = dh[node] * (1.0 - h[node] * h[node]) if self.is_tanh[node] else dh[node]
                if not self.is_input[node]:
                    gb[node] += dz
                for s, e in self.incoming[node]:
                    gw[e] += dz * h[s]
                    dh[s] += self.weight[e] * dz
        for e in range(len(self.weight)):
            self.weight[e] -= lr * gw[e]
        for k in range(len(self.bias)):
            self.bias[k] -= lr * gb[k]


def _topological(n: int, incoming: list[list[tuple[int, int]]]) -> list[int]:
    outgoing: list[list[int]] = [[] for _ in range(n)]
    indeg = [len(inc) for inc in incoming]
    for d, inc in enumerate(incoming):
        for s, _ in inc:
            outgoing[s].append(d)
    ready = [i for i in range(n) if indeg[i] == 0]
    order = []
    while ready:
        node = ready.pop()
        order.append(node)
        for d in outgoing[node]:
            indeg[d] -= 1
            if indeg[d] == 0:
                ready.append(d)
    return order


def measure_naive(backend: Any, shape: GraphShape, runs: int) -> dict[str, Any]:
    src, dst = layered_edges(shape)
    x, t = batch_data(shape)
    dag = build_graph(backend, shape, src, dst)
    naive = NaiveReference(dag)
    diff = float(np.max(np.abs(naive.forward(x) - dag.forward(x))))
    naive_fwd = statistics.median(time_calls(lambda: naive.forward(x), runs))
    naive_step = statistics.median(time_calls(lambda: naive.train_step(x, t), runs))
    k_fwd = _calls_per_block(lambda: dag.forward(x))
    k_step = _calls_per_block(lambda: train_step(dag, x, t))
    fwd = statistics.median(time_calls(_repeat(dag.forward, k_fwd, x), runs)) / k_fwd
    step = statistics.median(time_calls(_repeat(train_step, k_step, dag, x, t), runs)) / k_step
    return {
        "graph": shape.describe(),
        "what": "pure-Python node-by-node evaluation (per sample, per edge), SGD",
        "max_abs_diff_forward": diff,
        "naive_forward_s": naive_fwd,
        "naive_train_step_s": naive_step,
        "forward_s": fwd,
        "train_step_s": step,
        "forward_speedup": naive_fwd / fwd,
        "train_step_speedup": naive_step / step,
    }


# -- the whole run -------------------------------------------------------------------------
def machine_info(backend_name: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    lib = {"torch": "torch", "jax": "jax"}.get(backend_name)
    if lib and lib in sys.modules:
        info[lib] = getattr(sys.modules[lib], "__version__", "?")
    return info


def _load_average() -> list[float] | None:
    """1/5/15-minute load averages: on a shared machine they say how noisy a run was."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            m = re.search(r"^model name\s*:\s*(.+)$", fh.read(), re.MULTILINE)
        if m:
            return m.group(1).strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_bench(
    backend_name: str | Backend | None = None,
    runs: int = 11,
    small_only: bool = False,
    shape: GraphShape = STANDARD,
    small: GraphShape = SMALL,
    naive: GraphShape = NAIVE,
    options: dict[str, Any] | None = None,
    status: Callable[[str], None] = lambda what: None,
) -> dict[str, Any]:
    """Run the benchmark and return the result as plain JSON-able data. ``options`` go
    to :func:`grapheme_core.get_backend` (e.g. ``num_threads`` for torch); ``status`` is
    told the name of each phase as it starts (the command shows it on a terminal)."""
    options = dict(options or {})
    backend = get_backend(backend_name, **options)
    result: dict[str, Any] = {"backend": backend.name, "options": options, "runs": runs}
    load_before = _load_average()
    if not small_only:
        status(f"{shape.edges:,}-edge graph: build, compile, forward, backward, step, memory")
        result["standard"] = measure_standard(backend, shape, runs)
    status(f"small graph ({small.edges:,} edges): steps per second")
    result["small"] = measure_small(backend, small, runs)
    status(f"naive node-by-node reference ({naive.edges:,} edges)")
    result["naive"] = measure_naive(backend, naive, runs)
    result["machine"] = machine_info(backend.name)
    result["machine"]["load_average"] = {"before": load_before, "after": _load_average()}
    result["targets"] = _targets(result)
    return result


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    std = result.get("standard")
    if std is None:
        return {}
    figures = std["figures"]
    limit = TRAIN_STEP_TARGETS.get(result["backend"], 6.0)
    checks = {
        "train_step_ratio": (figures["train_step"]["ratio"], limit),
        "build_compile_s": (figures["build_compile"]["median_s"], BUILD_COMPILE_TARGET_S),
        "peak_memory_bytes": (std["memory"]["peak_bytes"], PEAK_MEMORY_TARGET_BYTES),
    }
    return {k: {"value": v, "limit": lim, "ok": bool(v <= lim)} for k, (v, lim) in checks.items()}


# -- rendering ---------------------------------------------------------------------------
_LABELS = {
    "build": "build (bulk add_nodes/add_edges)",
    "plan_compile": "plan compile (host)",
    "backend_compile": "backend compile",
    "build_compile": "build + compile",
    "first_train_step": "first train step (incl. JIT)",
    "forward": "forward",
    "backward": "backward (w, b, x grads)",
    "step": "optimizer step (SGD)",
    "train_step": "full training step",
}


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:10.2f} ms"


def render(result: dict[str, Any]) -> str:
    lines = []
    m = result["machine"]
    lines.append(
        f"grapheme bench: backend {result['backend']}"
        + "".join(f" {k}={v}" for k, v in result.get("options", {}).items())
        + f", {result['runs']} runs (medians); "
        f"{m['cpu']}, {m['cores']} cores; numpy {m['numpy']}, scipy {m['scipy']}"
        + "".join(f", {k} {m[k]}" for k in ("torch", "jax") if k in m)
        + (
            f"; load average {m['load_average']['before'][0]} -> {m['load_average']['after'][0]}"
            if m.get("load_average", {}).get("before")
            else ""
        )
    )
    std = result.get("standard")
    if std is not None:
        g = std["graph"]
        lines.append(
            f"standard graph: {g['inputs']} inputs, {g['levels']} x {g['width']} tanh nodes "
            f"(last level = outputs), fan-in {g['fan_in']}, {g['edges']:,} edges, "
            f"batch {g['batch']}, {g['dtype']}, seed {g['seed']}"
        )
        lines.append(
            f"{'figure':34} {'median':>13} {'min':>13}  {'x baseline':>10}  {'(minima)':>8}"
        )
        base = std["baseline"]
        lines.append(
            f"{'baseline: SciPy CSR forward sweep':34} {_ms(base['median_s'])} "
            f"{_ms(base['min_s'])}  {1.0:10.2f}  {1.0:8.2f}"
        )
        for key, label in _LABELS.items():
            f = std["figures"][key]
            lines.append(
                f"{label:34} {_ms(f['median_s'])} {_ms(f['min_s'])}  {f['ratio']:10.2f}"
                f"  {f['ratio_of_minima']:8.2f}"
            )
        mem = std["memory"]
        lines.append(
            f"{'peak memory':34} {mem['peak_bytes'] / 2**20:10.1f} MiB  "
            f"(tracemalloc {mem['tracemalloc_peak_bytes'] / 2**20:.1f} MiB; {mem['method']})"
        )
        lines.append(
            f"baseline vs forward: max |diff| {base['max_abs_diff_vs_forward']:.2e}; "
            f"plan levels {std['plan_levels']}"
        )
        for key, chk in result["targets"].items():
            value = chk["value"]
            shown = f"{value / 2**20:.1f} MiB" if key.endswith("bytes") else f"{value:.2f}"
            limit = (
                f"{chk['limit'] / 2**20:.0f} MiB"
                if key.endswith("bytes")
                else f"{chk['limit']:.2f}"
            )
            lines.append(f"target {key}: {shown} <= {limit}: {'ok' if chk['ok'] else 'MISSED'}")
    small = result["small"]
    g = small["graph"]
    lines.append(
        f"small graph: {g['nodes']} nodes, {g['edges']:,} edges ({g['inputs']} inputs, "
        f"{g['levels']} x {g['width']}, fan-in {g['fan_in']}): full training steps per second"
    )
    for b, v in small["batches"].items():
        lines.append(
            f"  batch {b:>3}: {v['steps_per_s']:10.0f} steps/s ({v['step_s'] * 1e6:.0f} us/step)"
        )
    nv = result["naive"]
    g = nv["graph"]
    lines.append(
        f"naive node-by-node Python vs {result['backend']} ({g['edges']:,} edges, "
        f"{g['nodes']} nodes, batch {g['batch']}; max |diff| {nv['max_abs_diff_forward']:.1e}):"
    )
    lines.append(
        f"  forward     {_ms(nv['naive_forward_s'])} vs {_ms(nv['forward_s'])}: "
        f"speed-up {nv['forward_speedup']:.1f}x"
    )
    lines.append(
        f"  train step  {_ms(nv['naive_train_step_s'])} vs {_ms(nv['train_step_s'])}: "
        f"speed-up {nv['train_step_speedup']:.1f}x"
    )
    return "\n".join(lines)


# -- CLI -----------------------------------------------------------------------------------
class _UsageProblem(click.ClickException):
    exit_code = 2


@click.command("bench")
@click.option(
    "--backend",
    "backend_name",
    default=None,
    metavar="NAME",
    help="Backend to measure (default: $GRAPHEME_BACKEND or numpy).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--small",
    "small_only",
    is_flag=True,
    help="Only the small-graph and naive-reference regimes (skip the 1M-edge graph).",
)
@click.option(
    "--runs",
    default=11,
    show_default=True,
    type=click.IntRange(min=1),
    help="Timed runs per figure, after one warm-up (medians are reported).",
)
@click.option(
    "--option",
    "opts",
    multiple=True,
    callback=backend_options,
    metavar="KEY=VALUE",
    help="Backend option passed to get_backend, e.g. num_threads=2 (repeatable).",
)
@click.option(
    "--regime",
    "regimes",
    multiple=True,
    type=click.Choice(["dense", "deep", "edit"]),
    help="Run these regimes instead (repeatable; see grapheme_train.bench_regimes): "
    "dense-shaped model vs torch nn.Sequential, 512-level graph vs 8 levels, edit loop.",
)
@click.option("--inputs", default=STANDARD.inputs, hidden=True, type=click.IntRange(min=1))
@click.option("--levels", default=STANDARD.levels, hidden=True, type=click.IntRange(min=1))
@click.option("--width", default=STANDARD.width, hidden=True, type=click.IntRange(min=1))
@click.option("--fan-in", default=STANDARD.fan_in, hidden=True, type=click.IntRange(min=1))
@click.option("--batch", default=STANDARD.batch, hidden=True, type=click.IntRange(min=1))
@click.option(
    "--tiny",
    is_flag=True,
    hidden=True,
    help="Shrink the small-graph and naive regimes too (for tests).",
)
def bench(
    backend_name: str | None,
    as_json: bool,
    small_only: bool,
    runs: int,
    opts: dict[str, Any],
    inputs: int,
    levels: int,
    width: int,
    fan_in: int,
    batch: int,
    tiny: bool,
    regimes: tuple[str, ...] = (),
) -> None:
    """Benchmark a backend on the standard 1M-edge graph against a plain SciPy sweep."""
    shape = GraphShape(inputs=inputs, levels=levels, width=width, fan_in=fan_in, batch=batch)
    small, naive = SMALL, NAIVE
    if tiny:
        small = GraphShape(inputs=8, levels=2, width=8, fan_in=4, batch=1)
        naive = GraphShape(inputs=8, levels=2, width=16, fan_in=4, batch=2)
    try:
        backend = get_backend(backend_name, **opts)
    except (BackendNotFoundError, BackendLoadError, IncompatibleBackendError, ValueError) as exc:
        raise _UsageProblem(str(exc)) from exc
    if regimes:
        from grapheme_train.bench_regimes import render_regimes, run_regimes

        result = run_regimes(backend, regimes, runs, quick=tiny)
        click.echo(jsonout.dumps(result) if as_json else render_regimes(result))
        return
    line = Status(f"bench {backend.name}", 2 if small_only else 3)
    try:
        result = run_bench(backend, runs, small_only, shape, small, naive, opts, line.step)
    finally:
        line.close()
    click.echo(jsonout.dumps(result) if as_json else render(result))


if __name__ == "__main__":  # pragma: no cover
    bench()
