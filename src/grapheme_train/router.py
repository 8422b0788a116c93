"""CognitiveRouter: pick the domain module for an input, or say clearly why not."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import attrs

from grapheme_train.errors import LowConfidenceError, NoModulesError, NoSuitableModuleError
from grapheme_train.inputs import Input, describe

__all__ = ["Candidate", "CognitiveRouter", "Routable", "Route"]


@runtime_checkable
class Routable(Protocol):
    """Anything the router can register: a name and a confidence score."""

    name: str

    def can_handle(self, inp: Input) -> float: ...


@attrs.frozen
class Candidate:
    """A module's name and its confidence for one input."""

    name: str
    confidence: float


@attrs.frozen
class Route:
    """The router's decision: the chosen module, its confidence, the others (best first)."""

    module: Routable
    confidence: float
    alternatives: tuple[Candidate, ...]

    @property
    def name(self) -> str:
        """The name of the module the input is routed to."""
        return self.module.name


def _format_scores(scores: Iterable[tuple[str, float]]) -> str:
    return ", ".join(f"{name} {conf:.2f}" for name, conf in scores)


class CognitiveRouter:
    """Routes inputs to registered modules by confidence.

    ``route`` asks every module for ``can_handle(inp)`` and picks the highest (ties go
    to the module registered first). It raises :class:`NoModulesError` when nothing is
    registered, :class:`NoSuitableModuleError` when every module scores 0, and
    :class:`LowConfidenceError` when the best score is below ``threshold``.
    """

    def __init__(self, threshold: float = 0.5, modules: Iterable[Routable] = ()) -> None:
        if not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        self._threshold = float(threshold)
        self._modules: dict[str, Routable] = {}
        for module in modules:
            self.register(module)

    @property
    def threshold(self) -> float:
        """The minimum confidence a route needs; below it routing refuses."""
        return self._threshold

    @property
    def modules(self) -> tuple[Routable, ...]:
        """Registered modules in registration order."""
        return tuple(self._modules.values())

    def register(self, module: Routable) -> Routable:
        """Add ``module``; a second module with the same name is a ``ValueError``."""
        if not isinstance(module, Routable):
            raise TypeError(f"{module!r} has no name / can_handle")
        if module.name in self._modules:
            raise ValueError(f"a module named {module.name!r} is already registered")
        self._modules[module.name] = module
        return module

    def get(self, name: str) -> Routable:
        """The registered module called ``name`` (``KeyError`` listing names if absent)."""
        try:
            return self._modules[name]
        except KeyError:
            known = ", ".join(self._modules) or "none"
            raise KeyError(f"no module named {name!r} (registered: {known})") from None

    def scores(self, inp: Input) -> tuple[Candidate, ...]:
        """Every module's confidence for ``inp``, best first (stable for ties)."""
        found = []
        for module in self._modules.values():
            conf = module.can_handle(inp)
            if (
                not isinstance(conf, int | float)
                or not math.isfinite(conf)
                or not (0.0 <= conf <= 1.0)
            ):
                raise ValueError(
                    f"module {module.name!r} returned confidence {conf!r}, not in [0, 1]"
                )
            found.append(Candidate(module.name, float(conf)))
        return tuple(sorted(found, key=lambda c: -c.confidence))

    def route(self, inp: Input) -> Route:
        """Choose the module for ``inp`` (see the class docstring for the errors)."""
        if not self._modules:
            raise NoModulesError(f"cannot route {describe(inp)}: no modules are registered")
        ranked = self.scores(inp)
        pairs = tuple((c.name, c.confidence) for c in ranked)
        best = ranked[0]
        if best.confidence <= 0.0:
            raise NoSuitableModuleError(
                f"no module can handle {describe(inp)} (scores: {_format_scores(pairs)})",
                pairs,
            )
        if best.confidence < self._threshold:
            raise LowConfidenceError(
                f"best module for {describe(inp)} is {best.name!r} with confidence "
                f"{best.confidence:.2f}, below the threshold {self._threshold:.2f} "
                f"(scores: {_format_scores(pairs)})",
                pairs,
            )
        return Route(self._modules[best.name], best.confidence, ranked[1:])
