"""The text brain: questions in, short sentences out.

Input slice: the question's characters (leading/trailing space removed), one Embedding
row per slot, then 26 features: the frequency of each letter a-z (case-folded,
divided by the number of letters), which survive typos and shifts that move every
character slot. Output: the answer's characters over printable ASCII.
"""

from __future__ import annotations

import string
from typing import ClassVar

import attrs
import numpy as np

from grapheme_train.codec import PRINTABLE, AnswerCodec, CharSlots
from grapheme_train.inputs import Input, TextInput
from grapheme_train.modules.base import DomainModule, InputEncoding

__all__ = ["TextModule"]

_LETTERS = string.ascii_lowercase


def letter_histogram(text: str) -> np.ndarray:
    """Frequency of each of a-z in ``text`` (case-folded); zeros if it has none."""
    counts = np.zeros(len(_LETTERS))
    for ch in text.lower():
        pos = _LETTERS.find(ch)
        if pos >= 0:
            counts[pos] += 1
    total = counts.sum()
    return counts / total if total else counts


@attrs.frozen
class TextModule(DomainModule):
    """Free-text questions answered by short sentences."""

    name: ClassVar[str] = "text"
    max_chars: int = 32
    answer_slots: int = 16

    @property
    def char_slots(self) -> CharSlots:
        return CharSlots(self.max_chars)

    @property
    def feature_count(self) -> int:
        return len(_LETTERS)

    @property
    def codec(self) -> AnswerCodec:
        return AnswerCodec(PRINTABLE, self.answer_slots)

    def can_handle(self, inp: Input) -> float:
        """0.3 + 0.6 * (share of letters among non-space characters); text only."""
        if not isinstance(inp, TextInput):
            return 0.0
        visible = [c for c in inp.text if not c.isspace()]
        letters = sum(c.isalpha() for c in visible)
        return 0.3 + 0.6 * letters / len(visible)

    def _encode(self, inp: Input) -> InputEncoding:
        assert isinstance(inp, TextInput)
        text = inp.text.strip()
        return InputEncoding(chars=self.char_slots.indices(text), features=letter_histogram(text))
