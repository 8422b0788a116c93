"""Central finite differences in float64, to check analytic gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np


def numerical_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """``df/dx`` by central differences, one coordinate at a time (float64)."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.shape[0]):
        old = flat[i]
        flat[i] = old + eps
        up = f(x)
        flat[i] = old - eps
        down = f(x)
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``max |a - n| / max(1, max |n|)``: relative for large gradients, absolute for tiny."""
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    if analytic.size == 0:
        return 0.0
    return float(np.max(np.abs(analytic - numeric)) / max(1.0, float(np.max(np.abs(numeric)))))


@attrs.frozen
class GradCheckResult:
    weight: float
    bias: float
    input: float

    @property
    def worst(self) -> float:
        return max(self.weight, self.bias, self.input)


def check_dagnn_gradients(
    dag: Any, x: np.ndarray, probe: np.ndarray, eps: float = 1e-6
) -> GradCheckResult:
    """Compare ``dag``'s analytic gradients of ``L = sum(forward(x) * probe)`` with finite
    differences of its own forward. ``dag`` should be float64; its gradients are reset."""
    x = np.asarray(x, dtype=np.float64)
    probe = np.asarray(probe, dtype=np.float64)
    params = dag.get_parameters()

    def loss_for(
        weight: np.ndarray | None = None, bias: np.ndarray | None = None, xs: np.ndarray = x
    ) -> float:
        dag.set_parameters(
            {
                "weight": params["weight"] if weight is None else weight,
                "bias": params["bias"] if bias is None else bias,
            }
        )
        return float(np.sum(dag.forward(xs) * probe))

    inputs_mask = np.isin(dag.nodes(), dag.input_nodes)
    num_w = numerical_gradient(lambda w: loss_for(weight=w), params["weight"], eps)

    def bias_loss(b: np.ndarray) -> float:
        return loss_for(bias=np.where(inputs_mask, 0.0, b))

    num_b = np.where(inputs_mask, 0.0, numerical_gradient(bias_loss, params["bias"], eps))
    num_x = numerical_gradient(lambda xs: loss_for(xs=xs), x, eps)
    dag.set_parameters(params)
    dag.zero_grad()
    dag.forward(x)
    gx = dag.backward_accumulate(probe)
    grads = dag.get_gradients()
    return GradCheckResult(
        weight=relative_error(grads["weight"], num_w),
        bias=relative_error(grads["bias"], num_b),
        input=relative_error(gx, num_x),
    )
