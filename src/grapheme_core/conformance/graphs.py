"""The canonical graphs of the conformance suite, all seeded.

Each builder adds structure to a fresh :class:`~grapheme_core.DagNN` and returns a
:class:`Case`: the model plus an input batch. Parameters are set explicitly (non-zero
biases, weights away from zero) so every activation is exercised away from its kinks and
nothing passes by accident. Inputs are rounded to the model's dtype, so the float64
oracle sees exactly the numbers the backend sees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from ..dagnn import DagNN
from ..types import Activation, NodeKind

A = Activation
ALL_ACTIVATIONS: tuple[Activation, ...] = tuple(Activation)


@attrs.frozen(eq=False)
class Case:
    name: str
    dag: DagNN
    x: np.ndarray  # float64 [B, n_inputs], exactly representable in the model's dtype

    def probe(self, seed: int = 1) -> np.ndarray:
        """A seeded ``dL/dy`` for this case, shaped like the output and dtype-rounded."""
        rng = np.random.default_rng(seed)
        g = rng.uniform(-1.0, 1.0, size=(self.x.shape[0], len(self.dag.output_nodes)))
        return _round(g, self.dag.dtype)

    def inputs(self, seed: int) -> np.ndarray:
        """Another input batch of the same shape (for multi-call checks)."""
        rng = np.random.default_rng(seed)
        return _round(rng.uniform(-1.5, 1.5, size=self.x.shape), self.dag.dtype)


Builder = Callable[[DagNN, np.random.Generator], "np.ndarray | None"]
_BUILDERS: dict[str, Builder] = {}


def _builder(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        _BUILDERS[name] = fn
        return fn

    return deco


#: The canonical graphs of the suite, in suite order.
CANONICAL = (
    "empty",
    "single_node",
    "chain",
    "diamond",
    "wide_fan_in",
    "deep",
    "multi_edges",
    "activations",
    "disconnected",
)
#: What each canonical graph is (used in check titles and docs).
DESCRIPTIONS = {
    "empty": "a graph with no nodes ([B, 0] in, [B, 0] out)",
    "single_node": "a single output node and nothing else (value act(bias))",
    "chain": "a chain input -> tanh -> relu -> sigmoid -> leaky_relu -> linear -> output",
    "diamond": "a diamond (two paths that split and meet again)",
    "wide_fan_in": "a wide fan-in (96 inputs and 24 hidden nodes into two outputs)",
    "deep": "a deep graph (48 levels, skip edges over three levels)",
    "multi_edges": "parallel edges between the same two nodes",
    "activations": "every activation on input, hidden and output nodes, both signs, saturated",
    "disconnected": "disconnected parts (two components, unused input, isolated nodes)",
}
#: Random DAGs with skip edges and multi-edges, node ids deliberately not in topological order.
RANDOM = ("random_small", "random_medium", "random_wide")


def case_names() -> tuple[str, ...]:
    return CANONICAL + RANDOM


def build(
    name: str,
    backend: Any,
    dtype: str = "float64",
    seed: int = 0,
    batch: int = 5,
    **dag_kwargs: Any,
) -> Case:
    """Build canonical case ``name`` on ``backend``: same seed, same numbers everywhere."""
    dag = DagNN(backend=backend, dtype=dtype, seed=seed, **dag_kwargs)
    rng = np.random.default_rng([seed, _stable_hash(name)])
    x = _BUILDERS[name](dag, rng)
    _set_biases(dag, rng)
    if x is None:
        x = rng.uniform(-1.5, 1.5, size=(batch, len(dag.input_nodes)))
    return Case(name, dag, _round(np.asarray(x, dtype=np.float64), dtype))


def rebuild(dag: DagNN, backend: Any = None) -> DagNN:
    """A fresh model with the same structure and parameters, built in one go (node ids
    renumbered densely in the same order). ``edit.*`` checks compare against it."""
    fresh = DagNN(backend=dag.backend if backend is None else backend, dtype=dag.dtype)
    ids = dag.nodes()
    new_ids = np.empty(ids.shape[0], dtype=np.int64)
    for i, nid in enumerate(ids.tolist()):
        kind, act = dag.node_kind(nid), dag.activation(nid)
        new_ids[i] = int(fresh.add_nodes(1, kind, act)[0])
    _, src, dst = dag.edges()
    params = dag.get_parameters()
    if src.size:
        fresh.add_edges(
            new_ids[np.searchsorted(ids, src)],
            new_ids[np.searchsorted(ids, dst)],
            params["weight"].astype(np.float64),
        )
    fresh.set_parameters({"bias": params["bias"].astype(np.float64)})
    return fresh


# -- helpers --------------------------------------------------------------------------
def _round(values: np.ndarray, dtype: str) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).astype(dtype).astype(np.float64)


def _stable_hash(name: str) -> int:
    return int.from_bytes(name.encode(), "little") % (2**31)


def _weights(rng: np.random.Generator, n: int, low: float = 0.3, high: float = 1.1) -> np.ndarray:
    """Weights with magnitude in ``[low, high]`` and random sign (never near zero)."""
    return rng.uniform(low, high, size=n) * rng.choice([-1.0, 1.0], size=n)


def _set_biases(dag: DagNN, rng: np.random.Generator) -> None:
    n = dag.node_count
    if n == 0:
        return
    bias = rng.uniform(0.05, 0.5, size=n) * rng.choice([-1.0, 1.0], size=n)
    bias[np.isin(dag.nodes(), dag.input_nodes)] = 0.0
    dag.set_parameters({"bias": bias})


# -- canonical graphs -----------------------------------------------------------------
@_builder("empty")
def _empty(dag: DagNN, rng: np.random.Generator) -> np.ndarray:
    return np.zeros((3, 0))


@_builder("single_node")
def _single_node(dag: DagNN, rng: np.random.Generator) -> np.ndarray:
    # one output node and nothing else: its value is act(bias)
    dag.add_output(A.SIGMOID)
    return np.zeros((4, 0))


@_builder("chain")
def _chain(dag: DagNN, rng: np.random.Generator) -> None:
    x = dag.add_input()
    acts = (A.TANH, A.RELU, A.SIGMOID, A.LEAKY_RELU, A.LINEAR)
    nodes = [x] + [dag.add_hidden(a) for a in acts] + [dag.add_output(A.TANH)]
    dag.add_edges(nodes[:-1], nodes[1:], _weights(rng, len(nodes) - 1, 0.8, 1.6))


@_builder("diamond")
def _diamond(dag: DagNN, rng: np.random.Generator) -> None:
    x0, x1 = dag.add_input(), dag.add_input()
    top = dag.add_hidden(A.LINEAR)
    left, right = dag.add_hidden(A.TANH), dag.add_hidden(A.SIGMOID)
    out = dag.add_output(A.LINEAR)
    src = [x0, x1, top, top, left, right]
    dst = [top, top, left, right, out, out]
    dag.add_edges(src, dst, _weights(rng, len(src)))


@_builder("wide_fan_in")
def _wide_fan_in(dag: DagNN, rng: np.random.Generator) -> None:
    n_in, n_hidden = 96, 24
    ins = dag.add_nodes(n_in, NodeKind.INPUT)
    hid = dag.add_nodes(n_hidden, NodeKind.HIDDEN, A.RELU)
    out_tanh = dag.add_output(A.TANH)
    out_lin = dag.add_output(A.LINEAR)
    src = [ins, ins, rng.choice(ins, size=4 * n_hidden), hid, hid]
    dst = [
        np.full(n_in, out_tanh),
        np.full(n_in, out_lin),
        np.repeat(hid, 4),
        np.full(n_hidden, out_tanh),
        np.full(n_hidden, out_lin),
    ]
    s, d = np.concatenate(src), np.concatenate(dst)
    dag.add_edges(s, d, _weights(rng, s.size, 0.02, 0.15))


@_builder("deep")
def _deep(dag: DagNN, rng: np.random.Generator) -> None:
    depth = 48
    ins = dag.add_nodes(2, NodeKind.INPUT)
    layers = [ins]
    src: list[int] = []
    dst: list[int] = []
    for lv in range(depth):
        kind = NodeKind.OUTPUT if lv == depth - 1 else NodeKind.HIDDEN
        act = (A.TANH, A.LINEAR, A.LEAKY_RELU)[lv % 3]
        layer = dag.add_nodes(2, kind, act)
        for node in layer.tolist():
            for prev in layers[-1].tolist():
                src.append(prev)
                dst.append(node)
            if len(layers) >= 4:  # skip connection over three levels
                src.append(int(layers[-4][0]))
                dst.append(node)
        layers.append(layer)
    dag.add_edges(src, dst, _weights(rng, len(src), 0.4, 0.8))


@_builder("multi_edges")
def _multi_edges(dag: DagNN, rng: np.random.Generator) -> None:
    x0, x1 = dag.add_input(), dag.add_input()
    h = dag.add_hidden(A.TANH)
    o = dag.add_output(A.LINEAR)
    src = [x0, x0, x0, x1, h, h, x1, x1]
    dst = [h, h, h, h, o, o, o, o]
    dag.add_edges(src, dst, _weights(rng, len(src)))


@_builder("activations")
def _activations(dag: DagNN, rng: np.random.Generator) -> np.ndarray:
    # every activation on an input, a hidden and an output node; inputs sweep both signs
    # and (for sigmoid/tanh) saturation, never hitting a kink exactly.
    ins = [dag.add_input(a) for a in ALL_ACTIVATIONS]
    x_plain = dag.add_input()
    src: list[int] = []
    dst: list[int] = []
    w: list[float] = []
    for a in ALL_ACTIVATIONS:
        h = dag.add_hidden(a)
        o = dag.add_output(a)
        src += [x_plain, ins[int(a)], h, x_plain]
        dst += [h, h, o, o]
        w += [1.3, 0.7, -0.9, 0.6]
    dag.add_edges(src, dst, w)
    sweep = np.array([-7.3, -2.1, -0.77, -0.31, 0.29, 0.83, 2.4, 6.9])
    x = np.stack([np.roll(sweep, k) for k in range(len(ins) + 1)], axis=1)
    return x


@_builder("disconnected")
def _disconnected(dag: DagNN, rng: np.random.Generator) -> None:
    # two components, an unused input, an isolated hidden node, an isolated output
    a0, a1 = dag.add_input(), dag.add_input()
    dag.add_input()  # unused input
    dag.add_hidden(A.TANH)  # isolated hidden node
    b0 = dag.add_input(A.TANH)
    ha = dag.add_hidden(A.SIGMOID)
    oa = dag.add_output(A.LINEAR)
    dag.add_output(A.SIGMOID)  # isolated output: act(bias)
    hb = dag.add_hidden(A.RELU)
    ob = dag.add_output(A.TANH)
    src = [a0, a1, ha, b0, hb]
    dst = [ha, ha, oa, hb, ob]
    dag.add_edges(src, dst, _weights(rng, len(src)))


def _random(
    dag: DagNN, rng: np.random.Generator, n_in: int, n_hidden: int, n_out: int, p: float
) -> None:
    """Random DAG with skip edges and multi-edges. Outputs are created first and hidden
    nodes in a shuffled order, so node ids do not follow the topological order."""
    outs = [dag.add_output(ALL_ACTIVATIONS[int(i)]) for i in rng.integers(0, 5, n_out)]
    hidden = [dag.add_hidden(ALL_ACTIVATIONS[int(i)]) for i in rng.integers(0, 5, n_hidden)]
    ins = [dag.add_input() for _ in range(n_in)]
    topo = [hidden[i] for i in rng.permutation(n_hidden)]  # a random topological order
    src: list[int] = []
    dst: list[int] = []
    earlier = list(ins)
    for node in [*topo, *outs]:
        k = max(1, int(rng.binomial(len(earlier), p)))
        chosen = rng.choice(len(earlier), size=min(k, len(earlier)), replace=False)
        src += [earlier[int(c)] for c in chosen]
        dst += [node] * len(chosen)
        if node not in outs:
            earlier.append(node)
    dup = rng.integers(0, len(src), size=max(1, len(src) // 10))  # multi-edges
    src += [src[int(i)] for i in dup]
    dst += [dst[int(i)] for i in dup]
    order = rng.permutation(len(src))  # edge ids not in topological order either
    s, d = np.asarray(src)[order], np.asarray(dst)[order]
    fan_in = np.bincount(d, minlength=dag.node_count)[d]
    dag.add_edges(s, d, _weights(rng, s.size, 0.5, 1.5) / np.sqrt(fan_in))


@_builder("random_small")
def _random_small(dag: DagNN, rng: np.random.Generator) -> None:
    _random(dag, rng, n_in=3, n_hidden=8, n_out=2, p=0.5)


@_builder("random_medium")
def _random_medium(dag: DagNN, rng: np.random.Generator) -> None:
    _random(dag, rng, n_in=6, n_hidden=40, n_out=4, p=0.15)


@_builder("random_wide")
def _random_wide(dag: DagNN, rng: np.random.Generator) -> None:
    _random(dag, rng, n_in=16, n_hidden=60, n_out=8, p=0.08)
