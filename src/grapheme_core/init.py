"""Parameter initialisation on the host, so every backend starts from identical numbers."""

from __future__ import annotations

import numpy as np

from .types import InitStrategy


def draw(
    rng: np.random.Generator,
    strategy: InitStrategy,
    fan_in: np.ndarray,
    fan_out: np.ndarray,
) -> np.ndarray:
    """Draw one float64 value per entry of ``fan_in``/``fan_out`` (arrays of equal length)."""
    fan_in = np.maximum(np.asarray(fan_in, dtype=np.float64), 1.0)
    fan_out = np.maximum(np.asarray(fan_out, dtype=np.float64), 1.0)
    n = fan_in.shape[0]
    if strategy is InitStrategy.XAVIER:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-1.0, 1.0, size=n) * limit
    if strategy is InitStrategy.HE:
        return rng.standard_normal(size=n) * np.sqrt(2.0 / fan_in)
    if strategy is InitStrategy.UNIFORM:
        return rng.uniform(-0.1, 0.1, size=n)
    return np.zeros(n)
