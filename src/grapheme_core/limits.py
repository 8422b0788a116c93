"""Resource limits: the sizes grapheme refuses before spending memory or time on them.

Files, data and command-line options come from outside; a few bytes can claim gigabytes
(a zip bomb, an array header with a huge shape, a ``vocab_size`` of 10**12). Each limit
below is checked *before* the allocation, and the error names the limit and how to raise
it. Defaults are generous for real work and small enough to fail fast on hostile input.

Raise a limit with an environment variable ``GRAPHEME_LIMIT_<NAME>`` (e.g.
``GRAPHEME_LIMIT_CHECKPOINT_BYTES=8e9``) or in code with :func:`override`.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

from .errors import GraphemeError

__all__ = ["DEFAULTS", "LimitExceeded", "check", "get", "override"]

DEFAULTS: dict[str, int] = {
    "checkpoint_bytes": 4 * 2**30,  # total uncompressed size of a checkpoint's members
    "manifest_bytes": 64 * 2**20,  # manifest.json (training history lives there)
    "json_depth": 64,  # nesting depth of the manifest JSON
    "array_elements": 2**28,  # elements of one array (about 2 GB of float64)
    "nodes": 2**26,  # nodes of one DagNN
    "edges": 2**28,  # edges of one DagNN
    "embedding_elements": 2**28,  # vocab_size * dim of one Embedding
    "hidden": 65_536,  # --hidden (nodes of the shared trunk)
    "heldout": 100_000,  # held-out examples per domain
    "epochs": 10**9,  # epochs recorded in a training checkpoint
    "data_line_bytes": 64 * 2**10,  # one line of a --data JSONL file
    "data_file_bytes": 256 * 2**20,  # one --data file
}
"""Default limits (see the module docstring for how to raise them)."""

_overrides: dict[str, int] = {}


class LimitExceeded(GraphemeError, ValueError):
    """A size is over a resource limit; the message names the limit and how to raise it."""

    def __init__(self, name: str, value: Any, limit: int, what: str) -> None:
        super().__init__(
            f"{what} is {value}, over the limit {name}={limit}; raise it with the environment "
            f"variable {env_name(name)}=N if this is intended"
        )
        self.name = name
        self.value = value
        self.limit = limit


def env_name(name: str) -> str:
    """The environment variable that raises limit ``name``."""
    return f"GRAPHEME_LIMIT_{name.upper()}"


def get(name: str) -> int:
    """The current value of limit ``name``: an :func:`override`, the env var, or the default."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown limit {name!r}; known: {sorted(DEFAULTS)}")
    if name in _overrides:
        return _overrides[name]
    raw = os.environ.get(env_name(name))
    if raw:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{env_name(name)}={raw!r} is not a number") from None
        if math.isfinite(value) and value >= 0:
            return int(value)
        raise ValueError(f"{env_name(name)}={raw!r} must be a finite number >= 0")
    return DEFAULTS[name]


def check(name: str, value: float, what: str) -> None:
    """``LimitExceeded`` if ``value`` is over limit ``name`` (``what`` describes the value)."""
    limit = get(name)
    if not value <= limit:  # also catches NaN
        raise LimitExceeded(name, value, limit, what)


@contextlib.contextmanager
def override(**limits: int) -> Iterator[None]:
    """Temporarily set limits in this process, e.g. ``with override(edges=10**9): ...``."""
    unknown = set(limits) - set(DEFAULTS)
    if unknown:
        raise KeyError(f"unknown limit(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    saved = dict(_overrides)
    _overrides.update({k: int(v) for k, v in limits.items()})
    try:
        yield
    finally:
        _overrides.clear()
        _overrides.update(saved)
