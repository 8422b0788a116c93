"""The BackwardPass protocol: what every trainable object offers a training loop."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class BackwardPass(Protocol):
    """Accumulate gradients, inspect and clip them, apply a step, reset.

    ``backward_accumulate`` takes what the object needs (a DagNN takes ``dL/dy``; an
    Embedding takes the indices and row gradients) and always ADDS into gradients.
    """

    def backward_accumulate(self, *args: Any, **kwargs: Any) -> Any: ...

    def zero_grad(self) -> None: ...

    def step(self, lr: float) -> None: ...

    def gradient_norm(self) -> float: ...

    def clip_gradients(self, max_norm: float) -> float: ...
