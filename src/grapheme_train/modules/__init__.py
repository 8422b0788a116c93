"""Domain modules: one per brain (math, text, timeseries, vision)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import attrs

from grapheme_train.inputs import Input, TextInput
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
    """Default modules, enlarged where the (routed) examples need more slots.

    Sizes never shrink below the defaults, so the built-in and held-out sets always fit.
    """
    need: dict[str, dict[str, int]] = {d: {} for d in DOMAINS}

    def grow(domain: str, field: str, value: int) -> None:
        need[domain][field] = max(need[domain].get(field, 0), value)

    for ex in examples:
        if ex.domain not in need:
            continue
        grow(ex.domain, "answer_slots", len(ex.answer))
        inp = ex.input
        if ex.domain in ("math", "text") and isinstance(inp, TextInput):
            text = "".join(inp.text.split()) if ex.domain == "math" else inp.text.strip()
            grow(ex.domain, "max_chars", len(text))
        elif ex.domain == "timeseries":
            values = sequence_values(inp)
            if values is not None:
                grow(ex.domain, "max_len", len(values))
    modules = []
    for domain, cls in _TYPES.items():
        defaults = cls()
        sizes = {k: max(v, getattr(defaults, k)) for k, v in need[domain].items()}
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
