"""Reference predictors a trained brain must beat on the same split.

:class:`BigramBaseline`: next character from the previous one alone, with add-one
smoothing over printable ASCII, counted on the training windows (each window's last
context character and the character that follows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from grapheme_train.codec import PRINTABLE
from grapheme_train.data import Example

__all__ = ["BigramBaseline"]

_N = len(PRINTABLE)


def _index(ch: str) -> int:
    i = PRINTABLE.find(ch)
    return i if i >= 0 else PRINTABLE.index(" ")


@attrs.frozen(eq=False)
class BigramBaseline:
    """``probs[prev, next]``: P(next | previous character), add-one smoothed."""

    probs: np.ndarray

    @classmethod
    def fit(cls, examples: Sequence[Example]) -> BigramBaseline:
        """Count (last context character, next character) over text examples."""
        counts = np.ones((_N + 1, _N))  # row _N: no previous character
        prev = np.array([_index(e.input.text[-1]) if e.input.text else _N for e in examples])  # type: ignore[union-attr]
        nxt = np.array([_index(e.answer) for e in examples])
        np.add.at(counts, (prev, nxt), 1.0)
        return cls(counts / counts.sum(axis=1, keepdims=True))

    def score(self, examples: Sequence[Example]) -> dict[str, Any]:
        """``{"next_char_accuracy", "bits_per_char"}`` of the baseline on ``examples``."""
        prev = np.array([_index(e.input.text[-1]) if e.input.text else _N for e in examples])  # type: ignore[union-attr]
        nxt = np.array([_index(e.answer) for e in examples])
        p = self.probs[prev]
        return {
            "next_char_accuracy": float(np.mean(p.argmax(axis=1) == nxt)),
            "bits_per_char": float(-np.mean(np.log(p[np.arange(len(nxt)), nxt])) / math.log(2)),
        }
