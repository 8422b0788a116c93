"""The time-series brain: a numeric sequence in, its next value out (a number).

Input slice (no character slots), for a window of ``max_len`` positions with the
sequence right-aligned (the last value always in the last position), ``scale`` being
``max |x|`` (1 for an all-zero series):

* ``max_len`` shape features ``x / scale``;
* ``max_len`` difference features ``(x_i - x_{i-1}) / scale``;
* ``max_len`` mask features: 1 where a value is present;
* ``max_len`` level features ``sign(x) log2(1 + |x|) / 10``.

Output: one number trained with MSE on ``(next - last) / scale`` and decoded back to a
value (an integer when every input is one); see :class:`~grapheme_train.heads.NextValueHead`.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np

from grapheme_train.codec import CharSlots
from grapheme_train.errors import EncodingError, InputError
from grapheme_train.heads import NextValueHead
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
    linear_skip: ClassVar[bool] = True
    max_len: int = 8

    @property
    def char_slots(self) -> CharSlots:
        return CharSlots(0)

    @property
    def feature_count(self) -> int:
        return 4 * self.max_len

    @property
    def codec(self) -> NextValueHead:
        return NextValueHead()

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
        feats = np.zeros((4, self.max_len))
        feats[0, -n:] = x / scale
        if n > 1:
            feats[1, -(n - 1) :] = np.diff(x) / scale
        feats[2, -n:] = 1.0
        feats[3, -n:] = np.sign(x) * np.log2(1.0 + np.abs(x)) / 10.0
        integer = float(np.all(x == np.round(x)))
        return InputEncoding(
            chars=np.zeros(0, dtype=np.int64),
            features=feats.reshape(-1),
            context=np.array([x[-1], scale, integer]),
        )
