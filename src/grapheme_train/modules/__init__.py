"""Domain modules: one per brain (math, text, timeseries, vision)."""

from __future__ import annotations

from grapheme_train.modules.base import DomainModule, InputEncoding
from grapheme_train.modules.math import MathModule
from grapheme_train.modules.text import TextModule
from grapheme_train.modules.timeseries import TimeSeriesModule
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
]

DOMAINS: tuple[str, ...] = ("math", "text", "timeseries", "vision")
"""The built-in domains, in slice-allocation order."""


def default_modules() -> tuple[DomainModule, ...]:
    """One module per built-in domain, in :data:`DOMAINS` order, default sizes."""
    return (MathModule(), TextModule(), TimeSeriesModule(), VisionModule())
