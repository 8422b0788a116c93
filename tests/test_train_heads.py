"""Output heads: targets, decoding, and each loss's gradient against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_train.codec import DIGITS, PRINTABLE
from grapheme_train.errors import EncodingError
from grapheme_train.heads import CharHead, LabelHead, NextValueHead, PlaceValueHead


def _fd_check(head, y, targets, eps=1e-6):
    losses, grad = head.loss(y, targets)
    num = np.zeros_like(y)
    for idx in np.ndindex(*y.shape):
        up, down = y.copy(), y.copy()
        up[idx] += eps
        down[idx] -= eps
        num[idx] = (head.loss(up, targets)[0].sum() - head.loss(down, targets)[0].sum()) / (2 * eps)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-7)
    assert losses.shape == (len(y),)


def test_place_value_right_aligned_round_trip():
    head = PlaceValueHead(DIGITS, 4)
    t = head.targets(["68", "-5", "891"])
    assert t[0].tolist() == [0, 0, 1 + DIGITS.index("6"), 1 + DIGITS.index("8")]
    y = np.full((3, head.size), -5.0).reshape(3, 4, head.classes)
    for b in range(3):
        y[b, np.arange(4), t[b]] = 5.0
    answers, conf = head.decode(y.reshape(3, -1))
    assert answers == ["68", "-5", "891"] and np.all(conf > 0.9)
    with pytest.raises(EncodingError, match="does not fit"):
        head.targets(["12345"])


@pytest.mark.parametrize(
    "head,answers",
    [
        (PlaceValueHead(DIGITS, 3), ["12", "-7"]),
        (CharHead(PRINTABLE[:7]), ["!", "#"]),
        (LabelHead(("a", "b", "c")), ["c", "a"]),
    ],
)
def test_categorical_gradients_match_finite_differences(head, answers):
    rng = np.random.default_rng(0)
    y = rng.normal(size=(2, head.size))
    _fd_check(head, y, head.targets(answers))


def test_next_value_head_gradient_and_decode():
    head = NextValueHead()
    ctx = np.array([[10.0, 10.0, 1.0], [5.0, 8.0, 1.0]])
    t = head.targets(["12", "1"], ctx)
    np.testing.assert_allclose(t[:, 0], [0.2, -0.5])
    _fd_check(head, np.array([[0.3], [-0.1]]), t)
    answers, conf = head.decode(t, ctx)
    assert answers == ["12", "1"] and np.all(conf == 1.0)


def test_label_head_rejects_unknown_label():
    with pytest.raises(EncodingError, match="not one of"):
        LabelHead(("a",)).targets(["b"])
