"""Time series: integer sequences of 5 values and their next value.

Families: arithmetic progressions ``s + k d``, geometric ``s r^k`` (r in 2, 3, -2),
and second-order linear recurrences ``x_k = p x_{k-1} + q x_{k-2}`` with
``(p, q)`` in (1, 1) (Fibonacci-like) and (2, -1), (1, 2), (2, 1). Every sequence is
kept only if all its values are at most 1000 in magnitude. The split is by the whole
sequence (its six values), so a held-out sequence never occurs in training; the
built-in series stay in training.
"""

from __future__ import annotations

from grapheme_train.data import Example, builtin_examples
from grapheme_train.datasets.base import Split, keyed_split
from grapheme_train.inputs import SequenceInput

__all__ = ["HELDOUT_SHARE", "LENGTH", "sequences", "split"]

HELDOUT_SHARE = 0.15
LENGTH = 5
_LIMIT = 1000


def _recurrence(a: int, b: int, p: int, q: int) -> list[int]:
    seq = [a, b]
    while len(seq) < LENGTH + 1:
        seq.append(p * seq[-1] + q * seq[-2])
    return seq


def sequences() -> list[tuple[int, ...]]:
    """Every generated sequence (``LENGTH + 1`` values), distinct, in a fixed order."""
    found: list[list[int]] = []
    for s in range(-30, 31):
        for d in range(-9, 10):
            if d:
                found.append([s + d * k for k in range(LENGTH + 1)])
    for s in range(-9, 10):
        for r in (2, 3, -2):
            if s:
                found.append([s * r**k for k in range(LENGTH + 1)])
    for p, q in ((1, 1), (2, -1), (1, 2), (2, 1)):
        for a in range(-9, 10):
            for b in range(-9, 10):
                if a or b:
                    found.append(_recurrence(a, b, p, q))
    seen: set[tuple[int, ...]] = set()
    out = []
    for seq in found:
        key = tuple(seq)
        if key not in seen and max(abs(v) for v in seq) <= _LIMIT:
            seen.add(key)
            out.append(key)
    return out


def split(seed: int) -> Split:
    """Training (with the built-in series) and held-out sequences."""
    builtin = [e for e in builtin_examples() if e.domain == "timeseries"]
    builtin_keys = {tuple(int(v) for v in e.input.values) for e in builtin}  # type: ignore[union-attr]
    seqs = [s for s in sequences() if s[:LENGTH] not in builtin_keys]
    held = keyed_split([s[:LENGTH] for s in seqs], seed, HELDOUT_SHARE)
    train, heldout = list(builtin), []
    for seq, is_held in zip(seqs, held, strict=True):
        ex = Example(SequenceInput(seq[:LENGTH]), str(seq[LENGTH]), "timeseries", f"series:{seq}")
        (heldout if is_held else train).append(ex)
    return Split(tuple(train), tuple(heldout))
