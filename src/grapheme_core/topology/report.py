"""What one topology update did."""

from __future__ import annotations

import attrs


@attrs.frozen
class TopologyReport:
    """The outcome of ``rule.update(dag, step)``.

    ``removed``/``added``: edges dropped and grown; ``nodes_added``: hidden units grown;
    ``edges``: the model's edge count afterwards; ``density``: edges of the rule's region
    over the region's capacity (see :class:`~grapheme_core.topology.region.Region`);
    ``drop_fraction``: the fraction the schedule asked for at this step (0 for rules
    without one).
    """

    step: int
    removed: int = 0
    added: int = 0
    nodes_added: int = 0
    edges: int = 0
    density: float | None = None
    drop_fraction: float = 0.0

    def as_dict(self) -> dict[str, int | float | None]:
        """Plain JSON-able mapping (for metrics files)."""
        return attrs.asdict(self)
