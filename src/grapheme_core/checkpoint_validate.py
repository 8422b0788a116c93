"""Checks of what a checkpoint holds, before anything is built from it.

A checksum only proves that the arrays are the ones the manifest names; a crafted file
can carry a consistent checksum over nonsense. These functions check the zip container
(exactly the documented members, stored, sizes within :mod:`grapheme_core.limits`), each
``.npy`` header (numeric dtype, sane shape) *before* the array is allocated, the
manifest's JSON (depth, types) and the kind-specific metadata and arrays (node kinds,
ids, float dtypes, optimizer names, finite moments and step counts).

Every function raises ``CheckpointError`` naming the file and the problem.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import limits
from .errors import CheckpointError
from .types import Activation, NodeKind

__all__ = [
    "MEMBERS",
    "check_container",
    "check_dagnn",
    "check_embedding",
    "check_json_depth",
    "check_npz",
    "integer",
    "number",
]

MEMBERS = ("manifest.json", "arrays.npz")
"""The members of a checkpoint zip, exactly (no more, no fewer, no duplicates)."""

_FLOATS = ("float32", "float64")
_MAX_ID = 2**62
_DAG_ARRAYS = {"node_id", "node_kind", "node_activation", "edge_id", "edge_src", "edge_dst"}
_DAG_PARAMS = {"weight", "bias"}
_DAG_MOMENTS = {"m_weight", "v_weight", "m_bias", "v_bias"}


def _fail(path: str | Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path}: {why}")


def integer(value: Any, what: str, path: str | Path, lo: int = 0, hi: int = _MAX_ID) -> int:
    """``value`` as an int in ``[lo, hi]``; a JSON float, bool or string is refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"{what} must be an integer, got {value!r:.60}")
    if not lo <= value <= hi:
        raise _fail(path, f"{what} must be between {lo} and {hi}, got {value}")
    return value


def number(value: Any, what: str, path: str | Path, lo: float = -math.inf) -> float:
    """``value`` as a finite float ``>= lo`` (ints allowed, bools and strings refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, f"{what} must be a number, got {value!r:.60}")
    if isinstance(value, int) and abs(value) > 2**1023:
        raise _fail(path, f"{what} is too large ({str(value)[:20]}...)")
    value = float(value)
    if not math.isfinite(value) or value < lo:
        raise _fail(path, f"{what} must be a finite number >= {lo}, got {value}")
    return value


def _mapping(value: Any, what: str, path: str | Path) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def check_json_depth(obj: Any, path: str | Path) -> None:
    """Refuse JSON nested deeper than the ``json_depth`` limit (iteratively: no recursion)."""
    limit = limits.get("json_depth")
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise _fail(path, f"manifest nested deeper than the limit json_depth={limit}")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def check_container(zf: zipfile.ZipFile, path: str | Path) -> None:
    """Exactly the documented members, stored (not compressed), not encrypted, within size."""
    infos = zf.infolist()
    names = [i.filename for i in infos]
    if sorted(names) != sorted(MEMBERS):
        raise _fail(path, f"not a grapheme checkpoint (members {names[:8]}, expected {MEMBERS})")
    _check_members(infos, path, "checkpoint")
    for info in infos:
        if info.filename == "manifest.json":
            limits.check("manifest_bytes", info.file_size, f"{path}: manifest.json size")


def _check_members(infos: list[zipfile.ZipInfo], path: str | Path, what: str) -> None:
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            raise _fail(
                path,
                f"{what} member {info.filename!r} uses compression method "
                f"{info.compress_type}; grapheme writes and reads stored members only",
            )
        if info.flag_bits & 0x1:
            raise _fail(path, f"{what} member {info.filename!r} is encrypted")
        if info.compress_size != info.file_size:
            raise _fail(path, f"{what} member {info.filename!r} has inconsistent sizes")
        total += info.file_size
    try:
        limits.check("checkpoint_bytes", total, f"{path}: uncompressed size of the {what}")
    except limits.LimitExceeded as exc:
        raise CheckpointError(str(exc)) from None


def check_npz(blob: bytes, path: str | Path) -> dict[str, np.ndarray]:
    """Read the arrays of ``arrays.npz`` after checking every header (no pickles, no
    object or structured dtypes, at most 2-D, element counts within the limits)."""
    with zipfile.ZipFile(io.BytesIO(blob)) as npz:
        infos = npz.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names) or not all(n.endswith(".npy") for n in names):
            raise _fail(path, "corrupted arrays (unexpected or duplicate members)")
        _check_members(infos, path, "arrays.npz")
        arrays: dict[str, np.ndarray] = {}
        for info in infos:
            with npz.open(info) as fh:
                arrays[info.filename[:-4]] = _read_npy(fh, info, path)
    return arrays


def _read_npy(fh: Any, info: zipfile.ZipInfo, path: str | Path) -> np.ndarray:
    fmt = np.lib.format
    name = info.filename
    version = fmt.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(fh, max_header_size=10_000)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = fmt.read_array_header_2_0(fh, max_header_size=10_000)
    else:
        raise _fail(path, f"array {name}: unsupported .npy version {version}")
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
        raise _fail(path, f"corrupted arrays: {name} has dtype {dtype}, not a plain number type")
    if len(shape) > 2:
        raise _fail(path, f"array {name}: {len(shape)}-D, expected at most 2-D")
    count = math.prod(shape)
    try:
        limits.check("array_elements", count, f"{path}: array {name} element count")
    except limits.LimitExceeded as exc:
        raise CheckpointError(str(exc)) from None
    nbytes = count * dtype.itemsize
    data = fh.read(nbytes + 1)
    if len(data) != nbytes:
        raise _fail(path, f"array {name}: header claims {nbytes} bytes, member holds {len(data)}")
    arr = np.frombuffer(data, dtype=dtype)
    return arr.reshape(shape, order="F" if fortran else "C")


def _float_array(arrays: Mapping[str, np.ndarray], name: str, n: int, path: str | Path) -> None:
    arr = arrays[name]
    if arr.dtype.kind != "f" or arr.dtype.name not in _FLOATS:
        raise _fail(path, f"array {name} has dtype {arr.dtype}; expected float32 or float64")
    if arr.shape != (n,):
        raise _fail(path, f"array {name} has shape {arr.shape}, expected ({n},)")
    if not np.isfinite(arr).all():
        raise _fail(path, f"array {name} contains non-finite values")


def _id_array(arrays: Mapping[str, np.ndarray], name: str, path: str | Path) -> np.ndarray:
    arr = arrays[name]
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise _fail(path, f"array {name} must be 1-D integers, got {arr.dtype} {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= _MAX_ID):
        raise _fail(path, f"array {name} holds an id outside [0, 2**62)")
    return arr.astype(np.int64)


def _check_dtype(meta: Mapping[str, Any], path: str | Path) -> None:
    if meta.get("dtype") not in _FLOATS:
        raise _fail(path, f"dtype must be 'float32' or 'float64', got {meta.get('dtype')!r:.40}")


def _check_optimizer(meta: Mapping[str, Any], path: str | Path, moments: set[str]) -> None:
    opt = meta.get("optimizer")
    name = "sgd" if opt is None else _mapping(opt, "optimizer", path).get("name")
    if name not in ("sgd", "adam"):
        raise _fail(path, f"unknown optimizer {name!r:.40}; this grapheme knows 'sgd' and 'adam'")
    if name == "adam":
        for key in set(opt) - {"name"}:
            if key not in ("beta1", "beta2", "eps"):
                raise _fail(path, f"unknown Adam setting {key!r:.40}")
            number(opt[key], f"optimizer.{key}", path, lo=0.0)
    elif moments:
        raise _fail(path, f"optimizer state {sorted(moments)} stored for SGD, which has none")
    integer(meta.get("optimizer_steps", 0), "optimizer_steps", path)


def _check_moments(arrays: Mapping[str, np.ndarray], names: set[str], path: str | Path) -> None:
    for name in names:
        arr = arrays[name]
        if arr.dtype.kind != "f" or arr.dtype.name not in _FLOATS:
            raise _fail(path, f"optimizer state {name} has dtype {arr.dtype}")
        if not np.isfinite(arr).all():
            raise _fail(path, f"optimizer state {name} contains non-finite values")
        if name.startswith("v") and arr.size and arr.min() < 0:
            raise _fail(path, f"optimizer state {name} (second moment) has negative values")


def check_dagnn(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], path: str | Path):
    """Types and ranges of a DagNN's metadata and arrays (structure is checked on rebuild)."""
    meta = _mapping(meta, "meta", path)
    _check_dtype(meta, path)
    integer(meta.get("seed"), "seed", path, hi=2**128)
    if not isinstance(meta.get("init"), str):
        raise _fail(path, f"init must be a name, got {meta.get('init')!r:.40}")
    for key in ("next_node_id", "next_edge_id"):
        integer(meta.get(key), key, path)
    _mapping(meta.get("rng"), "rng", path)
    names = set(arrays)
    moments = names & _DAG_MOMENTS
    expected = _DAG_ARRAYS | _DAG_PARAMS | moments
    if moments not in (set(), _DAG_MOMENTS):
        raise _fail(path, f"optimizer moments {sorted(moments)}: need all four or none")
    if names != expected:
        raise _fail(path, f"DagNN arrays {sorted(names)}, expected {sorted(expected)}")
    _check_optimizer(meta, path, moments)
    node_id = _id_array(arrays, "node_id", path)
    edge_id = _id_array(arrays, "edge_id", path)
    try:
        limits.check("nodes", node_id.size, f"{path}: node count")
        limits.check("edges", edge_id.size, f"{path}: edge count")
    except limits.LimitExceeded as exc:
        raise CheckpointError(str(exc)) from None
    for ids, what in ((node_id, "node"), (edge_id, "edge")):
        if ids.size > 1 and not (np.diff(ids) > 0).all():
            raise _fail(path, f"{what} ids must be unique and increasing")
    n, e = node_id.size, edge_id.size
    for name, size in (("node_kind", n), ("node_activation", n), ("edge_src", e), ("edge_dst", e)):
        arr = _id_array(arrays, name, path)
        if arr.size != size:
            raise _fail(path, f"array {name} has {arr.size} entries, expected {size}")
    kinds = arrays["node_kind"]
    if n and kinds.max() > max(NodeKind):
        raise _fail(path, f"unknown node kind code {int(kinds.max())}")
    if n and arrays["node_activation"].max() > max(Activation):
        raise _fail(path, f"unknown activation code {int(arrays['node_activation'].max())}")
    _float_array(arrays, "weight", e, path)
    _float_array(arrays, "bias", n, path)
    _check_moments(arrays, moments, path)


def check_embedding(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], path: str | Path):
    """Types and sizes of an Embedding's metadata (before its table is allocated) and arrays."""
    meta = _mapping(meta, "meta", path)
    _check_dtype(meta, path)
    vocab = integer(meta.get("vocab_size"), "vocab_size", path, lo=1)
    dim = integer(meta.get("dim"), "dim", path, lo=1)
    try:
        limits.check("embedding_elements", vocab * dim, f"{path}: embedding vocab_size*dim")
    except limits.LimitExceeded as exc:
        raise CheckpointError(str(exc)) from None
    integer(meta.get("seed"), "seed", path, hi=2**128)
    if not isinstance(meta.get("init"), str):
        raise _fail(path, f"init must be a name, got {meta.get('init')!r:.40}")
    names = set(arrays)
    moments = names & {"m", "v"}
    if names != {"table"} | moments or moments not in (set(), {"m", "v"}):
        raise _fail(path, f"Embedding arrays {sorted(names)}, expected table (and m, v)")
    _check_optimizer(meta, path, moments)
    for name in ["table", *sorted(moments)]:
        arr = arrays[name]
        if arr.dtype.kind != "f" or arr.dtype.name not in _FLOATS:
            raise _fail(path, f"array {name} has dtype {arr.dtype}; expected float32 or float64")
        if arr.shape != (vocab, dim):
            raise _fail(path, f"array {name} has shape {arr.shape}, expected ({vocab}, {dim})")
    _check_moments(arrays, {"table"}, path)  # finiteness only: a table may be negative
    _check_moments(arrays, moments, path)
