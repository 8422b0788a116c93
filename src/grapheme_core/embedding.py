"""Embedding: a learnable table of character vectors (index = code point, clamped)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import guards
from .backend import Backend, dtype_name, to_host
from .errors import ShapeError
from .optim import (
    Optimizer,
    apply_update,
    check_lr,
    optimizer_from_dict,
    optimizer_to_dict,
    parse_optimizer,
)
from .registry import get_backend
from .types import InitStrategy

_PRINTABLE_LIMIT = 0x3000  # decode searches printable code points below this (and below vocab)


class Embedding:
    """``vocab_size x dim`` table; rows are looked up by code point and trained by
    scatter-added gradients (repeated indices add up)."""

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        init: InitStrategy | str = InitStrategy.XAVIER,
        backend: str | Backend | None = None,
        seed: int = 0,
        *,
        dtype: str = "float32",
        optimizer: Optimizer | str | None = None,
    ) -> None:
        if int(vocab_size) < 1 or int(dim) < 1:
            raise ValueError(f"vocab_size and dim must be >= 1, got {vocab_size} and {dim}")
        dtype = dtype_name(dtype)
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.vocab_size, self.dim = int(vocab_size), int(dim)
        self.init = InitStrategy.parse(init)
        self.backend: Backend = get_backend(backend)
        self.dtype = dtype
        self.seed = int(seed)
        self.optimizer: Optimizer = parse_optimizer(optimizer)
        table = _initial_table(
            np.random.default_rng(self.seed), self.init, self.vocab_size, self.dim
        )
        self.table = self.backend.asarray(table, dtype)
        self.grad = self.backend.zeros((self.vocab_size, self.dim), dtype)
        self._moments: dict[str, Any] = {}
        self._steps = 0

    # -- indices -----------------------------------------------------------------------
    def indices(self, idx: Any) -> np.ndarray:
        """Code points (a ``str``, ints or an int array) as row indices, clamped to vocab-1."""
        if isinstance(idx, str):
            arr = np.fromiter((ord(c) for c in idx), dtype=np.int64, count=len(idx))
        else:
            arr = np.asarray(idx)
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise ShapeError(
                    f"embedding indices must be integers or a str, got dtype {arr.dtype}"
                )
            if arr.size and np.issubdtype(arr.dtype, np.unsignedinteger):
                # clamp before the cast: uint64 code points above 2**63 must not wrap negative
                arr = np.minimum(arr, self.vocab_size - 1)
            arr = arr.astype(np.int64).reshape(-1)
        if arr.size and arr.min() < 0:
            raise ValueError(f"embedding indices must be >= 0, got {int(arr.min())}")
        return np.minimum(arr, self.vocab_size - 1)

    # -- forward / backward ----------------------------------------------------------
    def lookup(self, idx: Any) -> np.ndarray:
        """Rows for ``idx`` as NumPy ``[len(idx), dim]``."""
        return self.backend.to_numpy(self.backend.gather_rows(self.table, self.indices(idx)))

    def backward(self, idx: Any, grads: Any) -> None:
        """Add ``grads`` (``[len(idx), dim]``) into the rows' gradients; repeats add up."""
        index = self.indices(idx)
        g = to_host(self.backend, grads).astype(np.float64)
        if g.shape != (index.shape[0], self.dim):
            raise ShapeError(
                f"embedding gradients must have shape [{index.shape[0]}, {self.dim}] "
                f"(one row per index), got {list(g.shape)}"
            )
        self.grad = self.backend.scatter_add_rows(
            self.grad, index, self.backend.asarray(g, self.dtype)
        )

    backward_accumulate = backward

    def decode(self, vec: Any) -> str:
        """The printable character whose row is nearest (Euclidean) to ``vec``."""
        v = to_host(self.backend, vec).astype(np.float64).reshape(-1)
        if v.shape[0] != self.dim:
            raise ShapeError(f"decode expects a vector of length {self.dim}, got {v.shape[0]}")
        codes = _printable_codes(min(self.vocab_size, _PRINTABLE_LIMIT))
        if codes.size == 0:
            raise ValueError("the vocabulary contains no printable character")
        rows = self.backend.to_numpy(self.backend.gather_rows(self.table, codes)).astype(np.float64)
        return chr(int(codes[np.argmin(((rows - v) ** 2).sum(axis=1))]))

    # -- BackwardPass ------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Reset the accumulated table gradient to zero."""
        self.grad = self.backend.zeros((self.vocab_size, self.dim), self.dtype)

    def gradient_norm(self) -> float:
        """L2 norm of the accumulated table gradient (overflow-safe)."""
        return guards.scaled_norm(self.backend, [self.grad])

    def clip_gradients(self, max_norm: float) -> float:
        """Scale the gradient to a norm of at most ``max_norm``; returns the norm before."""
        if not max_norm > 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm}")
        norm = self.gradient_norm()
        if norm > max_norm:
            self.grad = self.backend.scale(self.grad, max_norm / (norm + 1e-12))
        return norm

    def step(self, lr: float) -> None:
        """Apply one optimizer update to the table from the accumulated gradient."""
        self._steps += 1
        self.table = apply_update(
            self.backend,
            self.optimizer,
            self.table,
            self.grad,
            self._moments,
            self._steps,
            check_lr(lr),
            self.dtype,
        )

    # -- parameters and persistence ----------------------------------------------------
    def get_parameters(self) -> dict[str, np.ndarray]:
        """``{"table": [vocab_size, dim]}`` as a NumPy copy."""
        return {"table": self.backend.to_numpy(self.table)}

    def get_gradients(self) -> dict[str, np.ndarray]:
        """``{"table": [vocab_size, dim]}``: the accumulated gradient as a NumPy copy."""
        return {"table": self.backend.to_numpy(self.grad)}

    def gradient_arrays(self) -> dict[str, Any]:
        """``{"table": [vocab, dim]}``: the backend-native gradient array itself, not a
        copy (for in-place collectives); store results with :meth:`set_gradients` unless
        they were updated in place."""
        return {"table": self.grad}

    def set_gradients(self, grads: Mapping[str, Any]) -> None:
        """Replace the accumulated row gradients (mirror of :meth:`get_gradients`):
        ``{"table": [vocab, dim]}``, copied (never aliased)."""
        unknown = set(grads) - {"table"}
        if unknown:
            raise KeyError(f"unknown gradient group(s) {sorted(unknown)}; use 'table'")
        if "table" not in grads:
            return
        arr = np.array(to_host(self.backend, grads["table"]), dtype=self.dtype)  # a copy
        if arr.shape != (self.vocab_size, self.dim):
            raise ShapeError(
                f"table gradient must have shape [{self.vocab_size}, {self.dim}], "
                f"got {list(arr.shape)}"
            )
        self.grad = self.backend.asarray(arr, self.dtype)

    def restore_state(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Replace this table's contents in place with a :meth:`state` snapshot (values,
        optimizer state and step count), keeping this object and its backend. All or
        nothing; accumulated gradients are zeroed."""
        fresh = Embedding.from_state(meta, arrays, backend=self.backend)
        self.__dict__.update(fresh.__dict__)

    def set_parameters(self, params: Mapping[str, Any]) -> None:
        """Replace the table; the shape must match and the values must be finite."""
        table = np.array(params["table"], dtype=np.float64)  # a copy: never alias the caller
        if table.shape != (self.vocab_size, self.dim):
            raise ShapeError(
                f"table must have shape [{self.vocab_size}, {self.dim}], got {list(table.shape)}"
            )
        if not np.all(np.isfinite(table)):
            raise ValueError("table contains non-finite values")
        guards.check_representable(table, self.dtype, "table")
        self.table = self.backend.asarray(table, self.dtype)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(metadata, arrays)``: everything needed to rebuild and continue training."""
        meta = {
            "vocab_size": self.vocab_size,
            "dim": self.dim,
            "init": self.init.name,
            "dtype": self.dtype,
            "seed": self.seed,
            "backend": self.backend.name,
            "optimizer": optimizer_to_dict(self.optimizer),
            "optimizer_steps": self._steps,
        }
        arrays = {"table": self.backend.to_numpy(self.table)}
        arrays.update({k: self.backend.to_numpy(v) for k, v in self._moments.items()})
        return meta, arrays

    @classmethod
    def from_state(
        cls,
        meta: Mapping[str, Any],
        arrays: Mapping[str, np.ndarray],
        backend: str | Backend | None = None,
    ) -> Embedding:
        """Rebuild an embedding from :meth:`state` output on ``backend``."""
        emb = cls(
            meta["vocab_size"],
            meta["dim"],
            meta["init"],
            backend=backend,
            seed=meta["seed"],
            dtype=meta["dtype"],
            optimizer=optimizer_from_dict(meta.get("optimizer")),
        )
        emb.set_parameters({"table": arrays["table"]})
        emb._steps = int(meta.get("optimizer_steps", 0))
        for name in ("m", "v"):
            if name in arrays:
                moment = np.array(arrays[name], dtype=np.float64)  # a copy
                if moment.shape != (emb.vocab_size, emb.dim):
                    raise ShapeError(f"optimizer state {name} has shape {moment.shape}")
                emb._moments[name] = emb.backend.asarray(moment, emb.dtype)
        return emb

    def __repr__(self) -> str:
        b = self.backend.name
        return f"Embedding(vocab_size={self.vocab_size}, dim={self.dim}, backend={b!r})"


def _initial_table(
    rng: np.random.Generator, init: InitStrategy, vocab: int, dim: int
) -> np.ndarray:
    if init is InitStrategy.XAVIER:
        limit = np.sqrt(6.0 / (vocab + dim))
        return rng.uniform(-limit, limit, size=(vocab, dim))
    if init is InitStrategy.HE:
        return rng.standard_normal((vocab, dim)) * np.sqrt(2.0 / dim)
    if init is InitStrategy.UNIFORM:
        return rng.uniform(-0.1, 0.1, size=(vocab, dim))
    return np.zeros((vocab, dim))


_PRINTABLE_CACHE: dict[int, np.ndarray] = {}


def _printable_codes(limit: int) -> np.ndarray:
    if limit not in _PRINTABLE_CACHE:
        _PRINTABLE_CACHE[limit] = np.array(
            [c for c in range(limit) if chr(c).isprintable()], dtype=np.int64
        )
    return _PRINTABLE_CACHE[limit]
