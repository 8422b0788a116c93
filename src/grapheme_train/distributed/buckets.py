"""Gradient buckets: backend arrays as torch tensors, without copies where possible.

Each gradient array becomes a :class:`Slot`: a flat torch tensor sharing the array's
memory when it can (a writeable NumPy array through ``torch.from_numpy``, a torch tensor
on the collective's device as itself), else a staged copy that is written back after
the reduction (JAX arrays, via the host; tensors on another device). Slots are grouped
in order into buckets of at most ``bucket_elements`` elements of one dtype: a bucket
holding one slot is reduced in place; several small slots are packed into one flat
buffer, reduced, and unpacked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

__all__ = ["DEFAULT_BUCKET_ELEMENTS", "Slot", "make_slot", "plan_buckets", "reduce_buckets"]

DEFAULT_BUCKET_ELEMENTS = 1 << 22
"""Largest packed bucket (elements); bigger arrays are reduced alone, in place."""


@attrs.define
class Slot:
    """One gradient array: ``tensor`` (flat, on the collective's device) and ``store``,
    which writes a staged copy back into the model (``None`` when ``tensor`` is the
    model's own memory); ``zero_copy`` says which."""

    tensor: Any
    store: Callable[[Any], None] | None

    @property
    def zero_copy(self) -> bool:
        """True when ``tensor`` is the model's own memory (reduced in place)."""
        return self.store is None


def make_slot(native: Any, device: Any, setter: Callable[[np.ndarray], None]) -> Slot:
    """A :class:`Slot` for the backend-native array ``native``; ``setter`` stores a
    reduced host copy into the model (used when no shared view is possible)."""
    import torch

    if isinstance(native, torch.Tensor):
        if native.device == device and native.is_contiguous():
            return Slot(native.detach().view(-1), None)
        staged = native.detach().reshape(-1).to(device)

        def copy_back(t: Any, target: Any = native) -> None:
            target.detach().copy_(t.view(target.shape))

        return Slot(staged, copy_back)
    if (
        isinstance(native, np.ndarray)
        and device.type == "cpu"
        and native.flags.c_contiguous
        and native.flags.writeable
    ):
        return Slot(torch.from_numpy(native).view(-1), None)
    host = np.array(native)  # JAX and other backends: via the host (a copy)
    shape = host.shape

    def set_host(t: Any) -> None:
        setter(t.cpu().numpy().reshape(shape))

    return Slot(torch.from_numpy(host.reshape(-1)).to(device), set_host)


def plan_buckets(slots: Sequence[Slot], bucket_elements: int) -> list[list[Slot]]:
    """Group ``slots`` in order: a slot of at least ``bucket_elements`` elements alone;
    consecutive smaller slots of one dtype together up to ``bucket_elements``."""
    buckets: list[list[Slot]] = []
    current: list[Slot] = []
    size = 0
    for slot in slots:
        n = slot.tensor.numel()
        if n >= bucket_elements:
            if current:
                buckets.append(current)
                current, size = [], 0
            buckets.append([slot])
            continue
        if current and (size + n > bucket_elements or current[0].tensor.dtype != slot.tensor.dtype):
            buckets.append(current)
            current, size = [], 0
        current.append(slot)
        size += n
    if current:
        buckets.append(current)
    return buckets


def reduce_buckets(dist: Any, buckets: Sequence[Sequence[Slot]], divide_by: int = 1) -> None:
    """All-reduce (sum) every bucket, in order, then divide by ``divide_by`` (1: plain
    sums) and store staged slots back. All buckets are started before any is awaited."""
    pending = []
    for bucket in buckets:
        if len(bucket) == 1:
            flat = bucket[0].tensor
        else:
            import torch

            flat = torch.cat([s.tensor for s in bucket])
        pending.append((bucket, flat, dist.all_reduce(flat, async_op=True)))
    for bucket, flat, work in pending:
        work.wait()
        if divide_by != 1:
            flat.div_(divide_by)
        if len(bucket) > 1:
            start = 0
            for slot in bucket:
                n = slot.tensor.numel()
                slot.tensor.copy_(flat[start : start + n])
                start += n
        for slot in bucket:
            if slot.store is not None:
                slot.store(slot.tensor)
