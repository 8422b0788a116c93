"""Small value types shared across the core: ids, node kinds, activations, init strategies."""

from __future__ import annotations

import enum

NodeId = int
EdgeId = int


class NodeKind(enum.IntEnum):
    """Role of a node. Input nodes receive external values; output nodes are read out."""

    INPUT = 0
    HIDDEN = 1
    OUTPUT = 2

    @classmethod
    def parse(cls, value: NodeKind | str | int) -> NodeKind:
        """Accept a ``NodeKind``, its name in any case (``"hidden"``) or its integer code."""
        if isinstance(value, NodeKind):
            return value
        try:
            return cls[value.strip().upper()] if isinstance(value, str) else cls(int(value))
        except (KeyError, ValueError, TypeError):
            names = ", ".join(k.name.lower() for k in cls)
            raise ValueError(f"unknown node kind {value!r}; choose one of {names}") from None


class Activation(enum.IntEnum):
    """Per-node activation. Derivatives are taken from the node's output value."""

    LINEAR = 0
    RELU = 1
    LEAKY_RELU = 2  # slope 0.01 for negative inputs
    SIGMOID = 3
    TANH = 4

    @classmethod
    def parse(cls, value: Activation | str | int) -> Activation:
        """Accept an ``Activation``, its name in any case (``"tanh"``) or its integer code."""
        if isinstance(value, Activation):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                names = ", ".join(a.name.lower() for a in cls)
                raise ValueError(f"unknown activation {value!r}; choose one of {names}") from None
        try:
            return cls(int(value))
        except (ValueError, TypeError):
            raise ValueError(f"unknown activation code {value!r}") from None


LEAKY_SLOPE = 0.01


class InitStrategy(enum.Enum):
    """How fresh parameters are drawn (always on the host, from the model's seeded generator)."""

    XAVIER = "xavier"  # U(-sqrt(6/(fan_in+fan_out)), +sqrt(6/(fan_in+fan_out)))
    HE = "he"  # N(0, sqrt(2/fan_in))
    UNIFORM = "uniform"  # U(-0.1, 0.1)
    ZERO = "zero"

    @classmethod
    def parse(cls, value: InitStrategy | str) -> InitStrategy:
        """Accept an ``InitStrategy`` or its name in any case (``"he"``)."""
        if isinstance(value, InitStrategy):
            return value
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown init strategy {value!r}; choose one of {names}") from None
