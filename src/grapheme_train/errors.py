"""Exceptions raised by grapheme_train.

Every error here derives from :class:`GraphemeTrainError`, so a caller (the CLI) can
report any training-side failure without catching unrelated exceptions.
"""

from __future__ import annotations

from grapheme_core import GraphemeError


class GraphemeTrainError(GraphemeError):
    """Base class of every grapheme_train error (a ``grapheme_core.GraphemeError``)."""


class InputError(GraphemeTrainError, ValueError):
    """An input (text, sequence, image, CSV) is malformed."""


class EncodingError(GraphemeTrainError, ValueError):
    """A module cannot encode an input or an answer (too long, unknown character...)."""


class DataError(GraphemeTrainError, ValueError):
    """A dataset line is malformed; the message is ``file:line: reason``."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class RoutingError(GraphemeTrainError):
    """The router could not pick a module for an input.

    ``scores`` holds ``(module name, confidence)`` for every registered module, best
    first, so the message can say why nothing was chosen.
    """

    def __init__(self, message: str, scores: tuple[tuple[str, float], ...] = ()) -> None:
        super().__init__(message)
        self.scores = scores


class NoModulesError(RoutingError):
    """The router has no registered modules."""


class NoSuitableModuleError(RoutingError):
    """Every registered module scored zero for the input."""


class LowConfidenceError(RoutingError):
    """The best module scored below the router's confidence threshold."""
