"""Seeing a DagNN: a text summary, Graphviz DOT text and a networkx graph.

Everything here reads the model and changes nothing. :func:`graph_stats` gathers the
numbers once (vectorized; fine for million-edge graphs); :func:`summary` lays them out as
a table, the way ``model.summary()`` does in Keras. :func:`to_dot` writes DOT text with no
dependency (render it with ``dot -Tsvg``); :func:`to_networkx` needs the optional
``networkx`` package (``pip install 'grapheme-dagnn[graph]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .about import install_hint
from .types import Activation, NodeKind

if TYPE_CHECKING:
    from .dagnn import DagNN

__all__ = ["MAX_LEVEL_ROWS", "graph_stats", "summary", "to_dot", "to_networkx"]

MAX_LEVEL_ROWS = 12
"""Levels listed one per row by :func:`summary`; deeper graphs show the first and last
levels with the middle ones folded into one row."""

_KINDS = (NodeKind.INPUT, NodeKind.HIDDEN, NodeKind.OUTPUT)


def graph_stats(dag: DagNN) -> dict[str, Any]:
    """The numbers :func:`summary` shows, as a JSON-able dict.

    Keys: ``nodes``, ``edges``, ``parameters``, ``nodes_per_kind`` (``{"input": n, ...}``),
    ``activations`` (hidden and output nodes per activation), ``levels`` (a list, one
    ``{"level", "input", "hidden", "output"}`` per level in forward order), ``depth`` (the
    longest path, in edges), ``density`` (edges over the ``N*(N-1)/2`` node pairs a simple
    DAG can connect; multi-edges may push it above 1), ``backend``, ``dtype``.
    """
    plan = dag.plan
    n = plan.num_nodes
    kinds = _kinds_in_plan_order(dag)
    level_of = np.repeat(np.arange(plan.num_levels), np.diff(plan.level_offsets))
    per_level = np.zeros((plan.num_levels, len(_KINDS)), dtype=np.int64)
    np.add.at(per_level, (level_of, kinds), 1)
    acts = plan.activation[kinds != NodeKind.INPUT]
    activations = {
        Activation(int(code)).name.lower(): int(count)
        for code, count in zip(*np.unique(acts, return_counts=True), strict=True)
    }
    pairs = n * (n - 1) // 2
    return {
        "nodes": n,
        "edges": plan.num_edges,
        "parameters": dag.num_parameters,
        "nodes_per_kind": {
            k.name.lower(): int(c) for k, c in zip(_KINDS, per_level.sum(0), strict=True)
        },
        "activations": activations,
        "levels": [
            {"level": lv, **{k.name.lower(): int(row[k]) for k in _KINDS}}
            for lv, row in enumerate(per_level.tolist())
        ],
        "depth": max(plan.num_levels - 1, 0),
        "density": plan.num_edges / pairs if pairs else 0.0,
        "backend": dag.backend.name,
        "dtype": dag.dtype,
    }


def summary(dag: DagNN) -> str:
    """A table of the model: nodes per kind and per level, edges, parameters, density,
    depth, backend and dtype (what ``print(dag.summary())`` shows)."""
    s = graph_stats(dag)
    kinds = s["nodes_per_kind"]
    acts = ", ".join(f"{name} {count}" for name, count in s["activations"].items()) or "-"
    lines = [
        f"DagNN on {s['backend']} ({s['dtype']})",
        "",
        f"{'level':<7}{'input':>8}{'hidden':>8}{'output':>8}{'nodes':>8}",
        "-" * 39,
    ]
    levels = s["levels"]
    shown = levels
    if len(levels) > MAX_LEVEL_ROWS:
        head = MAX_LEVEL_ROWS // 2
        shown = [*levels[:head], None, *levels[-(MAX_LEVEL_ROWS - head - 1) :]]
        folded = levels[head : len(levels) - (MAX_LEVEL_ROWS - head - 1)]
    for row in shown:
        if row is None:
            counts = [sum(r[k] for r in folded) for k in ("input", "hidden", "output")]
            label = f"{folded[0]['level']}-{folded[-1]['level']}"
        else:
            counts = [row["input"], row["hidden"], row["output"]]
            label = str(row["level"])
        lines.append(f"{label:<7}" + "".join(f"{c:>8}" for c in counts) + f"{sum(counts):>8}")
    lines += [
        "-" * 39,
        f"{'total':<7}{kinds['input']:>8}{kinds['hidden']:>8}{kinds['output']:>8}{s['nodes']:>8}",
        "",
        f"edges:       {s['edges']:,}",
        f"parameters:  {s['parameters']:,} (edge weights + hidden/output biases)",
        f"depth:       {s['depth']} (longest path, in edges; {len(levels)} levels)",
        f"density:     {s['density']:.4g} (edges / N(N-1)/2 node pairs)",
        f"activations: {acts}",
    ]
    return "\n".join(lines)


def to_dot(dag: DagNN, *, weights: bool = False, name: str = "dagnn") -> str:
    """Graphviz DOT text of the model, left to right; inputs ranked first, outputs last.

    Nodes are labelled by id, kind and activation (``h4 tanh``); with ``weights=True``
    each edge is labelled with its weight. Render with ``dot -Tsvg model.dot -o model.svg``.
    """
    if not name.replace("_", "").isalnum():
        raise ValueError(f"name must be letters, digits and '_', got {name!r}")
    ids = dag.nodes()
    s = dag._structure
    kinds, acts = s.kinds, s.activations
    shape = {NodeKind.INPUT: "invhouse", NodeKind.HIDDEN: "ellipse", NodeKind.OUTPUT: "house"}
    prefix = {NodeKind.INPUT: "x", NodeKind.HIDDEN: "h", NodeKind.OUTPUT: "y"}
    out = [
        f"digraph {name} {{",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        "  edge [arrowsize=0.6];",
    ]
    for nid, kind, act in zip(ids.tolist(), kinds.tolist(), acts.tolist(), strict=True):
        k = NodeKind(kind)
        label = f"{prefix[k]}{nid}\\n{Activation(act).name.lower()}"
        out.append(f'  n{nid} [label="{label}", shape={shape[k]}];')
    for kind, rank in ((NodeKind.INPUT, "source"), (NodeKind.OUTPUT, "sink")):
        members = ids[kinds == kind]
        if members.size:
            out.append(f"  {{ rank={rank}; " + " ".join(f"n{i};" for i in members.tolist()) + " }")
    _, src, dst = dag.edges()
    if weights:
        w = dag.get_parameters()["weight"]
        out += [
            f'  n{a} -> n{b} [label="{v:.3g}"];'
            for a, b, v in zip(src.tolist(), dst.tolist(), w.tolist(), strict=True)
        ]
    else:
        out += [f"  n{a} -> n{b};" for a, b in zip(src.tolist(), dst.tolist(), strict=True)]
    out.append("}")
    return "\n".join(out) + "\n"


def to_networkx(dag: DagNN) -> Any:
    """The model as a ``networkx.MultiDiGraph`` (multi-edges are allowed in a DagNN).

    Node attributes: ``kind``, ``activation`` (names), ``bias``, ``level``; edge key: the
    edge id; edge attribute ``weight``. Needs ``networkx``: ``ImportError`` naming the
    extra to install otherwise.
    """
    try:
        import networkx as nx
    except ImportError:
        raise ImportError(
            f"DagNN.to_networkx() needs networkx: {install_hint('graph')} (or pip install networkx)"
        ) from None
    params = dag.get_parameters()
    plan = dag.plan
    level_of = np.repeat(np.arange(plan.num_levels), np.diff(plan.level_offsets))
    levels = np.empty(plan.num_nodes, dtype=np.int64)
    levels[plan.order] = level_of
    s = dag._structure
    graph = nx.MultiDiGraph()
    graph.add_nodes_from(
        (
            nid,
            {
                "kind": NodeKind(k).name.lower(),
                "activation": Activation(a).name.lower(),
                "bias": b,
                "level": lv,
            },
        )
        for nid, k, a, b, lv in zip(
            dag.nodes().tolist(),
            s.kinds.tolist(),
            s.activations.tolist(),
            params["bias"].tolist(),
            levels.tolist(),
            strict=True,
        )
    )
    eids, src, dst = dag.edges()
    graph.add_edges_from(
        (a, b, e, {"weight": w})
        for e, a, b, w in zip(
            eids.tolist(), src.tolist(), dst.tolist(), params["weight"].tolist(), strict=True
        )
    )
    return graph


def _kinds_in_plan_order(dag: DagNN) -> np.ndarray:
    """Node kind per topological position of the plan."""
    return dag._structure.kinds[dag.plan.order].astype(np.int64)
