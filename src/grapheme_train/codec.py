"""Fixed-size encodings shared by the domain modules.

* :class:`AnswerCodec` turns answer text into target activations and back. An answer
  is ``slots`` character positions; each position is a one-hot block over the codec's
  alphabet plus an END symbol (index 0) that marks "no more characters". Decoding
  takes the arg-max of each block (the nearest one-hot code) and stops at the first
  END. A small network only has to push one output per block above the others, so
  exact-match decoding is reachable and the targets never move during training.
* :class:`CharSlots` places the characters of an input in a fixed number of slots,
  each an ``embedding.dim``-wide block filled from the shared Embedding; empty slots
  are zeros. Its gradient helper returns the rows and gradients to hand back to
  ``Embedding.backward``.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs
import numpy as np

from grapheme_train.errors import EncodingError

__all__ = [
    "DIGITS",
    "END",
    "LOWER",
    "PRINTABLE",
    "AnswerCodec",
    "CharSlots",
    "EmbeddingLike",
    "code_points",
]

END = "\x00"
"""The end-of-answer symbol (never part of an alphabet)."""

DIGITS = "0123456789-."
"""Numeric answers: digits, minus sign, decimal point."""

LOWER = string.ascii_lowercase + string.digits + " -"
"""Short lower-case labels."""

PRINTABLE = "".join(chr(c) for c in range(32, 127))
"""Printable ASCII (space to tilde)."""


@runtime_checkable
class EmbeddingLike(Protocol):
    """What the modules need from ``grapheme_core.Embedding``."""

    vocab_size: int
    dim: int

    def lookup(self, idx: np.ndarray) -> np.ndarray: ...

    def backward(self, idx: np.ndarray, grads: np.ndarray) -> None: ...


def code_points(text: str) -> np.ndarray:
    """Unicode code points of ``text`` as an int64 array."""
    return np.fromiter((ord(c) for c in text), dtype=np.int64, count=len(text))


@attrs.frozen
class AnswerCodec:
    """Answer text <-> ``slots * (len(alphabet) + 1)`` target activations."""

    alphabet: str = attrs.field()
    slots: int = attrs.field()
    _index: dict[str, int] = attrs.field(init=False, repr=False, eq=False)

    @alphabet.validator
    def _check_alphabet(self, _attr: attrs.Attribute, value: str) -> None:
        if not value or len(set(value)) != len(value) or END in value:
            raise ValueError("alphabet must be non-empty, without duplicates or END")

    @slots.validator
    def _check_slots(self, _attr: attrs.Attribute, value: int) -> None:
        if value <= 0:
            raise ValueError(f"slots must be positive, got {value}")

    def __attrs_post_init__(self) -> None:
        index = {ch: i + 1 for i, ch in enumerate(self.alphabet)}
        object.__setattr__(self, "_index", index)

    @property
    def block(self) -> int:
        """Activations per character slot (alphabet plus END)."""
        return len(self.alphabet) + 1

    @property
    def size(self) -> int:
        """Total number of activations."""
        return self.slots * self.block

    def problem(self, text: str) -> str | None:
        """Why ``text`` cannot be encoded, or None if it can."""
        if len(text) > self.slots:
            return f"answer {text!r} has {len(text)} characters, more than {self.slots} slots"
        for pos, ch in enumerate(text):
            if ch not in self._index:
                return f"answer {text!r} has character {ch!r} at {pos}, not in the alphabet"
        return None

    def encode(self, text: str) -> np.ndarray:
        """One-hot target activations ``[size]`` (float64); END fills unused slots."""
        reason = self.problem(text)
        if reason is not None:
            raise EncodingError(reason)
        out = np.zeros((self.slots, self.block))
        hot = [self._index[ch] for ch in text] + [0] * (self.slots - len(text))
        out[np.arange(self.slots), hot] = 1.0
        return out.reshape(-1)

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), size]`` targets."""
        if not texts:
            return np.zeros((0, self.size))
        return np.stack([self.encode(t) for t in texts])

    def decode_batch(self, activations: np.ndarray) -> list[str]:
        """Decode ``[B, size]`` activations: arg-max per slot, stop at the first END."""
        acts = np.asarray(activations, dtype=np.float64)
        if acts.ndim != 2 or acts.shape[1] != self.size:
            raise ValueError(f"expected activations of shape [B, {self.size}], got {acts.shape}")
        best = acts.reshape(len(acts), self.slots, self.block).argmax(axis=2)
        symbols = END + self.alphabet
        return ["".join(symbols[i] for i in row).split(END, 1)[0] for row in best]

    def decode(self, activations: np.ndarray) -> str:
        """Decode one ``[size]`` activation vector."""
        return self.decode_batch(np.asarray(activations).reshape(1, -1))[0]


@attrs.frozen
class CharSlots:
    """``count`` character slots, each an Embedding row (zeros when empty)."""

    count: int = attrs.field()

    @count.validator
    def _check(self, _attr: attrs.Attribute, value: int) -> None:
        if value < 0:
            raise ValueError(f"slot count must be >= 0, got {value}")

    def width(self, dim: int) -> int:
        """Activations taken by the slots for an embedding of ``dim``."""
        return self.count * dim

    def indices(self, text: str) -> np.ndarray:
        """Code points of ``text`` padded with -1 to ``count``; too long is an error."""
        if len(text) > self.count:
            raise EncodingError(
                f"{len(text)} characters do not fit in {self.count} character slots"
            )
        out = np.full(self.count, -1, dtype=np.int64)
        out[: len(text)] = code_points(text)
        return out

    def _batch(self, chars: np.ndarray) -> np.ndarray:
        chars = np.asarray(chars, dtype=np.int64)
        if chars.ndim == 1:
            chars = chars.reshape(1, -1)
        if chars.ndim != 2 or chars.shape[1] != self.count:
            raise ValueError(f"expected indices of shape [B, {self.count}], got {chars.shape}")
        return chars

    @staticmethod
    def _rows(chars: np.ndarray, embedding: EmbeddingLike) -> tuple[np.ndarray, np.ndarray]:
        mask = chars >= 0
        idx = np.minimum(chars[mask], embedding.vocab_size - 1)
        return mask, idx

    def embed(self, chars: np.ndarray, embedding: EmbeddingLike) -> np.ndarray:
        """``[B, count]`` indices -> ``[B, count * dim]`` activations."""
        chars = self._batch(chars)
        out = np.zeros((len(chars), self.count, embedding.dim))
        mask, idx = self._rows(chars, embedding)
        if idx.size:
            out[mask] = np.asarray(embedding.lookup(idx), dtype=np.float64)
        return out.reshape(len(chars), self.count * embedding.dim)

    def gradients(
        self, chars: np.ndarray, grads: np.ndarray, embedding: EmbeddingLike
    ) -> tuple[np.ndarray, np.ndarray]:
        """Map ``[B, count * dim]`` input gradients to ``(rows, row_grads)`` for the Embedding."""
        chars = self._batch(chars)
        grads = np.asarray(grads, dtype=np.float64).reshape(len(chars), self.count, embedding.dim)
        mask, idx = self._rows(chars, embedding)
        return idx, grads[mask]
