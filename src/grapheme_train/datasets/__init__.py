"""The training and held-out data of the four brains, one module per source.

Every source returns a :class:`Split` of :class:`~grapheme_train.data.Example` built
deterministically from a seed; ``heldout`` items never occur in ``train`` by
construction (each module says how). :func:`load_splits` gathers them, and caps the
held-out set at ``heldout`` items per domain, saying so when a source has fewer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import attrs
import numpy as np

from grapheme_train.data import Example
from grapheme_train.datasets import arithmetic, digits, prose, sequences
from grapheme_train.datasets.base import SourceUnavailableError, Split, keyed_split

__all__ = ["SOURCES", "SourceUnavailableError", "Split", "keyed_split", "load_splits"]

SOURCES: dict[str, Callable[[int], Split]] = {
    "math": arithmetic.split,
    "text": prose.split,
    "timeseries": sequences.split,
    "vision": digits.split,
}
"""Domain -> ``split(seed)``."""


@attrs.frozen
class LoadedSplits:
    """Training and held-out examples of every domain, plus notes (e.g. capped sizes)."""

    train: tuple[Example, ...]
    heldout: tuple[Example, ...]
    notes: tuple[str, ...]


@functools.lru_cache(maxsize=8)
def _split(domain: str, seed: int) -> Split:
    return SOURCES[domain](seed)


def load_splits(
    seed: int = 0, heldout: int | None = None, train_limit: int | None = None
) -> LoadedSplits:
    """All sources' splits; at most ``heldout`` held-out items per domain (None: all).

    ``train_limit`` keeps at most that many training items per domain (the built-in
    examples first, then a seeded sample): for quick runs and tests.

    Asking for more held-out items than a source has is not an error: the set is capped
    and a note says so (nothing is ever generated in a loop that could not end).
    """
    train: list[Example] = []
    held: list[Example] = []
    notes: list[str] = []
    for domain in SOURCES:
        split = _split(domain, seed)
        items_train = list(split.train)
        if train_limit is not None and train_limit < len(items_train):
            builtin = [e for e in items_train if e.source.startswith("builtin")]
            rest = [e for e in items_train if not e.source.startswith("builtin")]
            pick = np.random.default_rng(np.random.SeedSequence([seed, 98])).permutation(len(rest))[
                : max(0, train_limit - len(builtin))
            ]
            items_train = builtin[:train_limit] + [rest[i] for i in sorted(pick)]
        train += items_train
        # A seeded order, so that a capped held-out set is a sample of the whole split.
        order = np.random.default_rng(np.random.SeedSequence([seed, 99])).permutation(
            len(split.heldout)
        )
        items = [split.heldout[i] for i in order]
        if heldout is not None:
            if heldout > len(items):
                notes.append(
                    f"--heldout {heldout}: the {domain} source has only {len(items)} "
                    f"held-out items; using all {len(items)}"
                )
            items = items[:heldout]
        held += items
    return LoadedSplits(tuple(train), tuple(held), tuple(notes))
