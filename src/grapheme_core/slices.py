"""Brain slices: which input and output nodes of the shared DagNN belong to which domain."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping

import attrs


def _is_range(_inst: object, attr: attrs.Attribute, value: object) -> None:
    if not isinstance(value, range) or value.step != 1 or value.start < 0:
        raise ValueError(f"{attr.name} must be a range with step 1 starting at >= 0, got {value!r}")


@attrs.frozen
class BrainSlice:
    """A brain's contiguous share of the input and output positions."""

    brain_id: str
    input_range: range = attrs.field(validator=_is_range)
    output_range: range = attrs.field(validator=_is_range)

    @property
    def input_count(self) -> int:
        """Number of input nodes of this slice."""
        return len(self.input_range)

    @property
    def output_count(self) -> int:
        """Number of output nodes of this slice."""
        return len(self.output_range)


class CognitiveBrainOrchestrator:
    """Allocates slices: inputs and outputs each contiguous, in request order, from 0."""

    def allocate_brain_slices(
        self, requests: Iterable[tuple[str, int, int]]
    ) -> dict[str, BrainSlice]:
        """Give each ``(name, n_inputs, n_outputs)`` request consecutive input and output
        ranges, in request order; returns ``{name: BrainSlice}``.
        """
        requests = list(requests)
        seen: set[str] = set()
        for item in requests:
            if len(item) != 3:
                raise ValueError(f"each request is (brain_id, n_inputs, n_outputs), got {item!r}")
            brain_id, n_in, n_out = item
            if brain_id in seen:
                raise ValueError(f"duplicate brain id {brain_id!r}")
            seen.add(brain_id)
            for label, n in (("input", n_in), ("output", n_out)):
                if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
                    raise ValueError(
                        f"brain {brain_id!r}: {label} count must be a non-negative int, got {n!r}"
                    )
        slices: dict[str, BrainSlice] = {}
        next_in = next_out = 0
        for brain_id, n_in, n_out in requests:
            n_in, n_out = int(n_in), int(n_out)
            slices[brain_id] = BrainSlice(
                brain_id, range(next_in, next_in + n_in), range(next_out, next_out + n_out)
            )
            next_in += n_in
            next_out += n_out
        return slices

    @staticmethod
    def total_input_nodes(slices: Mapping[str, BrainSlice]) -> int:
        """Input nodes needed by all ``slices`` together."""
        return sum(s.input_count for s in slices.values())

    @staticmethod
    def total_output_nodes(slices: Mapping[str, BrainSlice]) -> int:
        """Output nodes needed by all ``slices`` together."""
        return sum(s.output_count for s in slices.values())
