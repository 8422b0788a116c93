"""The vision brain: a small grey-scale image in, a label out.

Input slice (no character slots): the image resampled to ``rows x cols`` by area
averaging (exact for an image already that size), row-major, then the ``rows`` row
means and the ``cols`` column means. Output: the label's characters over
lower-case letters, digits, space and ``-``.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np

from grapheme_train.codec import LOWER, AnswerCodec, CharSlots
from grapheme_train.inputs import ImageInput, Input
from grapheme_train.modules.base import DomainModule, InputEncoding

__all__ = ["VisionModule", "resample"]


def _area_matrix(src: int, dst: int) -> np.ndarray:
    """``[dst, src]`` weights: overlap of target cell i with source pixel j, rows sum to 1."""
    edges = np.arange(dst + 1) * (src / dst)
    lo = np.maximum(edges[:-1, None], np.arange(src)[None, :])
    hi = np.minimum(edges[1:, None], np.arange(src)[None, :] + 1)
    weights = np.clip(hi - lo, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def resample(image: ImageInput, rows: int, cols: int) -> np.ndarray:
    """The image as a ``[rows, cols]`` array by area averaging."""
    pixels = np.asarray(image.pixels, dtype=np.float64).reshape(image.height, image.width)
    return _area_matrix(image.height, rows) @ pixels @ _area_matrix(image.width, cols).T


@attrs.frozen
class VisionModule(DomainModule):
    """Pattern recognition on small images."""

    name: ClassVar[str] = "vision"
    rows: int = 4
    cols: int = 4
    answer_slots: int = 12

    @property
    def char_slots(self) -> CharSlots:
        return CharSlots(0)

    @property
    def feature_count(self) -> int:
        return self.rows * self.cols + self.rows + self.cols

    @property
    def codec(self) -> AnswerCodec:
        return AnswerCodec(LOWER, self.answer_slots)

    def can_handle(self, inp: Input) -> float:
        """0.95 for images, 0 otherwise."""
        return 0.95 if isinstance(inp, ImageInput) else 0.0

    def _encode(self, inp: Input) -> InputEncoding:
        assert isinstance(inp, ImageInput)
        grid = resample(inp, self.rows, self.cols)
        features = np.concatenate([grid.reshape(-1), grid.mean(axis=1), grid.mean(axis=0)])
        return InputEncoding(chars=np.zeros(0, dtype=np.int64), features=features)
