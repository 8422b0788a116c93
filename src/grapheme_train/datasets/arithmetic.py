"""Math: every ``a + b`` and ``a - b`` with ``0 <= a, b < 100``, and ``a * b`` with one
single-digit operand (the other below 100), split by operand pair.

The held-out share is drawn over *unordered operand pairs*: when ``{a, b}`` is held
out, ``a + b``, ``b + a``, ``a - b``, ``b - a``, ``a * b`` and ``b * a`` are all held out,
so no held-out question is a commuted training question. The built-in examples always
stay in training (their operand pairs are never held out).
"""

from __future__ import annotations

from grapheme_train.data import Example, builtin_examples
from grapheme_train.datasets.base import Split, keyed_split
from grapheme_train.inputs import TextInput

__all__ = ["HELDOUT_SHARE", "questions", "split"]

HELDOUT_SHARE = 0.1


def questions() -> list[tuple[str, int, tuple[int, int]]]:
    """``(question, answer, pair)`` for every generated question, in a fixed order."""
    out = []
    for a in range(100):
        for b in range(100):
            pair = (min(a, b), max(a, b))
            out.append((f"{a} + {b}", a + b, pair))
            out.append((f"{a} - {b}", a - b, pair))
            if a < 10 or b < 10:
                out.append((f"{a} * {b}", a * b, pair))
    return out


def split(seed: int) -> Split:
    """Training (with the built-in math examples) and held-out arithmetic."""
    items = questions()
    builtin = [e for e in builtin_examples() if e.domain == "math"]
    builtin_text = {e.input.text.replace(" ", "") for e in builtin}  # type: ignore[union-attr]
    builtin_pairs = {p for q, _, p in items if q.replace(" ", "") in builtin_text}
    held = keyed_split([p for _, _, p in items], seed, HELDOUT_SHARE)
    train = list(builtin)
    heldout = []
    for (q, ans, pair), is_held in zip(items, held, strict=True):
        if q.replace(" ", "") in builtin_text:
            continue  # already in training as a built-in example
        is_held = is_held and pair not in builtin_pairs  # built-in pairs are always trained
        ex = Example(TextInput(q), str(ans), "math", f"math:{q}")
        (heldout if is_held else train).append(ex)
    return Split(tuple(train), tuple(heldout))
