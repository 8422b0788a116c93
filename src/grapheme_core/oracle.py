"""The float64 oracle: a node-by-node evaluation written for clarity, not speed.

It shares no code with the plans or the backends (its own topological sort, its own
activation math), so agreeing with it means something. Use it on small graphs only.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from typing import Any

import numpy as np

from .types import LEAKY_SLOPE, Activation, NodeKind


def _act(a: Activation, z: float) -> float:
    if a is Activation.RELU:
        return z if z > 0 else 0.0
    if a is Activation.LEAKY_RELU:
        return z if z > 0 else LEAKY_SLOPE * z
    if a is Activation.SIGMOID:
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    if a is Activation.TANH:
        return math.tanh(z)
    return z


def _dact(a: Activation, z: float) -> float:
    if a is Activation.RELU:
        return 1.0 if z > 0 else 0.0
    if a is Activation.LEAKY_RELU:
        return 1.0 if z > 0 else LEAKY_SLOPE
    if a is Activation.SIGMOID:
        s = _act(a, z)
        return s * (1.0 - s)
    if a is Activation.TANH:
        return 1.0 - math.tanh(z) ** 2
    return 1.0


class Oracle:
    """Snapshot of a DagNN (structure + parameters) evaluated node by node in float64."""

    def __init__(self, dag: Any) -> None:
        self.node_ids = [int(i) for i in dag.nodes()]
        self.kind = {i: dag.node_kind(i) for i in self.node_ids}
        self.act = {i: dag.activation(i) for i in self.node_ids}
        params = dag.get_parameters()
        self.bias = dict(
            zip(self.node_ids, params["bias"].astype(np.float64).tolist(), strict=True)
        )
        _, src, dst = dag.edges()
        self.edges = list(
            zip(
                src.tolist(),
                dst.tolist(),
                params["weight"].astype(np.float64).tolist(),
                strict=True,
            )
        )
        self.inputs = [i for i in self.node_ids if self.kind[i] is NodeKind.INPUT]
        self.outputs = [i for i in self.node_ids if self.kind[i] is NodeKind.OUTPUT]
        self.order = self._topological_order()

    def _topological_order(self) -> list[int]:
        indeg = dict.fromkeys(self.node_ids, 0)
        succ: dict[int, list[int]] = defaultdict(list)
        for s, d, _ in self.edges:
            indeg[d] += 1
            succ[s].append(d)
        ready = deque(i for i in self.node_ids if indeg[i] == 0)
        order = []
        while ready:
            n = ready.popleft()
            order.append(n)
            for d in succ[n]:
                indeg[d] -= 1
                if indeg[d] == 0:
                    ready.append(d)
        if len(order) != len(self.node_ids):
            raise ValueError("oracle: graph has a cycle")
        return order

    def _forward_row(self, x: np.ndarray) -> tuple[dict[int, float], dict[int, float]]:
        incoming: dict[int, list[tuple[int, float, int]]] = defaultdict(list)
        for e, (s, d, w) in enumerate(self.edges):
            incoming[d].append((s, w, e))
        ext = dict(zip(self.inputs, x.tolist(), strict=True))
        z: dict[int, float] = {}
        h: dict[int, float] = {}
        for n in self.order:
            total = ext.get(n, 0.0) + (0.0 if self.kind[n] is NodeKind.INPUT else self.bias[n])
            for s, w, _ in incoming[n]:
                total += w * h[s]
            z[n] = total
            h[n] = _act(self.act[n], total)
        return z, h

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``x``: ``[B, n_inputs]`` -> ``[B, n_outputs]`` in float64."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        out = np.zeros((x.shape[0], len(self.outputs)))
        for b in range(x.shape[0]):
            _, h = self._forward_row(x[b])
            out[b] = [h[o] for o in self.outputs]
        return out

    def gradients(self, x: np.ndarray, grad_out: np.ndarray) -> dict[str, np.ndarray]:
        """Reverse mode, node by node: ``{"weight", "bias", "input"}`` for ``dL/dy = grad_out``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        grad_out = np.atleast_2d(np.asarray(grad_out, dtype=np.float64))
        gw = np.zeros(len(self.edges))
        gb = dict.fromkeys(self.node_ids, 0.0)
        gx = np.zeros((x.shape[0], len(self.inputs)))
        outgoing: dict[int, list[tuple[int, float, int]]] = defaultdict(list)
        for e, (s, d, w) in enumerate(self.edges):
            outgoing[s].append((d, w, e))
        for b in range(x.shape[0]):
            z, h = self._forward_row(x[b])
            dz: dict[int, float] = {}
            dh = dict.fromkeys(self.node_ids, 0.0)
            for o, g in zip(self.outputs, grad_out[b].tolist(), strict=True):
                dh[o] += g
            for n in reversed(self.order):
                for d, w, _ in outgoing[n]:
                    dh[n] += w * dz[d]
                dz[n] = dh[n] * _dact(self.act[n], z[n])
                if self.kind[n] is not NodeKind.INPUT:
                    gb[n] += dz[n]
            for e, (s, d, _) in enumerate(self.edges):
                gw[e] += dz[d] * h[s]
            gx[b] = [dz[i] for i in self.inputs]
        return {"weight": gw, "bias": np.array([gb[i] for i in self.node_ids]), "input": gx}
