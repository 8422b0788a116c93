"""Direct checks of the bookkeeping methods of the kernel protocol.

The model only ever calls ``concat``/``take``/``add``/``scale``/``sum_squares`` in a few
patterns (append at the end, compact with ascending indices, 1-D vectors), so a backend
can get their general contract wrong and still pass every model-level check until a new
caller appears. These checks call the methods directly, on 1-D and 2-D arrays, and
compare exactly (or, for sums, within the forward tolerance) with NumPy in float64.
Copies are checked too: what ``to_numpy`` returns must never change afterwards, whatever
the backend does in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..embedding import Embedding
from . import graphs
from .checks import EXACT, Context, check
from .tolerances import FORWARD, compare, require


def _host(ctx: Context, value: Any, dtype: str, what: str) -> np.ndarray:
    """``to_numpy(value)``, required to be an ndarray of ``dtype``."""
    out = ctx.backend.to_numpy(value)
    require(
        isinstance(out, np.ndarray) and out.dtype == np.dtype(dtype),
        f"[{dtype}] {what}: to_numpy must give a numpy array of dtype {dtype}, got "
        f"{type(out).__name__} of dtype {getattr(out, 'dtype', '?')}",
    )
    return out


def _native(b: Any, values: np.ndarray, dtype: str) -> Any:
    """A native array holding a copy of ``values`` (``asarray`` may alias NumPy input, and
    the methods under test may update their arguments in place)."""
    return b.asarray(np.array(values, dtype=np.float64), dtype)


def _values(dtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return graphs._round(rng.uniform(-2.0, 2.0, size=shape), dtype)


@check("protocol.to_numpy_copies", "to_numpy returns copies: later in-place updates never show")
def _to_numpy_copies(ctx: Context) -> None:
    b = ctx.backend
    for dtype in ctx.dtypes:
        a0 = _values(dtype, (7,), 1)
        arr = _native(b, a0, dtype)
        host = _host(ctx, arr, dtype, "to_numpy(asarray(x))")
        host[:] = 99.0  # writing into the copy must not reach the backend array
        compare(
            f"[{dtype}] backend array after writing into to_numpy's result",
            _host(ctx, arr, dtype, "to_numpy"),
            a0,
            EXACT,
        )
        seen = _host(ctx, arr, dtype, "to_numpy")
        b.add(arr, b.asarray(np.ones(7), dtype))  # may update arr in place
        compare(f"[{dtype}] an earlier to_numpy result after add() on the array", seen, a0, EXACT)
        seen = _host(ctx, arr, dtype, "to_numpy")
        before = seen.copy()
        b.scale(arr, 0.5)
        compare(f"[{dtype}] an earlier to_numpy result after scale()", seen, before, EXACT)
        # through the model: every array it hands out is the caller's to keep
        case = ctx.case("random_small", dtype)
        dag = case.dag
        params = dag.get_parameters()
        kept = {k: v.copy() for k, v in params.items()}
        y = dag.forward(case.x)
        y_kept = y.copy()
        dag.backward_accumulate(case.probe())
        grads = dag.get_gradients()
        g_kept = {k: v.copy() for k, v in grads.items()}
        dag.step(0.1)  # SGD may update parameters in place
        dag.backward_accumulate(case.probe())  # adds into the gradients in place
        dag.clip_gradients(1e-3)  # scales them in place
        for key in kept:
            compare(
                f"[{dtype}] get_parameters()[{key!r}] taken before step()",
                params[key],
                kept[key],
                EXACT,
            )
            compare(
                f"[{dtype}] get_gradients()[{key!r}] taken before more backward calls",
                grads[key],
                g_kept[key],
                EXACT,
            )
        y_now = dag.forward(case.x)
        compare(f"[{dtype}] a forward() output after another forward", y, y_kept, EXACT)
        now = dag.get_parameters()
        now["weight"][:] = 0.0  # writing into a returned copy changes nothing
        compare(
            f"[{dtype}] forward after writing into get_parameters()'s arrays",
            dag.forward(case.x),
            y_now,
            EXACT,
        )
        emb = Embedding(6, 3, backend=b, seed=1, dtype=dtype)
        table = emb.get_parameters()["table"]
        t_kept = table.copy()
        rows = emb.lookup([1, 2])
        r_kept = rows.copy()
        emb.backward([1, 2], np.ones((2, 3)))
        emb.step(0.5)
        compare(f"[{dtype}] Embedding table taken before step()", table, t_kept, EXACT)
        compare(f"[{dtype}] Embedding.lookup() result after step()", rows, r_kept, EXACT)


def _inputs_unchanged_after_add(
    ctx: Context, dtype: str, out: Any, shape: tuple[int, ...], inputs: dict[str, tuple]
) -> None:
    """Add ones to ``out`` in place (backends whose ``add`` mutates its first argument do
    so), then require every ``(native input, its original values)`` to be unchanged: the
    result must not alias its inputs."""
    b = ctx.backend
    b.add(out, b.asarray(np.ones(shape), dtype))
    for name, (native, original) in inputs.items():
        compare(
            f"[{dtype}] {name} input after an in-place add on the result",
            _host(ctx, native, dtype, "to_numpy"),
            original,
            EXACT,
        )


@check("protocol.concat", "concat joins along axis 0 in order, keeps dtype, copies its inputs")
def _concat(ctx: Context) -> None:
    b = ctx.backend
    for dtype in ctx.dtypes:
        for shape_a, shape_b in (((5,), (3,)), ((0,), (4,)), ((4,), (0,)), ((2, 3), (4, 3))):
            a0, b0 = _values(dtype, shape_a, 2), _values(dtype, shape_b, 3)
            first, second = _native(b, a0, dtype), _native(b, b0, dtype)
            out = b.concat(first, second)
            got = _host(ctx, out, dtype, f"concat of {list(shape_a)} and {list(shape_b)}")
            compare(
                f"[{dtype}] concat({list(shape_a)}, {list(shape_b)}): first then second",
                got,
                np.concatenate([a0, b0]),
                EXACT,
            )
            inputs = {"concat's first": (first, a0), "concat's second": (second, b0)}
            _inputs_unchanged_after_add(ctx, dtype, out, got.shape, inputs)


@check("protocol.take", "take returns rows in index order (unsorted, repeated, empty) as a copy")
def _take(ctx: Context) -> None:
    b = ctx.backend
    for dtype in ctx.dtypes:
        for shape in ((9,), (9, 2)):
            v0 = _values(dtype, shape, 4)
            value = _native(b, v0, dtype)
            for index in ([7, 2, 2, 0, 8], [3], [], [8, 7, 6, 5, 4, 3, 2, 1, 0]):
                idx = np.asarray(index, dtype=np.int64)
                out = b.take(value, idx)
                got = _host(ctx, out, dtype, f"take(index={index})")
                compare(f"[{dtype}] take({list(shape)} array, index={index})", got, v0[idx], EXACT)
                if idx.size:
                    _inputs_unchanged_after_add(ctx, dtype, out, got.shape, {"take's": (value, v0)})


@check("protocol.add", "add returns first + second elementwise (1-D and 2-D), keeps dtype")
def _add(ctx: Context) -> None:
    b = ctx.backend
    for dtype in ctx.dtypes:
        for shape in ((6,), (3, 4), (0,)):
            a0, b0 = _values(dtype, shape, 5), _values(dtype, shape, 6)
            second = _native(b, b0, dtype)
            out = b.add(_native(b, a0, dtype), second)
            want = (a0.astype(dtype) + b0.astype(dtype)).astype(np.float64)
            compare(
                f"[{dtype}] add of two {list(shape)} arrays",
                _host(ctx, out, dtype, "add"),
                want,
                EXACT,
            )
            compare(
                f"[{dtype}] add's second argument (must be left unchanged)",
                _host(ctx, second, dtype, "to_numpy"),
                b0,
                EXACT,
            )


@check("protocol.scale", "scale multiplies by any factor (1/3, 0.37, 0, 2.5) in the array dtype")
def _scale(ctx: Context) -> None:
    b = ctx.backend
    for dtype in ctx.dtypes:
        for shape in ((6,), (3, 4)):
            v0 = _values(dtype, shape, 7)
            for factor in (1 / 3, 0.37, 0.0, 2.5, 1.0):
                out = b.scale(_native(b, v0, dtype), factor)
                compare(
                    f"[{dtype}] scale({list(shape)} array, {factor:.6g})",
                    _host(ctx, out, dtype, "scale"),
                    v0 * factor,
                    FORWARD[dtype],
                )


@check("protocol.sum_squares", "sum_squares is the sum of squares of every entry, 1-D and 2-D")
def _sum_squares(ctx: Context) -> None:
    b = ctx.backend
    for dtype in ctx.dtypes:
        for shape in ((7,), (5, 3), (1, 4), (0,), (4, 4)):
            v0 = _values(dtype, shape, 8)
            arr = _native(b, v0, dtype)
            got = b.sum_squares(arr)
            require(
                np.ndim(got) == 0,
                f"[{dtype}] sum_squares of a {list(shape)} array must be a scalar, got "
                f"shape {list(np.shape(got))}",
            )
            compare(
                f"[{dtype}] sum_squares of a {list(shape)} array",
                float(got),
                float(np.sum(v0**2)),
                FORWARD[dtype],
            )
            compare(
                f"[{dtype}] sum_squares' argument (must be left unchanged)",
                _host(ctx, arr, dtype, "to_numpy"),
                v0,
                EXACT,
            )
