"""Each data source's split: deterministic, disjoint by construction, built-ins trained."""

from __future__ import annotations

import pytest

from grapheme_train.data import builtin_examples, example_to_json
from grapheme_train.datasets import (
    SourceUnavailableError,
    arithmetic,
    digits,
    keyed_split,
    load_splits,
    prose,
    sequences,
)


def _keys(examples):
    return {repr(example_to_json(e)["input"]) for e in examples}


@pytest.fixture(scope="module")
def splits():
    return {
        "math": arithmetic.split(0),
        "timeseries": sequences.split(0),
        "vision": digits.split(0),
        "text": prose.split(0),
    }


def test_math_split_is_by_operand_pair(splits):
    s = splits["math"]
    pairs = lambda exs: {  # noqa: E731
        tuple(sorted(int(t) for t in e.input.text.replace("+", " ").replace("*", " ")
                     .replace(" - ", " ").split()))
        for e in exs if e.source.startswith("math:")
    }  # fmt: skip
    assert pairs(s.train).isdisjoint(pairs(s.heldout))
    assert len(s.heldout) > 1000
    assert {e.input.text for e in builtin_examples() if e.domain == "math"} <= {
        e.input.text for e in s.train
    }


def test_math_covers_every_question():
    qs = arithmetic.questions()
    texts = {q for q, _, _ in qs}
    assert "99 + 99" in texts and "0 - 99" in texts and "9 * 99" in texts
    assert "10 * 10" not in texts  # a product needs a single-digit operand
    assert len(texts) == len(qs)


def test_series_split_disjoint_and_distinct(splits):
    s = splits["timeseries"]
    assert _keys(s.train).isdisjoint(_keys(s.heldout))
    seqs = sequences.sequences()
    assert len(seqs) == len(set(seqs))
    for e in s.heldout[:50]:
        assert float(e.answer) == int(e.answer)


def test_digits_split_stratified_and_disjoint(splits):
    s = splits["vision"]
    src = lambda exs: {e.source for e in exs if e.source.startswith("digits:")}  # noqa: E731
    assert src(s.train).isdisjoint(src(s.heldout))
    assert len(src(s.train)) + len(src(s.heldout)) == 1797
    assert {e.answer for e in s.heldout} == {str(d) for d in range(10)}
    assert sum(e.source.startswith("builtin") for e in s.train) == 4


def test_text_split_is_by_topic(splits):
    s = splits["text"]
    topic = lambda exs: {e.source.split(":")[1] for e in exs if e.source.startswith("pydoc:")}  # noqa: E731
    assert topic(s.train).isdisjoint(topic(s.heldout))
    assert all(len(e.answer) == 1 and 1 <= len(e.input.text) <= prose.CONTEXT for e in s.heldout)
    assert any(e.source.startswith("builtin-text") for e in s.train)


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = sequences.split(0), sequences.split(0), sequences.split(1)
    assert a == b
    assert _keys(a.heldout) != _keys(c.heldout)


def test_keyed_split_keeps_equal_keys_together():
    keys = ["x", "y", "x", "z", "y"] * 3
    mask = keyed_split(keys, 3, 0.5)
    for k in set(keys):
        assert len({bool(m) for kk, m in zip(keys, mask, strict=True) if kk == k}) == 1


def test_heldout_larger_than_source_caps_and_says_so():
    loaded = load_splits(0, heldout=10**6)
    assert loaded.notes and "only" in loaded.notes[0] and "--heldout 1000000" in loaded.notes[0]
    few = load_splits(0, heldout=3)
    assert len(few.heldout) == 12 and not few.notes


def test_missing_source_names_package_and_pip():
    err = SourceUnavailableError("vision (8x8 digits)", "scikit-learn", "pip install scikit-learn")
    assert "scikit-learn" in str(err) and "pip install scikit-learn" in str(err)


def test_digits_loader_without_sklearn(monkeypatch):
    import importlib.util
    import sys

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(SourceUnavailableError, match="pip install scikit-learn"):
        digits.load_digits()


def test_legacy_series_generator_stops_instead_of_hanging():
    import numpy as np

    from grapheme_train.data import generate_timeseries

    with pytest.raises(ValueError, match="distinct progressions"):
        generate_timeseries(np.random.default_rng(0), 280)
