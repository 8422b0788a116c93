"""Built-in dataset, held-out generators, JSONL loading and example resolution."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from grapheme_train import default_router
from grapheme_train.data import (
    Example,
    builtin_examples,
    by_domain,
    heldout_examples,
    load_jsonl,
    resolve_examples,
)
from grapheme_train.errors import DataError, InputError
from grapheme_train.inputs import ImageInput, TextInput

# -- built-in --------------------------------------------------------------------------


def test_builtin_has_exactly_the_original_twenty() -> None:
    examples = builtin_examples()
    assert len(examples) == 20
    assert Counter(e.domain for e in examples) == {
        "math": 8,
        "text": 4,
        "timeseries": 4,
        "vision": 4,
    }
    pairs = [(e.input.text, e.answer) for e in examples if e.domain in ("math", "text")]
    assert pairs == [
        ("2 + 3", "5"),
        ("10 - 4", "6"),
        ("3 * 7", "21"),
        ("15 / 3", "5"),
        ("2 + 2 * 3", "8"),
        ("(1 + 2) * 4", "12"),
        ("100 - 50", "50"),
        ("8 * 8", "64"),
        ("How many legs cat have?", "Cat have 4 legs"),
        ("What color is sky?", "Sky is blue"),
        ("What animal says moo?", "Cow says moo"),
        ("What shape is ball?", "Ball is round"),
    ]
    series = [(e.input.values, e.answer) for e in examples if e.domain == "timeseries"]
    assert series == [
        ((1, 2, 3, 4, 5), "6"),
        ((2, 4, 6, 8, 10), "12"),
        ((1, 1, 2, 3, 5), "8"),
        ((10, 9, 8, 7, 6), "5"),
    ]


def _grid(example: Example) -> np.ndarray:
    img = example.input
    assert isinstance(img, ImageInput) and (img.width, img.height) == (4, 4)
    return np.array(img.pixels).reshape(4, 4)


def test_builtin_vision_patterns() -> None:
    vision = [e for e in builtin_examples() if e.domain == "vision"]
    assert [e.answer for e in vision] == ["1", "horizontal", "cross", "square"]
    vertical, horizontal, cross, square = (_grid(e) for e in vision)
    expect = np.zeros((4, 4))
    expect[:, 1] = 1
    assert (vertical == expect).all()
    expect = np.zeros((4, 4))
    expect[1, :] = 1
    assert (horizontal == expect).all()
    expect = np.zeros((4, 4))
    expect[1, 0:3] = 1
    expect[0:3, 1] = 1
    assert (cross == expect).all() and cross.sum() == 5
    expect = np.ones((4, 4))
    expect[1:3, 1:3] = 0
    assert (square == expect).all()


def test_by_domain_groups_in_domain_order() -> None:
    groups = by_domain(builtin_examples())
    assert list(groups) == ["math", "text", "timeseries", "vision"]
    assert [len(v) for v in groups.values()] == [8, 4, 4, 4]
    with pytest.raises(ValueError, match="no domain"):
        by_domain([Example(TextInput("x"), "y", None, "f:1")])


def test_unknown_domain_is_rejected() -> None:
    with pytest.raises(InputError, match="unknown domain"):
        Example(TextInput("x"), "y", "music")


# -- held-out -------------------------------------------------------------------------


def test_heldout_is_seeded() -> None:
    assert heldout_examples(3) == heldout_examples(3)
    assert heldout_examples(3) != heldout_examples(4)
    small = heldout_examples(5, per_domain=2)
    assert Counter(e.domain for e in small) == dict.fromkeys(
        ("math", "text", "timeseries", "vision"), 2
    )
    assert heldout_examples(0, per_domain=0) == ()
    with pytest.raises(ValueError):
        heldout_examples(0, per_domain=-1)


# -- JSONL ----------------------------------------------------------------------------


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = [
    json.dumps({"input": "7 * 6", "answer": "42", "domain": "math"}),
    "",
    json.dumps({"input": "What color is grass?", "answer": "Grass is green"}),
    json.dumps({"input": [3, 6, 9, 12], "answer": 15}),
    json.dumps({"input": {"csv": "5,4,3"}, "answer": "2", "domain": "timeseries"}),
    json.dumps({"input": {"width": 2, "height": 2, "pixels": [1, 0, 0, 1]}, "answer": "diag"}),
]


BAD = [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"answer": "5"}', "missing key 'input'"),
    ('{"input": "2 + 3"}', "missing key 'answer'"),
    ('{"input": "2 + 3", "answer": "5", "anwser": "5"}', "unknown key(s) anwser"),
    ('{"input": "2 + 3", "answer": ""}', "non-empty string"),
    ('{"input": "2 + 3", "answer": true}', "non-empty string"),
    ('{"input": "2 + 3", "answer": 5.5}', "non-empty string"),
    ('{"input": "2 + 3", "answer": "5", "domain": "music"}', "unknown domain"),
    ('{"input": "2 + 3", "answer": "5", "domain": 3}', "domain must be a string"),
    ('{"input": "   ", "answer": "x"}', "text is empty"),
    ('{"input": 42, "answer": "x"}', "input must be a string, a list or an object"),
    ('{"input": [], "answer": "x"}', "sequence is empty"),
    ('{"input": [1, "a"], "answer": "x"}', "sequence[1] must be a number"),
    ('{"input": {"csv": "1,,2"}, "answer": "3"}', "CSV field 2 is empty"),
    ('{"input": {"width": 2, "height": 2, "pixels": [1]}, "answer": "x"}', "needs 4 pixels"),
    ('{"input": {"width": 1, "height": 1, "pixels": [7]}, "answer": "x"}', "outside [0, 1]"),
    ('{"input": {"width": 1, "pixels": [1]}, "answer": "x"}', "input object must have keys"),
    ('{"input": {"width": 1, "height": 1, "pixels": "1"}, "answer": "x"}', "list of numbers"),
]


@pytest.mark.parametrize(("line", "reason"), BAD)
def test_malformed_line_reports_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    path = _write(tmp_path, [*GOOD, line, *GOOD])
    bad_line = len(GOOD) + 1
    with pytest.raises(DataError) as info:
        load_jsonl(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{bad_line}: "), message
    assert reason in message
    assert info.value.source == f"{path}:{bad_line}"


def test_first_bad_line_wins(tmp_path: Path) -> None:
    path = _write(tmp_path, [GOOD[0], "oops", "{"])
    with pytest.raises(DataError, match=rf"^{path}:2: invalid JSON"):
        load_jsonl(path)


def test_non_utf8_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(GOOD[0].encode() + b"\n" + b'{"input": "\xff", "answer": "x"}\n')
    with pytest.raises(DataError, match=rf"^{path}:2: not UTF-8"):
        load_jsonl(path)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = _write(tmp_path, ["", "  "])
    with pytest.raises(DataError, match="no examples"):
        load_jsonl(empty)
    with pytest.raises(DataError, match="cannot read"):
        load_jsonl(tmp_path / "missing.jsonl")


# -- resolution: encodability, correctness, routing -------------------------------------

UNTRAINABLE = [
    ('{"input": "2 + 2", "answer": "5"}', "answer '5' is wrong"),
    ('{"input": "2 + 2", "answer": "four", "domain": "math"}', "not in the alphabet"),
    ('{"input": "1 / 0", "answer": "0"}', "division by zero at position 2"),
    ('{"input": "1 / (3 - 3)", "answer": "0", "domain": "math"}', "division by zero"),
    ('{"input": "2 +", "answer": "2"}', "below the threshold"),
    ('{"input": "2 +", "answer": "2", "domain": "math"}', "not arithmetic"),
    ('{"input": "Hello there", "answer": "x", "domain": "vision"}', "vision module cannot"),
    ('{"input": [1, 2], "answer": "three"}', "not in the alphabet"),
    ('{"input": [1, 2], "answer": "1.2.3"}', "not a number"),
    ('{"input": "Why?", "answer": "Because it is what it is"}', "more than 16 slots"),
    ('{"input": "Why?", "answer": "Caf\\u00e9"}', "not in the alphabet"),
    ('{"input": "' + "x" * 40 + '", "answer": "y"}', "character slots"),
    ('{"input": ' + str(list(range(20))) + ', "answer": "20"}', "longer than 12"),
    ('{"input": {"width": 1, "height": 1, "pixels": [1]}, "answer": "Dot"}', "alphabet"),
]


def test_correct_math_answers_in_other_spellings_are_accepted(tmp_path: Path) -> None:
    lines = [
        '{"input": "10 / 4", "answer": "2.5"}',
        '{"input": "6 / 3", "answer": "2.0"}',
        '{"input": "1 - 3", "answer": "-2"}',
    ]
    examples = resolve_examples(load_jsonl(_write(tmp_path, lines)), default_router())
    assert [e.domain for e in examples] == ["math"] * 3
