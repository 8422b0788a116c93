"""The math brain: arithmetic expressions in, numeric answers out.

Input slice: the expression with whitespace removed, one Embedding row per character
(``char_slots`` slots). Output: the answer's characters over ``0-9 - .``. The safe
parser (:mod:`grapheme_train.mathparse`) decides whether a text is arithmetic, and
checks that a training answer equals the expression's value.
"""

from __future__ import annotations

from fractions import Fraction
from typing import ClassVar

import attrs
import numpy as np

from grapheme_train.codec import DIGITS, AnswerCodec, CharSlots
from grapheme_train.errors import EncodingError
from grapheme_train.inputs import Input, TextInput, describe
from grapheme_train.mathparse import MathError, evaluate, format_number, parse
from grapheme_train.modules.base import DomainModule, InputEncoding

__all__ = ["MathModule"]

_MATH_CHARS = frozenset("0123456789.+-*/() \t")


def _compact(text: str) -> str:
    return "".join(text.split())


@attrs.frozen
class MathModule(DomainModule):
    """Arithmetic with + - * /, parentheses, unary minus and decimals."""

    name: ClassVar[str] = "math"
    max_chars: int = 16
    answer_slots: int = 8

    @property
    def char_slots(self) -> CharSlots:
        return CharSlots(self.max_chars)

    @property
    def feature_count(self) -> int:
        return 0

    @property
    def codec(self) -> AnswerCodec:
        return AnswerCodec(DIGITS, self.answer_slots)

    def can_handle(self, inp: Input) -> float:
        """0.95 for a valid expression, 0.4 for arithmetic-looking but malformed text."""
        if not isinstance(inp, TextInput):
            return 0.0
        try:
            parse(inp.text)
        except MathError:
            looks = set(inp.text) <= _MATH_CHARS and any(c.isdigit() for c in inp.text)
            return 0.4 if looks else 0.0
        return 0.95

    def _encode(self, inp: Input) -> InputEncoding:
        assert isinstance(inp, TextInput)
        try:
            parse(inp.text)
        except MathError as exc:
            raise EncodingError(f"not arithmetic: {exc}") from None
        chars = self.char_slots.indices(_compact(inp.text))
        return InputEncoding(chars=chars, features=np.zeros(0))

    def solve(self, inp: Input) -> str:
        """The exact answer text, e.g. ``"2 + 2 * 3" -> "8"``; MathError if invalid."""
        if not isinstance(inp, TextInput):
            raise EncodingError("the math module solves text expressions only")
        return format_number(evaluate(inp.text))

    def answer_problem(self, inp: Input, answer: str) -> str | None:
        reason = super().answer_problem(inp, answer)
        if reason is not None:
            return reason
        try:
            expected = self.solve(inp)
        except MathError as exc:
            return str(exc)
        try:
            given = format_number(Fraction(answer))
        except (ValueError, ZeroDivisionError):
            return f"answer {answer!r} is not a number"
        if given != expected:
            return f"answer {answer!r} is wrong: {describe(inp)} = {expected}"
        return None
