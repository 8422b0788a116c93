"""Random edit sequences: many small structural edits with optimizer steps in between.

The single-edit checks of :mod:`~grapheme_core.conformance.checks` each make one kind of
edit once; a backend that caches compiled kernels by anything weaker than the whole
structure (node and edge counts, level shapes) passes them and then computes with stale
kernels after an edge is removed here and added there. Here a seeded sequence of
:data:`EDITS` edits (add or remove hidden/output nodes and edges, never a cycle) runs on
one model; every :data:`VERIFY_EVERY` edits its forward and gradients are compared with
the oracle and an Adam step is taken; at the end they are compared with a fresh build of
the final structure on the same backend. One block of edits rewires (removes an edge and
adds another, as sparse-training rules do), so the node and edge counts at its
verification equal those of the one before while the structure differs.
"""

from __future__ import annotations

import numpy as np

from ..dagnn import DagNN
from ..oracle import Oracle
from ..types import Activation, NodeKind
from . import graphs
from .checks import Context, _after_edit, check
from .tolerances import FORWARD, GRAD, compare

EDITS = 56
VERIFY_EVERY = 14
#: the block (1-based) whose edits come in remove-edge/add-edge pairs
REWIRE_BLOCK = 3
BATCH = 4


def _topological_rank(dag: DagNN) -> dict[int, int]:
    """Longest-path depth of every node (an edge may only go to a deeper or new node)."""
    ids = dag.nodes().tolist()
    _, src, dst = dag.edges()
    depth = dict.fromkeys(ids, 0)
    changed = True
    while changed:
        changed = False
        for s, d in zip(src.tolist(), dst.tolist(), strict=True):
            if depth[d] < depth[s] + 1:
                depth[d] = depth[s] + 1
                changed = True
    return depth


def _edit(dag: DagNN, rng: np.random.Generator, kind: str | None = None) -> str:
    """One random edit (of ``kind`` if given); returns what it did (for failure messages)."""
    if kind is None:
        kind = str(rng.choice(["add_edge", "add_edge", "remove_edge", "add_node", "remove_node"]))
    hidden, outputs = dag.hidden_nodes, dag.output_nodes
    if kind == "remove_edge" and dag.edge_count > 4:
        eids = dag.edges()[0]
        victim = int(eids[rng.integers(eids.size)])
        dag.remove_edge(victim)
        return f"remove_edge({victim})"
    if kind == "remove_node" and len(hidden) > 2:
        victim = int(hidden[rng.integers(len(hidden))])
        dag.remove_node(victim)
        return f"remove_node({victim})"
    if kind == "add_node":
        act = Activation(int(rng.integers(len(Activation))))
        node_kind = NodeKind.OUTPUT if rng.random() < 0.2 else NodeKind.HIDDEN
        new = int(dag.add_nodes(1, node_kind, act)[0])
        feeders = dag.input_nodes + hidden
        srcs = rng.choice(feeders, size=2)
        dag.add_edges(srcs, [new, new], graphs._weights(rng, 2))
        if node_kind is NodeKind.HIDDEN and outputs:
            dag.add_edge(
                new, int(outputs[rng.integers(len(outputs))]), float(graphs._weights(rng, 1)[0])
            )
        return f"add_{node_kind.name.lower()}({new})"
    depth = _topological_rank(dag)
    targets = hidden + outputs
    dst = int(targets[rng.integers(len(targets))])
    # no path leads from dst to a node of smaller or equal depth: never a cycle
    srcs = [n for n in dag.input_nodes + hidden if n != dst and depth[n] <= depth[dst]]
    src = int(srcs[rng.integers(len(srcs))])
    eid = dag.add_edge(src, dst, float(graphs._weights(rng, 1)[0]))
    return f"add_edge({src}->{dst}) = {eid}"


@check(
    "edit.random_sequences",
    f"{EDITS} random edits with Adam steps in between: forward and gradients equal the "
    "oracle and a fresh build",
)
def _random_sequences(ctx: Context) -> None:
    # one dtype (the widest the backend has): each verification recompiles, which is what
    # a JIT backend pays most for
    dtype = ctx.dtypes[-1]
    rng = np.random.default_rng(2024)
    dag = ctx.case("random_small", dtype, seed=3, optimizer="adam").dag
    history: list[str] = []
    for i in range(1, EDITS + 1):
        kind = None
        if (i - 1) // VERIFY_EVERY + 1 == REWIRE_BLOCK:
            kind = "remove_edge" if i % 2 else "add_edge"
        history.append(_edit(dag, rng, kind))
        if i % VERIFY_EVERY:
            continue
        x = graphs._round(rng.uniform(-1.5, 1.5, (BATCH, len(dag.input_nodes))), dtype)
        probe = graphs._round(rng.uniform(-1, 1, (BATCH, len(dag.output_nodes))), dtype)
        want = Oracle(dag)
        label = f"after edits {i - VERIFY_EVERY + 1}-{i} ({'; '.join(history[-VERIFY_EVERY:])})"
        compare(f"{label} [{dtype}] forward", dag.forward(x), want.forward(x), FORWARD[dtype])
        dag.zero_grad()
        dag.forward(x)
        gx = dag.backward_accumulate(probe)
        g = want.gradients(x, probe)
        got = dag.get_gradients()
        tol = GRAD[dtype]
        compare(f"{label} [{dtype}] weight gradients", got["weight"], g["weight"], tol)
        compare(f"{label} [{dtype}] bias gradients", got["bias"], g["bias"], tol)
        compare(f"{label} [{dtype}] dL/dx", gx, g["input"], tol)
        dag.step(0.05)  # Adam: moments are compacted and grown by the next edits
    x = graphs._round(rng.uniform(-1.5, 1.5, (BATCH, len(dag.input_nodes))), dtype)
    _after_edit(f"after {EDITS} random edits", dag, x)
