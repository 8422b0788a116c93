"""DagNN: a neural network whose topology is a growing directed acyclic graph.

Structure (ids, kinds, activations, edges) lives on the host in :class:`GraphStructure`;
parameters, gradients and optimizer state are backend-native arrays; the
:class:`ExecutionPlan` is recompiled lazily whenever the structure's version moved.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import guards, limits
from . import init as _init
from .backend import Backend, dtype_name, to_host
from .errors import CapabilityError, GraphError, ShapeError, StateError
from .optim import (
    Optimizer,
    apply_update,
    check_lr,
    optimizer_from_dict,
    optimizer_to_dict,
    parse_optimizer,
)
from .plan import ExecutionPlan, compile_plan
from .registry import get_backend
from .structure import GraphStructure
from .types import Activation, EdgeId, InitStrategy, NodeId, NodeKind

_DTYPES = ("float32", "float64")
_DEFAULT_ACTIVATION = {
    NodeKind.INPUT: Activation.LINEAR,
    NodeKind.HIDDEN: Activation.RELU,
    NodeKind.OUTPUT: Activation.LINEAR,
}
# parameter groups and the axis they follow
_EDGE, _NODE = "weight", "bias"


class DagNN:
    """A DAG-shaped network trained by reverse-mode gradients on a pluggable backend.

    ``backend``: a name, a Backend instance, or ``None`` for the default resolution.
    ``init``: how new edge weights are drawn (biases start at zero); ``optimizer``:
    ``"sgd"``, ``"adam"`` or an :mod:`grapheme_core.optim` object, used by :meth:`step`.
    """

    def __init__(
        self,
        backend: str | Backend | None = None,
        dtype: str = "float32",
        seed: int = 0,
        *,
        init: InitStrategy | str = InitStrategy.XAVIER,
        optimizer: Optimizer | str | None = None,
    ) -> None:
        dtype = _dtype_name(dtype)
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.backend: Backend = get_backend(backend)
        self.dtype = dtype
        self.seed = int(seed)
        self.init = InitStrategy.parse(init)
        self.optimizer: Optimizer = parse_optimizer(optimizer)
        self._rng = np.random.default_rng(self.seed)
        self._structure = GraphStructure()
        b = self.backend
        self._params: dict[str, Any] = {_EDGE: b.zeros((0,), dtype), _NODE: b.zeros((0,), dtype)}
        self._grads: dict[str, Any] = {_EDGE: b.zeros((0,), dtype), _NODE: b.zeros((0,), dtype)}
        self._moments: dict[str, dict[str, Any]] = {_EDGE: {}, _NODE: {}}
        self._steps = 0
        self._plan: ExecutionPlan | None = None
        self._compiled: Any = None
        self._last_forward: tuple[int, Any, int, bool] | None = None  # version, cache, B, 1-D
        # (version, forward cache, dL/dy) of every backward since zero_grad: what
        # candidate_gradients needs to price edges that do not exist yet
        self._backward_log: list[tuple[int, Any, Any]] = []

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str, **kwargs: Any) -> DagNN:
        """One INPUT node per code point, in order, chained by edges of weight 1.0."""
        dag = cls(**kwargs)
        ids = dag.add_nodes(len(text), NodeKind.INPUT)
        if len(ids) > 1:
            dag.add_edges(ids[:-1], ids[1:], weights=1.0)
        return dag

    def add_input(self, activation: Activation | str = Activation.LINEAR) -> NodeId:
        """Add one input node; returns its id (its column in ``forward``'s ``x`` follows
        ``input_nodes``)."""
        return int(self.add_nodes(1, NodeKind.INPUT, activation)[0])

    def add_hidden(self, activation: Activation | str = Activation.RELU) -> NodeId:
        """Add one hidden node with ``activation`` (ReLU by default); returns its id."""
        return int(self.add_nodes(1, NodeKind.HIDDEN, activation)[0])

    def add_output(self, activation: Activation | str = Activation.LINEAR) -> NodeId:
        """Add one output node (a column of ``forward``'s result, in ``output_nodes`` order)."""
        return int(self.add_nodes(1, NodeKind.OUTPUT, activation)[0])

    def add_nodes(
        self,
        count: int,
        kind: NodeKind | str = NodeKind.HIDDEN,
        activation: Activation | str | None = None,
    ) -> np.ndarray:
        """Add ``count`` nodes of one kind; returns their ids (consecutive, never reused)."""
        kind = NodeKind.parse(kind)
        act = _DEFAULT_ACTIVATION[kind] if activation is None else Activation.parse(activation)
        try:
            count = operator.index(count)
        except TypeError:
            raise ValueError(f"count must be an integer, got {count!r}") from None
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if count == 0:  # not an edit: the structure (and a pending backward) stay valid
            return np.zeros(0, dtype=np.int64)
        limits.check("nodes", self.node_count + count, "the node count after this edit")
        ids = self._structure.add_nodes(count, kind, act)
        self._grow(_NODE, np.zeros(count))
        return ids

    def add_edge(self, src: NodeId, dst: NodeId, weight: float | None = None) -> EdgeId:
        """Add one edge ``src -> dst``; ``CycleError`` (graph unchanged) if it closes a cycle."""
        return int(self.add_edges([src], [dst], None if weight is None else [weight])[0])

    def add_edges(self, src: Any, dst: Any, weights: Any = None) -> np.ndarray:
        """Add many edges at once (multi-edges allowed). All or nothing: on any error
        (unknown node, cycle, bad weights) the graph is left exactly as it was."""
        return self._replace_edge_slots(_NO_SLOTS, src, dst, weights)

    def replace_edges(self, remove: Any, src: Any, dst: Any, weights: Any = None) -> np.ndarray:
        """Remove the edges ``remove`` (ids) and add ``src -> dst`` in one structural edit:
        the same result as ``add_edges(src, dst, weights)`` followed by
        ``remove_edges(remove)`` (new weights are drawn as ``add_edges`` would draw them
        before the removal), but one new version and one pass over the edge arrays, which
        is what a drop-and-grow rule such as SET wants. Survivors keep their weights,
        gradients and optimizer moments; new edges start with zero gradient and moments.
        All or nothing: on any error the graph is left exactly as it was. Returns the new
        edge ids."""
        drop = self._structure.edge_slots(_int_array(remove, "edge ids"))
        return self._replace_edge_slots(drop, src, dst, weights)

    def _replace_edge_slots(
        self, drop: np.ndarray, src: Any, dst: Any, weights: Any = None
    ) -> np.ndarray:
        """:meth:`replace_edges` with the removed edges given by slot."""
        drop = np.sort(np.asarray(drop, dtype=np.int64))
        if drop.size > 1 and np.any(drop[1:] == drop[:-1]):
            drop = np.unique(drop)
        src_a = _int_array(src, "src")
        dst_a = _int_array(dst, "dst")
        if src_a.shape != dst_a.shape:
            raise ShapeError(
                f"src and dst must have the same length, got {src_a.size} and {dst_a.size}"
            )
        k = src_a.shape[0]
        w = self._check_weights(weights, k)
        if k == 0 and drop.size == 0:
            return np.zeros(0, dtype=np.int64)
        if k:
            limits.check("edges", self.edge_count + k - drop.size, "the edge count after this edit")
            self._structure.check_new_edges(src_a, dst_a)
            if w is None:
                w = self._draw_weights(src_a, dst_a)
        b, dt = self.backend, self.dtype
        new = b.asarray(w if k else np.zeros(0), dt)  # before the edit: nothing can fail after
        zeros = b.zeros((k,), dt)
        keep, ids = self._structure.replace_edges(drop if drop.size else None, src_a, dst_a)
        kept = None if keep is None else np.flatnonzero(keep)

        def edit(arr: Any, tail: Any) -> Any:
            if kept is not None:
                arr = b.take(arr, kept)
            return b.concat(arr, tail) if k else arr

        self._params[_EDGE] = edit(self._params[_EDGE], new)
        self._grads[_EDGE] = edit(self._grads[_EDGE], zeros)
        moments = self._moments[_EDGE]
        for name, arr in moments.items():
            moments[name] = edit(arr, zeros)
        return ids

    def _check_weights(self, weights: Any, k: int) -> np.ndarray | None:
        """``weights`` for ``k`` new edges as a float64 array (``None`` stays ``None``:
        draw them); ``ShapeError``/``GraphError`` saying what is wrong otherwise."""
        if weights is None:
            return None
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim == 0:
            w = np.full(k, float(w))
        if w.shape != (k,):
            raise ShapeError(f"weights must be a scalar or have length {k}, got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            raise GraphError("edge weights must be finite")
        try:
            guards.check_representable(w, self.dtype, "edge weights")
        except ValueError as exc:
            raise GraphError(str(exc)) from None
        return w

    def _draw_weights(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Initial weights of new edges ``src -> dst`` from the fan-in and fan-out their
        endpoints will have once the edges are added."""
        s = self._structure
        n = s.node_count
        new_src, new_dst = s.node_slots(src), s.node_slots(dst)
        degrees = s.cached_degrees()
        if degrees is None and new_src.shape[0] <= 8:  # a few edges: skip the histograms
            fan_in = _degrees_after(s.dst_slots(), new_dst, n)
            fan_out = _degrees_after(s.src_slots(), new_src, n)
        else:
            indeg, outdeg = s.degrees() if degrees is None else degrees
            fan_in = indeg[new_dst] + np.bincount(new_dst, minlength=n)[new_dst]
            fan_out = outdeg[new_src] + np.bincount(new_src, minlength=n)[new_src]
        return _init.draw(self._rng, self.init, fan_in, fan_out)

    # -- removal ---------------------------------------------------------------------
    def remove_edge(self, eid: EdgeId) -> None:
        """Remove one edge; every other id, gradient and optimizer state is kept."""
        self.remove_edges([eid])

    def remove_edges(self, eids: Any) -> None:
        """Remove several edges at once; other ids, gradients and optimizer state are kept."""
        ids = _int_array(eids, "edge ids")
        slots = self._structure.edge_slots(ids)
        if slots.size:
            self._replace_edge_slots(slots, _NO_SLOTS, _NO_SLOTS)

    def remove_node(self, nid: NodeId) -> None:
        """Remove a node and its edges. Other node ids are never renumbered."""
        slot = int(self._structure.node_slots(np.array([int(nid)]))[0])
        node_keep, edge_keep = self._structure.remove_node(slot)
        self._compact(_EDGE, np.flatnonzero(edge_keep))
        self._compact(_NODE, np.flatnonzero(node_keep))

    # -- structure queries -----------------------------------------------------------
    @property
    def version(self) -> int:
        """Bumps on every structural edit; the plan is recompiled when it moves."""
        return self._structure.version

    @property
    def input_nodes(self) -> list[NodeId]:
        """Ids of the input nodes, ascending: the column order of ``forward``'s ``x``."""
        return self._structure.nodes_of_kind(NodeKind.INPUT).tolist()

    @property
    def output_nodes(self) -> list[NodeId]:
        """Ids of the output nodes, ascending: the column order of ``forward``'s result."""
        return self._structure.nodes_of_kind(NodeKind.OUTPUT).tolist()

    @property
    def hidden_nodes(self) -> list[NodeId]:
        """Ids of the hidden nodes, ascending."""
        return self._structure.nodes_of_kind(NodeKind.HIDDEN).tolist()

    @property
    def node_count(self) -> int:
        """Number of live nodes (all kinds)."""
        return self._structure.node_count

    @property
    def edge_count(self) -> int:
        """Number of live edges (multi-edges count once each)."""
        return self._structure.edge_count

    @property
    def num_parameters(self) -> int:
        """Edge weights plus the biases of hidden and output nodes."""
        s = self._structure
        return s.edge_count + int(np.count_nonzero(s.kinds != NodeKind.INPUT))

    def nodes(self) -> np.ndarray:
        """Live node ids, ascending (the order of the bias vector)."""
        return self._structure.node_ids.copy()

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(edge_ids, src, dst)`` in the order of the weight vector."""
        s = self._structure
        return s.edge_ids.copy(), s.src.copy(), s.dst.copy()

    def node_kind(self, nid: NodeId) -> NodeKind:
        """The kind (input, hidden, output) of node ``nid``."""
        return NodeKind(int(self._structure.kinds[self._slot(nid)]))

    def activation(self, nid: NodeId) -> Activation:
        """The activation of node ``nid``."""
        return Activation(int(self._structure.activations[self._slot(nid)]))

    def _slot(self, nid: NodeId) -> int:
        return int(self._structure.node_slots(np.array([int(nid)]))[0])

    @property
    def plan(self) -> ExecutionPlan:
        """The execution plan of the current structure (compiled on demand, cached)."""
        if self._plan is None or self._plan.version != self._structure.version:
            self._plan = compile_plan(self._structure, previous=self._plan)
            self._compiled = None
        return self._plan

    def _compiled_plan(self) -> Any:
        plan = self.plan
        if self._compiled is None:
            self._compiled = self.backend.compile(plan, self.dtype)
        return self._compiled

    # -- forward / backward ----------------------------------------------------------
    def forward(self, x: Any) -> np.ndarray:
        """``x``: ``[B, n_inputs]`` or ``[n_inputs]`` (columns follow ``input_nodes``).
        Returns ``[B, n_outputs]`` (or ``[n_outputs]``) as NumPy, columns follow
        ``output_nodes``."""
        n_in = len(self._structure.nodes_of_kind(NodeKind.INPUT))
        shape = tuple(getattr(x, "shape", np.shape(x)))
        one_d = len(shape) == 1
        if not (one_d and shape[0] == n_in) and not (len(shape) == 2 and shape[1] == n_in):
            raise ShapeError(
                f"forward expects x of shape [batch, {n_in}] or [{n_in}] (one column per input "
                f"node, in the order of input_nodes); got shape {shape}"
            )
        x_host = _to_host(self.backend, x)
        guards.check_finite_input(x_host)
        xb = self.backend.asarray(x_host[None, :] if one_d else x_host, self.dtype)
        compiled = self._compiled_plan()
        y, cache = self.backend.forward(compiled, self._params[_EDGE], self._params[_NODE], xb)
        batch = 1 if one_d else shape[0]
        n_out = self._structure.nodes_of_kind(NodeKind.OUTPUT).shape[0]
        guards.check_result(self.backend, "forward", "outputs", y, (batch, n_out), self.dtype)
        self._last_forward = (self._structure.version, cache, batch, one_d)
        out = self.backend.to_numpy(y)
        return out[0] if one_d else out

    __call__ = forward

    def backward_accumulate(self, grad: Any) -> np.ndarray:
        """ADD the gradients of the last forward into the parameter gradients.

        ``grad`` is ``dL/dy``: an array ``[B, n_outputs]`` (``[n_outputs]`` after a 1-D
        forward) or a mapping ``{output NodeId: [B]}`` (missing outputs get zero).
        Returns ``dL/dx`` as NumPy, shaped like the forward input.
        """
        if self._last_forward is None:
            raise StateError("backward_accumulate needs a forward() first")
        version, cache, batch, one_d = self._last_forward
        if version != self._structure.version:
            raise StateError(
                "the graph was edited after the last forward(); run forward() again "
                "before backward_accumulate()"
            )
        g = self._grad_matrix(grad, batch, one_d)
        compiled = self._compiled_plan()
        g_native = self.backend.asarray(g, self.dtype)
        gw, gb, gx = self.backend.backward(
            compiled, self._params[_EDGE], self._params[_NODE], cache, g_native
        )
        check = guards.check_result
        check(self.backend, "backward", "weight gradients", gw, (self._count(_EDGE),), self.dtype)
        check(self.backend, "backward", "bias gradients", gb, (self._count(_NODE),), self.dtype)
        n_in = self._structure.nodes_of_kind(NodeKind.INPUT).shape[0]
        check(self.backend, "backward", "input gradients", gx, (batch, n_in), self.dtype)
        self._log_backward(cache, g_native)
        self._grads[_EDGE] = self.backend.add(self._grads[_EDGE], gw)
        self._grads[_NODE] = self.backend.add(self._grads[_NODE], gb)
        gx = self.backend.to_numpy(gx)
        return gx[0] if one_d else gx

    def _grad_matrix(self, grad: Any, batch: int, one_d: bool) -> np.ndarray:
        outputs = self._structure.nodes_of_kind(NodeKind.OUTPUT)
        n_out = outputs.shape[0]
        if isinstance(grad, Mapping):
            g = np.zeros((batch, n_out), dtype=np.float64)
            for nid, values in grad.items():
                col = np.searchsorted(outputs, int(nid))
                if col >= n_out or outputs[col] != int(nid):
                    raise GraphError(f"gradient given for node {nid}, which is not an output node")
                v = _to_host(self.backend, values).astype(np.float64).reshape(-1)
                if v.shape[0] not in (1, batch):
                    raise ShapeError(
                        f"gradient for output {nid} must have {batch} values (one per batch row), "
                        f"got {v.shape[0]}"
                    )
                g[:, col] = v
            return g
        # the model's dtype directly: the backend converts to it anyway (one rounding either way)
        g = _to_host(self.backend, grad).astype(self.dtype, copy=False)
        expected = (n_out,) if one_d else (batch, n_out)
        if one_d and g.shape == (1, n_out):  # [B, n_outputs] with B = 1 is fine too
            return g
        if g.shape != expected:
            raise ShapeError(
                f"backward_accumulate expects dL/dy of shape {list(expected)} (like the last "
                f"forward's output) or a mapping {{output node id: [batch]}}; "
                f"got shape {list(g.shape)}"
            )
        return g[None, :] if one_d else g

    def _log_backward(self, cache: Any, grad_out: Any) -> None:
        version = self._structure.version
        self._backward_log = [e for e in self._backward_log if e[0] == version]
        self._backward_log.append((version, cache, grad_out))

    def candidate_gradients(self, src: Any, dst: Any) -> np.ndarray:
        """``dL/dw`` of edges ``src[k] -> dst[k]`` that do not exist yet, as if each had been
        added with weight 0 before the forward passes whose backward was accumulated since
        the last :meth:`zero_grad` (summed over them, like the accumulated gradients).

        For an edge whose addition keeps the graph acyclic this is the gradient it would
        receive; RigL regrows the candidates where it is largest. Needs a backend with the
        API 1.1 capability ``candidate_edge_grads``. Cost: one reverse sweep per logged
        backward plus ``O(K * batch)``; no ``N x N`` matrix is formed. To make this
        possible the model keeps the forward cache of every backward since the last
        :meth:`zero_grad` (one cache in the usual forward/backward/step/zero_grad loop).
        """
        from .backend import backend_capabilities

        src_a, dst_a = _int_array(src, "src"), _int_array(dst, "dst")
        if src_a.shape != dst_a.shape:
            raise ShapeError(
                f"src and dst must have the same length, got {src_a.size} and {dst_a.size}"
            )
        if "candidate_edge_grads" not in backend_capabilities(self.backend):
            raise CapabilityError(
                f"backend {self.backend.name!r} (kernel API "
                f"{getattr(self.backend, 'api_version', '?')}) has no candidate_edge_grads "
                "kernel (API 1.1), so gradients of non-existing edges cannot be computed; "
                "use a backend that has it (numpy, torch, jax) or a rule that needs no "
                "gradients (SET, MagnitudePrune)"
            )
        s = self._structure
        log = [e for e in self._backward_log if e[0] == s.version]
        if not log:
            raise StateError(
                "candidate_gradients needs a backward_accumulate() on the current graph "
                "since the last zero_grad() (and no structural edit in between)"
            )
        src_slot = s.node_slots(src_a, "source node")
        dst_slot = s.node_slots(dst_a, "destination node")
        total = np.zeros(src_a.shape[0], dtype=np.dtype(self.dtype))
        if src_a.size == 0:
            return total
        plan = self.plan
        compiled = self._compiled_plan()
        src_pos, dst_pos = plan.position[src_slot], plan.position[dst_slot]
        for _, cache, grad_out in log:
            part = self.backend.candidate_edge_grads(
                compiled,
                self._params[_EDGE],
                self._params[_NODE],
                cache,
                grad_out,
                src_pos,
                dst_pos,
            )
            total += self.backend.to_numpy(part).astype(total.dtype, copy=False)
        return total

    # -- BackwardPass: gradients and optimizer ----------------------------------------
    def zero_grad(self) -> None:
        """Reset the accumulated gradients to zero (``backward_accumulate`` adds to them)."""
        b = self.backend
        self._backward_log = []
        self._grads = {k: b.zeros((self._count(k),), self.dtype) for k in (_EDGE, _NODE)}

    def gradient_norm(self) -> float:
        """L2 norm of all parameter gradients together."""
        return guards.scaled_norm(self.backend, self._grads.values())

    def clip_gradients(self, max_norm: float) -> float:
        """Scale gradients to a joint L2 norm of at most ``max_norm``; returns the norm before."""
        if not max_norm > 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm}")
        norm = self.gradient_norm()
        if norm > max_norm:
            factor = max_norm / (norm + 1e-12)
            self._grads = {k: self.backend.scale(g, factor) for k, g in self._grads.items()}
        return norm

    def step(self, lr: float) -> None:
        """Apply one optimizer update from the accumulated gradients (they are kept)."""
        lr = check_lr(lr)
        self._steps += 1
        for key in (_EDGE, _NODE):
            self._params[key] = apply_update(
                self.backend,
                self.optimizer,
                self._params[key],
                self._grads[key],
                self._moments[key],
                self._steps,
                lr,
                self.dtype,
            )

    # -- parameters --------------------------------------------------------------------
    def get_parameters(self) -> dict[str, np.ndarray]:
        """``{"weight": [E], "bias": [N]}`` as NumPy copies (order of edges() / nodes())."""
        return {k: self.backend.to_numpy(v) for k, v in self._params.items()}

    def get_gradients(self) -> dict[str, np.ndarray]:
        """``{"weight": [E], "bias": [N]}``: the accumulated gradients as NumPy copies."""
        return {k: self.backend.to_numpy(v) for k, v in self._grads.items()}

    def gradient_arrays(self) -> dict[str, Any]:
        """``{"weight": [E], "bias": [N]}``: the backend-native gradient arrays themselves,
        not copies (what collectives such as a data-parallel all-reduce work on in place
        where the backend's arrays are mutable). Store results with :meth:`set_gradients`
        unless they were updated in place."""
        return dict(self._grads)

    def set_gradients(self, grads: Mapping[str, Any]) -> None:
        """Replace the accumulated ``weight`` and/or ``bias`` gradients (mirror of
        :meth:`get_gradients`): NumPy data, lists or any backend's arrays, copied (never
        aliased), shapes ``[E]`` / ``[N]``. All or nothing: a bad entry changes nothing."""
        unknown = set(grads) - {_EDGE, _NODE}
        if unknown:
            raise KeyError(f"unknown gradient group(s) {sorted(unknown)}; use 'weight' and 'bias'")
        staged = {}
        for key, value in grads.items():
            arr = np.array(_to_host(self.backend, value), dtype=self.dtype)  # a copy
            expected = (self._count(key),)
            if arr.shape != expected:
                raise ShapeError(
                    f"{key} gradient must have shape {list(expected)}, got {list(arr.shape)}"
                )
            staged[key] = arr
        for key, arr in staged.items():
            self._grads[key] = self.backend.asarray(arr, self.dtype)

    def set_parameters(self, params: Mapping[str, Any]) -> None:
        """Replace ``weight`` and/or ``bias``; shapes must match, values must be finite."""
        unknown = set(params) - {_EDGE, _NODE}
        if unknown:
            raise KeyError(f"unknown parameter group(s) {sorted(unknown)}; use 'weight' and 'bias'")
        staged = {}
        for key, value in params.items():
            # a copy: the model owns its parameters (optimizer steps update them in place
            # on some backends), so they must never alias the caller's buffer
            arr = np.array(_to_host(self.backend, value), dtype=np.float64)
            expected = (self._count(key),)
            if arr.shape != expected:
                raise ShapeError(f"{key} must have shape {list(expected)}, got {list(arr.shape)}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{key} contains non-finite values")
            guards.check_representable(arr, self.dtype, key)
            if key == _NODE and np.any(arr[self._structure.kinds == NodeKind.INPUT] != 0):
                raise ValueError("input nodes have no bias: their entries in 'bias' must be 0")
            staged[key] = arr
        for key, arr in staged.items():
            self._params[key] = self.backend.asarray(arr, self.dtype)

    def _count(self, key: str) -> int:
        return self._structure.edge_count if key == _EDGE else self._structure.node_count

    def _grow(self, key: str, values: np.ndarray) -> None:
        b, k = self.backend, values.shape[0]
        self._params[key] = b.concat(self._params[key], b.asarray(values, self.dtype))
        self._grads[key] = b.concat(self._grads[key], b.zeros((k,), self.dtype))
        for name, arr in self._moments[key].items():
            self._moments[key][name] = b.concat(arr, b.zeros((k,), self.dtype))

    def _compact(self, key: str, keep: np.ndarray) -> None:
        b = self.backend
        self._params[key] = b.take(self._params[key], keep)
        self._grads[key] = b.take(self._grads[key], keep)
        for name, arr in self._moments[key].items():
            self._moments[key][name] = b.take(arr, keep)

    # -- persistence -------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(metadata, arrays)``: everything needed to rebuild and continue training."""
        s = self._structure
        meta = {
            "dtype": self.dtype,
            "backend": self.backend.name,
            "seed": self.seed,
            "init": self.init.name,
            "optimizer": optimizer_to_dict(self.optimizer),
            "optimizer_steps": self._steps,
            "next_node_id": s.next_node_id,
            "next_edge_id": s.next_edge_id,
            "rng": _rng_state(self._rng),
        }
        arrays = s.arrays()
        arrays.update({k: self.backend.to_numpy(v) for k, v in self._params.items()})
        for key, state in self._moments.items():
            for name, arr in state.items():
                arrays[f"{name}_{key}"] = self.backend.to_numpy(arr)
        return meta, arrays

    @classmethod
    def from_state(
        cls,
        meta: Mapping[str, Any],
        arrays: Mapping[str, np.ndarray],
        backend: str | Backend | None = None,
    ) -> DagNN:
        """Rebuild a model from :meth:`state` output on ``backend`` (the default if None)."""
        dag = cls(
            backend=backend,
            dtype=meta["dtype"],
            seed=meta["seed"],
            init=meta["init"],
            optimizer=optimizer_from_dict(meta.get("optimizer")),
        )
        dag._structure = GraphStructure.from_arrays(
            arrays, meta["next_node_id"], meta["next_edge_id"]
        )
        dag._rng.bit_generator.state = meta["rng"]
        dag._steps = int(meta.get("optimizer_steps", 0))
        dag.zero_grad()
        dag.set_parameters({_EDGE: arrays[_EDGE], _NODE: arrays[_NODE]})
        for key in (_EDGE, _NODE):
            for name in ("m", "v"):
                if f"{name}_{key}" in arrays:
                    arr = np.array(arrays[f"{name}_{key}"], dtype=np.float64)  # a copy
                    if arr.shape != (dag._count(key),):
                        raise ShapeError(f"optimizer state {name}_{key} has shape {arr.shape}")
                    dag._moments[key][name] = dag.backend.asarray(arr, dag.dtype)
        return dag

    def restore_state(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Replace this model's contents in place with a :meth:`state` snapshot (structure,
        parameters, optimizer state and step count, weight-init RNG), keeping this object
        and its backend, so that whatever holds the model (a SharedAGIModel, a hook) stays
        valid. All or nothing: an inconsistent snapshot raises and changes nothing.
        Accumulated gradients are zeroed; :attr:`version` moves forward."""
        fresh = DagNN.from_state(meta, arrays, backend=self.backend)
        fresh._structure.version = self.version + 1  # versions only move forward
        self.__dict__.update(fresh.__dict__)

    def structure_hash(self) -> str:
        """SHA-256 (hex) of the topology: node ids, kinds, activations, edge ids, sources,
        destinations and the next ids to be given out. Equal hashes mean identical graphs
        (parameters are not included); computed once per structural version."""
        return self._structure.fingerprint()

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically (see :mod:`grapheme_core.checkpoint`)."""
        from .checkpoint import save

        return save(self, path)

    @classmethod
    def load(cls, path: str | Path, backend: str | Backend | None = None) -> DagNN:
        """Read a model written by :meth:`save` (see :func:`grapheme_core.load_dagnn`)."""
        from .checkpoint import load_dagnn

        return load_dagnn(path, backend=backend)

    def to_backend(self, backend: str | Backend) -> DagNN:
        """A copy of this model (structure, parameters, accumulated gradients, optimizer
        state) on another backend."""
        meta, arrays = self.state()
        dag = DagNN.from_state(meta, arrays, backend=backend)
        for key, grad in self._grads.items():  # a checkpoint has none; a live copy does
            dag._grads[key] = dag.backend.asarray(self.backend.to_numpy(grad), dag.dtype)
        return dag

    # -- the training API (grapheme_core.fitting) ------------------------------------------
    def fit(self, x: Any, y: Any, **kwargs: Any) -> Any:
        """Train on ``(x, y)`` in minibatches; returns a History. Same keywords as
        :func:`grapheme_core.fitting.fit` (``loss=``, ``epochs=``, ``batch_size=``, ``lr=``,
        ``validation_data=``, ``callbacks=``, ``seed=``, ``verbose=``...)."""
        from .fitting import fit

        return fit(self, x, y, **kwargs)

    def evaluate(self, x: Any, y: Any, **kwargs: Any) -> dict[str, float]:
        """``{"loss": ..., <metric>: ...}`` on ``(x, y)``, nothing trained; see
        :func:`grapheme_core.fitting.evaluate`."""
        from .fitting import evaluate

        return evaluate(self, x, y, **kwargs)

    def predict(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        """Outputs for ``x`` in minibatches (see :func:`grapheme_core.fitting.predict`)."""
        from .fitting import predict

        return predict(self, x, batch_size=batch_size)

    # -- seeing the graph (grapheme_core.graphview) -------------------------------------
    def summary(self) -> str:
        """A table of the model: nodes per kind and per level, edges, parameters, density,
        depth, backend and dtype. ``print(dag.summary())``; see :mod:`grapheme_core.graphview`."""
        from .graphview import summary

        return summary(self)

    def to_dot(self, *, weights: bool = False) -> str:
        """Graphviz DOT text of the model (no dependency); ``weights=True`` labels the edges.
        Render it with ``dot -Tsvg``."""
        from .graphview import to_dot

        return to_dot(self, weights=weights)

    def to_networkx(self) -> Any:
        """The model as a ``networkx.MultiDiGraph`` (needs the optional ``networkx``)."""
        from .graphview import to_networkx

        return to_networkx(self)

    def __repr__(self) -> str:
        return (
            f"DagNN(nodes={self.node_count}, edges={self.edge_count}, "
            f"inputs={len(self.input_nodes)}, outputs={len(self.output_nodes)}, "
            f"backend={self.backend.name!r}, dtype={self.dtype!r})"
        )


_dtype_name = dtype_name
_NO_SLOTS = np.zeros(0, dtype=np.int64)


_to_host = to_host  # NumPy view of array-likes, native arrays and foreign tensors


def _int_array(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ShapeError(f"{what} must be a 1-D sequence of ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ShapeError(f"{what} must be integer ids, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    state = rng.bit_generator.state
    return {k: (int(v) if isinstance(v, np.integer) else v) for k, v in state.items()}


def _degrees_after(old: np.ndarray, new: np.ndarray, n: int) -> np.ndarray:
    """Degree of each node in ``new`` once the new edges are added (old + new endpoints).

    A few new edges are counted by comparison (one cheap pass over the old edges instead
    of a full histogram), which keeps single-edge edits on million-edge graphs fast.
    """
    if new.shape[0] <= 8:
        return (old[:, None] == new[None, :]).sum(axis=0) + (new[:, None] == new).sum(axis=0)
    return (np.bincount(old, minlength=n) + np.bincount(new, minlength=n))[new]
