"""Input kinds validate at construction and are immutable."""

from __future__ import annotations

import math
import re

import attrs
import numpy as np
import pytest

from grapheme_train.errors import InputError
from grapheme_train.inputs import (
    CsvInput,
    ImageInput,
    SequenceInput,
    TextInput,
    describe,
    parse_csv_numbers,
)


def test_text() -> None:
    assert TextInput("hi").text == "hi"
    for bad in ("", "  \n", 5, None):
        with pytest.raises(InputError):
            TextInput(bad)  # type: ignore[arg-type]


def test_sequence_converts_and_validates() -> None:
    seq = SequenceInput([1, 2.5, np.int64(3), np.float32(4)])
    assert seq.values == (1.0, 2.5, 3.0, 4.0)
    assert all(type(v) is float for v in seq.values)
    for bad, fragment in [
        ([], "empty"),
        ([1, "2"], "sequence[1]"),
        ([1, True], "sequence[1]"),
        ([1, math.nan], "finite"),
        ([math.inf], "finite"),
        ("123", "not a string"),
        (5, "sequence of numbers"),
    ]:
        with pytest.raises(InputError, match=re.escape(fragment)):
            SequenceInput(bad)  # type: ignore[arg-type]


def test_image() -> None:
    img = ImageInput(3, 2, [0, 1, 0.5, 1, 0, 0])
    assert img.rows() == [(0.0, 1.0, 0.5), (1.0, 0.0, 0.0)]
    cases = [
        ((0, 1, []), "width must be positive"),
        ((2, -1, [0, 0]), "height must be positive"),
        ((2.0, 1, [0, 0]), "width must be an integer"),
        ((2, 2, [0, 0, 0]), "needs 4 pixels, got 3"),
        ((1, 1, [1.5]), "outside"),
        ((1, 1, [-0.1]), "outside"),
        ((1, 1, [math.nan]), "finite"),
    ]
    for args, fragment in cases:
        with pytest.raises(InputError, match=fragment):
            ImageInput(*args)


def test_csv() -> None:
    csv = CsvInput("1, 2,3\n4.5,-6")
    assert csv.values == (1.0, 2.0, 3.0, 4.5, -6.0)
    assert CsvInput("1,2") == CsvInput("1,2")
    for bad, fragment in [
        ("", "empty"),
        ("1,,2", "field 2 is empty"),
        ("1,x", "field 2 is not a number"),
        ("1,nan", "not finite"),
    ]:
        with pytest.raises(InputError, match=fragment):
            CsvInput(bad)
    with pytest.raises(InputError):
        parse_csv_numbers(3)  # type: ignore[arg-type]


def test_inputs_are_frozen_and_hashable() -> None:
    inp = TextInput("x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        inp.text = "y"  # type: ignore[misc]
    assert len({SequenceInput([1, 2]), SequenceInput((1.0, 2.0))}) == 1
    assert hash(ImageInput(1, 1, [0]))


def test_describe_is_short() -> None:
    assert describe(TextInput("x" * 500)).endswith("...'")
    assert len(describe(TextInput("x" * 500))) < 60
    assert describe(SequenceInput(range(20))).endswith(", ...]")
    assert describe(ImageInput(2, 1, [0, 1])) == "image 2x1"
