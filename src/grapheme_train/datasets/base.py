"""What every data source shares: the :class:`Split` and a keyed, seeded partition."""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence

import attrs
import numpy as np

from grapheme_train.data import Example
from grapheme_train.errors import GraphemeTrainError

__all__ = ["SourceUnavailableError", "Split", "keyed_split"]


class SourceUnavailableError(GraphemeTrainError):
    """A data source's package cannot be imported; the message says how to install it."""

    def __init__(self, source: str, package: str, pip: str) -> None:
        super().__init__(
            f"the {source} data need the package {package!r}, which cannot be imported; "
            f"install it with: {pip}"
        )
        self.package = package


@attrs.frozen
class Split:
    """A source's training and held-out examples (disjoint by construction)."""

    train: tuple[Example, ...]
    heldout: tuple[Example, ...]


def keyed_split(keys: Sequence[Hashable], seed: int, heldout_share: float) -> np.ndarray:
    """Boolean mask ``[len(keys)]``: True for held-out. Equal keys always land together.

    The unique keys are ordered by their text, shuffled with ``seed`` and the first
    ``round(share * count)`` are held out, so the split depends only on the key set and
    the seed (never on the order the items were generated in).
    """
    unique = sorted({repr(k) for k in keys})
    rng = np.random.default_rng(np.random.SeedSequence([seed, _stable(unique)]))
    order = rng.permutation(len(unique))
    n_held = round(heldout_share * len(unique))
    held = {unique[i] for i in order[:n_held]}
    return np.array([repr(k) in held for k in keys], dtype=bool)


def _stable(items: Sequence[str]) -> int:
    digest = hashlib.sha256("\n".join(items).encode()).digest()
    return int.from_bytes(digest[:4], "little")
