"""The interface every domain module implements, and its shared machinery.

A module does three jobs for its brain:

1. ``can_handle(inp)`` -> confidence in [0, 1] (the router picks the best).
2. ``encode_input(inp)`` -> :class:`InputEncoding` (character code points for the
   Embedding slots plus float features); ``input_matrix`` turns a batch of encodings
   into ``[B, input_size(dim)]`` activations for the brain's input slice, looking the
   characters up in the shared Embedding at that moment (so training the Embedding
   changes the inputs); ``embedding_gradients`` maps input gradients back to rows.
3. ``encode_answers`` / ``decode_answers`` / ``loss``: answer text <-> training
   targets and outputs -> answers, through the module's output head
   (:mod:`grapheme_train.heads`), which also owns the loss (softmax cross-entropy per
   slot for characters and labels, MSE for numeric outputs).

The input slice is laid out as ``[char slot 0 | ... | char slot S-1 | features]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from grapheme_train.codec import CharSlots, EmbeddingLike
from grapheme_train.errors import EncodingError
from grapheme_train.inputs import Input, describe

__all__ = ["DomainModule", "InputEncoding"]


@attrs.frozen(eq=False)
class InputEncoding:
    """A module's view of one input: code points (-1 = empty slot) and features."""

    chars: np.ndarray
    features: np.ndarray
    context: np.ndarray = attrs.field(factory=lambda: np.zeros(0))
    """What the head needs to decode this input's answer (e.g. a series' last value)."""


class DomainModule(ABC):
    """Base class of the math, text, time-series and vision modules."""

    name: ClassVar[str]

    @property
    @abstractmethod
    def char_slots(self) -> CharSlots:
        """The character slots at the start of the input slice."""

    @property
    @abstractmethod
    def feature_count(self) -> int:
        """Number of float features after the character slots."""

    @property
    @abstractmethod
    def codec(self) -> Any:
        """The output head of the slice (see :mod:`grapheme_train.heads`)."""

    linear_skip: ClassVar[bool] = False
    """Whether the model adds direct input -> output edges for this brain."""

    @abstractmethod
    def can_handle(self, inp: Input) -> float:
        """Confidence in [0, 1] that this module is right for ``inp`` (0 = cannot)."""

    @abstractmethod
    def _encode(self, inp: Input) -> InputEncoding:
        """Encode an input this module accepts; raise EncodingError otherwise."""

    # -- sizes -------------------------------------------------------------------

    def input_size(self, embedding_dim: int) -> int:
        """Width of the brain's input slice for an Embedding of ``embedding_dim``."""
        return self.char_slots.width(embedding_dim) + self.feature_count

    @property
    def output_size(self) -> int:
        """Width of the brain's output slice."""
        return self.codec.size

    # -- inputs ------------------------------------------------------------------

    def encode_input(self, inp: Input) -> InputEncoding:
        """Encode ``inp``; :class:`EncodingError` if this module cannot take it."""
        if self.can_handle(inp) <= 0.0:
            raise EncodingError(f"the {self.name} module cannot handle {describe(inp)}")
        enc = self._encode(inp)
        if enc.chars.shape != (self.char_slots.count,) or enc.features.shape != (
            self.feature_count,
        ):
            raise AssertionError(f"{self.name} module produced a mis-sized encoding")
        return enc

    def input_matrix(
        self, encodings: Sequence[InputEncoding], embedding: EmbeddingLike
    ) -> np.ndarray:
        """``[B, input_size]`` activations (float64) for a batch of encodings."""
        slots = self.char_slots
        if not encodings:
            return np.zeros((0, self.input_size(embedding.dim)))
        chars = np.stack([e.chars for e in encodings])
        feats = np.stack([e.features for e in encodings]).astype(np.float64)
        return np.concatenate([slots.embed(chars, embedding), feats], axis=1)

    def embedding_gradients(
        self,
        encodings: Sequence[InputEncoding],
        input_grads: np.ndarray,
        embedding: EmbeddingLike,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, grads)`` for ``Embedding.backward`` from ``[B, input_size]`` gradients."""
        slots = self.char_slots
        input_grads = np.asarray(input_grads)
        if not encodings or slots.count == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, embedding.dim))
        chars = np.stack([e.chars for e in encodings])
        width = slots.width(embedding.dim)
        return slots.gradients(chars, input_grads[:, :width], embedding)

    # -- answers -----------------------------------------------------------------

    def answer_problem(self, inp: Input, answer: str) -> str | None:
        """Why ``answer`` is not a valid answer for ``inp`` here, or None."""
        return self.codec.problem(answer)

    def check_example(self, inp: Input, answer: str) -> None:
        """Raise :class:`EncodingError` unless ``(inp, answer)`` can be trained on."""
        self.encode_input(inp)
        reason = self.answer_problem(inp, answer)
        if reason is not None:
            raise EncodingError(reason)

    @staticmethod
    def contexts(encodings: Sequence[InputEncoding]) -> np.ndarray | None:
        """The encodings' head contexts stacked ``[B, k]`` (None when they carry none)."""
        if not encodings or encodings[0].context.size == 0:
            return None
        return np.stack([e.context for e in encodings])

    def encode_answers(
        self, answers: Sequence[str], encodings: Sequence[InputEncoding] | None = None
    ) -> np.ndarray:
        """Training targets for ``answers`` (labels, or values for a numeric head)."""
        ctx = None if encodings is None else self.contexts(encodings)
        return self.codec.targets(list(answers), ctx)

    def decode_answers(
        self, activations: np.ndarray, encodings: Sequence[InputEncoding] | None = None
    ) -> list[str]:
        """Answer texts from ``[B, output_size]`` outputs."""
        return self.decode_with_confidence(activations, encodings)[0]

    def decode_with_confidence(
        self, activations: np.ndarray, encodings: Sequence[InputEncoding] | None = None
    ) -> tuple[list[str], np.ndarray]:
        """Answer texts and a confidence in [0, 1] per answer."""
        ctx = None if encodings is None else self.contexts(encodings)
        return self.codec.decode(np.asarray(activations, dtype=np.float64), ctx)

    def loss(self, activations: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-example losses ``[B]`` and the gradient of their sum w.r.t. the outputs."""
        return self.codec.loss(np.asarray(activations, dtype=np.float64), targets)
