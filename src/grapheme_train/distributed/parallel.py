"""DataParallel: the DDP contract for a model with its own backward pass.

grapheme computes gradients itself, so DDP's autograd hooks do not apply; this wrapper
keeps the same contract by hand, on any backend:

* **identical start**: the structure is checked equal on every rank, then rank 0's
  parameters, optimizer state (Adam moments, step count) and weight-init RNG are
  broadcast to all ranks;
* **the same collectives in the same order**: per step one tiny all-gather of the
  structure digest, then the gradients of weights, biases and Embedding rows in a few
  flat buckets (fixed order: DagNN weight, DagNN bias, Embedding table);
* **identical topology**: the digest (node ids/kinds/activations, edge ids/endpoints,
  dtype, Embedding shape) is recomputed whenever a structure moved and compared across
  ranks before every reduction, so an edit made on some ranks only stops the run with a
  :class:`StructureMismatchError` naming the ranks, before any collective could
  mismatch.

Gradients are **summed** across ranks by default (``reduce="sum"``): with each rank
accumulating the sum over its shard divided by the global batch size, the sum is exactly
the one-process gradient of the global batch. ``reduce="mean"`` divides by the world
size instead, for per-rank mean gradients (DDP's convention).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from grapheme_core import DagNN, Embedding
from grapheme_train.distributed import context as _context
from grapheme_train.distributed.buckets import (
    DEFAULT_BUCKET_ELEMENTS,
    make_slot,
    plan_buckets,
    reduce_buckets,
)
from grapheme_train.distributed.errors import (
    DistributedError,
    DistributedUnavailableError,
    PeerLostError,
    StructureMismatchError,
)

__all__ = ["DataParallel", "model_parts"]

_STRUCTURE_KEYS = frozenset(
    ("node_id", "node_kind", "node_activation", "edge_id", "edge_src", "edge_dst")
)


def model_parts(model: Any) -> list[tuple[str, Any]]:
    """``[(name, part)]`` of a DagNN (``dag``) or a SharedAGIModel-like object (``dag``
    and ``embedding``), in the fixed order of every collective."""
    if isinstance(model, DagNN):
        return [("dag", model)]
    dag, emb = getattr(model, "dag", None), getattr(model, "embedding", None)
    if isinstance(dag, DagNN) and isinstance(emb, Embedding):
        return [("dag", dag), ("embedding", emb)]
    raise TypeError(
        f"DataParallel wraps a DagNN or a SharedAGIModel (a .dag and an .embedding); "
        f"got {type(model).__name__}"
    )


class DataParallel:
    """Data-parallel training of ``model`` (a DagNN or a SharedAGIModel) over the process
    group of ``context`` (default: the one :func:`~.context.init_from_env` joined).

    Construction is collective (every rank must construct it, in the same order relative
    to other collectives): it checks the structure and broadcasts rank 0's state.
    Per step, after the backward passes and before the optimizer step, call
    :meth:`all_reduce_gradients` on every rank.
    """

    def __init__(
        self,
        model: Any,
        context: _context.DistContext | None = None,
        *,
        reduce: str = "sum",
        bucket_elements: int = DEFAULT_BUCKET_ELEMENTS,
        broadcast: bool = True,
    ) -> None:
        if reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
        if int(bucket_elements) < 1:
            raise ValueError(f"bucket_elements must be >= 1, got {bucket_elements}")
        self.context = context or _context.current()
        if self.context is None:
            raise DistributedUnavailableError(
                "no process group: call grapheme_train.distributed.init_from_env() first "
                "(in a worker started by torchrun or grapheme-train --nproc N)"
            )
        self._dist = _context.torch_distributed()
        import torch

        self._torch = torch
        self._device = torch.device(self.context.device)
        self.model = model
        self.parts = model_parts(model)
        self.reduce = reduce
        self.bucket_elements = int(bucket_elements)
        self.steps = 0
        self.structure_checks = 0
        self.check_structure()
        if broadcast:
            self.broadcast_state()

    @property
    def rank(self) -> int:
        """This process's rank in the group."""
        return self.context.rank

    @property
    def world_size(self) -> int:
        """How many ranks train together."""
        return self.context.world_size

    # -- structure -------------------------------------------------------------------
    def structure_digest(self) -> bytes:
        """32 bytes naming this rank's topology, dtypes and Embedding shape (cached per
        structural version by the core)."""
        h = hashlib.sha256()
        for name, part in self.parts:
            if isinstance(part, DagNN):
                h.update(f"{name}:{part.dtype}:{part.structure_hash()}".encode())
            else:
                h.update(f"{name}:{part.dtype}:{part.vocab_size}x{part.dim}".encode())
        return h.digest()

    def check_structure(self, step: int | None = None) -> None:
        """Compare the structure digest across ranks (collective); raise
        :class:`StructureMismatchError` on every rank, naming the ranks that differ from
        rank 0, if they are not all equal."""
        torch = self._torch
        dag = self.parts[0][1]
        words = np.frombuffer(self.structure_digest(), dtype="<i8")
        local = torch.tensor(
            [*words.tolist(), dag.node_count, dag.edge_count, dag.version], dtype=torch.int64
        ).to(self._device)
        gathered = [torch.empty_like(local) for _ in range(self.world_size)]
        self._collective("the structure check", self._dist.all_gather, gathered, local)
        rows = [g.cpu().numpy() for g in gathered]
        self.structure_checks += 1
        digests = [r[:4].astype("<i8").tobytes().hex()[:12] for r in rows]
        if len(set(digests)) == 1:
            return
        groups: dict[str, list[int]] = {}
        for rank, d in enumerate(digests):
            groups.setdefault(d, []).append(rank)
        differing = [r for r, d in enumerate(digests) if d != digests[0]]
        when = "at the start" if step is None else f"before the reduction of step {step}"
        described = "; ".join(
            f"rank{'s' if len(rs) > 1 else ''} {', '.join(map(str, rs))}: structure {d}, "
            f"{rows[rs[0]][4]} nodes, {rows[rs[0]][5]} edges"
            for d, rs in groups.items()
        )
        raise StructureMismatchError(
            f"rank {self.rank}: the model structure differs across ranks {when}: "
            f"rank{'s' if len(differing) > 1 else ''} {', '.join(map(str, differing))} "
            f"differ{'' if len(differing) > 1 else 's'} from rank 0 ({described}). Every rank "
            "must build the same model and make the same topology edits at the same steps "
            "(same seeds, same settings, edits driven only by synchronised state).",
            groups,
            differing,
        )

    # -- state -------------------------------------------------------------------------
    def broadcast_state(self) -> None:
        """Give every rank rank 0's parameters, optimizer state and RNG (collective).

        Each part's :meth:`state` metadata travels as JSON, its parameter and optimizer
        arrays as tensors; the structure arrays stay local (checked equal first).
        Accumulated gradients are zeroed on every rank."""
        for _name, part in self.parts:
            meta, arrays = part.state()
            header = None
            if self.rank == 0:
                names = sorted(k for k in arrays if k not in _STRUCTURE_KEYS)
                header = {
                    "meta": meta,
                    "arrays": [[k, list(arrays[k].shape), arrays[k].dtype.str] for k in names],
                }
            header = self._broadcast_json(header)
            received = {}
            for key, shape, dtype in header["arrays"]:
                host = arrays[key] if self.rank == 0 else np.empty(shape, dtype=np.dtype(dtype))
                host = np.ascontiguousarray(host)
                t = self._torch.from_numpy(host).to(self._device)
                self._collective("the start-state broadcast", self._dist.broadcast, t, 0)
                received[key] = t.cpu().numpy() if t.device.type != "cpu" else host
            if self.rank != 0:
                structure = {k: v for k, v in arrays.items() if k in _STRUCTURE_KEYS}
                part.restore_state(header["meta"], {**structure, **received})
            else:
                part.zero_grad()  # as restore_state does on the other ranks

    def _broadcast_json(self, obj: Any) -> Any:
        torch = self._torch
        data = json.dumps(obj).encode() if self.rank == 0 else b""
        size = torch.tensor([len(data)], dtype=torch.int64).to(self._device)
        self._collective("the start-state broadcast", self._dist.broadcast, size, 0)
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.rank == 0 else None
        if buf is None:
            buf = np.empty(int(size.item()), dtype=np.uint8)
        t = torch.from_numpy(buf).to(self._device)
        self._collective("the start-state broadcast", self._dist.broadcast, t, 0)
        return json.loads(t.cpu().numpy().tobytes().decode())

    # -- gradients ---------------------------------------------------------------------
    def all_reduce_gradients(self, extra: Sequence[float] | np.ndarray | None = None) -> Any:
        """Check the structure, then sum (or average) every gradient across ranks, in
        place (collective). ``extra``: a few float64 values (e.g. loss sums) summed in
        one more small collective started together with the gradient buckets (no extra
        wait); their sums are returned (else None)."""
        self.steps += 1
        self.check_structure(self.steps)
        slots = []
        for _name, part in self.parts:
            for key, native in part.gradient_arrays().items():

                def setter(host: np.ndarray, part: Any = part, key: str = key) -> None:
                    part.set_gradients({key: host})

                slots.append(make_slot(native, self._device, setter))
        extra_t = None
        if extra is not None:
            extra_t = self._torch.tensor(
                np.asarray(extra, dtype=np.float64).reshape(-1), device=self._device
            )
        buckets = plan_buckets(slots, self.bucket_elements)
        if extra_t is not None:
            buckets.append([make_slot(extra_t, self._device, lambda _h: None)])
        divide = self.world_size if self.reduce == "mean" else 1
        self._collective("the gradient all-reduce", reduce_buckets, self._dist, buckets, divide)
        if extra_t is None:
            return None
        if divide != 1:
            extra_t.mul_(divide)  # extras are always plain sums
        return extra_t.cpu().numpy()

    def all_reduce_sum(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Sum float64 ``values`` across ranks (collective), e.g. losses for printing."""
        t = self._torch.tensor(np.asarray(values, dtype=np.float64), device=self._device)
        self._collective("a metric all-reduce", self._dist.all_reduce, t)
        return t.cpu().numpy()

    def barrier(self) -> None:
        """Wait for every rank (collective)."""
        self._collective("a barrier", self._dist.barrier)

    def _collective(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except DistributedError:
            raise
        except RuntimeError as exc:  # gloo/nccl: peer closed, timeout, abort
            raise PeerLostError(
                f"rank {self.rank}: {what} failed: another worker stopped, hung or cannot be "
                f"reached (collective timeout {self.context.timeout_s:g} s): "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
            ) from None
