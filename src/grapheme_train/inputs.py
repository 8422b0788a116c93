"""The kinds of input grapheme_train accepts, validated where they are built.

Four immutable kinds: :class:`TextInput`, :class:`SequenceInput` (a numeric sequence),
:class:`ImageInput` (width, height, row-major pixels in [0, 1]) and :class:`CsvInput`
(comma-separated numbers as text). A malformed value raises :class:`InputError` at
construction, so nothing downstream sees an invalid input.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from grapheme_train.errors import InputError

__all__ = [
    "CsvInput",
    "ImageInput",
    "Input",
    "SequenceInput",
    "TextInput",
    "describe",
    "parse_csv_numbers",
]


def _finite_float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    try:
        result = float(value)
    except OverflowError:  # an int beyond the float range (JSON allows any size)
        raise InputError(f"{what} must be finite, got an integer too large for a float") from None
    if not math.isfinite(result):
        raise InputError(f"{what} must be finite, got {result}")
    return result


def _float_tuple(values: Iterable[Any], what: str) -> tuple[float, ...]:
    if isinstance(values, str | bytes):
        raise InputError(f"{what} must be a sequence of numbers, not a string")
    try:
        items = list(values)
    except TypeError as exc:
        raise InputError(f"{what} must be a sequence of numbers: {exc}") from None
    return tuple(_finite_float(v, f"{what}[{i}]") for i, v in enumerate(items))


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{what} must be an integer, got {value!r}")
    if value <= 0:
        raise InputError(f"{what} must be positive, got {value}")
    return int(value)


def parse_csv_numbers(text: str) -> tuple[float, ...]:
    """Parse comma- (or newline-) separated numbers; raise :class:`InputError` if malformed."""
    if not isinstance(text, str):
        raise InputError(f"CSV input must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError("CSV input is empty")
    fields = [f.strip() for line in text.strip().splitlines() for f in line.split(",")]
    values = []
    for i, field in enumerate(fields, start=1):
        if not field:
            raise InputError(f"CSV field {i} is empty")
        try:
            value = float(field)
        except ValueError:
            raise InputError(f"CSV field {i} is not a number: {field!r}") from None
        if not math.isfinite(value):
            raise InputError(f"CSV field {i} is not finite: {field!r}")
        values.append(value)
    return tuple(values)


@attrs.frozen
class TextInput:
    """Free text (a question, an arithmetic expression...)."""

    kind: ClassVar[str] = "text"
    text: str = attrs.field()

    @text.validator
    def _check(self, _attr: attrs.Attribute, value: Any) -> None:
        if not isinstance(value, str):
            raise InputError(f"text must be a string, got {type(value).__name__}")
        if not value.strip():
            raise InputError("text is empty")


@attrs.frozen
class SequenceInput:
    """A non-empty sequence of finite numbers (e.g. a time series)."""

    kind: ClassVar[str] = "sequence"
    values: tuple[float, ...] = attrs.field(converter=lambda v: _float_tuple(v, "sequence"))

    @values.validator
    def _check(self, _attr: attrs.Attribute, value: tuple[float, ...]) -> None:
        if not value:
            raise InputError("sequence is empty")


@attrs.frozen
class ImageInput:
    """A grey-scale image: ``width * height`` row-major pixels, each in [0, 1]."""

    kind: ClassVar[str] = "image"
    width: int = attrs.field(converter=lambda v: _positive_int(v, "image width"))
    height: int = attrs.field(converter=lambda v: _positive_int(v, "image height"))
    pixels: tuple[float, ...] = attrs.field(converter=lambda v: _float_tuple(v, "pixels"))

    def __attrs_post_init__(self) -> None:
        expected = self.width * self.height
        if len(self.pixels) != expected:
            raise InputError(
                f"image of {self.width}x{self.height} needs {expected} pixels, "
                f"got {len(self.pixels)}"
            )
        for i, p in enumerate(self.pixels):
            if not 0.0 <= p <= 1.0:
                raise InputError(f"pixel {i} = {p} is outside [0, 1]")

    def rows(self) -> list[tuple[float, ...]]:
        """The pixels as a list of ``height`` rows."""
        w = self.width
        return [self.pixels[r * w : (r + 1) * w] for r in range(self.height)]


@attrs.frozen
class CsvInput:
    """Numbers given as CSV text, e.g. ``"1, 2, 3"``; parsed (and checked) on creation."""

    kind: ClassVar[str] = "csv"
    text: str = attrs.field()
    values: tuple[float, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "values", parse_csv_numbers(self.text))


Input = TextInput | SequenceInput | ImageInput | CsvInput
"""Any of the four input kinds."""


def describe(inp: Input, limit: int = 40) -> str:
    """A short human description of an input, for error messages."""
    if isinstance(inp, TextInput | CsvInput):
        body = inp.text if len(inp.text) <= limit else inp.text[: limit - 3] + "..."
        return f"{inp.kind} {body!r}"
    if isinstance(inp, SequenceInput):
        shown = ", ".join(f"{v:g}" for v in inp.values[:8])
        more = ", ..." if len(inp.values) > 8 else ""
        return f"sequence [{shown}{more}]"
    if isinstance(inp, ImageInput):
        return f"image {inp.width}x{inp.height}"
    return repr(inp)
