"""Cheap guards at the edges of the core: what backends return, what users hand in.

* :func:`check_result` compares the shape and dtype *attributes* of an array a backend
  returned with what the model expects (no copy, no device sync), so that a plugin's
  wrong-shaped or float16 gradient is an error naming the backend and the method
  instead of being broadcast silently into every edge's gradient.
* :func:`check_representable` refuses values that are finite in float64 but overflow the
  model's dtype (``1e300`` in a float32 model would become ``inf``).
* :func:`scaled_norm` is the L2 norm of several arrays computed without overflow.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .backend import dtype_name, to_host
from .errors import NonFiniteError, ShapeError

__all__ = ["BackendResultError", "check_finite_input", "check_representable", "check_result"]

_MAX = {"float32": float(np.finfo(np.float32).max), "float64": float(np.finfo(np.float64).max)}
_dtype_cache: dict[Any, str] = {}


class BackendResultError(ShapeError):
    """A backend returned an array of the wrong shape or dtype."""


def _name(dtype: Any) -> str:
    try:
        return _dtype_cache[dtype]
    except (KeyError, TypeError):
        name = dtype_name(dtype)
        with contextlib.suppress(TypeError):
            _dtype_cache[dtype] = name
        return name


def check_result(
    backend: Any, method: str, what: str, value: Any, shape: tuple[int, ...], dtype: str
) -> None:
    """``BackendResultError`` unless ``value`` has ``shape`` and ``dtype`` (attributes only).

    A float64 result for a float32 model loses nothing and is let through (the
    conformance suite's ``dtype.kept`` check reports it); a narrower or non-float dtype
    (float16, bfloat16, integers) is refused.
    """
    got_shape = tuple(getattr(value, "shape", ()))
    got_dtype = _name(getattr(value, "dtype", None))
    if got_shape != shape or (got_dtype != dtype and got_dtype != "float64"):
        name = getattr(backend, "name", type(backend).__name__)
        raise BackendResultError(
            f"backend {name!r}: {method}() returned {what} of shape {list(got_shape)} and dtype "
            f"{got_dtype}; expected shape {list(shape)} and dtype {dtype} (a bug in the "
            "backend plugin)"
        )


def check_finite_input(x: np.ndarray, what: str = "forward input") -> None:
    """:class:`NonFiniteError` (a ``ValueError``) if the host array ``x`` holds NaN or
    infinity (one vectorized pass)."""
    if x.dtype.kind in "fc" and not np.isfinite(x).all():
        raise NonFiniteError(f"{what} contains NaN or infinite values")


def check_representable(values: np.ndarray, dtype: str, what: str) -> None:
    """``ValueError`` if finite float64 ``values`` overflow ``dtype`` (e.g. 1e300 in float32)."""
    limit = _MAX[dtype]
    if values.size and float(np.max(np.abs(values))) > limit:
        raise ValueError(f"{what} overflow {dtype} (largest magnitude {limit:.3e})")


def scaled_norm(backend: Any, arrays: Iterable[Any]) -> float:
    """L2 norm of ``arrays`` together. Uses the backend's ``sum_squares`` and only when
    that overflows recomputes on the host in float64 with scaling by the largest
    magnitude, so the true norm comes back for gradients near the dtype's limit."""
    arrays = list(arrays)
    with np.errstate(over="ignore"):  # an overflow is handled below, not warned about
        total = sum(float(backend.sum_squares(a)) for a in arrays)
    if math.isfinite(total):
        return math.sqrt(total)
    host = [np.asarray(to_host(backend, a), dtype=np.float64).reshape(-1) for a in arrays]
    if not all(np.isfinite(h).all() for h in host):
        return math.inf
    peak = max((float(np.max(np.abs(h))) for h in host if h.size), default=0.0)
    if peak == 0.0:
        return 0.0
    return peak * math.sqrt(sum(float(np.sum(np.square(h / peak))) for h in host))
