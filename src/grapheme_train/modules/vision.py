"""The vision brain: a small grey-scale image in, a label out.

Input slice (no character slots): the image resampled to ``rows x cols`` by area
averaging (exact for an image already that size; the 8x8 digits keep all 64 pixels),
row-major. Output: one softmax over the model's ``labels`` (set from the training data).
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np

from grapheme_train.codec import CharSlots
from grapheme_train.heads import LabelHead
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
    """Classification of small images into ``labels``."""

    name: ClassVar[str] = "vision"
    rows: int = 8
    cols: int = 8
    labels: tuple[str, ...] = attrs.field(
        default=("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "cross", "horizontal",
                 "square"),
        converter=tuple,
    )  # fmt: skip

    @property
    def char_slots(self) -> CharSlots:
        return CharSlots(0)

    @property
    def feature_count(self) -> int:
        return self.rows * self.cols

    @property
    def codec(self) -> LabelHead:
        return LabelHead(self.labels)

    def can_handle(self, inp: Input) -> float:
        """0.95 for images, 0 otherwise."""
        return 0.95 if isinstance(inp, ImageInput) else 0.0

    def _encode(self, inp: Input) -> InputEncoding:
        assert isinstance(inp, ImageInput)
        grid = resample(inp, self.rows, self.cols)
        return InputEncoding(chars=np.zeros(0, dtype=np.int64), features=grid.reshape(-1))
