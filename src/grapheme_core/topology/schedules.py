"""Schedules for topology rules: how much to change at a given training step."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine", "linear", "cubic")


def check_schedule(name: str, end_step: int | None, allowed: tuple[str, ...]) -> str:
    """Validate a schedule name (and that decaying schedules have an ``end_step``)."""
    if name not in allowed:
        raise ValueError(f"schedule must be one of {', '.join(allowed)}; got {name!r}")
    if name != "constant" and end_step is None:
        raise ValueError(f"schedule {name!r} needs end_step= (the step where it reaches 0)")
    if end_step is not None and int(end_step) <= 0:
        raise ValueError(f"end_step must be a positive step count, got {end_step!r}")
    return name


def decay(name: str, step: int, begin_step: int, end_step: int | None) -> float:
    """Factor in ``[0, 1]``: 1 at ``begin_step``, falling to 0 at ``end_step``.

    ``constant`` is 1 until ``end_step`` (forever without one), then 0; ``cosine`` is
    ``(1 + cos(pi * t)) / 2``, ``linear`` ``1 - t``, ``cubic`` ``(1 - t)^3`` with ``t`` the
    progress from ``begin_step`` to ``end_step``. Before ``begin_step`` the factor is 1.
    """
    if end_step is None:
        return 1.0
    if step >= end_step:
        return 0.0
    if name == "constant":
        return 1.0
    span = max(1, end_step - begin_step)
    t = min(1.0, max(0.0, (step - begin_step) / span))
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if name == "linear":
        return 1.0 - t
    return (1.0 - t) ** 3
