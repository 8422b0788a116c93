"""Seeded graph generators used by tests, the conformance suite and benchmarks."""

from __future__ import annotations

from typing import Any

import numpy as np

from .dagnn import DagNN
from .types import Activation, NodeKind


def random_dag(
    n_inputs: int = 8,
    n_hidden: int = 180,
    n_outputs: int = 12,
    edges_per_node: int = 3,
    multi_edges: int = 20,
    seed: int = 0,
    activations: tuple[Activation, ...] = tuple(Activation),
    **dag_kwargs: Any,
) -> DagNN:
    """A random DAG mixing every activation, with skip edges and multi-edges.

    Nodes are created in a random-looking but acyclic order: each hidden or output node
    draws ``edges_per_node`` sources uniformly from all nodes created before it (so
    edges skip levels freely), then ``multi_edges`` existing edges are duplicated.
    """
    rng = np.random.default_rng(seed)
    dag = DagNN(seed=seed, **dag_kwargs)
    dag.add_nodes(n_inputs, NodeKind.INPUT)
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    kinds = [NodeKind.HIDDEN] * n_hidden + [NodeKind.OUTPUT] * n_outputs
    for i, kind in enumerate(kinds):
        act = activations[int(rng.integers(len(activations)))]
        nid = int(dag.add_nodes(1, kind, act)[0])
        existing = n_inputs + i
        k = min(edges_per_node, existing)
        src.append(rng.choice(existing, size=k, replace=False))
        dst.append(np.full(k, nid))
    s, d = np.concatenate(src), np.concatenate(dst)
    if multi_edges and s.size:
        dup = rng.integers(0, s.size, size=multi_edges)
        s, d = np.concatenate([s, s[dup]]), np.concatenate([d, d[dup]])
    dag.add_edges(s, d)
    # non-zero biases so bias gradients and activations are exercised away from zero
    params = dag.get_parameters()
    bias = rng.normal(0.0, 0.3, size=params["bias"].shape)
    bias[np.isin(dag.nodes(), dag.input_nodes)] = 0.0
    dag.set_parameters({"bias": bias})
    return dag


def layered_dag(
    n_inputs: int = 256,
    levels: int = 8,
    width: int = 4096,
    fan_in: int = 32,
    activation: Activation = Activation.TANH,
    seed: int = 0,
    **dag_kwargs: Any,
) -> DagNN:
    """The benchmark graph: ``levels`` layers of ``width`` nodes, each with ``fan_in``
    incoming edges drawn uniformly from all earlier nodes; the last layer is the output."""
    rng = np.random.default_rng(seed)
    dag = DagNN(seed=seed, **dag_kwargs)
    dag.add_nodes(n_inputs, NodeKind.INPUT)
    src, dst = [], []
    created = n_inputs
    for lv in range(levels):
        kind = NodeKind.OUTPUT if lv == levels - 1 else NodeKind.HIDDEN
        ids = dag.add_nodes(width, kind, activation)
        src.append(rng.integers(0, created, size=width * fan_in))
        dst.append(np.repeat(ids, fan_in))
        created += width
    dag.add_edges(np.concatenate(src), np.concatenate(dst))
    return dag
