"""Output heads: how a brain's output slice is trained (its loss) and read (decoded).

* :class:`PlaceValueHead`: a number spelled right-aligned by place value, one softmax
  per place over ``blank + alphabet`` (per-slot softmax cross-entropy). ``"68"`` in 4
  places is ``[blank, blank, 6, 8]``, so the units digit is always the last slot.
* :class:`CharHead`: one character (next-character prediction), softmax over an alphabet.
* :class:`LabelHead`: one label out of a fixed set (classification), softmax.
* :class:`NextValueHead`: one real output trained with MSE on the next value of a
  sequence expressed relative to it: ``(next - last) / scale``; decoded back to a number
  (rounded to an integer when the inputs were all integers).

Every head's ``loss`` returns per-example losses ``[B]`` and ``dL/dy`` of their *sum*
(the caller divides by its batch size), using :mod:`grapheme_core.losses`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np

from grapheme_core.losses import mse, softmax_cross_entropy
from grapheme_train.errors import EncodingError

__all__ = ["CharHead", "Head", "LabelHead", "NextValueHead", "PlaceValueHead", "per_slot_nll"]

Head = "PlaceValueHead | CharHead | LabelHead | NextValueHead"


def per_slot_nll(y: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Negative log-likelihood per example (summed over slots), labels ``[B, S]``."""
    z = np.asarray(y, dtype=np.float64).reshape(len(y), -1, classes)
    z = z - z.max(axis=2, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    lab = labels.reshape(len(y), -1)
    picked = np.take_along_axis(logp, np.maximum(lab, 0)[..., None], axis=2)[..., 0]
    return -(picked * (lab >= 0)).sum(axis=1)


def _softmax(y: np.ndarray, classes: int) -> np.ndarray:
    z = np.asarray(y, dtype=np.float64).reshape(len(y), -1, classes)
    e = np.exp(z - z.max(axis=2, keepdims=True))
    return e / e.sum(axis=2, keepdims=True)


class _Categorical:
    """Shared loss / decode of the softmax heads (``classes`` per slot)."""

    classes: int
    slots: int

    @property
    def size(self) -> int:
        return self.classes * self.slots

    def loss(self, y: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels = np.asarray(targets, dtype=np.int64).reshape(len(y), self.slots)
        grad = softmax_cross_entropy(y, labels, classes=self.classes, reduction="sum").grad
        return per_slot_nll(y, labels, self.classes), grad

    def _validate(self, answers: Sequence[str]) -> None:
        """``EncodingError`` naming the first answer this head cannot encode."""
        for a in answers:
            reason = self.problem(a)
            if reason:
                raise EncodingError(reason)

    def _best(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = _softmax(y, self.classes)
        return p.argmax(axis=2), p.max(axis=2).prod(axis=1)


@attrs.frozen
class PlaceValueHead(_Categorical):
    """A number right-aligned in ``slots`` places, each a softmax over blank + alphabet."""

    alphabet: str
    slots: int

    @property
    def classes(self) -> int:
        return len(self.alphabet) + 1

    def problem(self, answer: str) -> str | None:
        if not answer or len(answer) > self.slots:
            return f"answer {answer!r} does not fit in {self.slots} places"
        bad = [c for c in answer if c not in self.alphabet]
        return f"answer {answer!r} has characters {bad} outside {self.alphabet!r}" if bad else None

    def targets(self, answers: Sequence[str], contexts: np.ndarray | None = None) -> np.ndarray:
        self._validate(answers)
        out = np.zeros((len(answers), self.slots), dtype=np.int64)
        for i, a in enumerate(answers):
            out[i, self.slots - len(a) :] = [self.alphabet.index(c) + 1 for c in a]
        return out

    def decode(
        self, y: np.ndarray, contexts: np.ndarray | None = None
    ) -> tuple[list[str], np.ndarray]:
        best, conf = self._best(y)
        symbols = " " + self.alphabet
        return ["".join(symbols[i] for i in row).replace(" ", "") for row in best], conf


@attrs.frozen
class CharHead(_Categorical):
    """One character out of ``alphabet``."""

    alphabet: str
    slots: int = attrs.field(default=1, init=False)

    @property
    def classes(self) -> int:
        return len(self.alphabet)

    def problem(self, answer: str) -> str | None:
        if len(answer) != 1 or answer not in self.alphabet:
            return f"answer {answer!r} is not one character of the alphabet"
        return None

    def targets(self, answers: Sequence[str], contexts: np.ndarray | None = None) -> np.ndarray:
        self._validate(answers)
        return np.array([[self.alphabet.index(a)] for a in answers], dtype=np.int64).reshape(
            len(answers), 1
        )

    def decode(
        self, y: np.ndarray, contexts: np.ndarray | None = None
    ) -> tuple[list[str], np.ndarray]:
        best, conf = self._best(y)
        return [self.alphabet[i] for i in best[:, 0]], conf


@attrs.frozen
class LabelHead(_Categorical):
    """One of ``labels``."""

    labels: tuple[str, ...] = attrs.field(converter=tuple)
    slots: int = attrs.field(default=1, init=False)

    @property
    def classes(self) -> int:
        return len(self.labels)

    def problem(self, answer: str) -> str | None:
        if answer not in self.labels:
            return f"label {answer!r} is not one of the model's labels {list(self.labels)}"
        return None

    def targets(self, answers: Sequence[str], contexts: np.ndarray | None = None) -> np.ndarray:
        self._validate(answers)
        return np.array([self.labels.index(a) for a in answers], dtype=np.int64).reshape(-1, 1)

    def decode(
        self, y: np.ndarray, contexts: np.ndarray | None = None
    ) -> tuple[list[str], np.ndarray]:
        best, conf = self._best(y)
        return [self.labels[i] for i in best[:, 0]], conf


def format_value(value: float, integer: bool) -> str:
    """A decoded number as answer text: an integer, or up to 6 significant digits."""
    if not math.isfinite(value):
        return "nan"
    if integer:
        return str(round(value))
    text = f"{value:.6g}"
    return text


@attrs.frozen
class NextValueHead:
    """One real output: ``(next - last) / scale`` with MSE; contexts ``[B, 3]``.

    A context row is ``(last value, scale, 1 if every input value is an integer)``.
    """

    size: int = attrs.field(default=1, init=False)

    def problem(self, answer: str) -> str | None:
        try:
            value = float(answer)
        except ValueError:
            return f"answer {answer!r} is not a number"
        return None if math.isfinite(value) else f"answer {answer!r} is not finite"

    def targets(self, answers: Sequence[str], contexts: np.ndarray | None = None) -> np.ndarray:
        if contexts is None:
            raise ValueError("a next-value head needs the inputs' contexts")
        values = np.array([float(a) for a in answers], dtype=np.float64)
        ctx = np.asarray(contexts, dtype=np.float64).reshape(len(values), 3)
        return ((values - ctx[:, 0]) / ctx[:, 1]).reshape(-1, 1)

    def loss(self, y: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(y, dtype=np.float64)
        t = np.asarray(targets, dtype=np.float64).reshape(y.shape)
        grad = mse(y, t, reduction="sum").grad
        return ((y - t) ** 2).sum(axis=1), grad

    def decode(
        self, y: np.ndarray, contexts: np.ndarray | None = None
    ) -> tuple[list[str], np.ndarray]:
        if contexts is None:
            raise ValueError("a next-value head needs the inputs' contexts")
        ctx = np.asarray(contexts, dtype=np.float64).reshape(len(y), 3)
        values = ctx[:, 0] + np.asarray(y, dtype=np.float64)[:, 0] * ctx[:, 1]
        integer = ctx[:, 2] > 0
        answers = [format_value(v, bool(i)) for v, i in zip(values, integer, strict=True)]
        off = np.abs(values - np.round(values))
        conf = np.where(integer, np.clip(1.0 - 2.0 * off, 0.0, 1.0), 1.0)
        return answers, conf
