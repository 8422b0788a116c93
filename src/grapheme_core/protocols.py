"""The BackwardPass protocol: what every trainable object offers a training loop."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class BackwardPass(Protocol):
    """Accumulate gradients, inspect and clip them, apply a step, reset.

    ``backward_accumulate`` takes what the object needs (a DagNN takes ``dL/dy``; an
    Embedding takes the indices and row gradients) and always ADDS into gradients.
    """

    def backward_accumulate(self, *args: Any, **kwargs: Any) -> Any:
        """Add the gradients of the last forward pass to the accumulated ones."""

    def zero_grad(self) -> None:
        """Reset the accumulated gradients to zero."""

    def step(self, lr: float) -> None:
        """Apply one optimizer update with learning rate ``lr``."""

    def gradient_norm(self) -> float:
        """The L2 norm of the accumulated gradients."""

    def clip_gradients(self, max_norm: float) -> float:
        """Scale the gradients to a norm of at most ``max_norm``; returns the norm before."""
