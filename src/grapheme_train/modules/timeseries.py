"""The time-series brain: a numeric sequence in, its next value out.

Input slice (no character slots), for a window of ``max_len`` positions with the
sequence right-aligned (the last value always in the last position):

* ``max_len`` shape features: ``x / max|x|`` (so 1,2,3 and 10,20,30 look alike);
* ``max_len`` level features: ``sign(x) * log2(1 + |x|) / 4`` (so they do not);
* ``max_len`` mask features: 1 where a value is present.

Output: the answer's characters over ``0-9 - .``.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np

from grapheme_train.codec import DIGITS, AnswerCodec, CharSlots
from grapheme_train.errors import EncodingError, InputError
from grapheme_train.inputs import CsvInput, Input, SequenceInput, TextInput, parse_csv_numbers
from grapheme_train.modules.base import DomainModule, InputEncoding

__all__ = ["TimeSeriesModule", "sequence_values"]


def sequence_values(inp: Input) -> tuple[float, ...] | None:
    """The numbers of a sequence, CSV or comma-separated text input (None otherwise)."""
    if isinstance(inp, SequenceInput | CsvInput):
        return inp.values
    if isinstance(inp, TextInput) and "," in inp.text:
        try:
            return parse_csv_numbers(inp.text)
        except InputError:
            return None
    return None


@attrs.frozen
class TimeSeriesModule(DomainModule):
    """Next-value prediction for short numeric sequences."""

    name: ClassVar[str] = "timeseries"
    max_len: int = 12
    answer_slots: int = 8

    @property
    def char_slots(self) -> CharSlots:
        return CharSlots(0)

    @property
    def feature_count(self) -> int:
        return 3 * self.max_len

    @property
    def codec(self) -> AnswerCodec:
        return AnswerCodec(DIGITS, self.answer_slots)

    def can_handle(self, inp: Input) -> float:
        """0.95 for sequences and CSV, 0.7 for text that is a list of numbers."""
        if isinstance(inp, SequenceInput | CsvInput):
            return 0.95
        return 0.7 if sequence_values(inp) is not None else 0.0

    def _encode(self, inp: Input) -> InputEncoding:
        values = sequence_values(inp)
        assert values is not None
        n = len(values)
        if n > self.max_len:
            raise EncodingError(f"sequence of {n} values is longer than {self.max_len}")
        x = np.asarray(values, dtype=np.float64)
        scale = float(np.max(np.abs(x))) or 1.0
        shape = np.zeros(self.max_len)
        level = np.zeros(self.max_len)
        mask = np.zeros(self.max_len)
        shape[-n:] = x / scale
        level[-n:] = np.sign(x) * np.log2(1.0 + np.abs(x)) / 4.0
        mask[-n:] = 1.0
        return InputEncoding(
            chars=np.zeros(0, dtype=np.int64), features=np.concatenate([shape, level, mask])
        )

    def answer_problem(self, inp: Input, answer: str) -> str | None:
        reason = super().answer_problem(inp, answer)
        if reason is not None:
            return reason
        try:
            float(answer)
        except ValueError:
            return f"answer {answer!r} is not a number"
        return None
