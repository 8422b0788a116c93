"""The math brain: arithmetic expressions in, numeric answers out.

Input slice (features only, no Embedding): an expression ``a OP b`` of two whole numbers
(up to 4 digits) fills the *operand block*: each operand's digits right-aligned by place
value (units in the last place), one-hot over blank + 0-9, and the operator one-hot over
``+ - * /``. Any other expression fills the *general block* instead: its characters
(whitespace removed) right-aligned in ``max_chars`` slots, one-hot over blank +
``0-9 . + - * / ( )``. Output: the answer right-aligned by place value in
``answer_slots`` places, one softmax per place over blank + ``0-9 - .``. The safe parser
(:mod:`grapheme_train.mathparse`) decides whether a text is arithmetic, and checks that a
training answer equals the expression's value.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import ClassVar

import attrs
import numpy as np

from grapheme_train.codec import DIGITS, CharSlots
from grapheme_train.errors import EncodingError
from grapheme_train.heads import PlaceValueHead
from grapheme_train.inputs import Input, TextInput, describe
from grapheme_train.mathparse import MathError, evaluate, format_number, parse
from grapheme_train.modules.base import DomainModule, InputEncoding

__all__ = ["MathModule"]

_MATH_CHARS = frozenset("0123456789.+-*/() \t")
_SYMBOLS = "0123456789.+-*/()"
_OPS = "+-*/"
_PLACES = 4
_BINARY = re.compile(r"^(\d{1,4})([-+*/])(\d{1,4})$")


def _compact(text: str) -> str:
    return "".join(text.split())


def _places(number: str) -> np.ndarray:
    block = np.zeros((_PLACES, 11))
    block[:, 0] = 1.0
    for i, ch in enumerate(number.rjust(_PLACES)):
        if ch != " ":
            block[i] = 0.0
            block[i, 1 + int(ch)] = 1.0
    return block.reshape(-1)


@attrs.frozen
class MathModule(DomainModule):
    """Arithmetic with + - * /, parentheses, unary minus and decimals."""

    name: ClassVar[str] = "math"
    max_chars: int = 16
    answer_slots: int = 5

    @property
    def char_slots(self) -> CharSlots:
        return CharSlots(0)

    @property
    def feature_count(self) -> int:
        return 2 * _PLACES * 11 + len(_OPS) + self.max_chars * (len(_SYMBOLS) + 1)

    @property
    def codec(self) -> PlaceValueHead:
        return PlaceValueHead(DIGITS, self.answer_slots)

    def can_handle(self, inp: Input) -> float:
        """0.95 for a valid expression, 0.4 for arithmetic-looking but malformed text."""
        if not isinstance(inp, TextInput):
            return 0.0
        if _BINARY.match(_compact(inp.text)):
            return 0.95
        try:
            parse(inp.text)
        except MathError:
            looks = set(inp.text) <= _MATH_CHARS and any(c.isdigit() for c in inp.text)
            return 0.4 if looks else 0.0
        return 0.95

    def _encode(self, inp: Input) -> InputEncoding:
        assert isinstance(inp, TextInput)
        text = _compact(inp.text)
        if not _BINARY.match(text):
            try:
                parse(inp.text)
            except MathError as exc:
                raise EncodingError(f"not arithmetic: {exc}") from None
        operands = np.zeros(2 * _PLACES * 11 + len(_OPS))
        general = np.zeros((self.max_chars, len(_SYMBOLS) + 1))
        match = _BINARY.match(text)
        if match:
            a, op, b = match.groups()
            operands = np.concatenate([_places(a), np.eye(len(_OPS))[_OPS.index(op)], _places(b)])
        else:
            if len(text) > self.max_chars:
                raise EncodingError(
                    f"expression of {len(text)} characters is longer than {self.max_chars}"
                )
            general[:, 0] = 1.0
            start = self.max_chars - len(text)
            for i, ch in enumerate(text):
                general[start + i] = 0.0
                general[start + i, 1 + _SYMBOLS.index(ch)] = 1.0
        return InputEncoding(
            chars=np.zeros(0, dtype=np.int64), features=np.concatenate([operands, general.ravel()])
        )

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
