"""Topology that learns: rules that prune, rewire and grow a DagNN while it trains.

Each rule is a small object with one method, ``rule.update(dag, step)``, that edits the
model in place (call it after ``backward_accumulate`` and before ``zero_grad``) and
returns a :class:`TopologyReport`. Rules take ``layers=`` (node-id arrays) to restrict
edits to edges between consecutive layers, ``seed=`` for their own generator, and save
their state with ``state_dict()``/``load_state_dict()`` (JSON-able), so a resumed run
equals an uninterrupted one. New edges are only drawn between nodes in the current
topological order, so no rule can close a cycle. See ``docs/topology.md``.
"""

from __future__ import annotations

from .base import TopologyRule
from .build import connect_layers, layer_pairs, layered_dag, pair_densities, sparsify
from .dynamic import SET, RigL
from .growth import NodeGrowth
from .prune import MagnitudePrune
from .region import Region
from .report import TopologyReport

__all__ = [
    "SET",
    "MagnitudePrune",
    "NodeGrowth",
    "Region",
    "RigL",
    "TopologyReport",
    "TopologyRule",
    "connect_layers",
    "layer_pairs",
    "layered_dag",
    "pair_densities",
    "sparsify",
]
