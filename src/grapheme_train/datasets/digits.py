"""Vision: scikit-learn's bundled 8x8 handwritten digits (no download) with a fixed
stratified split, plus the built-in 4x4 patterns (always in training).

Each digit class is shuffled with the seed and its first 20% held out, so every class
is represented in both parts and no image is in both. Pixels are scaled from 0..16 to
0..1.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from grapheme_train.data import Example, builtin_examples
from grapheme_train.datasets.base import SourceUnavailableError, Split
from grapheme_train.inputs import ImageInput

__all__ = ["HELDOUT_SHARE", "load_digits", "split"]

HELDOUT_SHARE = 0.2


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, 64] in [0, 1], labels [N])``; SourceUnavailableError without sklearn.

    Reads the CSV that scikit-learn bundles directly when it can find it (importing
    scikit-learn takes seconds), else calls ``sklearn.datasets.load_digits``.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        csv = Path(next(iter(spec.submodule_search_locations))) / "datasets/data/digits.csv.gz"
        if csv.is_file():
            table = np.loadtxt(csv, delimiter=",")
            return table[:, :-1] / 16.0, table[:, -1].astype(np.int64)
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError:
        raise SourceUnavailableError(
            "vision (8x8 digits)", "scikit-learn", "pip install scikit-learn"
        ) from None
    bunch = _load()
    return np.asarray(bunch.data, dtype=np.float64) / 16.0, np.asarray(bunch.target)


def split(seed: int) -> Split:
    """Training (with the built-in patterns) and held-out digits, stratified by class."""
    images, labels = load_digits()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 8]))
    held = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        idx = idx[rng.permutation(len(idx))]
        held[idx[: round(HELDOUT_SHARE * len(idx))]] = True
    train = [e for e in builtin_examples() if e.domain == "vision"]
    heldout = []
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        ex = Example(ImageInput(8, 8, img.tolist()), str(int(lab)), "vision", f"digits:{i}")
        (heldout if held[i] else train).append(ex)
    return Split(tuple(train), tuple(heldout))
