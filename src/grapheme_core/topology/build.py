"""Sparse starting graphs: layered DAGs from layer sizes and a density."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dagnn import DagNN
from ..types import Activation, NodeKind

ALLOCATIONS = ("uniform", "erk")


def layer_pairs(n_layers: int, skip: bool = False) -> list[tuple[int, int]]:
    """Connected layer pairs ``(i, j)``: consecutive ones, plus every ``j > i + 1`` with
    ``skip`` (skip connections from each layer to all later ones)."""
    if skip:
        return [(i, j) for i in range(n_layers) for j in range(i + 1, n_layers)]
    return [(i, i + 1) for i in range(n_layers - 1)]


def pair_densities(
    sizes: list[tuple[int, int]], density: float, allocation: str = "uniform"
) -> np.ndarray:
    """Density of each ``(n_src, n_dst)`` block so the total is ``density`` of all pairs.

    ``uniform``: every block gets ``density``. ``erk`` (Erdos-Renyi-Kernel, Evci et al.;
    for dense blocks it is Erdos-Renyi): block density proportional to
    ``(n_src + n_dst) / (n_src * n_dst)``, so small blocks are denser; blocks that would
    exceed 1 are made dense and the rest rescaled until the total matches.
    """
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {', '.join(ALLOCATIONS)}; got {allocation!r}")
    density = float(density)
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density}")
    cap = np.array([a * b for a, b in sizes], dtype=np.float64)
    if allocation == "uniform" or density in (0.0, 1.0):
        return np.full(cap.shape[0], density)
    raw = np.array([(a + b) / (a * b) for a, b in sizes], dtype=np.float64)
    dense = np.zeros(cap.shape[0], dtype=bool)
    budget = density * cap.sum()
    for _ in range(cap.shape[0] + 1):  # each round makes at least one more block dense
        rest = budget - cap[dense].sum()
        scale = rest / (raw[~dense] * cap[~dense]).sum()
        out = np.where(dense, 1.0, scale * raw)
        over = (~dense) & (out > 1.0)
        if not over.any():
            return out
        dense |= over
    return np.minimum(out, 1.0)  # pragma: no cover - the loop always converges


def connect_layers(
    dag: DagNN,
    layers: list[np.ndarray],
    density: float,
    *,
    allocation: str = "uniform",
    skip: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """Add random edges between ``layers`` (node-id arrays, in forward order): block
    ``(i, j)`` of :func:`layer_pairs` gets ``round(d_ij * |L_i| * |L_j|)`` distinct
    uniformly drawn pairs, weights from the DagNN's init (which sees the sparse fan-in).
    One ``add_edges`` call; returns the new edge ids."""
    rng = np.random.default_rng(seed)
    pairs = layer_pairs(len(layers), skip)
    sizes = [(layers[i].size, layers[j].size) for i, j in pairs]
    dens = pair_densities(sizes, density, allocation)
    srcs, dsts = [], []
    for (i, j), (a, b), d in zip(pairs, sizes, dens, strict=True):
        k = round(d * a * b)
        keys = np.sort(rng.choice(a * b, size=k, replace=False)) if k else np.zeros(0, np.int64)
        srcs.append(np.asarray(layers[i])[keys // b])
        dsts.append(np.asarray(layers[j])[keys % b])
    return dag.add_edges(np.concatenate(srcs), np.concatenate(dsts))


def layered_dag(
    sizes: list[int],
    density: float = 1.0,
    *,
    allocation: str = "uniform",
    skip: bool = False,
    hidden_activation: Activation | str = Activation.RELU,
    output_activation: Activation | str = Activation.LINEAR,
    seed: int = 0,
    **dag_kwargs: Any,
) -> tuple[DagNN, list[np.ndarray]]:
    """A sparse MLP-shaped DagNN: ``sizes = [inputs, hidden..., outputs]`` with random
    edges between consecutive layers (and all later ones with ``skip``) at ``density``.

    Returns ``(dag, layers)``; ``layers`` (node-id arrays) is what the topology rules take
    as ``layers=``. ``dag_kwargs`` go to :class:`DagNN` (``backend``, ``dtype``,
    ``optimizer``, ``init``); ``seed`` seeds both the structure and the DagNN.
    """
    sizes = [int(n) for n in sizes]
    if len(sizes) < 2 or any(n < 1 for n in sizes):
        raise ValueError(f"sizes must list >= 2 positive layer sizes, got {sizes}")
    dag = DagNN(seed=seed, **dag_kwargs)
    layers = [dag.add_nodes(sizes[0], NodeKind.INPUT)]
    layers += [dag.add_nodes(n, NodeKind.HIDDEN, hidden_activation) for n in sizes[1:-1]]
    layers.append(dag.add_nodes(sizes[-1], NodeKind.OUTPUT, output_activation))
    connect_layers(dag, layers, density, allocation=allocation, skip=skip, seed=seed)
    return dag, layers


def sparsify(dag: DagNN, density: float, *, layers: Any = None, seed: int = 0) -> int:
    """Remove uniformly random edges so that every group of the region (see
    :class:`~grapheme_core.topology.region.Region`) keeps ``round(density * capacity)``
    edges (groups already that sparse are left alone); returns how many were removed.
    This is the fixed random mask of "static" sparse training and the start of SET/RigL
    from a dense model."""
    from .region import Region, resolve_layers

    density = float(density)
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density}")
    rng = np.random.default_rng(seed)
    region = Region(dag, resolve_layers(layers))
    drops = []
    for g in region.groups:
        extra = g.edges.shape[0] - round(density * g.capacity)
        if extra > 0:
            drops.append(rng.choice(g.edges, size=extra, replace=False))
    if not drops:
        return 0
    drop = np.concatenate(drops)
    dag.remove_edges(dag._structure.edge_ids[np.sort(drop)])
    return int(drop.shape[0])
