"""The PyTorch backend: the reference semantics of the NumPy backend on torch tensors.

Select it with ``get_backend("torch", device="cuda:0", num_threads=8)`` or
``DagNN(backend=TorchBackend(device="cpu"))``. Options (all keyword-only):

* ``device``: ``"cpu"`` (default), ``"cuda"`` or ``"cuda:N"`` (a ``torch.device`` works
  too). A device this process cannot use raises :class:`DeviceUnavailableError` (both a
  ``BackendLoadError`` and a ``ValueError``) naming the device and the reason.
* ``num_threads``: calls ``torch.set_num_threads`` when given; otherwise torch's current
  setting is left alone.
* ``kernels``: ``"csr"`` (default, the faster; see below) or ``"index_add"``.

TF32 is switched off for CUDA matmuls and cuDNN (``allow_tf32 = False``) when the backend
is created, so float32 results do not depend on the GPU generation.

Kernels work like the NumPy reference, level by level on a node-major state ``H``
``[N, B]`` whose rows follow the plan's topological positions. :meth:`TorchBackend.compile`
turns a plan into index tensors on the device once, vectorized over all levels (one
sort merges the multi-edges of every csr level; a level's tensors are views of
plan-wide ones), so a 10,000-level plan compiles in well under a second and a 1M-edge
plan in about 0.1 s. Per forward, the weights of every sparse level are gathered from the
weight vector in one call into a new tensor that the forward cache keeps, so
``backward`` uses exactly the weights its forward used.

**Small levels on the CPU** (``kernels="csr"``, ``device="cpu"``): a sparse level of at
most ``host_level_edges`` edges (default 4096; an option of the factory, 0 turns it off)
runs through :mod:`grapheme_backends.host_levels`: SciPy's ``csr_matvecs``/
``csc_matvecs`` on NumPy views (``tensor.numpy()``, zero-copy) of the same state and
entry values, and the weight gradients of all such levels in one chunked pass after the
reverse sweep. Why: torch's dispatch costs about 5-20 us per operator call on the CPU, so
a deep graph of levels of a few hundred edges spent its time in dispatch (10x the
8-level graph of the same edge count); SciPy's kernels do such a level in a few
microseconds, and torch's own kernels win above a few thousand edges. CUDA devices, the
``index_add`` kernels and subclasses overriding :meth:`TorchBackend.activate` or
:meth:`TorchBackend.activation_grad` keep every level on torch operators.

``kernels="csr"``
    forward ``H[l].addmm_(A_l, H[:start])`` with ``A_l`` a ``torch.sparse_csr_tensor``
    (columns sorted and multi-edges merged into one summed entry at compile time, as
    torch's CSR invariants require); backward ``G[:start].addmm_(A_l^T, delta)`` with
    ``A_l^T`` an explicit CSR whose layout is compiled once (faster than ``A_l.t()``,
    which is CSC), and the weight gradient ``dW_e = delta[dst_e] . H[src_e]`` as a
    sampled dense-dense product (``torch.sparse.sampled_addmm``), which computes one dot
    product per nonzero and never forms an ``E x B`` array; every edge of a merged entry
    gets the entry's gradient.
``kernels="index_add"``
    forward ``H[l].index_add_(0, dst, H[src] * w)``, backward
    ``G.index_add_(0, src, delta[dst] * w)`` and ``dW = (delta[dst] * H[src]).sum(1)``,
    each in edge chunks of ``edge_chunk_elements // B`` edges.

**Dense blocks** (either ``kernels`` setting): a level dense enough (the policy of
:class:`grapheme_core.dense.DensePolicy`, as in the NumPy reference) runs as
``H[l].addmm_(W_l, H[cols])`` forward and ``G[cols].addmm_(W_l^T, delta)``,
``dL/dW_l = delta @ H[cols]^T`` backward; ``W_l`` is a view of a contiguous slice of the
weight vector when the layer was added row by row, else one scatter. The forward cache
keeps ``W_l`` (2-D) in its ``dense`` mapping, by level.

Measured on the development machine (2 CPU cores shared with other jobs, torch
2.13.0+cpu) on the 1M-edge benchmark graph: 256 inputs, 8 levels of 4096 tanh nodes, 32
random incoming edges each from all earlier nodes (1,048,576 edges), batch 64, float32.
Kernel calls only (``forward`` / ``backward`` of the backend, plan compiled once), median
(min) of 40 repetitions in alternating blocks, milliseconds, ``num_threads=1``, load
average ~5::

    kernels            forward         backward
    torch csr          11.6 (10.0)     26.6  (24.2)
    torch index_add    57.6 (51.3)     130.3 (121.8)
    numpy reference    16.2 (15.6)     39.3  (35.6)

A run with ``num_threads=2`` (20 repetitions, load ~2 at the start)::

    torch csr          8.8  (7.0)      25.6  (15.0)
    torch index_add    130.6 (29.7)    926.9 (68.8)
    numpy reference    15.8 (15.2)     37.2  (36.2)

(two OpenMP threads on two shared cores are noisy: compare the minima). Sparse CSR wins
by 4-5x on both passes in every run, so ``csr`` is the default.
Reproduce with ``grapheme-train bench --backend torch --option kernels=index_add`` (and
``--option num_threads=1``) against the default.
"""

from __future__ import annotations

import warnings
from typing import Any

import attrs
import numpy as np
import torch

from grapheme_backends import host_levels
from grapheme_backends.host_levels import HostLevel, HostRun
from grapheme_core.backend import API_VERSION
from grapheme_core.dense import DenseLayout, DensePolicy
from grapheme_core.errors import BackendLoadError
from grapheme_core.graph_algorithms import stable_argsort
from grapheme_core.plan import ExecutionPlan
from grapheme_core.types import LEAKY_SLOPE, Activation

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_KERNELS = ("csr", "index_add")
_EMPTY = np.zeros(0, dtype=np.float32)  # the host values of a plan without sparse entries


class DeviceUnavailableError(BackendLoadError, ValueError):
    """The requested torch device does not exist or cannot be used in this process."""


def _torch_dtype(dtype: Any) -> torch.dtype:
    if type(dtype) is str and dtype in _DTYPES:  # the common case, without np.dtype (~20 us)
        return _DTYPES[dtype]
    if isinstance(dtype, torch.dtype):
        if dtype in _DTYPES.values():
            return dtype
    else:
        try:
            return _DTYPES[str(np.dtype(dtype))]
        except (TypeError, KeyError):
            pass
    raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def resolve_device(device: Any) -> torch.device:
    """Validate ``device`` (``cpu``, ``cuda``, ``cuda:N``) and return it as a ``torch.device``."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"invalid torch device {device!r}; use 'cpu', 'cuda' or 'cuda:N'"
        ) from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise ValueError(
            f"unsupported torch device {device!r} for the grapheme torch backend; "
            f"use 'cpu', 'cuda' or 'cuda:N'"
        )
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"torch device {device!r} is not available: CUDA is not available to torch "
            f"{torch.__version__} in this process (CUDA build: {torch.version.cuda or 'no'}); "
            f"use device='cpu'"
        )
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if index >= count:
        raise DeviceUnavailableError(
            f"torch device {device!r} is not available: this process sees {count} CUDA "
            f"device(s) (cuda:0..cuda:{count - 1})"
        )
    return torch.device("cuda", index)


@attrs.frozen(eq=False)
class _Level:
    """Index tensors of one level, on the device.

    Each level has ``K`` *entries* ``k0:k1`` of the plan's concatenated entries: its
    edges in plan order for the index_add kernels and for host levels (see
    :mod:`grapheme_backends.host_levels`); for the csr kernels the nonzeros of ``A_l``,
    with columns sorted and multi-edges merged into one entry (torch's CSR invariants ask
    for sorted, distinct columns); for a dense level the cells of ``W_l``. The values of
    every sparse entry are gathered from the weight vector in one call per forward
    (:attr:`CompiledTorchPlan.value_index`); the level tensors below are views of
    plan-wide tensors, built once per compile.
    """

    start: int  # first topological position of the level
    stop: int
    k0: int  # the level's entries are k0:k1 of the plan's concatenated entries
    k1: int
    groups: tuple[tuple[Activation, torch.Tensor | None], ...]
    index: int = 0  # the level's number in the plan
    host: bool = False  # runs through host_levels (CPU, small): no tensors below
    # index_add kernels, per entry (= edge)
    src: torch.Tensor | None = None  # source position
    row: torch.Tensor | None = None  # destination row within the level
    # csr kernels
    crow: torch.Tensor | None = None  # [rows + 1]
    col: torch.Tensor | None = None  # [K] source position of each entry
    t_crow: torch.Tensor | None = None  # the transpose A_l^T as CSR (rows: earlier positions)
    t_col: torch.Tensor | None = None
    t_order: torch.Tensor | None = None  # transpose values = entry values[t_order]
    zero_values: torch.Tensor | None = None  # [K] sampling pattern for sampled_addmm
    # dense blocks: entries are the cells of W_l [rows, n_cols] (row-major)
    dense: DenseLayout | None = None
    weight_index: torch.Tensor | None = None  # [E_l] weight of each edge (None: weight slice)
    dense_cells: torch.Tensor | None = None  # [E_l] cell of each edge (None: weight slice)
    dense_cols: torch.Tensor | None = None  # [n_cols] source positions (None: contiguous)
    dense_slice: tuple[int, int] | None = None  # W_l is weight[a:b] (row-major) when set

    @property
    def has_edges(self) -> bool:
        return self.k1 > self.k0

    @property
    def rows(self) -> int:
        return self.stop - self.start


@attrs.frozen(eq=False)
class CompiledTorchPlan:
    plan: ExecutionPlan
    dtype: torch.dtype
    device: torch.device
    kernels: str
    levels: tuple[_Level, ...]
    num_entries: int
    #: forward order of execution: a level, or a host_levels.HostRun of consecutive levels
    schedule: tuple[_Level | HostRun, ...]
    num_sparse: int  # entries 0:num_sparse are the sparse levels' (values gathered at once)
    value_index: torch.Tensor | None  # [num_sparse] weight of each entry (its first edge)
    dup_entry: torch.Tensor | None  # csr: further edges merged into an entry (multi-edges)
    dup_weight_index: torch.Tensor | None
    grad_index: torch.Tensor  # [E] weight -> its entry: dL/dw = entry gradients[grad_index]
    order: torch.Tensor  # topo position -> node slot
    position: torch.Tensor  # node slot -> topo position
    has_bias: torch.Tensor  # [N] 0/1 per topo position
    input_positions: torch.Tensor
    output_positions: torch.Tensor
    # fast paths, set when an index above is an identity or a contiguous range
    input_range: tuple[int, int] | None = None  # inputs occupy positions a:b, in order
    output_range: tuple[int, int] | None = None
    grad_identity: bool = False  # grad_index is arange(E): entry gradients are dL/dw
    order_identity: bool = False  # topological positions are node slots
    host_runs: tuple[HostRun, ...] = ()  # the HostRun steps of ``schedule``
    dense_views: bool = False  # some dense level's W_l is a view of the weight vector


def _as_range(index: np.ndarray) -> tuple[int, int] | None:
    """``(a, b)`` when ``index`` is ``arange(a, b)`` (then a slice replaces the gather)."""
    if index.shape[0] == 0:
        return None
    a = int(index[0])
    return (
        (a, a + index.shape[0]) if np.array_equal(index, np.arange(a, a + index.shape[0])) else None
    )


@attrs.frozen(eq=False)
class ForwardCache:
    """What backward needs: the node values and the entry values the forward used."""

    h: torch.Tensor  # [N, B], rows in topological positions
    values: torch.Tensor | None  # [num_sparse] entry values of the sparse levels (a copy)
    # level -> W_l of each dense level: a copy, or a view of ``weight`` when a slice of it
    dense: dict[int, torch.Tensor] = attrs.Factory(dict)
    weight: torch.Tensor | None = None  # the weight vector the views above look into
    weight_version: int = 0  # its in-place version counter at forward time

    def check_weights(self) -> None:
        """Fail loudly if the viewed weights were changed in place since the forward
        (this backend's optimizers never do that: they return new parameter tensors)."""
        if self.weight is not None and self.weight._version != self.weight_version:
            raise RuntimeError(
                "the torch backend's weight vector was modified in place between forward and "
                "backward, so the forward cache no longer holds that pass's weights; update "
                "parameters out of place (as sgd_step/adam_step do) or run forward() again"
            )


class TorchBackend(DensePolicy):
    """:class:`grapheme_core.backend.Backend` on PyTorch tensors (CPU or CUDA)."""

    name = "torch"
    api_version = API_VERSION
    #: edges per chunk of the index_add kernels is ``edge_chunk_elements // batch``
    edge_chunk_elements = 1 << 20

    def __init__(
        self,
        *,
        device: str | torch.device = "cpu",
        num_threads: int | None = None,
        kernels: str = "csr",
        host_level_edges: int | None = None,
    ) -> None:
        self.device = resolve_device(device)
        if kernels not in _KERNELS:
            raise ValueError(f"kernels must be one of {', '.join(_KERNELS)}; got {kernels!r}")
        self.kernels = kernels
        if host_level_edges is not None:
            if (
                isinstance(host_level_edges, bool)
                or int(host_level_edges) != host_level_edges
                or host_level_edges < 0
            ):
                raise ValueError(
                    f"host_level_edges must be an integer >= 0 (0: no level on the host), "
                    f"got {host_level_edges!r}"
                )
            self.host_level_edges = int(host_level_edges)
        if num_threads is not None:
            if isinstance(num_threads, bool) or int(num_threads) != num_threads or num_threads < 1:
                raise ValueError(f"num_threads must be an integer >= 1, got {num_threads!r}")
            torch.set_num_threads(int(num_threads))
        self.num_threads = num_threads
        # Reproducible float32 on GPUs: no TensorFloat-32 in matmuls or cuDNN.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def __repr__(self) -> str:
        threads = "" if self.num_threads is None else f", num_threads={self.num_threads}"
        return (
            f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r}, "
            f"dtypes=('float32', 'float64'), kernels={self.kernels!r}{threads})"
        )

    # -- conversion ----------------------------------------------------------------
    def asarray(self, value: Any, dtype: str) -> torch.Tensor:
        """NumPy data is copied (never aliased); a tensor already right is returned as is."""
        dt = _torch_dtype(dtype)
        if isinstance(value, torch.Tensor):
            return value.detach().to(device=self.device, dtype=dt).contiguous()
        arr = np.array(value, dtype=np.float64 if dt == torch.float64 else np.float32)
        return torch.from_numpy(arr).to(self.device)

    def to_numpy(self, value: Any) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            host = value.detach().cpu().numpy()
            return host.copy() if value.device.type == "cpu" else host  # .cpu() copied already
        return np.array(value, copy=True)

    def zeros(self, shape: tuple[int, ...], dtype: str) -> torch.Tensor:
        return torch.zeros(tuple(shape), dtype=_torch_dtype(dtype), device=self.device)

    def concat(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return torch.cat([first, second])

    def take(self, value: torch.Tensor, index: np.ndarray) -> torch.Tensor:
        return value.index_select(0, self._index(index))

    def add(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return first.add_(second)

    def scale(self, value: torch.Tensor, factor: float) -> torch.Tensor:
        return value.mul_(float(factor))

    def sum_squares(self, value: torch.Tensor) -> float:
        v = value.reshape(-1)
        return float(torch.dot(v, v))

    def _index(self, index: Any) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            return index.to(device=self.device, dtype=torch.int64)
        arr = np.asarray(index, dtype=np.int64).reshape(-1)
        return torch.from_numpy(arr.copy()).to(self.device)

    # -- elementwise seams ---------------------------------------------------------
    def activate(self, activation: Activation, z: torch.Tensor) -> torch.Tensor:
        """Apply ``activation`` to ``z`` in place and return it."""
        if activation is Activation.RELU:
            z.clamp_min_(0)
        elif activation is Activation.LEAKY_RELU:
            torch.nn.functional.leaky_relu_(z, LEAKY_SLOPE)
        elif activation is Activation.SIGMOID:
            z.sigmoid_()
        elif activation is Activation.TANH:
            z.tanh_()
        return z

    def activation_grad(self, activation: Activation, h: torch.Tensor) -> torch.Tensor | None:
        """``act'(z)`` expressed through the output ``h = act(z)``; ``None`` means 1."""
        if activation is Activation.LINEAR:
            return None
        if activation is Activation.RELU:
            return (h > 0).to(h.dtype)
        if activation is Activation.LEAKY_RELU:
            return torch.full_like(h, LEAKY_SLOPE).masked_fill_(h > 0, 1.0)
        if activation is Activation.SIGMOID:
            return h * (1 - h)
        return 1 - h * h  # tanh

    # -- kernels ---------------------------------------------------------------------
    #: on the CPU (``kernels="csr"``), sparse levels with at most this many edges run
    #: through :mod:`grapheme_backends.host_levels` (NumPy/SciPy on zero-copy views of the
    #: same state), where torch's per-call dispatch would dominate; 0 turns that off.
    #: SciPy's kernels win below about 5,000 edges at batch 64, torch's above (per-level
    #: figures in docs/performance.md).
    host_level_edges = 4096
    #: entries per chunk of the host levels' fused weight-gradient pass (``// batch``)
    host_chunk_elements = 1 << 16
    #: in that pass, rows of equal in-degree are batched from this many edges per group
    host_min_block_edges = 1024

    def _host_limit(self) -> int:
        """Edges up to which a sparse level runs on the host; 0 where none may."""
        cls = type(self)
        custom = (
            cls.activate is not TorchBackend.activate
            or cls.activation_grad is not TorchBackend.activation_grad
        )  # a subclass's elementwise seams must see every level
        if self.device.type != "cpu" or self.kernels != "csr" or custom:
            return 0
        if not host_levels.AVAILABLE:  # pragma: no cover - other SciPy layouts
            return 0
        return int(self.host_level_edges)

    def compile(self, plan: ExecutionPlan, dtype: str) -> CompiledTorchPlan:
        """Vectorized over all levels: one sort of the csr levels' edges by
        (destination, source) merges the multi-edges of every level at once, and a level
        only takes views of plan-wide tensors (a torch csr level also counts the row
        pointers of its transpose)."""
        dt = _torch_dtype(dtype)
        dev = self.device

        def idx(a: np.ndarray) -> torch.Tensor:  # a copy: never shares the plan's memory
            return torch.from_numpy(np.array(a, dtype=np.int64, order="C")).to(dev)

        def own(a: np.ndarray) -> torch.Tensor:  # an array made here: shared, not copied
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)).to(dev)

        n_levels = plan.num_levels
        level_edges = np.diff(plan.edge_offsets)
        dense = [self.dense_layout(plan, lv) if level_edges[lv] else None for lv in range(n_levels)]
        is_dense = np.array([d is not None for d in dense], dtype=bool)
        host_limit = self._host_limit()
        is_host = ~is_dense & (level_edges <= host_limit) & (host_limit > 0)
        merged = ~is_dense & ~is_host & (level_edges > 0) & (self.kernels == "csr")
        lay = _entry_layout(plan, level_edges, is_dense, merged, dense)
        num_sparse = int(lay.value_index.shape[0])
        index_dtype = np.int32 if max(plan.num_nodes, plan.num_edges) < 2**31 - 1 else np.int64
        torch_sparse = ~is_dense & ~is_host & (level_edges > 0)
        src_t = own(lay.entry_src) if torch_sparse.any() else None
        row_t = None
        if torch_sparse.any() and self.kernels == "index_add":  # rows within their level
            count = (lay.k1 - lay.k0) * ~is_dense
            row_t = own(lay.entry_dst - np.repeat(plan.level_offsets[:-1], count))
        zero_t = torch.zeros(num_sparse, dtype=dt, device=dev) if merged.any() else None
        host_src = lay.entry_src.astype(index_dtype) if is_host.any() else None
        levels: list[_Level] = []
        schedule: list[_Level | HostRun] = []
        run: list[HostLevel] = []

        def close_run() -> None:
            if run:
                schedule.append(_host_run(plan, tuple(run), lay, self.host_min_block_edges))
                run.clear()

        for lv in range(n_levels):
            lo, hi = int(plan.level_offsets[lv]), int(plan.level_offsets[lv + 1])
            k0, k1 = int(lay.k0[lv]), int(lay.k1[lv])
            groups = plan.groups[lv]
            if is_host[lv]:
                indptr = indices = None
                if k1 > k0:
                    indptr = (plan.indptr[lo : hi + 1] - plan.indptr[lo]).astype(index_dtype)
                    indices = host_src[k0:k1]
                grp = tuple((g.activation, g.rows) for g in groups)
                run.append(HostLevel(lo, hi, k0, k1, indptr, indices, grp))
                levels.append(_Level(lo, hi, k0, k1, (), index=lv, host=True))
                continue
            close_run()
            grp = tuple((g.activation, None if g.rows is None else idx(g.rows)) for g in groups)
            fields: dict[str, Any] = {}
            if dense[lv] is not None:
                edges = plan.level_edges(lv)
                fields.update(self._dense_fields(dense[lv], plan.edge_order[edges], idx))
            elif k1 > k0 and self.kernels == "index_add":
                fields.update(src=src_t[k0:k1], row=row_t[k0:k1])
            elif k1 > k0:
                fields.update(_csr_fields(lay, lo, hi, k0, k1, idx))
                fields.update(col=src_t[k0:k1], zero_values=zero_t[k0:k1])
            level = _Level(lo, hi, k0, k1, grp, index=lv, **fields)
            levels.append(level)
            schedule.append(level)
        close_run()
        if merged.any():
            _quiet_sparse_beta_warning()
        grad_index = np.empty(plan.num_edges, dtype=np.int64)
        grad_index[plan.edge_order] = lay.edge_entry
        dups = lay.dup_entry.shape[0] > 0
        return CompiledTorchPlan(
            plan=plan,
            dtype=dt,
            device=dev,
            kernels=self.kernels,
            levels=tuple(levels),
            num_entries=lay.num_entries,
            schedule=tuple(schedule),
            host_runs=tuple(s for s in schedule if isinstance(s, HostRun)),
            num_sparse=num_sparse,
            value_index=own(lay.value_index) if num_sparse else None,
            dup_entry=own(lay.dup_entry) if dups else None,
            dup_weight_index=own(lay.dup_weight_index) if dups else None,
            dense_views=any(lv.dense_slice is not None for lv in levels),
            grad_index=own(grad_index),
            order=idx(plan.order),
            position=idx(plan.position),
            has_bias=torch.from_numpy(plan.has_bias.copy()).to(device=dev, dtype=dt),
            input_positions=idx(plan.input_positions),
            output_positions=idx(plan.output_positions),
            input_range=_as_range(plan.input_positions),
            output_range=_as_range(plan.output_positions),
            grad_identity=bool(np.array_equal(grad_index, np.arange(grad_index.shape[0]))),
            order_identity=bool(np.array_equal(plan.order, np.arange(plan.num_nodes))),
        )

    @staticmethod
    def _dense_fields(dense: DenseLayout, w_index: np.ndarray, idx) -> dict[str, Any]:
        fields: dict[str, Any] = {"dense": dense}
        a = int(w_index[0])
        if dense.identity and np.array_equal(w_index, np.arange(a, a + w_index.shape[0])):
            fields["dense_slice"] = (a, a + w_index.shape[0])
        else:
            fields.update(weight_index=idx(w_index), dense_cells=idx(dense.cells))
        if not dense.contiguous:
            fields["dense_cols"] = idx(dense.cols)
        return fields

    def _dense_weight(self, lv: _Level, weight: torch.Tensor) -> torch.Tensor:
        """``W_l`` ``[rows, n_cols]``: a view of ``weight`` when the level's weights are one
        row-major slice of it, else a new tensor (the forward cache keeps it)."""
        d = lv.dense
        if lv.dense_slice is not None:
            a, b = lv.dense_slice  # a view: the optimizers never update weights in place
            return weight[a:b].view(d.rows, d.n_cols)
        w = torch.zeros(d.rows * d.n_cols, dtype=weight.dtype, device=weight.device)
        w.index_add_(0, lv.dense_cells, weight.index_select(0, lv.weight_index))
        return w.view(d.rows, d.n_cols)

    @staticmethod
    def _dense_sources(lv: _Level, h: torch.Tensor) -> torch.Tensor:
        if lv.dense_cols is None:
            return h[lv.dense.col_start : lv.dense.col_stop]
        return h.index_select(0, lv.dense_cols)

    #: build every sparse tensor with torch's (slow) invariant checks; for tests
    check_sparse_invariants = False

    def _csr(self, crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape):
        return torch.sparse_csr_tensor(
            crow, col, values, size=shape, check_invariants=self.check_sparse_invariants
        )

    @torch.no_grad()
    def forward(
        self, compiled: CompiledTorchPlan, weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, ForwardCache]:
        c = compiled
        batch = x.shape[0]
        b = bias if c.order_identity else bias.index_select(0, c.order)
        h = (b * c.has_bias)[:, None].expand(-1, batch).contiguous()  # 3x faster than repeat
        if c.input_range is not None:  # a slice copy: index_copy_ is ~10x slower here
            h[c.input_range[0] : c.input_range[1]] = x.T.to(h.dtype)
        else:
            h.index_copy_(0, c.input_positions, x.T.to(h.dtype))
        values = None
        if c.num_sparse:  # every sparse level's entry values in one gather
            values = weight.index_select(0, c.value_index)
            if c.dup_entry is not None:
                values.index_add_(0, c.dup_entry, weight.index_select(0, c.dup_weight_index))
        dense: dict[int, torch.Tensor] = {}
        host = None
        for step in c.schedule:
            if type(step) is HostRun:
                if host is None:
                    host = (h.numpy(), _EMPTY if values is None else values.numpy())
                host_levels.forward_run(step, *host)
                continue
            lv = step
            block = h[lv.start : lv.stop]
            w = None
            if lv.dense is not None:
                w = dense[lv.index] = self._dense_weight(lv, weight)
            elif lv.has_edges:
                w = values[lv.k0 : lv.k1]
            if w is not None and batch:
                if lv.dense is not None:
                    block.addmm_(w, self._dense_sources(lv, h))
                elif c.kernels == "csr":
                    a = self._csr(lv.crow, lv.col, w, (lv.rows, lv.start))
                    block.addmm_(a, h[: lv.start])
                else:
                    self._index_add_product(block, lv.row, h, lv.src, w)
            for act, rows in lv.groups:
                if rows is None:
                    self.activate(act, block)
                else:
                    block.index_copy_(0, rows, self.activate(act, block.index_select(0, rows)))
        y = _rows(h, c.output_range, c.output_positions).T.contiguous()
        if not c.dense_views:
            return y, ForwardCache(h, values, dense)
        return y, ForwardCache(h, values, dense, weight, weight._version)

    @torch.no_grad()
    def backward(
        self,
        compiled: CompiledTorchPlan,
        weight: torch.Tensor,
        bias: torch.Tensor,
        cache: ForwardCache,
        grad_out: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = compiled
        h = cache.h
        cache.check_weights()
        # every level with edges writes all its entries when batch > 0: no zero fill needed
        alloc = torch.empty if h.shape[1] else torch.zeros
        grad_entries = alloc(c.num_entries, dtype=h.dtype, device=h.device)
        g = self._reverse_sweep(c, cache, grad_out, grad_entries)
        grad_w = grad_entries if c.grad_identity else grad_entries.index_select(0, c.grad_index)
        grad_b = g.sum(dim=1) * c.has_bias
        if not c.order_identity:
            grad_b = grad_b.index_select(0, c.position)
        grad_x = _rows(g, c.input_range, c.input_positions).T.contiguous()
        return grad_w, grad_b, grad_x

    def _chunk(self, batch: int) -> int:
        return max(1, self.edge_chunk_elements // max(1, batch))

    def _index_add_product(
        self,
        out: torch.Tensor,
        out_index: torch.Tensor,
        source: torch.Tensor,
        source_index: torch.Tensor,
        w: torch.Tensor,
    ) -> None:
        """``out[out_index[e]] += w[e] * source[source_index[e]]``, in edge chunks."""
        chunk = self._chunk(source.shape[1])
        for s in range(0, w.shape[0], chunk):
            part = source.index_select(0, source_index[s : s + chunk])
            out.index_add_(0, out_index[s : s + chunk], part.mul_(w[s : s + chunk, None]))

    def edge_grads(
        self,
        delta: torch.Tensor,
        h: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        out: torch.Tensor,
    ) -> torch.Tensor:
        """``out[e] = delta[rows[e]] . h[cols[e]]``, chunked to bound temporary memory."""
        chunk = self._chunk(h.shape[1])
        for s in range(0, rows.shape[0], chunk):
            prod = delta.index_select(0, rows[s : s + chunk])
            prod.mul_(h.index_select(0, cols[s : s + chunk]))
            torch.sum(prod, dim=1, out=out[s : s + chunk])
        return out

    # -- API 1.1: gradients of candidate edges -------------------------------------------
    @torch.no_grad()
    def node_deltas(
        self, compiled: CompiledTorchPlan, cache: ForwardCache, grad_out: torch.Tensor
    ) -> torch.Tensor:
        """``dL/dz`` of every node (``[N, B]``, topological positions): the reverse sweep of
        :meth:`backward` without the weight gradients."""
        return self._reverse_sweep(compiled, cache, grad_out, None)

    def _reverse_sweep(
        self,
        c: CompiledTorchPlan,
        cache: ForwardCache,
        grad_out: torch.Tensor,
        grad_entries: torch.Tensor | None,
    ) -> torch.Tensor:
        """The levels in reverse: returns ``dL/dz`` ``[N, B]`` of every position and, when
        ``grad_entries`` is given, writes the weight gradient of every entry into it (host
        runs' in one fused pass after the sweep)."""
        h = cache.h
        batch = h.shape[1]
        g = torch.zeros_like(h)
        if c.output_range is not None:
            g[c.output_range[0] : c.output_range[1]] = grad_out.T.to(h.dtype)
        else:  # positions are distinct
            g.index_copy_(0, c.output_positions, grad_out.T.to(h.dtype))
        weight_grads = grad_entries is not None
        values = cache.values
        host = None
        for step in reversed(c.schedule):
            if type(step) is HostRun:
                if host is None:
                    host = (h.numpy(), g.numpy(), _EMPTY if values is None else values.numpy())
                host_levels.reverse_run(step, *host)
                continue
            lv = step
            delta = g[lv.start : lv.stop]  # becomes dL/dz of this level, in place
            h_lv = h[lv.start : lv.stop]
            for act, rows in lv.groups:
                if rows is None:
                    d = self.activation_grad(act, h_lv)
                    if d is not None:
                        delta.mul_(d)
                else:
                    d = self.activation_grad(act, h_lv.index_select(0, rows))
                    if d is not None:
                        delta.index_copy_(0, rows, delta.index_select(0, rows).mul_(d))
            if not lv.has_edges or not batch:
                continue
            if lv.dense is not None:
                w = cache.dense[lv.index]
                if lv.dense_cols is None:
                    g[lv.dense.col_start : lv.dense.col_stop].addmm_(w.t(), delta)
                else:
                    g.index_add_(0, lv.dense_cols, w.t() @ delta)
                if weight_grads:
                    out = grad_entries[lv.k0 : lv.k1].view(lv.dense.rows, lv.dense.n_cols)
                    torch.mm(delta, self._dense_sources(lv, h).t(), out=out)
                continue
            w = values[lv.k0 : lv.k1]
            if c.kernels == "csr":
                at = self._csr(
                    lv.t_crow, lv.t_col, w.index_select(0, lv.t_order), (lv.start, lv.rows)
                )
                g[: lv.start].addmm_(at, delta)
                if weight_grads:
                    pattern = self._csr(lv.crow, lv.col, lv.zero_values, (lv.rows, lv.start))
                    sampled = torch.sparse.sampled_addmm(pattern, delta, h[: lv.start].T, beta=0.0)
                    grad_entries[lv.k0 : lv.k1] = sampled.values()
            else:
                self._index_add_product(g, lv.src, delta, lv.row, w)
                if weight_grads:
                    self.edge_grads(delta, h, lv.row, lv.src, grad_entries[lv.k0 : lv.k1])
        if weight_grads and host is not None:
            out = grad_entries.numpy()
            for run in c.host_runs:
                host_levels.run_edge_grads(
                    run, host[0], host[1], out[run.k0 : run.k1], self.host_chunk_elements
                )
        return g

    @torch.no_grad()
    def candidate_edge_grads(
        self,
        compiled: CompiledTorchPlan,
        weight: torch.Tensor,
        bias: torch.Tensor,
        cache: ForwardCache,
        grad_out: torch.Tensor,
        src: np.ndarray,
        dst: np.ndarray,
    ) -> torch.Tensor:
        """``out[k] = dL/dz[dst[k]] . h[src[k]]`` for edges ``src -> dst`` that do not exist
        (topological positions), in chunks of ``edge_chunk_elements`` values."""
        del weight, bias
        g = self.node_deltas(compiled, cache, grad_out)
        rows, cols = self._index(dst), self._index(src)
        out = torch.empty(rows.shape[0], dtype=g.dtype, device=g.device)
        return self.edge_grads(g, cache.h, rows, cols, out)

    # -- optimizers ------------------------------------------------------------------
    def sgd_step(self, param: torch.Tensor, grad: torch.Tensor, lr: float) -> torch.Tensor:
        # out of place: a forward cache may view the old weights (dense blocks)
        return torch.add(param, grad, alpha=-float(lr))

    def adam_step(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        m: torch.Tensor,
        v: torch.Tensor,
        step: int,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m.mul_(beta1).add_(grad * (1 - beta1))
        v.mul_(beta2).add_(grad * (1 - beta2) * grad)
        m_hat = m / (1 - beta1**step)
        v_hat = v / (1 - beta2**step)
        param = param - m_hat.mul_(lr) / v_hat.sqrt_().add_(eps)  # out of place, as sgd_step
        return param, m, v

    # -- embeddings ------------------------------------------------------------------
    def gather_rows(self, table: torch.Tensor, index: np.ndarray) -> torch.Tensor:
        return table.index_select(0, self._index(index))

    def scatter_add_rows(
        self, table: torch.Tensor, index: np.ndarray, rows: torch.Tensor
    ) -> torch.Tensor:
        return table.index_add_(0, self._index(index), rows.to(table.dtype))


@attrs.frozen(eq=False)
class _EntryLayout:
    """Where every edge's weight sits among a compiled plan's entries (host arrays).

    Entries ``0:num_sparse`` belong to the sparse levels, in level order (a csr level's
    in (row, source) order, multi-edges merged; other levels' one per edge, plan order);
    dense levels' cells follow. ``entry_*`` describe the sparse entries; ``value_index``
    is the weight of each (for a merged entry, that of its first edge) and the
    ``dup_*`` pairs add the further edges of merged entries.
    """

    k0: np.ndarray  # [L] first entry of each level
    k1: np.ndarray
    num_entries: int
    edge_entry: np.ndarray  # [E] plan-ordered edge -> its entry
    entry_src: np.ndarray  # [S] source position
    entry_dst: np.ndarray  # [S] destination position
    value_index: np.ndarray  # [S]
    dup_entry: np.ndarray
    dup_weight_index: np.ndarray


def _entry_layout(
    plan: ExecutionPlan,
    level_edges: np.ndarray,
    is_dense: np.ndarray,
    merged: np.ndarray,
    dense: list[DenseLayout | None],
) -> _EntryLayout:
    """Vectorized over all edges: the merge of the csr levels' multi-edges is one sort of
    (destination, source) keys, whatever the number of levels (none at all when every
    row already lists distinct sources in ascending order)."""
    n_levels, n = plan.num_levels, plan.num_nodes
    src, order = np.asarray(plan.edge_src, dtype=np.int64), plan.edge_order
    dst = np.repeat(np.arange(n, dtype=np.int64), np.diff(plan.indptr))  # plan order: by dst
    edge_entry = np.empty(plan.num_edges, dtype=np.int64)
    sparse = ~is_dense & (level_edges > 0)
    count = np.where(sparse, level_edges, 0)
    every = bool(merged[level_edges > 0].all())  # every edge in a merged (csr) level
    edge_level = None if every else np.repeat(np.arange(n_levels), level_edges)
    m_edges = None if every else np.flatnonzero(merged[edge_level])  # None: all of them
    m_dst = dst if every else dst[m_edges]
    m_src = src if every else src[m_edges]
    if every:
        del dst  # no edge outside the merged levels needs it
    if m_dst.shape[0]:
        new = np.ones(m_dst.shape[0], dtype=bool)
        np.logical_or(m_dst[1:] != m_dst[:-1], m_src[1:] > m_src[:-1], out=new[1:])
        perm = None
        if not new.all():  # some row is unsorted or repeats a source: sort by (dst, src)
            # one sort of 64-bit (dst, src) keys (NumPy's SIMD sort: about half the time of
            # two radix passes and their gathers); equal keys may come in any order, as a
            # merged entry sums all its edges
            key = (m_dst << 32) | m_src
            perm = np.argsort(key)
            key = key[perm]
            m_dst, m_src = key >> 32, key & 0xFFFFFFFF
            np.not_equal(key[1:], key[:-1], out=new[1:])
            del key
        se = perm if every else (m_edges if perm is None else m_edges[perm])  # sorted edges
        group = np.cumsum(new) - 1
        first = np.flatnonzero(new)  # the first edge (plan order) of each merged entry
        reps = first if se is None else se[first]
        if every:  # sorted edges keep level order: count entries at the level boundaries
            last = plan.edge_offsets[1:] - 1  # each level's last edge (-1: none before)
            through = np.where(last >= 0, group[np.maximum(last, 0)] + 1, 0)
            per_level = np.diff(through, prepend=0)
        else:
            per_level = np.bincount(edge_level[reps], minlength=n_levels)
        count[merged] = per_level[merged]
    k_sparse = np.zeros(n_levels + 1, dtype=np.int64)
    np.cumsum(count, out=k_sparse[1:])
    num_sparse = int(k_sparse[-1])
    entry_src = np.empty(num_sparse, dtype=np.int64)
    entry_dst = np.empty(num_sparse, dtype=np.int64)
    value_index = np.empty(num_sparse, dtype=order.dtype)
    plain = np.zeros(0, dtype=np.int64) if every else np.flatnonzero((sparse & ~merged)[edge_level])
    if plain.shape[0]:  # one entry per edge, plan order
        lv = edge_level[plain]
        entry = k_sparse[lv] + plain - plan.edge_offsets[lv]
        edge_entry[plain] = entry
        entry_src[entry], entry_dst[entry], value_index[entry] = (
            src[plain],
            dst[plain],
            order[plain],
        )
    dup_entry = dup_weight = np.zeros(0, dtype=np.int64)
    if m_dst.shape[0]:
        first_group = np.zeros(n_levels + 1, dtype=np.int64)
        np.cumsum(per_level, out=first_group[1:])
        shift = k_sparse - first_group  # entries of earlier non-merged levels
        g_entry = group if not shift.any() else group + shift[edge_level[reps]][group]
        del edge_level
        entries = g_entry[first]
        if se is None:
            edge_entry[:] = g_entry
        else:
            edge_entry[se] = g_entry
        entry_src[entries], entry_dst[entries] = m_src[first], m_dst[first]
        value_index[entries] = order[reps]
        if first.shape[0] < new.shape[0]:
            extra = ~new
            dup_entry = g_entry[extra]
            dup_weight = order[np.flatnonzero(extra) if se is None else se[extra]]
    k0, k1 = k_sparse[:-1].copy(), k_sparse[1:].copy()
    at = num_sparse
    for level in np.flatnonzero(is_dense).tolist():
        d = dense[level]
        k0[level], k1[level] = at, at + d.rows * d.n_cols
        edge_entry[plan.level_edges(level)] = at + d.cells
        at = int(k1[level])
    return _EntryLayout(
        k0=k0,
        k1=k1,
        num_entries=at,
        edge_entry=edge_entry,
        entry_src=entry_src,
        entry_dst=entry_dst,
        value_index=value_index,
        dup_entry=dup_entry,
        dup_weight_index=dup_weight,
    )


def _csr_fields(lay: _EntryLayout, lo: int, hi: int, k0: int, k1: int, idx) -> dict[str, Any]:
    """Row pointers of one csr level and its transpose ``A_l^T`` (rows: positions
    ``0:lo``), whose entries are the level's sorted by source (radix sort, stable, so
    the rows stay ascending within a source)."""
    rows = hi - lo
    e_row = lay.entry_dst[k0:k1] - lo
    e_col = lay.entry_src[k0:k1]
    crow = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(e_row, minlength=rows), out=crow[1:])
    t_order = stable_argsort(e_col, lo)
    t_crow = np.zeros(lo + 1, dtype=np.int64)
    np.cumsum(np.bincount(e_col, minlength=lo), out=t_crow[1:])
    return {
        "crow": idx(crow),
        "t_crow": idx(t_crow),
        "t_col": idx(e_row[t_order]),
        "t_order": idx(t_order),
    }


def _host_run(plan: ExecutionPlan, run: tuple[HostLevel, ...], lay: _EntryLayout, min_block: int):
    """A :class:`HostRun` of consecutive host levels, its edges grouped for the fused
    weight-gradient pass (a host level's entries are its edges, plan order)."""
    lo, hi = run[0].start, run[-1].stop
    indptr = plan.indptr[lo : hi + 1] - plan.indptr[lo]
    src = lay.entry_src[run[0].k0 : run[-1].k1].astype(np.intp)
    return host_levels.make_run(run, host_levels.edge_groups(indptr, src, min_block))


def _rows(state: torch.Tensor, rng: tuple[int, int] | None, index: torch.Tensor) -> torch.Tensor:
    """``state[index]``, as a slice when ``index`` is the range ``rng``."""
    return state[rng[0] : rng[1]] if rng is not None else state.index_select(0, index)


def _quiet_sparse_beta_warning() -> None:
    """Torch warns once per process that sparse CSR is beta; say it here, silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = torch.ones(1)
        torch.sparse_csr_tensor(
            torch.tensor([0, 1]), torch.tensor([0]), one, size=(1, 1), check_invariants=False
        )
