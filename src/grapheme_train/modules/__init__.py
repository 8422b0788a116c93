"""Domain modules: one per brain (math, text, timeseries, vision)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import attrs

from grapheme_train.inputs import ImageInput, Input, TextInput
from grapheme_train.modules.base import DomainModule, InputEncoding
from grapheme_train.modules.math import MathModule
from grapheme_train.modules.text import TextModule
from grapheme_train.modules.timeseries import TimeSeriesModule, sequence_values
from grapheme_train.modules.vision import VisionModule

__all__ = [
    "DOMAINS",
    "DomainModule",
    "InputEncoding",
    "MathModule",
    "TextModule",
    "TimeSeriesModule",
    "VisionModule",
    "default_modules",
    "fit_modules",
    "module_config",
    "module_from_config",
]

DOMAINS: tuple[str, ...] = ("math", "text", "timeseries", "vision")
"""The built-in domains, in slice-allocation order."""

_TYPES: dict[str, type[DomainModule]] = {
    "math": MathModule,
    "text": TextModule,
    "timeseries": TimeSeriesModule,
    "vision": VisionModule,
}


def default_modules() -> tuple[DomainModule, ...]:
    """One module per built-in domain, in :data:`DOMAINS` order, default sizes."""
    return tuple(cls() for cls in _TYPES.values())


class _Labelled(Protocol):
    domain: str | None
    input: Input
    answer: str


def fit_modules(examples: Iterable[_Labelled]) -> tuple[DomainModule, ...]:
    """Default modules, enlarged where the (routed) examples need more room.

    Math answer places and expression slots, series length and image size never shrink
    below the defaults; the vision labels are the defaults plus every training label.
    """
    need: dict[str, dict[str, int]] = {d: {} for d in DOMAINS}
    labels: set[str] = set()

    def grow(domain: str, field: str, value: int) -> None:
        need[domain][field] = max(need[domain].get(field, 0), value)

    for ex in examples:
        inp = ex.input
        if ex.domain == "math" and isinstance(inp, TextInput):
            grow("math", "answer_slots", len(ex.answer))
            grow("math", "max_chars", len("".join(inp.text.split())))
        elif ex.domain == "timeseries":
            values = sequence_values(inp)
            if values is not None:
                grow("timeseries", "max_len", len(values))
        elif ex.domain == "vision" and isinstance(inp, ImageInput):
            grow("vision", "rows", inp.height)
            grow("vision", "cols", inp.width)
            labels.add(ex.answer)
    modules = []
    for domain, cls in _TYPES.items():
        defaults = cls()
        sizes: dict[str, Any] = {k: max(v, getattr(defaults, k)) for k, v in need[domain].items()}
        if domain == "vision":
            sizes["labels"] = tuple(sorted(set(defaults.labels) | labels))  # type: ignore[attr-defined]
        modules.append(attrs.evolve(defaults, **sizes))  # type: ignore[misc]
    return tuple(modules)


def module_config(module: DomainModule) -> dict[str, Any]:
    """A JSON-able description of a built-in module (for checkpoints)."""
    return {"name": module.name, **attrs.asdict(module)}  # type: ignore[arg-type]


def module_from_config(config: Mapping[str, Any]) -> DomainModule:
    """Rebuild a module from :func:`module_config` output."""
    fields = dict(config)
    name = fields.pop("name")
    if name not in _TYPES:
        raise ValueError(f"unknown module {name!r}")
    return _TYPES[name](**fields)
