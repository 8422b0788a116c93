"""Model usage the core checks never exercise, each against the float64 oracle.

Input nodes with incoming edges (what :meth:`DagNN.from_text` builds), output nodes that
feed other nodes, parameters changed between a forward and its backward, two backward
calls on one forward, and a backward after a 1-D or a batch-of-1 forward.
"""

from __future__ import annotations

import numpy as np

from ..dagnn import DagNN
from ..oracle import Oracle
from ..types import Activation
from . import graphs
from .checks import Context, _forward_vs_oracle, _grads_vs_oracle, check
from .graphs import Case
from .tolerances import GRAD, compare

A = Activation


def _fb(label: str, dag: DagNN, x: np.ndarray, seed: int = 1) -> None:
    """Forward and backward once, both against the oracle."""
    _forward_vs_oracle(label, dag, x)
    rng = np.random.default_rng(seed)
    probe = graphs._round(rng.uniform(-1, 1, (x.shape[0], len(dag.output_nodes))), dag.dtype)
    dag.zero_grad()
    dag.forward(x)
    gx = dag.backward_accumulate(probe)
    _grads_vs_oracle(label, Case(label, dag, x), x, probe, gx)


@check(
    "graph.edges_into_inputs",
    "input nodes with incoming edges (DagNN.from_text chains): external input plus edges",
)
def _edges_into_inputs(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        dag = DagNN.from_text("graph!", backend=ctx.backend, dtype=dtype, seed=2)
        ins = dag.input_nodes
        out = dag.add_output(A.TANH)
        mid = dag.add_hidden(A.SIGMOID)
        extra = dag.add_input(A.TANH)  # an input with an activation, fed by two inputs
        dag.add_edges(
            [ins[-1], ins[2], mid, ins[0], ins[3], extra],
            [out, mid, out, extra, extra, mid],
            [0.7, -1.1, 0.9, 0.6, -0.45, 0.8],
        )
        dag.set_parameters({"bias": np.where(np.isin(dag.nodes(), dag.input_nodes), 0.0, 0.2)})
        x = graphs._round(np.random.default_rng(3).uniform(-1, 1, (4, len(dag.input_nodes))), dtype)
        _fb("from_text('graph!') + readout", dag, x)


@check("graph.outputs_feed_nodes", "output nodes that feed hidden and output nodes")
def _outputs_feed(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        dag = ctx.dag(dtype, seed=4)
        x0, x1 = dag.add_input(), dag.add_input()
        o1 = dag.add_output(A.TANH)  # an output early in the graph
        h = dag.add_hidden(A.SIGMOID)
        o2 = dag.add_output(A.LINEAR)
        o3 = dag.add_output(A.LEAKY_RELU)  # fed by both other outputs
        dag.add_edges(
            [x0, x1, o1, o1, x1, h, o2, o1],
            [o1, o1, h, o2, h, o2, o3, o3],
            [0.9, -0.7, 1.2, -0.8, 0.5, 1.1, 0.6, -0.9],
        )
        dag.set_parameters({"bias": [0.0, 0.0, 0.1, -0.2, 0.15, 0.05]})
        x = graphs._round(np.random.default_rng(5).uniform(-1.5, 1.5, (5, 2)), dtype)
        _fb("outputs feeding other nodes", dag, x)


@check(
    "grad.params_changed",
    "a step or set_parameters between forward and backward: the gradient of that forward",
)
def _params_changed(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_small", dtype)
        dag = case.dag
        probe = case.probe()
        for change in ("set_parameters", "step"):
            if change == "step":  # gradients for the step, from another forward
                dag.forward(case.inputs(seed=4))
                dag.backward_accumulate(case.probe(seed=5))
            want = Oracle(dag).gradients(case.x, probe)  # the parameters of this forward
            dag.forward(case.x)
            if change == "step":
                dag.step(0.3)  # moves the parameters (in place on some backends)
                dag.zero_grad()
            else:
                p = dag.get_parameters()
                dag.set_parameters({"weight": p["weight"] * -1.5 + 0.1})
            gx = dag.backward_accumulate(probe)
            got = dag.get_gradients()
            tol = GRAD[dtype]
            where = f"random_small [{dtype}] backward after {change}() (must use the weights"
            compare(f"{where} of its forward) weight gradients", got["weight"], want["weight"], tol)
            compare(f"{where} of its forward) bias gradients", got["bias"], want["bias"], tol)
            compare(f"{where} of its forward) dL/dx", gx, want["input"], tol)


@check("accumulate.one_forward_two_backward", "two backward calls on one forward both count")
def _two_backward(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_small", dtype)
        dag = case.dag
        p1, p2 = case.probe(seed=1), case.probe(seed=2)
        oracle = Oracle(dag)
        g1, g2 = oracle.gradients(case.x, p1), oracle.gradients(case.x, p2)
        dag.zero_grad()
        dag.forward(case.x)
        gx1 = dag.backward_accumulate(p1)
        gx2 = dag.backward_accumulate(p2)  # the same forward again: its cache must survive
        got = dag.get_gradients()
        tol = GRAD[dtype]
        for key in ("weight", "bias"):
            compare(
                f"random_small [{dtype}] {key} gradients after two backward calls on one "
                "forward (must be the sum of both)",
                got[key],
                g1[key] + g2[key],
                tol,
            )
        compare(f"[{dtype}] dL/dx of the first backward", gx1, g1["input"], tol)
        compare(
            f"[{dtype}] dL/dx of the second backward on the same forward", gx2, g2["input"], tol
        )


@check("grad.single_row", "backward after a 1-D forward and after a batch-of-1 forward")
def _single_row(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_small", dtype)
        dag = case.dag
        oracle = Oracle(dag)
        probe = case.probe()
        tol = GRAD[dtype]
        for row in (0, 3):
            x, g = case.x[row], probe[row]
            want = oracle.gradients(x[None, :], g[None, :])
            for label, xin, gin in (("1-D", x, g), ("batch of 1", x[None, :], g[None, :])):
                dag.zero_grad()
                dag.forward(xin)
                gx = np.asarray(dag.backward_accumulate(gin))
                where = f"random_small [{dtype}] backward after a {label} forward (row {row})"
                got = dag.get_gradients()
                compare(f"{where}: weight gradients", got["weight"], want["weight"], tol)
                compare(f"{where}: bias gradients", got["bias"], want["bias"], tol)
                compare(
                    f"{where}: dL/dx", gx, want["input"][0] if xin.ndim == 1 else want["input"], tol
                )
