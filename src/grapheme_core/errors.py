"""The exceptions grapheme raises. Every one derives from :class:`GraphemeError`."""

from __future__ import annotations


class GraphemeError(Exception):
    """Base class of every error grapheme raises on purpose."""


class CycleError(GraphemeError, ValueError):
    """An edge would close a cycle; the graph was left unchanged."""

    def __init__(self, message: str, src: int, dst: int, path: list[int] | None = None) -> None:
        super().__init__(message)
        self.src = src
        self.dst = dst
        self.path = path or []


class GraphError(GraphemeError, ValueError):
    """A structural request is invalid (unknown node or edge, wrong node kind, bad weight)."""


class ShapeError(GraphemeError, ValueError):
    """An array handed to the model has the wrong shape or dtype."""


class StateError(GraphemeError, RuntimeError):
    """An operation was called in the wrong order (for example backward before forward)."""


class BackendNotFoundError(GraphemeError, LookupError):
    """No installed plugin provides the requested backend."""


class BackendLoadError(GraphemeError, ImportError):
    """A backend plugin is registered but its library could not be loaded."""


class IncompatibleBackendError(GraphemeError):
    """A backend plugin was written for another major version of the kernel API."""


class CheckpointError(GraphemeError):
    """A checkpoint file is missing, truncated, corrupted or of an unsupported format."""


class CapabilityError(GraphemeError, NotImplementedError):
    """The backend lacks an optional capability the operation needs (for example RigL's
    ``candidate_edge_grads`` kernel on a 1.0 backend); the message says what to use."""


class NonFiniteError(GraphemeError, ValueError):
    """An input or parameter holds NaN or infinity (a diverged run, or bad data)."""
