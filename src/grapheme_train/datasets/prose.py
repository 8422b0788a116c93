"""Text: next-character continuation of the English prose in ``pydoc_data.topics`` (it
ships with CPython), split by topic; the built-in questions stay in training.

Each topic's text is folded to printable ASCII (whitespace runs become one space, other
characters are dropped). An example is a window of up to ``CONTEXT`` characters and the
character that follows. A seeded 15% of the topics are held out, so no held-out window
comes from a training topic. Windows are sampled at seeded positions: ``TRAIN_WINDOWS``
from the training topics and ``HELDOUT_WINDOWS`` from the held-out ones. Each built-in
question with its answer, ``"<question> <answer>."``, contributes every one of its
windows to training.
"""

from __future__ import annotations

import re

import numpy as np

from grapheme_train.data import Example, builtin_examples
from grapheme_train.datasets.base import SourceUnavailableError, Split, keyed_split
from grapheme_train.inputs import TextInput

__all__ = ["CONTEXT", "HELDOUT_SHARE", "clean", "split", "topics", "windows"]

CONTEXT = 8
HELDOUT_SHARE = 0.15
TRAIN_WINDOWS = 16000
HELDOUT_WINDOWS = 2000
_DROP = re.compile(r"[^ -~]")


def clean(text: str) -> str:
    """Printable ASCII with single spaces."""
    return _DROP.sub("", " ".join(text.split()))


def topics() -> dict[str, str]:
    """The cleaned documentation topics (name -> text)."""
    try:
        from pydoc_data.topics import topics as raw
    except ImportError:
        raise SourceUnavailableError(
            "text (pydoc topics)", "pydoc_data", "a full CPython install (it is in the stdlib)"
        ) from None
    return {name: clean(text) for name, text in sorted(raw.items())}


def windows(text: str, positions: np.ndarray) -> list[tuple[str, str]]:
    """``(context, next char)`` ending at each position (>= 1)."""
    return [(text[max(0, p - CONTEXT) : p], text[p]) for p in positions]


def _sample(corpus: dict[str, str], count: int, rng: np.random.Generator) -> list[Example]:
    names = list(corpus)
    joined = "".join(corpus[n] for n in names)
    starts = np.cumsum([0] + [len(corpus[n]) for n in names])
    positions = np.sort(rng.choice(len(joined), size=min(count, len(joined)), replace=False))
    out = []
    for p in positions:
        t = int(np.searchsorted(starts, p, side="right") - 1)
        local = int(p - starts[t])
        if local == 0:
            local = 1  # a window needs at least one character of context
        ctx, nxt = windows(corpus[names[t]], np.array([local]))[0]
        out.append(Example(TextInput(ctx), nxt, "text", f"pydoc:{names[t]}:{local}"))
    return out


def question_windows() -> list[Example]:
    """Every window of the built-in questions followed by their answers."""
    out = []
    for e in builtin_examples():
        if e.domain != "text":
            continue
        full = f"{e.input.text} {e.answer}."  # type: ignore[union-attr]
        start = len(e.input.text)  # type: ignore[union-attr]
        for ctx, nxt in windows(full, np.arange(start, len(full))):
            out.append(Example(TextInput(ctx), nxt, "text", f"builtin-text:{e.source}"))
    return out


def split(seed: int) -> Split:
    """Training windows (with the built-in questions) and held-out windows, by topic."""
    corpus = {n: t for n, t in topics().items() if len(t) > CONTEXT}
    names = list(corpus)
    held = keyed_split(names, seed, HELDOUT_SHARE)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 16]))
    train_topics = {n: corpus[n] for n, h in zip(names, held, strict=True) if not h}
    held_topics = {n: corpus[n] for n, h in zip(names, held, strict=True) if h}
    train = question_windows() + _sample(train_topics, TRAIN_WINDOWS, rng)
    heldout = _sample(held_topics, HELDOUT_WINDOWS, rng)
    return Split(tuple(train), tuple(heldout))


def training_text(seed: int) -> str:
    """The training topics' text joined (for the bigram baseline)."""
    corpus = {n: t for n, t in topics().items() if len(t) > CONTEXT}
    names = list(corpus)
    held = keyed_split(names, seed, HELDOUT_SHARE)
    return " ".join(corpus[n] for n, h in zip(names, held, strict=True) if not h)
