"""A small training API for a plain DagNN: ``fit``, ``evaluate``, ``predict``, callbacks.

It follows Keras ``Model.fit`` where that fits a graph model with its own reverse pass::

    history = fit(dag, x, y, loss="bce", epochs=200, batch_size=4, lr=0.05)
    history.history["loss"]            # one value per epoch
    evaluate(dag, x_test, y_test, loss="bce", metrics=["accuracy"])

Each step is exactly what a hand-written loop does: ``zero_grad``, ``forward`` on a
minibatch, the loss's ``dL/dy`` (:mod:`grapheme_core.losses`, a mean over the batch),
``backward_accumulate``, optional gradient clipping, ``step(lr)`` with the model's own
optimizer (``DagNN(optimizer="adam")``; SGD by default). Minibatches are drawn from one
``numpy.random.Generator`` seeded by ``seed``, so two fits of equal models with the same
seed end with bit-identical parameters.

Losses are given by name (``"mse"``, ``"cross_entropy"``, ``"bce"``) or as any callable
``loss(y_pred, y_true) -> LossResult``. Metrics are ``"accuracy"`` (its meaning follows the
loss, see :func:`accuracy`) or callables ``metric(y_pred, y_true) -> float``; each is
reported per epoch under its name, and with a ``val_`` prefix on ``validation_data``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import attrs
import numpy as np

from .errors import GraphemeError, ShapeError
from .losses import LossResult, binary_cross_entropy, mse, softmax_cross_entropy

if TYPE_CHECKING:
    from .dagnn import DagNN

__all__ = [
    "LOSSES",
    "Callback",
    "EarlyStopping",
    "FitState",
    "History",
    "LambdaCallback",
    "TrainingDivergedError",
    "accuracy",
    "evaluate",
    "fit",
    "get_loss",
    "minibatches",
    "predict",
]

LossFn = Callable[[np.ndarray, np.ndarray], LossResult]
MetricFn = Callable[[np.ndarray, np.ndarray], float]

LOSSES: dict[str, LossFn] = {
    "mse": mse,
    "cross_entropy": softmax_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
    "bce": binary_cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
}
"""Loss names :func:`fit` accepts, and the functions of :mod:`grapheme_core.losses` they mean."""


class TrainingDivergedError(GraphemeError, FloatingPointError):
    """The loss of a minibatch was NaN or infinite; that batch's update was not applied."""


def get_loss(loss: str | LossFn) -> LossFn:
    """The loss function for a name in :data:`LOSSES` or a callable (returned as is)."""
    if callable(loss):
        return loss
    try:
        return LOSSES[str(loss).strip().lower()]
    except KeyError:
        names = ", ".join(sorted(LOSSES))
        raise ValueError(f"unknown loss {loss!r}; choose one of {names} or a callable") from None


def accuracy(y_pred: np.ndarray, y_true: np.ndarray, loss: str | LossFn = "mse") -> float:
    """Fraction of examples predicted right; what "right" means follows the loss.

    - ``cross_entropy``: the arg-max of the logits equals the integer label (labels
      ``[B]``; with ``[B, S]`` labels, every slot of ``C = n_outputs / S`` logits must be
      right, masked ``-1`` slots excepted);
    - ``bce``: every column's logit is on the side of 0 that its target (>= 0.5) says;
    - ``mse`` and callables: one-hot targets (several columns) compare arg-maxes; otherwise
      every output must lie within 0.5 of its target.
    """
    y_pred = np.asarray(y_pred, dtype=np.float64)
    y_true = np.asarray(y_true)
    fn = get_loss(loss)
    if fn is softmax_cross_entropy:
        labels = y_true.reshape(len(y_true), -1)
        logits = y_pred.reshape(len(y_pred), labels.shape[1], -1)
        hit = (logits.argmax(axis=2) == labels) | (labels < 0)
        return float(hit.all(axis=1).mean()) if len(hit) else float("nan")
    y_true = y_true.astype(np.float64).reshape(y_pred.shape)
    if fn is binary_cross_entropy:
        hit = (y_pred > 0) == (y_true >= 0.5)
    elif y_pred.ndim == 2 and y_pred.shape[1] > 1 and np.all(y_true.sum(axis=1) == 1):
        hit = (y_pred.argmax(axis=1) == y_true.argmax(axis=1))[:, None]
    else:
        hit = np.abs(y_pred - y_true) < 0.5
    hit = hit.reshape(len(hit), -1)
    return float(hit.all(axis=1).mean()) if len(hit) else float("nan")


def minibatches(
    n: int, batch_size: int, *, shuffle: bool = True, rng: np.random.Generator | int | None = 0
) -> Iterator[np.ndarray]:
    """Row indices of one epoch's minibatches over ``n`` examples (the last may be smaller).

    With ``shuffle`` the order is a permutation drawn from ``rng`` (a Generator, advanced,
    or a seed); without it, ``0..n-1`` in order.
    """
    n = _positive_int(n, "n", allow_zero=True)
    batch_size = _positive_int(batch_size, "batch_size")
    if shuffle:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        order = gen.permutation(n)
    else:
        order = np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


@attrs.define
class History:
    """What :func:`fit` returns: per-epoch metrics, like Keras' ``History``.

    ``history``: ``{"loss": [...], "accuracy": [...], "val_loss": [...], ...}``, one value
    per epoch run; ``epoch``: the epoch numbers (from 1); ``params``: the fit's settings;
    ``stopped_epoch``: the epoch after which a callback stopped training (0: it ran out).
    """

    history: dict[str, list[float]] = attrs.field(factory=dict)
    epoch: list[int] = attrs.field(factory=list)
    params: dict[str, Any] = attrs.field(factory=dict)
    stopped_epoch: int = 0

    def __getitem__(self, key: str) -> list[float]:
        """``history["loss"]`` is ``history.history["loss"]``."""
        return self.history[key]

    def record(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Append one epoch's metrics."""
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))


class Callback:
    """Base class of :func:`fit` callbacks; override the hooks you need (all do nothing).

    The hooks run in this order: ``on_train_begin``, then per epoch ``on_epoch_begin``,
    ``on_batch_end`` after each optimizer step, ``on_epoch_end`` with the epoch's metrics,
    and ``on_train_end``. ``self.state`` is the running :class:`FitState` (the model is
    ``self.state.dag``); set ``self.state.stop_training = True`` to stop after this epoch.
    Any object with some of these methods works as a callback too.
    """

    state: FitState | None = None

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:
        """Before the first epoch; ``logs`` holds the fit's settings."""

    def on_epoch_begin(self, epoch: int) -> None:
        """Before epoch ``epoch`` (counted from 1)."""

    def on_batch_end(self, batch: int, logs: Mapping[str, float]) -> None:
        """After the optimizer step of minibatch ``batch`` (from 0); ``logs["loss"]``."""

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float]) -> None:
        """After epoch ``epoch``: ``logs`` has ``loss``, the metrics and ``val_*``."""

    def on_train_end(self, logs: Mapping[str, Any]) -> None:
        """After the last epoch (also after an early stop); ``logs["epochs"]`` were run."""


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, **hooks: Callable[..., None]) -> None:
        known = {"on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end"}
        known.add("on_train_end")
        unknown = set(hooks) - known
        if unknown:
            raise TypeError(f"unknown callback hooks {sorted(unknown)}; known: {sorted(known)}")
        for name, fn in hooks.items():
            setattr(self, name, fn)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``mode``: ``"min"``, ``"max"`` or ``"auto"`` (max for names containing ``accuracy``);
    ``restore_best_weights``: put back the parameters of the best epoch when stopping
    (and at the end of training). ``stopped_epoch`` and ``best`` tell what happened.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.patience = _positive_int(patience, "patience", allow_zero=True)
        self.min_delta = abs(float(min_delta))
        self.sign = -1.0 if (mode == "max" or (mode == "auto" and "accuracy" in monitor)) else 1.0
        self.restore_best_weights = restore_best_weights
        self.best = math.inf
        self.best_epoch = 0
        self.stopped_epoch = 0
        self._wait = 0
        self._best_params: dict[str, np.ndarray] | None = None

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:
        """Reset, so one instance can serve several fits."""
        self.best, self.best_epoch, self.stopped_epoch, self._wait = math.inf, 0, 0, 0
        self._best_params = None

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Track the best value; ask the fit to stop once patience runs out."""
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r}, which the fit does not report; "
                f"it reports {sorted(logs)} (val_* needs validation_data)"
            )
        value = self.sign * float(logs[self.monitor])
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self._wait = value, epoch, 0
            if self.restore_best_weights and self.state is not None:
                self._best_params = self.state.dag.get_parameters()
            return
        self._wait += 1
        if self._wait >= self.patience and self.state is not None:
            self.stopped_epoch = epoch
            self.state.stop_training = True

    def on_train_end(self, logs: Mapping[str, Any]) -> None:
        """Restore the best parameters if asked to; ``best`` gets its real sign back."""
        if self._best_params is not None and self.state is not None:
            self.state.dag.set_parameters(self._best_params)
        self.best = self.sign * self.best


@attrs.define
class FitState:
    """The running fit that callbacks see: the model, the settings and the stop flag."""

    dag: DagNN
    params: dict[str, Any]
    stop_training: bool = False


def predict(dag: DagNN, x: Any, *, batch_size: int | None = None) -> np.ndarray:
    """The model's outputs ``[B, n_outputs]`` for ``x``, in minibatches of ``batch_size``
    rows (all at once when ``None``); no gradients are touched."""
    x = _rows(x, "x")
    if batch_size is None or len(x) <= batch_size:
        return np.asarray(dag.forward(x))
    parts = [dag.forward(x[i]) for i in minibatches(len(x), batch_size, shuffle=False)]
    return np.concatenate(parts, axis=0)


def evaluate(
    dag: DagNN,
    x: Any,
    y: Any,
    *,
    loss: str | LossFn = "mse",
    metrics: Sequence[str | MetricFn] = (),
    batch_size: int | None = None,
) -> dict[str, float]:
    """``{"loss": ..., <metric>: ...}`` of the model on ``(x, y)``; nothing is trained."""
    x, y = _pair(x, y)
    y = _column_targets(dag, y, get_loss(loss))
    y_pred = predict(dag, x, batch_size=batch_size)
    out = {"loss": get_loss(loss)(y_pred, y).value}
    out.update(_metrics(metrics, y_pred, y, loss))
    return out


def fit(
    dag: DagNN,
    x: Any,
    y: Any,
    *,
    loss: str | LossFn = "mse",
    epochs: int = 1,
    batch_size: int = 32,
    lr: float = 0.01,
    metrics: Sequence[str | MetricFn] = (),
    validation_data: tuple[Any, Any] | None = None,
    callbacks: Sequence[Any] = (),
    shuffle: bool = True,
    seed: int = 0,
    clip_norm: float | None = None,
    verbose: int = 0,
    stream: TextIO | None = None,
) -> History:
    """Train ``dag`` on ``(x, y)`` for ``epochs`` passes of minibatches; returns a History.

    ``x``: ``[N, n_inputs]``; ``y``: what ``loss`` takes as its target (``[N, n_outputs]``
    for mse/bce, integer labels ``[N]`` for cross_entropy). Per epoch, ``loss`` is the mean
    of the minibatch losses seen during the epoch (weighted by batch size, as Keras does),
    each metric is computed on the training data after the epoch, and ``validation_data``
    ``(x_val, y_val)`` adds ``val_loss`` and ``val_<metric>``. ``verbose=1`` prints one line
    per epoch to ``stream`` (stdout). A NaN/inf loss raises :class:`TrainingDivergedError`
    before that batch's update (the earlier updates stay applied).
    """
    x, y = _pair(x, y)
    epochs = _positive_int(epochs, "epochs", allow_zero=True)
    batch_size = _positive_int(batch_size, "batch_size")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be > 0 or None, got {clip_norm!r}")
    loss_fn = get_loss(loss)
    y = _column_targets(dag, y, loss_fn)
    if validation_data is not None:
        if not (isinstance(validation_data, tuple | list) and len(validation_data) == 2):
            raise ValueError("validation_data must be a pair (x_val, y_val)")
        validation_data = _pair(*validation_data)
    params = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "samples": len(x)}
    params["loss"] = loss if isinstance(loss, str) else getattr(loss, "__name__", "custom")
    state = FitState(dag, params)
    history = History(params=dict(params))
    callbacks = list(callbacks)
    for cb in callbacks:
        if isinstance(cb, Callback):
            cb.state = state
    rng = np.random.default_rng(seed)
    out = stream if stream is not None else sys.stdout
    _call(callbacks, "on_train_begin", dict(params))
    ran = 0
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        _call(callbacks, "on_epoch_begin", epoch)
        total = 0.0
        for batch, rows in enumerate(minibatches(len(x), batch_size, shuffle=shuffle, rng=rng)):
            value = _train_step(dag, x[rows], y[rows], loss_fn, lr, clip_norm, epoch, batch)
            total += value * len(rows)
            _call(callbacks, "on_batch_end", batch, {"loss": value})
        logs = {"loss": total / max(len(x), 1)}
        if metrics:
            logs.update(_metrics(metrics, predict(dag, x, batch_size=batch_size), y, loss))
        if validation_data is not None:
            val = evaluate(dag, *validation_data, loss=loss, metrics=metrics, batch_size=batch_size)
            logs.update({f"val_{k}": v for k, v in val.items()})
        history.record(epoch, logs)
        ran = epoch
        if verbose:
            cells = "  ".join(f"{k} {v:.4g}" for k, v in logs.items())
            seconds = time.perf_counter() - started
            print(f"epoch {epoch}/{epochs}  {cells}  ({seconds:.2f} s)", file=out, flush=True)
        _call(callbacks, "on_epoch_end", epoch, logs)
        if state.stop_training:
            history.stopped_epoch = epoch
            break
    _call(callbacks, "on_train_end", {"epochs": ran})
    return history


def _train_step(
    dag: DagNN,
    xb: np.ndarray,
    yb: np.ndarray,
    loss_fn: LossFn,
    lr: float,
    clip_norm: float | None,
    epoch: int,
    batch: int,
) -> float:
    dag.zero_grad()
    result = loss_fn(dag.forward(xb), yb)
    value = float(result.value)
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"the loss of minibatch {batch} in epoch {epoch} is {value}; that update was not "
            f"applied. Try a smaller lr (now {lr:g}), clip_norm=, or scaled inputs."
        )
    dag.backward_accumulate(result.grad)
    if clip_norm is not None:
        dag.clip_gradients(clip_norm)
    dag.step(lr)
    return value


def _column_targets(dag: DagNN, y: np.ndarray, loss_fn: LossFn) -> np.ndarray:
    """Targets ``[N]`` for a one-output model become ``[N, 1]`` for mse and bce (as in
    Keras); class labels for cross-entropy stay as they are."""
    if loss_fn is softmax_cross_entropy or y.ndim != 1 or len(dag.output_nodes) != 1:
        return y
    return y.reshape(-1, 1)


def _metrics(
    metrics: Sequence[str | MetricFn], y_pred: np.ndarray, y: np.ndarray, loss: str | LossFn
) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in metrics:
        if isinstance(metric, str):
            if metric.lower() not in ("accuracy", "acc"):
                raise ValueError(f"unknown metric {metric!r}; use 'accuracy' or a callable")
            out["accuracy"] = accuracy(y_pred, y, loss)
        else:
            out[getattr(metric, "__name__", "metric")] = float(metric(y_pred, y))
    return out


def _call(callbacks: Sequence[Any], hook: str, *args: Any) -> None:
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(*args)


def _rows(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim == 0:
        raise ShapeError(f"{name} must have a batch axis (one row per example), got a scalar")
    return arr


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _rows(x, "x"), _rows(y, "y")
    if len(x) != len(y):
        raise ShapeError(f"x has {len(x)} rows but y has {len(y)}; they must match")
    return x, y


def _positive_int(value: Any, name: str, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be >= {0 if allow_zero else 1}, got {value}")
    return int(value)
