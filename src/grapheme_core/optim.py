"""Optimizer configurations. The arithmetic lives in the backends (``sgd_step``/``adam_step``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen
class SGD:
    """Plain gradient descent: ``p -= lr * g``."""

    name = "sgd"


@attrs.frozen
class Adam:
    """Adam (Kingma & Ba) with bias correction."""

    beta1: float = attrs.field(
        default=0.9,
        validator=attrs.validators.and_(attrs.validators.ge(0.0), attrs.validators.lt(1.0)),
    )
    beta2: float = attrs.field(
        default=0.999,
        validator=attrs.validators.and_(attrs.validators.ge(0.0), attrs.validators.lt(1.0)),
    )
    eps: float = attrs.field(default=1e-8, validator=attrs.validators.gt(0.0))
    name = "adam"


Optimizer = SGD | Adam


def parse_optimizer(value: Optimizer | str | None) -> Optimizer:
    """Accept an optimizer object or its name (``"sgd"``, ``"adam"``)."""
    if value is None:
        return SGD()
    if isinstance(value, SGD | Adam):
        return value
    key = str(value).strip().lower()
    if key == "sgd":
        return SGD()
    if key == "adam":
        return Adam()
    raise ValueError(f"unknown optimizer {value!r}; choose 'sgd' or 'adam'")


def check_lr(lr: float) -> float:
    """The learning rate as a float; ``ValueError`` unless finite and >= 0."""
    lr = float(lr)
    if not math.isfinite(lr) or lr < 0:
        raise ValueError(f"learning rate must be a finite number >= 0, got {lr}")
    return lr


def optimizer_to_dict(opt: Optimizer) -> dict[str, Any]:
    """JSON form for checkpoints: ``{"name": ..., hyper-parameters...}``."""
    return {"name": opt.name, **attrs.asdict(opt)}


def optimizer_from_dict(data: Mapping[str, Any] | None) -> Optimizer:
    """Inverse of :func:`optimizer_to_dict` (``None`` means SGD)."""
    if not data:
        return SGD()
    fields = {k: v for k, v in data.items() if k != "name"}
    return Adam(**fields) if data.get("name") == "adam" else SGD()


def apply_update(
    backend: Any,
    opt: Optimizer,
    param: Any,
    grad: Any,
    moments: dict[str, Any],
    step: int,
    lr: float,
    dtype: str,
) -> Any:
    """One optimizer update of ``param``; Adam keeps its moments in ``moments`` (created
    on first use, updated in place of the dict). Returns the new parameter array."""
    if isinstance(opt, Adam):
        if not moments:
            shape = tuple(param.shape)
            moments["m"], moments["v"] = backend.zeros(shape, dtype), backend.zeros(shape, dtype)
        param, moments["m"], moments["v"] = backend.adam_step(
            param, grad, moments["m"], moments["v"], step, lr, opt.beta1, opt.beta2, opt.eps
        )
        return param
    return backend.sgd_step(param, grad, lr)
