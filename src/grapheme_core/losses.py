"""Loss functions that return the loss and its gradient ``dL/dy`` in one call.

A DagNN has its own reverse pass, so a loss here is not a graph node: it takes the model's
output ``y`` (NumPy, as :meth:`DagNN.forward` returns it) and the target, and returns a
:class:`LossResult` whose ``grad`` is exactly what :meth:`DagNN.backward_accumulate`
expects. Every loss is the *mean over the batch* (axis 0) unless ``reduction="sum"``, so
gradients do not grow with the batch size, as in ``torch.nn`` and Keras.

All computations run in float64 on the host and are numerically stable (log-sum-exp for
softmax, ``log1p(exp(-|z|))`` for sigmoid), so saturated logits give finite losses and
gradients.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
import numpy as np

from .errors import ShapeError

__all__ = [
    "LossResult",
    "binary_cross_entropy",
    "mse",
    "softmax_cross_entropy",
]

Reduction = Literal["mean", "sum"]


@attrs.frozen
class LossResult:
    """``value``: the scalar loss; ``grad``: ``dL/dy``, shaped like the prediction."""

    value: float
    grad: np.ndarray = attrs.field(repr=False)


def _as_float(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        raise ShapeError(f"{name} must be an array with a batch axis, got a scalar")
    return arr


def _batch_divisor(batch: int, reduction: Reduction) -> float:
    if reduction == "mean":
        return float(max(batch, 1))
    if reduction == "sum":
        return 1.0
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def mse(y: Any, target: Any, *, reduction: Reduction = "mean") -> LossResult:
    """Squared error summed over the output columns, averaged over the batch.

    ``L = (1/B) sum_b sum_j (y_bj - t_bj)^2`` and ``dL/dy = 2 (y - t) / B``. (Per example
    this is the sum of squares, so one example with ``n`` outputs has the gradient
    ``2 (y - t)``; divide by ``n`` yourself if you want the per-element mean.)
    """
    y = _as_float("y", y)
    t = _as_float("target", target)
    if t.shape != y.shape:
        raise ShapeError(f"mse: target shape {list(t.shape)} differs from y shape {list(y.shape)}")
    div = _batch_divisor(y.shape[0] if y.ndim > 1 else 1, reduction)
    diff = y - t
    return LossResult(float(np.sum(diff * diff) / div), 2.0 * diff / div)


def softmax_cross_entropy(
    logits: Any,
    labels: Any,
    *,
    classes: int | None = None,
    weights: Any = None,
    reduction: Reduction = "mean",
) -> LossResult:
    """Softmax cross-entropy over groups of ``classes`` logits (one group per *slot*).

    ``logits``: ``[B, C]`` for one categorical output, or ``[B, S * C]`` with ``classes=C``
    for ``S`` independent slots side by side (e.g. one slot per answer character), or
    ``[B, S, C]``. ``labels``: integer class indices ``[B]`` or ``[B, S]``; a label ``-1``
    masks that slot out (no loss, zero gradient). ``weights`` (optional, ``[S]`` or
    ``[B, S]``) scales each slot's loss.

    The loss sums over slots and averages over the batch; ``dL/dlogits = (softmax - onehot)``
    times the slot weight, divided by ``B``. ``grad`` has the shape of ``logits``.
    """
    z = _as_float("logits", logits)
    shape = z.shape
    lab = np.asarray(labels)
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        raise ShapeError(f"labels must be integer class indices, got dtype {lab.dtype}")
    batch = shape[0]
    if z.ndim == 3:
        c = shape[2]
        if classes not in (None, c):
            raise ShapeError(f"classes={classes} differs from the last axis of logits ({c})")
    else:
        c = shape[1] if classes is None else int(classes)
        if z.ndim != 2 or c < 1 or shape[1] % c:
            raise ShapeError(
                f"logits of shape {list(shape)} cannot be split into slots of {c} classes"
            )
    z = z.reshape(batch, -1, c)
    slots = z.shape[1]
    lab = lab.reshape(batch, -1) if lab.size else lab.reshape(batch, 0)
    if lab.shape != (batch, slots):
        raise ShapeError(
            f"labels must have shape [{batch}] or [{batch}, {slots}] (one class per slot), "
            f"got {list(np.shape(labels))}"
        )
    if np.any((lab < -1) | (lab >= c)):
        raise ValueError(f"labels must be in [0, {c}) or -1 (masked)")
    w = (
        np.ones((batch, slots))
        if weights is None
        else np.broadcast_to(np.asarray(weights, dtype=np.float64), (batch, slots))
    )
    w = np.where(lab >= 0, w, 0.0)
    safe = np.maximum(lab, 0)
    shifted = z - z.max(axis=2, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=2, keepdims=True))
    log_p = shifted - log_norm
    picked = np.take_along_axis(log_p, safe[:, :, None], axis=2)[:, :, 0]
    div = _batch_divisor(batch, reduction)
    value = float(-(w * picked).sum() / div)
    grad = np.exp(log_p)
    np.put_along_axis(
        grad, safe[:, :, None], np.take_along_axis(grad, safe[:, :, None], axis=2) - 1.0, axis=2
    )
    grad *= (w / div)[:, :, None]
    return LossResult(value, grad.reshape(shape))


def binary_cross_entropy(logits: Any, target: Any, *, reduction: Reduction = "mean") -> LossResult:
    """Sigmoid + binary cross-entropy on raw scores (like ``BCEWithLogitsLoss``).

    ``target`` holds probabilities in ``[0, 1]`` shaped like ``logits``. The loss sums over
    columns and averages over the batch; ``dL/dlogits = (sigmoid(z) - t) / B``. Give the
    output node a LINEAR activation: the sigmoid is part of the loss, which keeps it stable.
    """
    z = _as_float("logits", logits)
    t = _as_float("target", target)
    if t.shape != z.shape:
        raise ShapeError(
            f"binary_cross_entropy: target shape {list(t.shape)} differs from logits shape "
            f"{list(z.shape)}"
        )
    if np.any((t < 0) | (t > 1)):
        raise ValueError("binary_cross_entropy targets must lie in [0, 1]")
    div = _batch_divisor(z.shape[0] if z.ndim > 1 else 1, reduction)
    # log(1 + exp(-|z|)) + max(z, 0) - z t  ==  -t log s(z) - (1 - t) log(1 - s(z))
    value = np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0.0) - z * t
    sig = np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), 0.0)
    sig = np.where(z < 0, np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))), sig)
    return LossResult(float(value.sum() / div), (sig - t) / div)
