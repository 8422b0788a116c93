"""Optimizer configurations. The arithmetic lives in the backends (``sgd_step``/``adam_step``)."""

from __future__ import annotations

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
