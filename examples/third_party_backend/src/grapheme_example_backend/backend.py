"""``ExampleBackend``: subclass the NumPy reference, override kernels piecemeal."""

from __future__ import annotations

import numpy as np
from grapheme_backends.numpy_backend import NumpyBackend
from grapheme_core.types import Activation
from scipy.special import expit


class ExampleBackend(NumpyBackend):
    """The NumPy reference with its own weight-gradient kernel and sigmoid."""

    name = "example"
    api_version = "1.0"

    def edge_grads(
        self, delta: np.ndarray, h: np.ndarray, rows: np.ndarray, cols: np.ndarray
    ) -> np.ndarray:
        """``out[e] = sum_b delta[rows[e], b] * h[cols[e], b]``, one batch column at a time.

        Memory is ``O(edges)`` whatever the batch size; each column is a gather and a
        fused multiply-add over the level's edges.
        """
        out = np.zeros(rows.shape[0], dtype=h.dtype)
        tmp = np.empty_like(out)
        for b in range(h.shape[1]):
            np.multiply(delta[rows, b], h[cols, b], out=tmp)
            out += tmp
        return out

    def activate(self, activation: Activation, z: np.ndarray) -> np.ndarray:
        if activation is Activation.SIGMOID:
            return expit(z, out=z)
        return super().activate(activation, z)

    def activation_grad(self, activation: Activation, h: np.ndarray) -> np.ndarray | None:
        if activation is Activation.SIGMOID:
            return h - h * h  # s'(z) = s(1 - s), from the stored output
        return super().activation_grad(activation, h)
