"""The JAX backend: per-level gather + segment-sum kernels under ``jax.jit``.

Same semantics as the NumPy reference (``h = act(bias + sum w * h_src + x_ext)``, input
nodes without bias, activation derivatives taken from outputs, gradients returned and
never accumulated), with immutable arrays: every method returns new arrays.

**Kernels.** The state is node-major, ``H[N, B]`` in the plan's topological order, so a
level is a contiguous block. Each level's incoming edges form a sparse matrix (rows: the
level's nodes), stored as a padded table of ``width`` slots per row: per slot, one fused
gather-multiply-add ``acc += w[:, None] * H[src]`` over ``[rows, B]`` (no ``E x B``
temporary); rows with more than ``width`` edges are split into virtual rows that a sorted
``jax.ops.segment_sum`` merges back. ``width`` is chosen per level by a small cost model
(padding vs. merging). ``JaxBackend(kernel="segment")`` forces width 1: the plain gather +
``segment_sum`` over every edge, which materialises the level's ``E_l x B`` product
because XLA does not fuse a gather into a scatter.

**Dense blocks.** :class:`JaxBackend` is a :class:`grapheme_core.dense.DensePolicy`: a
level dense enough by :meth:`~grapheme_core.dense.DensePolicy.dense_layout` (a fully
connected layer, say) runs as ``H[l] += W_l @ H[cols]`` with ``jnp.dot``, its backward as
``G[cols] += W_l^T @ delta`` and ``dW_l = delta @ H[cols]^T``; ``W_l`` is a slice of the
weight vector when the layer's edges were added row by row (else a scatter of its
weights into the cells, multi-edges summed), ``H[cols]`` a slice when the sources are one
range. Tune it as on the other backends (``backend.dense_threshold = 2.0`` turns it off).

**Backward** (hand-written; ``jax.vjp`` of the forward measured 2.6x slower with 2.6x
the compile time, see below): reverse over levels; ``dL/dz = dL/dh * act'`` from the
outputs; weight gradients ``dW_e = sum_b dL/dz[dst_e] * H[src_e]`` per slot (a fused
gather-multiply, then the batch sum as a GEMV); bias gradients are row sums of
``dL/dz`` (zero for inputs); input gradients are ``dL/dz`` of the input nodes. How
``dL/dz`` of a level reaches its sources depends on the level's size:

* *push* (levels with at most ``push_edges`` = 3072 incoming edges, and dense levels):
  right after its ``dL/dz`` is final, the level scatter-adds ``w * dL/dz`` into its
  sources' rows through its own incoming table (or one transposed GEMM). Per level this
  is a handful of small XLA operations and no transposed table at all, which is what a
  deep graph of small levels needs: its backward was 2x faster than in pull form and its
  compile 2-3x faster (one table per level instead of two, no heavy-tailed fan-out
  tables to pad).
* *pull* (larger levels): a level's ``dL/dh`` is its external gradient plus its
  out-edges gathering the (already final) ``dL/dz`` of the later pull levels, through
  padded tables built from the source-sorted (transposed) edges: no scatter, which XLA
  runs serially (on the 1M-edge graph pushing measured 2.4x slower than pulling).

An edge is handled by the mode of its destination level, so the two mix freely. A level
keeps its mode across edits while its edge count stays within a factor of two of
``push_edges``, so that edits near the threshold do not flip it and recompile. As in
the reference, it is the gradient of the forward pass that made the cache (the cache
keeps that pass's weights).

**Compilation.** :meth:`JaxBackend.compile` builds the tables on the host (vectorised
NumPy, a loop over levels only) and returns a :class:`JaxCompiledPlan` holding one
``jax.jit`` forward and one backward function closed over the plan's static structure;
the index arrays travel as arguments (device arrays, int32), not HLO constants. XLA
compiles on the first call per batch size and dtype; ``JaxCompiledPlan.traces`` counts
the traces. Parameter updates never retrace; a structural edit makes a new plan, whose
programs are reused when its static structure (group shapes, which grow geometrically
and never shrink, node count, padding) equals an earlier plan's. Consecutive levels of
similar shape and one backward mode are padded to one shape and run by a single
``lax.scan`` (rows past a level are masked; each group's table weights are gathered once
before its scan), so trace and compile time grow with the number of distinct level
shapes, not with depth: the bench's deep graphs of 513 to 10,001 levels are each one or
two scans, and their first training step (host tables, trace, XLA compile of forward,
backward and the optimizer kernels) took 1.5-3.0 s on a shared 2-core machine at load
average 5-7 (``grapheme-train bench --backend jax --regime deep``; 2.5-2.9 s before this
layout, at load 1.3).
Input and output rows, and the weight-gradient table, are sliced instead of gathered
when they are ranges (which key of the index holds them is part of the static
structure).

**float64.** Constructing a :class:`JaxBackend` calls
``jax.config.update("jax_enable_x64", True)``, which is process-wide (it affects all JAX
code in the process); without it "float64" arrays would silently be float32. Every array
this backend creates has an explicit dtype, so float32 models stay float32.

**Measured** (float32, 256 inputs + 8 levels x 4096 tanh nodes, 32 random incoming edges
each from all earlier nodes = 1,048,576 edges, batch 64; numpy, jax and jax-segment in
one process, interleaved, 30 runs, median (min); compile ranges over two such runs; a
shared 2-core Xeon with load average 3.4-4.6 from other jobs, so absolute figures are
noisy, and a second run gave jax 22.9/69.5 ms against numpy 26.8/42.8 ms; jax 0.10.2 on
CPU, no GPU available to measure):

============  ==============  ==============  ==============================
backend       forward         backward        compile
============  ==============  ==============  ==============================
jax           15.9 (11.3) ms  56.6 (51.5) ms  tables 0.4-0.9 s; XLA on first
                                              call: forward 0.6-0.9 s,
                                              backward 1.3-2.4 s
jax-segment   43.5 (35.2) ms  108 (96.5) ms   tables 0.4-0.5 s; XLA forward
                                              0.5-1.1 s, backward 0.8-1.5 s
numpy (ref.)  24.5 (20.7) ms  41.4 (39.7) ms  none
============  ==============  ==============  ==============================

Backward above is the kernel alone (weight, bias and input gradients). The regimes of
``grapheme-train bench --regime`` (deep, dense, edit loop) are measured in
``docs/performance.md`` (section "The jax backend in these regimes"): for instance the
512-level graph's training step at 2.2x the 8-level one's (was 4.4x), and the dense model
at 0.40-0.61x of the step time of the version before dense blocks and the push
backward (both run in one process). An earlier
version of this backend measured the ``jax.vjp`` backward at 408 ms against 155 ms for
the hand-written one (compile 7.8 s against 3.0 s), which is why only the latter ships.
Tiny graphs pay JAX's per-call dispatch (about 50 us per kernel call here), so the NumPy
backend is faster below a few thousand edges. A growing graph recompiles per structural
edit (the new plan, and the elementwise optimizer kernels for the new parameter sizes).

**Bookkeeping on the host.** An eager JAX operation compiles a small XLA program for
every new shape, and model bookkeeping meets many shapes (each edit changes the
parameter count; a test suite builds hundreds of graphs). So ``take`` and ``concat``
(edits) run in NumPy for arrays up to 16M elements and put the result on the device
once; ``add``, ``scale``, ``sum_squares``, ``zeros``, the embedding row gather/scatter
and the padding of a batch to its bucket (and the slice back) do the same for arrays
up to 65,536 elements until a shape has been seen 64 times, after which that shape
takes the eager device operation (compiled once; a ``device_put`` costs more per call
than a compiled operation, so a training loop gets the device path after its first
steps). Both paths give the same values and dtype and never alias their inputs. In the
jax column of the conformance matrix this took the XLA compiles from 1,688 log entries
(about 1,190 of them eager operations) to 508 (12 eager).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from grapheme_core.backend import API_VERSION
from grapheme_core.dense import DenseLayout, DensePolicy
from grapheme_core.graph_algorithms import stable_argsort
from grapheme_core.plan import ExecutionPlan
from grapheme_core.types import LEAKY_SLOPE, Activation

_DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
_NP_DTYPES = {"float32": np.float32, "float64": np.float64}
_KERNELS = ("auto", "segment")
#: slots per ``lax.scan`` iteration in the padded kernels
_UNROLL = 4
# Cost model (unit: one gathered slot, i.e. one edge times the batch) for choosing table
# widths and for grouping levels into one ``lax.scan``:
_SPLIT_COST = 4  # merging one split row back (its share of the segment-sum)
_MERGE_COST = 256  # the fixed cost of that segment-sum
_SLOT_COST = 32  # one scan step over slots
_ROW_COST = 2  # the elementwise work of one node row
_LEVEL_COST = 2048  # the fixed cost of one level
_PAD_RATIO = 1.5  # a level group may do at most this much more work than its levels
#: tables with at most this many gathered elements (slots x batch) skip the per-slot loop
_SMALL = 1 << 14
#: levels with at most this many incoming edges push their gradient to their sources in
#: the backward (a scatter-add through the incoming table); larger levels are pulled by
#: their sources (a gather through the transposed table, no scatter)
_PUSH_EDGES = 3072


# Eager JAX operations compile one small XLA program per new shape (about 10-30 ms
# each here), and the graphs of a test suite or of a model grown edit by edit rarely
# repeat a shape. So the protocol's bookkeeping runs on the host (NumPy) and puts its
# result on the device once, for arrays up to these sizes (in elements):
#: ``take``/``concat`` (structural edits, never per step): a host round trip of 1M
#: floats costs about a millisecond, far less than a compile
_HOST_EDIT = 1 << 24
#: ``add``/``scale``/``sum_squares``/``zeros``, embedding rows and the batch padding and
#: slicing of ``forward``/``backward`` (every step): larger arrays keep their eager device
#: operation, whose program is compiled once for the fixed shapes of a training run
_HOST_STEP = 1 << 16
#: ... and a shape seen this often by one of those per-step operations goes to the device
#: too: the host path costs some 20-60 us a call more than a compiled eager operation (a
#: ``device_put``), so a training loop repeating its shapes soon earns back the compile
#: (64 host calls cost less than one compile; the conformance suite's cases stay below)
_WARM = 64
#: most compiled programs kept per backend (least recently used dropped first)
_PROGRAM_CACHE = 8


def _bucket(n: int, bits: int) -> int:
    """``n`` rounded up to a multiple of ``2**(bit_length(n) - bits)``: a geometric ladder
    (at most ``2**(1 - bits)`` relative padding) so that small changes of a size keep the
    same compiled shape."""
    if n <= 1 << bits:
        return n
    step = 1 << (int(n).bit_length() - bits)
    return -(-n // step) * step


class _Warmth:
    """Counts the calls of an eager operation per (operation, shapes, dtype) key, to say
    when it should leave the host path (see ``_HOST_STEP`` and ``_WARM``)."""

    def __init__(self) -> None:
        self._seen: dict[tuple, int] = {}

    def on_host(self, *key: Any, size: int) -> bool:
        """Whether this call of an operation on ``size`` elements runs on the host."""
        if size > _HOST_STEP:
            return False
        count = self._seen.get(key, 0)
        if count >= _WARM:
            return False
        if len(self._seen) > 4096:  # many unrelated shapes: forget (costs host calls only)
            self._seen.clear()
        self._seen[key] = count + 1
        return True


def _pad_rows(warmth: _Warmth, a: jax.Array, rows: int) -> jax.Array:
    """``a`` ``[B, ...]`` with zero rows appended up to ``rows`` (a batch bucket)."""
    batch = a.shape[0]
    if batch == rows:
        return a
    widths = ((0, rows - batch), *[(0, 0)] * (a.ndim - 1))
    if warmth.on_host("pad", a.shape, rows, a.dtype, size=a.size):
        return _put(np.pad(np.asarray(a), widths))
    return jnp.pad(a, widths)


def _first_rows(warmth: _Warmth, a: jax.Array, rows: int) -> jax.Array:
    """``a[:rows]``."""
    if a.shape[0] == rows:
        return a
    if warmth.on_host("slice", a.shape, rows, a.dtype, size=a.size):
        return _put(np.asarray(a)[:rows])
    return a[:rows]


def batch_bucket(batch: int) -> int:
    """The padded batch size a program is compiled for: 1, 2, 3, 4, then steps of 1/4 of
    the power of two below (5..8 -> 6 or 8, 33..40 -> 40, 65..80 -> 80, ...)."""
    return _bucket(int(batch), 2)


# -- elementwise math (the NumPy reference's formulas) ------------------------------------
def _activate(code: int, z: jax.Array) -> jax.Array:
    act = Activation(code)
    if act is Activation.RELU:
        return jnp.maximum(z, 0)
    if act is Activation.LEAKY_RELU:
        return jnp.where(z > 0, z, z * LEAKY_SLOPE)
    if act is Activation.SIGMOID:
        e = jnp.exp(-jnp.abs(z))  # 1/(1+exp(-z)) without overflow for large |z|
        return jnp.where(z >= 0, 1.0, e) / (1.0 + e)
    if act is Activation.TANH:
        return jnp.tanh(z)
    return z


def _activation_grad(code: int, h: jax.Array) -> jax.Array | None:
    """``act'(z)`` expressed through the output ``h = act(z)``; ``None`` means 1."""
    act = Activation(code)
    if act is Activation.LINEAR:
        return None
    if act is Activation.RELU:
        return (h > 0).astype(h.dtype)
    if act is Activation.LEAKY_RELU:
        return jnp.where(h > 0, 1.0, LEAKY_SLOPE).astype(h.dtype)
    if act is Activation.SIGMOID:
        return h * (1 - h)
    return 1 - h * h  # tanh


def _apply_activations(codes: tuple[int, ...], code_of_row: jax.Array, z: jax.Array) -> jax.Array:
    if len(codes) == 1:
        return _activate(codes[0], z)
    out = z
    for code in codes:
        out = jnp.where((code_of_row == code)[:, None], _activate(code, z), out)
    return out


def _times_activation_grad(
    codes: tuple[int, ...], code_of_row: jax.Array, h: jax.Array, g: jax.Array
) -> jax.Array:
    if len(codes) == 1:
        d = _activation_grad(codes[0], h)
        return g if d is None else g * d
    d = jnp.ones_like(h)
    for code in codes:
        dc = _activation_grad(code, h)
        if dc is not None:
            d = jnp.where((code_of_row == code)[:, None], dc, d)
    return g * d


# -- padded (ELL) tables, host side ----------------------------------------------------------
@attrs.frozen(eq=False)
class _LevelTable:
    """One level's sparse matrix (rows: the level's nodes) as ``width`` slots per virtual row.

    A row with more than ``width`` entries is split into several virtual rows, merged back
    by a sorted segment-sum; ``split`` says whether any row was split (otherwise virtual
    row ``r`` is row ``r``). Entry ``k`` sits at slot ``slot[k]`` of virtual row ``vrow[k]``.
    """

    width: int
    rows: int  # virtual rows
    split: bool
    owner: np.ndarray  # [rows] virtual row -> row
    cols: np.ndarray  # [nnz] column (a node position) per entry
    weights: np.ndarray  # [nnz] weight index per entry
    slot: np.ndarray
    vrow: np.ndarray

    @property
    def slots(self) -> int:
        return self.width * self.rows


def _choose_width(degree: np.ndarray, kernel: str) -> int:
    """Slots per virtual row minimising padded slots + split merges + scan steps."""
    if kernel == "segment":
        return 1
    max_deg = int(degree.max())
    if max_deg <= _UNROLL:  # tiny rows (deep, narrow graphs): padding is cheaper than merging
        return max_deg
    candidates = {max_deg} | {1 << k for k in range(max_deg.bit_length()) if 1 << k < max_deg}
    best, best_cost = 1, None
    for width in sorted(candidates):
        if width >= max_deg:
            cost = degree.shape[0] * width
        else:
            virtual = int(np.sum(-(-degree // width)))
            cost = virtual * width + _SPLIT_COST * virtual + _MERGE_COST
        cost += _SLOT_COST * width
        if best_cost is None or cost < best_cost:
            best, best_cost = width, cost
    return best


def _level_table(
    ptr: np.ndarray, cols: np.ndarray, weights: np.ndarray, kernel: str
) -> _LevelTable | None:
    """CSR rows (``ptr`` from 0; entries sorted by row) -> a padded table."""
    if cols.shape[0] == 0:
        return None
    n_rows = ptr.shape[0] - 1
    degree = np.diff(ptr)
    width = _choose_width(degree, kernel)
    row = np.repeat(np.arange(n_rows), degree)
    local = np.arange(cols.shape[0]) - ptr[row]
    if width < int(degree.max()):
        per_row = -(-degree // width)
        vstart = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(per_row, out=vstart[1:])
        vrow = vstart[row] + local // width
        owner = np.repeat(np.arange(n_rows), per_row)
        return _LevelTable(width, int(vstart[-1]), True, owner, cols, weights, local % width, vrow)
    owner = np.arange(n_rows)
    width = _bucket(width, 3)  # capacity: a few more edges per row keep the shape
    return _LevelTable(width, n_rows, False, owner, cols, weights, local, row)


@attrs.frozen
class _Shape:
    """The padded table shape shared by a group of levels."""

    width: int
    rows: int
    split: bool

    @property
    def slots(self) -> int:
        return self.width * self.rows

    @staticmethod
    def cover(tables: list[_LevelTable | None], n_rows: int) -> _Shape | None:
        """The smallest shape holding every table of levels with at most ``n_rows`` nodes."""
        present = [t for t in tables if t is not None]
        if not present:
            return None
        split = any(t.split for t in present)
        rows = _bucket(max(t.rows for t in present), 5) if split else n_rows
        return _Shape(max(t.width for t in present), rows, split)


@attrs.frozen
class _Dense:
    """The static shape of a level run as a dense ``[rows, cols]`` matrix product (see
    :mod:`grapheme_core.dense`): the cells and columns travel as data."""

    rows: int
    cols: int
    contiguous: bool  # the columns are one range of positions: a slice, not a gather
    identity: bool  # the level's plan-ordered weights are the matrix, row-major

    @staticmethod
    def of(layout: DenseLayout) -> _Dense:
        return _Dense(layout.rows, layout.n_cols, layout.contiguous, layout.identity)


@attrs.frozen
class _Group:
    """Consecutive levels run by one ``lax.scan`` (or inline when ``count == 1``), every
    level padded to ``rows`` node rows and to the group's table shapes."""

    first: int  # first level
    count: int
    rows: int
    lo: int  # unused (0): level offsets travel as data, so edits keep the program
    masked: bool  # some level has fewer than ``rows`` nodes
    push: bool  # the backward scatters dL/dz through ``incoming`` (else sources pull it)
    codes: tuple[int, ...]  # activation codes present
    incoming: _Shape | None  # rows: the level's nodes; columns: source positions
    outgoing: _Shape | None  # rows: the level's nodes; columns: destination positions
    dense: _Dense | None = None  # a single level whose incoming edges are a dense matrix


class _Run:
    """Running padded and actual cost of a group of consecutive levels (O(1) per level)."""

    def __init__(self) -> None:
        self.count = self.actual = self.rows = 0
        self.shapes: list[tuple[int, int, bool, int]] = [(0, 0, False, 0), (0, 0, False, 0)]

    @staticmethod
    def _table_cost(width: int, rows: int, split: bool) -> int:
        return width * rows + (_SPLIT_COST * rows + _MERGE_COST if split else 0)

    def extended(self, rows: int, tables: tuple[_LevelTable | None, ...]) -> _Run:
        run = _Run()
        run.count, run.rows = self.count + 1, max(self.rows, rows)
        run.actual = self.actual + _ROW_COST * rows + _LEVEL_COST
        run.shapes = []
        for (width, vrows, split, present), t in zip(self.shapes, tables, strict=True):
            if t is not None:
                run.actual += self._table_cost(t.width, t.rows, t.split)
                width, vrows = max(width, t.width), max(vrows, t.rows)
                split, present = split or t.split, 1
            run.shapes.append((width, vrows, split, present))
        return run

    def padded(self) -> int:
        cost = _ROW_COST * self.rows + _LEVEL_COST
        for width, vrows, split, present in self.shapes:
            if present:  # an unsplit table has one virtual row per node row
                cost += self._table_cost(width, vrows if split else self.rows, split)
        return cost * self.count


def _group_levels(rows, ins, outs, push, dense) -> list[tuple[int, int]]:
    """Greedy runs ``(first, count)`` of levels of one backward mode (``push``) whose
    padding stays within ``_PAD_RATIO``; a dense level is a run of its own, and so is the
    first level (the inputs: no incoming edges, often far wider than the levels above,
    whose tables would all be padded to its rows)."""
    runs: list[tuple[int, int]] = []
    first, run = 0, _Run()
    for lv in range(len(rows)):
        longer = run.extended(rows[lv], (ins[lv], outs[lv]))
        if run.count and (
            push[lv] != push[first]
            or dense[lv] is not None
            or dense[first] is not None
            or lv == 1
            or longer.padded() > _PAD_RATIO * longer.actual
        ):
            runs.append((first, run.count))
            first, longer = lv, _Run().extended(rows[lv], (ins[lv], outs[lv]))
        run = longer
    if run.count:
        runs.append((first, run.count))
    return runs


def _pack(
    tables: list[_LevelTable | None], shape: _Shape, n_rows: int, pad_weight: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray | None]]:
    """Stack a group's tables as ``[count, width, rows]`` (cols, weight indices), owners
    ``[count, rows]``, and each entry's flat slot position within its level's block."""
    count = len(tables)
    cols = np.zeros((count, shape.width * shape.rows), dtype=np.int64)
    weights = np.full((count, shape.width * shape.rows), pad_weight, dtype=np.int64)
    owner = np.full((count, shape.rows), n_rows - 1, dtype=np.int64)
    flats: list[np.ndarray | None] = []
    for j, t in enumerate(tables):
        if t is None:
            flats.append(None)
            continue
        flat = t.slot * shape.rows + t.vrow
        cols[j, flat] = t.cols
        weights[j, flat] = t.weights
        owner[j, : t.rows] = t.owner
        flats.append(flat)
    shape3 = (count, shape.width, shape.rows)
    return cols.reshape(shape3), weights.reshape(shape3), owner, flats


# -- the compiled plan ------------------------------------------------------------------------
@attrs.frozen(eq=False)
class JaxCompiledPlan:
    """A plan turned into jitted kernels; the index arrays live on the device.

    ``traces`` counts how often the forward and backward functions were traced: once per
    input shape and dtype for this plan (a structural edit makes a new plan).
    """

    plan: ExecutionPlan
    dtype: str
    index: dict[str, jax.Array]
    forward_fn: Callable[..., Any]
    backward_fn: Callable[..., Any]
    traces: dict[str, int]
    groups: tuple[_Group, ...]

    @property
    def levels(self) -> tuple[_Group, ...]:
        """The group that runs each level of the plan, in level order (``.dense`` says
        whether it is a dense matrix product)."""
        return tuple(g for g in self.groups for _ in range(g.count))


@attrs.frozen(eq=False)
class JaxForwardCache:
    h: jax.Array  # [N + padding, B] node values in topological order
    weight: jax.Array  # the weights of the forward pass that made ``h``


class JaxBackend(DensePolicy):
    """:class:`grapheme_core.backend.Backend` on JAX (see the module docstring).

    Construction turns on ``jax_enable_x64`` for the whole process (a JAX-global flag) so
    that "float64" arrays really are float64; every array this backend makes carries an
    explicit dtype, so float32 models stay float32.

    ``kernel="auto"`` picks padded tables per level; ``"segment"`` forces the plain
    one-edge-per-row gather + ``segment_sum`` (slower; kept for comparison). Per
    instance, ``push_edges`` sets which levels push their backward (see the module
    docstring) and the :class:`~grapheme_core.dense.DensePolicy` attributes which
    levels run as dense matrix products.
    """

    name = "jax"
    api_version = API_VERSION
    #: levels with at most this many incoming edges push their gradient to their sources
    #: in the backward (a scatter-add); larger ones are pulled (a gather through the
    #: transposed edges). Tune per instance: ``-1`` pulls everywhere.
    push_edges: int = _PUSH_EDGES

    def __init__(self, kernel: str = "auto") -> None:
        if kernel not in _KERNELS:
            raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
        jax.config.update("jax_enable_x64", True)
        self.kernel = kernel
        # compiled programs by static structure, shared by the plans of successive edits
        self._programs: dict[Any, Any] = {}
        self._capacity: dict[tuple, Any] = {}  # table shapes by place, grown, never shrunk
        self._warmth = _Warmth()  # which shapes the per-step eager operations repeat

    def __repr__(self) -> str:
        device = jax.devices()[0]
        return (
            f"{type(self).__name__}(name={self.name!r}, device='{device.platform}:{device.id}', "
            f"dtypes=('float32', 'float64'), kernel={self.kernel!r})"
        )

    # -- conversion ----------------------------------------------------------------
    def asarray(self, value: Any, dtype: str) -> jax.Array:
        if isinstance(value, jax.Array):
            return value if value.dtype == _DTYPES[dtype] else value.astype(_DTYPES[dtype])
        # cast on the host first (cheaper than a device cast); _put copies, so the
        # result never aliases the caller's buffer
        return _put(np.asarray(value, dtype=_NP_DTYPES[dtype]))

    def to_numpy(self, value: Any) -> np.ndarray:
        return np.array(value, copy=True)

    # Small arrays take the host path (see ``_HOST_EDIT``/``_HOST_STEP``/``_WARM``): the
    # NumPy reference's formulas, then one copy onto the device; results never alias
    # their inputs, and both paths give the same values in the same dtype.
    def zeros(self, shape: tuple[int, ...], dtype: str) -> jax.Array:
        if int(np.prod(shape)) <= _HOST_STEP:  # no compile per shape, faster dispatch
            return _put(np.zeros(shape, dtype=_NP_DTYPES[dtype]))
        return jnp.zeros(shape, dtype=_DTYPES[dtype])

    def concat(self, first: jax.Array, second: jax.Array) -> jax.Array:
        # a graph grown level by level (10,000 add_nodes calls) never repeats a shape
        if first.size + second.size <= _HOST_EDIT:
            return _put(np.concatenate([np.asarray(first), np.asarray(second)]))
        return jnp.concatenate([first, second])

    def take(self, value: jax.Array, index: np.ndarray) -> jax.Array:
        if value.size <= _HOST_EDIT:  # every removal has a new index length
            return _put(np.asarray(value)[np.asarray(index, dtype=np.int64)])
        return value[_index(index)]

    def add(self, first: jax.Array, second: jax.Array) -> jax.Array:
        key = ("add", first.shape, second.shape, first.dtype, second.dtype)
        if self._warmth.on_host(*key, size=max(first.size, second.size)):
            return _put(np.add(np.asarray(first), np.asarray(second)))
        return first + second

    def scale(self, value: jax.Array, factor: float) -> jax.Array:
        if self._warmth.on_host("scale", value.shape, value.dtype, size=value.size):
            host = np.asarray(value)
            return _put(host * host.dtype.type(factor))
        return value * float(factor)

    def sum_squares(self, value: jax.Array) -> float:
        if self._warmth.on_host("sum_squares", value.shape, value.dtype, size=value.size):
            v = np.asarray(value).ravel()
            return float(np.dot(v, v))
        v = jnp.ravel(value)
        return float(jnp.vdot(v, v))

    # -- kernels ---------------------------------------------------------------------
    def compile(self, plan: ExecutionPlan, dtype: str) -> JaxCompiledPlan:
        return _compile(
            plan,
            dtype,
            self.kernel,
            self._programs,
            self._capacity,
            self.push_edges,
            self.dense_layout,
            self.min_dense_edges,
        )

    def forward(
        self, compiled: JaxCompiledPlan, weight: jax.Array, bias: jax.Array, x: jax.Array
    ) -> tuple[jax.Array, JaxForwardCache]:
        batch = x.shape[0]
        padded = batch_bucket(batch)
        x = _pad_rows(
            self._warmth, x, padded
        )  # zero rows: the program of the batch bucket is reused
        y, h = compiled.forward_fn(compiled.index, weight, bias, x)
        return _first_rows(self._warmth, y, batch), JaxForwardCache(h, weight)

    def backward(
        self,
        compiled: JaxCompiledPlan,
        weight: jax.Array,
        bias: jax.Array,
        cache: JaxForwardCache,
        grad_out: jax.Array,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        # As in the reference, this is the gradient of the forward pass that made the
        # cache (with its weights), even if the parameters moved since.
        del weight, bias
        batch, padded = grad_out.shape[0], cache.h.shape[1]
        grad_out = _pad_rows(
            self._warmth, grad_out, padded
        )  # padded rows get zero gradient: they add nothing
        gw, gb, gx = compiled.backward_fn(compiled.index, cache.weight, cache.h, grad_out)
        return gw, gb, _first_rows(self._warmth, gx, batch)

    # -- API 1.1: gradients of candidate edges -------------------------------------------
    def candidate_edge_grads(
        self,
        compiled: JaxCompiledPlan,
        weight: jax.Array,
        bias: jax.Array,
        cache: JaxForwardCache,
        grad_out: jax.Array,
        src: np.ndarray,
        dst: np.ndarray,
    ) -> jax.Array:
        """``out[k] = dL/dz[dst[k]] . h[src[k]]`` for edges ``src -> dst`` that do not exist
        (topological positions). One jitted reverse sweep (per plan and batch size) gives
        ``dL/dz``; the candidates are padded to a power of two so that few sizes trace."""
        del weight, bias
        grad_out = _pad_rows(self._warmth, grad_out, cache.h.shape[1])  # the forward's batch bucket
        fn = _CANDIDATE_FNS.get(compiled)
        if fn is None:
            fn = jax.jit(functools.partial(_candidate_grads, compiled.groups))
            _CANDIDATE_FNS[compiled] = fn
        k = int(np.asarray(src).shape[0])
        size = 1 << max(0, (k - 1).bit_length())
        pad = np.zeros(size - k, dtype=np.int64)
        s = _put(np.concatenate([np.asarray(src, dtype=np.int64), pad]))
        d = _put(np.concatenate([np.asarray(dst, dtype=np.int64), pad]))
        return _first_rows(
            self._warmth, fn(compiled.index, cache.weight, cache.h, grad_out, s, d), k
        )

    # -- optimizers ------------------------------------------------------------------
    def sgd_step(self, param: jax.Array, grad: jax.Array, lr: float) -> jax.Array:
        return _sgd(param, grad, float(lr))

    def adam_step(
        self,
        param: jax.Array,
        grad: jax.Array,
        m: jax.Array,
        v: jax.Array,
        step: int,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        beta1, beta2 = float(beta1), float(beta2)
        c1, c2 = 1 - beta1 ** int(step), 1 - beta2 ** int(step)
        return _adam(param, grad, m, v, float(lr), beta1, beta2, float(eps), c1, c2)

    # -- embeddings ------------------------------------------------------------------
    def gather_rows(self, table: jax.Array, index: np.ndarray) -> jax.Array:
        # lookups of varying length: no compile per length
        if self._warmth.on_host("gather", table.shape, np.shape(index), size=table.size):
            return _put(np.asarray(table)[np.asarray(index, dtype=np.int64)])
        return table[_index(index)]

    def scatter_add_rows(self, table: jax.Array, index: np.ndarray, rows: jax.Array) -> jax.Array:
        key = ("scatter", table.shape, np.shape(index))
        if self._warmth.on_host(*key, size=table.size):
            out = np.array(table, copy=True)
            np.add.at(out, np.asarray(index, dtype=np.int64), np.asarray(rows, dtype=out.dtype))
            return _put(out)
        return table.at[_index(index)].add(jnp.asarray(rows, dtype=table.dtype))


def _index(index: Any) -> jax.Array:
    return _put(np.asarray(index, dtype=np.int64))


def _put(host: np.ndarray) -> jax.Array:
    """A device copy of a host array. ``jax.device_put``, not ``jnp.asarray``: in this
    JAX version the latter compiles a small XLA program per new shape (about 30 ms),
    which made growing a graph level by level cost minutes."""
    return jax.device_put(host, may_alias=False)


@jax.jit
def _sgd(param: jax.Array, grad: jax.Array, lr: float) -> jax.Array:
    return param - lr * grad


@jax.jit
def _adam(param, grad, m, v, lr, beta1, beta2, eps, c1, c2):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    return param - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), m, v


# -- building the kernels --------------------------------------------------------------------
def _stable_groups(
    capacity: dict | None, key: tuple, rows, ins, outs, push, dense
) -> list[tuple[int, int]]:
    """:func:`_group_levels`, except that the grouping last used for a graph of the same
    node and level count is kept while its padding stays within twice the usual ratio
    (a greedy grouping near its threshold would otherwise flip on small edits)."""
    old = None if capacity is None else capacity.get(("groups", *key))
    if old is not None:
        for first, count in old:
            mixed = count > 1 and (
                first == 0 or any(x is not None for x in dense[first : first + count])
            )
            if mixed or np.any(push[first : first + count] != push[first]):
                old = None
                break
            run = _Run()
            for lv in range(first, first + count):
                run = run.extended(rows[lv], (ins[lv], outs[lv]))
            if run.padded() > 2 * _PAD_RATIO * run.actual:
                old = None
                break
    runs = old if old is not None else _group_levels(rows, ins, outs, push, dense)
    if capacity is not None:
        capacity[("groups", *key)] = runs
    return runs


def _stable_modes(
    capacity: dict | None, key: tuple, level_edges: np.ndarray, limit: int
) -> np.ndarray:
    """Which levels push their backward: those with at most ``limit`` incoming edges,
    except that a level keeps the mode it had in the last plan of the same node and level
    count while its edge count stays within a factor of two of ``limit`` (both modes are
    exact; flipping back and forth would only compile new programs)."""
    push = level_edges <= limit
    if capacity is None:
        return push
    old = capacity.get(("push", *key))
    if old is not None:
        near = (level_edges > limit // 2) & (level_edges <= 2 * limit)
        push = np.where(near, old, push)
    capacity[("push", *key)] = push
    return push


def _grown(capacity: dict | None, key: tuple, shape: _Shape | None) -> _Shape | None:
    """``shape``, enlarged to the largest shape seen at ``key`` when that one holds it
    (same split mode); remembers the result. Capacity grows geometrically (the sizes are
    bucketed) and never shrinks, so edits that fit reuse the compiled program."""
    if capacity is None or shape is None:
        return shape
    old = capacity.get(key)
    if old is not None and old.split == shape.split:
        shape = _Shape(max(old.width, shape.width), max(old.rows, shape.rows), shape.split)
    if len(capacity) > 4096:  # many unrelated graphs: forget (only padding is lost)
        capacity.clear()
    capacity[key] = shape
    return shape


def _compile(
    plan: ExecutionPlan,
    dtype: str,
    kernel: str,
    programs: dict | None = None,
    capacity: dict | None = None,
    push_edges: int = _PUSH_EDGES,
    dense_layout: Callable[[ExecutionPlan, int], DenseLayout | None] | None = None,
    min_dense_edges: int = 1,
) -> JaxCompiledPlan:
    n, e = plan.num_nodes, plan.num_edges
    lo_of = plan.level_offsets
    # destination position of each (destination-sorted) edge
    edge_dst = np.repeat(np.arange(n, dtype=np.int64), np.diff(plan.indptr))
    # small levels push their gradient to their sources in the backward; the edges into
    # the other levels, sorted by source (the transposed CSR), are pulled by their sources
    level_edges = np.diff(plan.edge_offsets)
    dense: list[DenseLayout | None] = [None] * plan.num_levels
    if dense_layout is not None:
        for lv in np.flatnonzero(level_edges >= max(1, min_dense_edges)):
            dense[lv] = dense_layout(plan, int(lv))
    push = _stable_modes(capacity, (n, plan.num_levels), level_edges, push_edges)
    # dense levels push too (one transposed matrix product)
    push |= np.array([d is not None for d in dense], dtype=bool)
    if push.any():
        pulled = np.flatnonzero(np.repeat(~push, level_edges))
        pulled_src = plan.edge_src[pulled]
        by_src = pulled[stable_argsort(pulled_src, n)]
    else:
        pulled_src = plan.edge_src
        by_src = stable_argsort(pulled_src, n)
    src_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pulled_src, minlength=n), out=src_ptr[1:])

    rows, ins, outs = [], [], []
    for lv in range(plan.num_levels):
        lo, hi = int(lo_of[lv]), int(lo_of[lv + 1])
        e0, e1 = int(plan.indptr[lo]), int(plan.indptr[hi])
        t0, t1 = int(src_ptr[lo]), int(src_ptr[hi])
        sel = by_src[t0:t1]
        rows.append(hi - lo)
        ins.append(
            None
            if dense[lv] is not None
            else _level_table(
                plan.indptr[lo : hi + 1] - e0,
                plan.edge_src[e0:e1],
                plan.edge_order[e0:e1],
                kernel,
            )
        )
        outs.append(
            _level_table(src_ptr[lo : hi + 1] - t0, edge_dst[sel], plan.edge_order[sel], kernel)
        )

    per_group: list[dict[str, np.ndarray]] = []
    groups: list[_Group] = []
    grad_index = np.zeros(e, dtype=np.int64)  # weight index -> slot of the flat grad table
    grad_offset = 0
    padded_end = n
    all_codes = tuple(int(c) for c in np.unique(plan.activation))
    for first, count in _stable_groups(capacity, (n, len(rows)), rows, ins, outs, push, dense):
        layout = dense[first]
        if layout is not None:
            group, weights, arrays, cells = _dense_group(plan, first, layout, all_codes)
            grad_index[weights] = grad_offset + cells
            grad_offset += layout.rows * layout.n_cols
            groups.append(group)
            per_group.append({k: v[None] for k, v in arrays.items()})
            shape_out = _Shape.cover(outs[first : first + 1], group.rows)
            if shape_out is not None:
                cols, wts, owner, _ = _pack(outs[first : first + 1], shape_out, group.rows, e)
                per_group[-1].update(out_cols=cols, out_weights=wts, out_owner=owner)
                groups[-1] = attrs.evolve(group, outgoing=shape_out)
            continue
        n_rows = _bucket(max(rows[first : first + count]), 5)  # capacity for moved nodes
        place = (n, first, count)  # capacity never shrinks at the same place: no flapping
        if capacity is not None:
            n_rows = capacity[(*place, "rows")] = max(n_rows, capacity.get((*place, "rows"), 0))
        shape_in = _grown(
            capacity, (*place, "in"), _Shape.cover(ins[first : first + count], n_rows)
        )
        shape_out = _grown(
            capacity, (*place, "out"), _Shape.cover(outs[first : first + count], n_rows)
        )
        # static fields stable under small edits (so programs are reused): every code of
        # the plan, always masked, and the level offset passed as data (``lo`` stays 0)
        codes = all_codes
        group = _Group(
            first=first,
            count=count,
            rows=n_rows,
            lo=0,
            masked=True,
            push=bool(push[first]),
            codes=codes,
            incoming=shape_in,
            outgoing=shape_out,
        )
        groups.append(group)
        arrays = {
            "lo": lo_of[first : first + count],
            "count": np.asarray(rows[first : first + count]),
        }
        per_group.append(arrays)
        padded_end = max(padded_end, int(lo_of[first + count - 1]) + n_rows)
        if shape_in is not None:
            cols, wts, owner, flats = _pack(ins[first : first + count], shape_in, n_rows, e)
            arrays.update(in_cols=cols, in_weights=wts, in_owner=owner)
            for j, (t, flat) in enumerate(zip(ins[first : first + count], flats, strict=True)):
                if t is not None:
                    grad_index[t.weights] = grad_offset + j * shape_in.slots + flat
            grad_offset += count * shape_in.slots
        if shape_out is not None:
            cols, wts, owner, _ = _pack(outs[first : first + count], shape_out, n_rows, e)
            arrays.update(out_cols=cols, out_weights=wts, out_owner=owner)

    pad = _bucket(padded_end - n, 3)  # rows past N that padded levels may touch
    host = dict(
        order=plan.order,
        position=plan.position,
        codes=np.concatenate([plan.activation, np.zeros(pad, dtype=plan.activation.dtype)]),
    )
    # which of these are ranges travels in the index's keys (a static part of the program)
    if grad_offset != e or _range_start(grad_index) != 0:  # else the flat table is grad_w
        host["grad_index"] = grad_index
    for name, where in (("inputs", plan.input_positions), ("outputs", plan.output_positions)):
        ranged = where.shape[0] > 0 and _range_start(where) is not None
        host[f"{name}_range" if ranged else name] = where
    sizes = [a.size for a in host.values()] + [a.size for d in per_group for a in d.values()]
    itype = np.int32 if max([n + pad, e + 1, grad_offset, *sizes]) < 2**31 - 1 else np.int64

    def device(a: np.ndarray) -> jax.Array:
        return _put(np.asarray(a).astype(itype))

    index: dict[str, Any] = {k: device(v) for k, v in host.items()}
    index["groups"] = [{k: device(v) for k, v in d.items()} for d in per_group]
    index["has_bias"] = _put(plan.has_bias.astype(_NP_DTYPES[dtype]))
    frozen = tuple(groups)
    key = (frozen, n, pad)
    program = None if programs is None else programs.pop(key, None)
    if program is None:
        program = _program(frozen, n, pad)
    if programs is not None:  # most recently used last
        programs[key] = program
        while len(programs) > _PROGRAM_CACHE:
            programs.pop(next(iter(programs)))
    forward_fn, backward_fn, traces = program
    return JaxCompiledPlan(plan, dtype, index, forward_fn, backward_fn, traces, frozen)


def _dense_group(plan: ExecutionPlan, level: int, layout: DenseLayout, codes: tuple[int, ...]):
    """The group, device arrays and per-edge cells of a dense level."""
    lo = int(plan.level_offsets[level])
    edges = plan.level_edges(level)
    weights = plan.edge_order[edges]  # the level's edges, plan order
    arrays = {
        "lo": np.asarray(lo),
        "count": np.asarray(layout.rows),
        "cols": np.asarray(layout.col_start) if layout.contiguous else layout.cols,
    }
    start = _range_start(weights)
    if layout.identity and start is not None:  # the matrix is a slice of the weights
        arrays["weights_at"] = np.asarray(start)
    else:
        arrays["weights"] = weights
    if not layout.identity:
        arrays["cells"] = layout.cells
    group = _Group(
        first=level,
        count=1,
        rows=layout.rows,
        lo=0,
        masked=False,
        push=True,
        codes=codes,
        incoming=None,
        outgoing=None,
        dense=_Dense.of(layout),
    )
    return group, weights, arrays, layout.cells


def _range_start(index: np.ndarray) -> int | None:
    """``index[0]`` when ``index`` is ``index[0] + arange(len)`` (then a slice replaces a
    gather), else ``None``."""
    if index.shape[0] == 0:
        return None
    start = int(index[0])
    return start if np.array_equal(index, np.arange(start, start + index.shape[0])) else None


def _program(frozen: tuple[_Group, ...], n: int, pad: int):
    """The jitted forward and backward of one static structure, with a shared trace
    counter. Plans with the same static structure (group shapes, node count, padding)
    share them, so an edit within capacity reuses the compiled XLA programs."""
    traces = {"forward": 0, "backward": 0}

    def forward_fn(ix, weight, bias, x):
        traces["forward"] += 1
        return _forward(frozen, n, pad, ix, weight, bias, x)

    def backward_fn(ix, weight, h, grad_out):
        traces["backward"] += 1
        return _backward(frozen, n, ix, weight, h, grad_out)

    return jax.jit(forward_fn), jax.jit(backward_fn), traces


# -- the traced kernels ------------------------------------------------------------------------
def _spmm(values: jax.Array, cols: jax.Array, w: jax.Array, owner, n_rows: int) -> jax.Array:
    """``out[r] = sum_k w[k, r] * values[cols[k, r]]`` over a ``[width, rows]`` table.

    One fused gather-multiply-add over ``[rows, B]`` per slot (never an ``E x B``
    temporary; a small table is one gather and a sum), then a sorted segment-sum merges
    split rows (``owner`` not None).
    """

    def slot(acc, cw):
        c, wk = cw
        return acc + wk[:, None] * values[c], None

    width = cols.shape[0]
    if cols.size * values.shape[1] <= _SMALL:
        acc = jnp.sum(w[:, :, None] * values[cols], axis=0)
    else:
        acc = jnp.zeros((cols.shape[1], values.shape[1]), values.dtype)
        unroll = True if width <= _UNROLL else _UNROLL
        acc = jax.lax.scan(slot, acc, (cols, w), unroll=unroll)[0]
    if owner is not None:
        acc = jax.ops.segment_sum(acc, owner, num_segments=n_rows, indices_are_sorted=True)
    return acc


def _sddmm(g: jax.Array, h: jax.Array, cols: jax.Array, owner) -> jax.Array:
    """``out[k, r] = g[owner[r]] . h[cols[k, r]]`` (the weight gradients), flattened."""
    if owner is not None:
        g = g[owner]
    if cols.size * h.shape[1] <= _SMALL:  # small: one fused op beats a loop of GEMV calls
        return jnp.sum(g[None] * h[cols], axis=2).reshape(-1)
    ones = jnp.ones((h.shape[1],), h.dtype)

    def slot(carry, c):
        # a fused gather-multiply, then the batch sum as a matrix-vector product: XLA does
        # not fuse a gather into a row reduction, and its GEMV is several times faster
        return carry, jnp.matmul(g * h[c], ones, precision=jax.lax.Precision.HIGHEST)

    unroll = True if cols.shape[0] <= _UNROLL else 1
    return jax.lax.scan(slot, None, cols, unroll=unroll)[1].reshape(-1)


def _run_group(
    g: _Group, step, carry, xs: dict[str, jax.Array], wext: jax.Array, reverse: bool = False
):
    """Apply ``step(carry, level_arrays, lo) -> (carry, out)`` to each level of the group.
    The tables' weights are gathered for all levels at once first (``in_w``, ``out_w``:
    one gather per group, not one per level)."""
    xs = dict(xs)
    for side in ("in", "out"):
        if f"{side}_weights" in xs:
            xs[f"{side}_w"] = wext[xs.pop(f"{side}_weights")]
    if g.count == 1:
        one = {k: v[0] for k, v in xs.items()}
        carry, out = step(carry, one, one["lo"])
        return carry, None if out is None else out[None]
    return jax.lax.scan(lambda c, a: step(c, a, a["lo"]), carry, xs, reverse=reverse)


def _forward(groups, n, pad, ix, weight, bias, x):
    dt = weight.dtype
    wext = jnp.concatenate([weight, jnp.zeros((1,), dt)])  # index E is the padding weight 0
    base = (bias[ix["order"]] * ix["has_bias"])[:, None]
    h = jnp.broadcast_to(base, (n, x.shape[0]))
    h = _add_rows(h, ix, "inputs", x.T.astype(dt))
    h = jnp.concatenate([h, jnp.zeros((pad, x.shape[0]), dt)])
    for g, xs in zip(groups, ix["groups"], strict=True):

        def step(h, a, lo, g=g):
            old = jax.lax.dynamic_slice_in_dim(h, lo, g.rows)
            z = old
            if g.dense is not None:
                z = z + jnp.dot(_dense_matrix(g.dense, a, weight), _dense_columns(g.dense, a, h))
            if g.incoming is not None:
                owner = a["in_owner"] if g.incoming.split else None
                z = z + _spmm(h, a["in_cols"], a["in_w"], owner, g.rows)
            code_of_row = jax.lax.dynamic_slice_in_dim(ix["codes"], lo, g.rows)
            z = _apply_activations(g.codes, code_of_row, z)
            if g.masked:  # rows past the level belong to later levels: keep them
                z = jnp.where((jnp.arange(g.rows) < a["count"])[:, None], z, old)
            return jax.lax.dynamic_update_slice_in_dim(h, z, lo, axis=0), None

        h = _run_group(g, step, h, xs, wext)[0]
    return _rows(h, ix, "outputs").T, h


# The input and output positions travel as ``ix[name]``, or as ``ix[name + "_range"]``
# when they are consecutive: the key is part of the program's static structure, so the
# kernels slice such rows instead of gathering or scattering them.
def _rows(values: jax.Array, ix: dict, name: str) -> jax.Array:
    """The rows ``ix[name]`` of ``values``."""
    where = ix.get(f"{name}_range")
    if where is not None:
        return jax.lax.dynamic_slice_in_dim(values, where[0], where.shape[0])
    return values[ix[name]]


def _add_rows(values: jax.Array, ix: dict, name: str, rows: jax.Array) -> jax.Array:
    """``values`` with ``rows`` added at the (distinct) rows ``ix[name]``."""
    where = ix.get(f"{name}_range")
    if where is not None:
        old = jax.lax.dynamic_slice_in_dim(values, where[0], where.shape[0])
        return jax.lax.dynamic_update_slice_in_dim(values, old + rows, where[0], axis=0)
    return values.at[ix[name]].add(rows)


def _dense_matrix(dense: _Dense, a: dict[str, jax.Array], weight: jax.Array) -> jax.Array:
    """The level's ``[rows, cols]`` weight matrix (multi-edges summed into their cell)."""
    if "weights_at" in a:
        size = dense.rows * dense.cols
        w = jax.lax.dynamic_slice_in_dim(weight, a["weights_at"], size)
        return w.reshape(dense.rows, dense.cols)
    w = weight[a["weights"]]
    if not dense.identity:
        w = jnp.zeros((dense.rows * dense.cols,), w.dtype).at[a["cells"]].add(w)
    return w.reshape(dense.rows, dense.cols)


def _dense_columns(dense: _Dense, a: dict[str, jax.Array], values: jax.Array) -> jax.Array:
    """The ``[cols, B]`` rows of ``values`` the dense level reads."""
    if dense.contiguous:
        return jax.lax.dynamic_slice_in_dim(values, a["cols"], dense.cols)
    return values[a["cols"]]


def _dense_push(dense: _Dense, a, values: jax.Array, update: jax.Array) -> jax.Array:
    """``values`` with ``update`` ``[cols, B]`` added to the rows the dense level reads."""
    if dense.contiguous:
        old = jax.lax.dynamic_slice_in_dim(values, a["cols"], dense.cols)
        return jax.lax.dynamic_update_slice_in_dim(values, old + update, a["cols"], axis=0)
    return values.at[a["cols"]].add(update)


def _backward(groups, n, ix, weight, h, grad_out):
    d, grads = _reverse_sweep(groups, ix, weight, h, grad_out, weight_grads=True)
    dt = weight.dtype
    flat = jnp.concatenate(grads) if grads else jnp.zeros((0,), dt)
    grad_w = flat[ix["grad_index"]] if "grad_index" in ix else flat
    grad_b = (d[:n].sum(axis=1) * ix["has_bias"])[ix["position"]]
    grad_x = _rows(d, ix, "inputs").T
    return grad_w, grad_b, grad_x


def _reverse_sweep(groups, ix, weight, h, grad_out, *, weight_grads: bool):
    """The levels in reverse: ``d`` (final ``dL/dz`` of every position) and, when
    ``weight_grads``, the per-group weight gradients in forward order."""
    dt = weight.dtype
    wext = jnp.concatenate([weight, jnp.zeros((1,), dt)])
    # d: external dL/dh for rows not processed yet, final dL/dz for rows already processed
    d = _add_rows(jnp.zeros(h.shape, dt), ix, "outputs", grad_out.T.astype(dt))
    grads = []
    for g, xs in zip(reversed(groups), reversed(ix["groups"]), strict=True):

        def step(d, a, lo, g=g):
            old = jax.lax.dynamic_slice_in_dim(d, lo, g.rows)
            # dL/dh: the external gradient plus what the out-edges pull back from the
            # (already final) dL/dz of later levels; then dL/dz = dL/dh * act'.
            grad = old
            if g.outgoing is not None:
                owner = a["out_owner"] if g.outgoing.split else None
                grad = grad + _spmm(d, a["out_cols"], a["out_w"], owner, g.rows)
            code_of_row = jax.lax.dynamic_slice_in_dim(ix["codes"], lo, g.rows)
            h_level = jax.lax.dynamic_slice_in_dim(h, lo, g.rows)
            grad = _times_activation_grad(g.codes, code_of_row, h_level, grad)
            if g.masked:  # rows past the level belong to later, finished levels
                grad = jnp.where((jnp.arange(g.rows) < a["count"])[:, None], grad, old)
            d = jax.lax.dynamic_update_slice_in_dim(d, grad, lo, axis=0)
            if g.dense is not None:  # G[cols] += W^T delta; dW = delta H[cols]^T
                grad = jax.lax.dynamic_slice_in_dim(d, lo, g.rows)
                matrix = _dense_matrix(g.dense, a, weight)
                d = _dense_push(g.dense, a, d, jnp.dot(matrix.T, grad))
                if not weight_grads:
                    return d, None
                grad = jax.lax.dynamic_slice_in_dim(d, lo, g.rows)
                return d, jnp.dot(grad, _dense_columns(g.dense, a, h).T).reshape(-1)
            if g.incoming is None:
                return d, None
            # read dL/dz back from the updated ``d``: were ``grad`` used, XLA would fuse
            # its computation (which reads the old ``d``) here and copy ``d`` every level
            grad = jax.lax.dynamic_slice_in_dim(d, lo, g.rows)
            owner = a["in_owner"] if g.incoming.split else None
            if g.push:  # scatter dL/dz to the sources (earlier rows, not final yet)
                per_slot = grad if owner is None else grad[owner]
                w_in = a["in_w"]
                d = d.at[a["in_cols"]].add(w_in[:, :, None] * per_slot[None])
                # the level's rows again, from the new ``d`` (same values: sources are
                # earlier rows), so that the scatter can update ``d`` in place
                grad = jax.lax.dynamic_slice_in_dim(d, lo, g.rows)
            if not weight_grads:
                return d, None
            return d, _sddmm(grad, h, a["in_cols"], owner)

        d, out = _run_group(g, step, d, xs, wext, reverse=True)
        if out is not None:
            grads.append(out.reshape(-1))
    grads.reverse()
    return d, grads


#: jitted candidate-gradient functions per compiled plan (dropped with the plan)
_CANDIDATE_FNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _deltas(groups, ix, weight, h, grad_out):
    """``dL/dz`` of every position (``d`` of :func:`_backward`, without weight gradients)."""
    return _reverse_sweep(groups, ix, weight, h, grad_out, weight_grads=False)[0]


def _candidate_grads(groups, ix, weight, h, grad_out, src, dst):
    """Candidate-edge gradients ``sum_b d[dst] * h[src]`` in chunks of edges (a scan, so
    no ``K x B`` temporary beyond one chunk)."""
    d = _deltas(groups, ix, weight, h, grad_out)
    k = src.shape[0]
    chunk = max(1, min(k, _SMALL * 4 // max(1, h.shape[1])))
    chunk = 1 << (chunk.bit_length() - 1)  # a power of two that divides k
    ones = jnp.ones((h.shape[1],), h.dtype)

    def body(carry, sd):
        s, t = sd
        return carry, jnp.matmul(d[t] * h[s], ones, precision=jax.lax.Precision.HIGHEST)

    sd = (src.reshape(-1, chunk), dst.reshape(-1, chunk))
    return jax.lax.scan(body, None, sd)[1].reshape(-1)
