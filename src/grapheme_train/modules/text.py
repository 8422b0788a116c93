"""The text brain: next-character prediction over English prose.

Input slice: the last ``context`` characters of the text, right-aligned (the most recent
character always in the last slot), one Embedding row per slot (empty slots are zeros).
Output: one softmax over printable ASCII, the next character. ``ask`` continues a text
greedily with it (see :mod:`grapheme_train.ask`).
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np

from grapheme_train.codec import PRINTABLE, CharSlots, code_points
from grapheme_train.heads import CharHead
from grapheme_train.inputs import Input, TextInput
from grapheme_train.modules.base import DomainModule, InputEncoding

__all__ = ["TextModule"]


@attrs.frozen
class TextModule(DomainModule):
    """Free text, continued one character at a time."""

    name: ClassVar[str] = "text"
    context: int = 8

    @property
    def char_slots(self) -> CharSlots:
        return CharSlots(self.context)

    @property
    def feature_count(self) -> int:
        return 0

    @property
    def codec(self) -> CharHead:
        return CharHead(PRINTABLE)

    def can_handle(self, inp: Input) -> float:
        """0.3 + 0.6 * (share of letters among non-space characters); text only."""
        if not isinstance(inp, TextInput):
            return 0.0
        visible = [c for c in inp.text if not c.isspace()]
        letters = sum(c.isalpha() for c in visible)
        return 0.3 + 0.6 * letters / len(visible) if visible else 0.3

    def _encode(self, inp: Input) -> InputEncoding:
        assert isinstance(inp, TextInput)
        tail = inp.text[-self.context :]
        chars = np.full(self.context, -1, dtype=np.int64)
        if tail:
            chars[self.context - len(tail) :] = code_points(tail)
        return InputEncoding(chars=chars, features=np.zeros(0))
