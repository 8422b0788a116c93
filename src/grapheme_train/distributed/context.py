"""The process group: who this worker is, read from the torchrun environment.

``torchrun`` (and :mod:`grapheme_train.distributed.launcher`) set ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_from_env`
turns them into a ``torch.distributed`` process group (``gloo`` on the CPU, ``nccl``
for a CUDA device) with a finite timeout, so a collective waiting for a dead or hung
worker fails with :class:`~grapheme_train.distributed.errors.PeerLostError` instead of
waiting forever.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
from collections.abc import Mapping
from typing import Any

import attrs

from grapheme_core.about import install_hint
from grapheme_train.distributed.errors import DistributedError, DistributedUnavailableError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistContext",
    "current",
    "env_world_size",
    "init_from_env",
    "shutdown",
    "torch_distributed",
]

DEFAULT_TIMEOUT_S = 30.0
"""Seconds a collective may wait for the other workers (``GRAPHEME_DIST_TIMEOUT`` overrides)."""

_ENV_KEYS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@attrs.frozen
class DistContext:
    """This worker's place in the group: ``rank`` of ``world_size``, ``local_rank`` on its
    machine, the ``torch.distributed`` backend (``"gloo"``/``"nccl"``) and the torch
    ``device`` that collectives run on (``"cpu"`` for gloo, ``"cuda:N"`` for nccl)."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: str
    timeout_s: float

    @property
    def is_writer(self) -> bool:
        """Only rank 0 prints, writes metrics and checkpoints."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """``(rank, world_size)``: the rows ``rank::world_size`` of every global batch."""
        return (self.rank, self.world_size)


_CURRENT: DistContext | None = None


def torch_distributed() -> Any:
    """``torch.distributed``, or a clear error when torch is missing or built without it."""
    try:
        import torch.distributed as dist
    except ImportError as exc:
        raise DistributedUnavailableError(
            "data-parallel training runs on torch.distributed, but torch is not installed "
            f"({exc}); install it with: {install_hint('torch')}"
        ) from None
    if not dist.is_available():
        raise DistributedUnavailableError("this torch build has no torch.distributed support")
    return dist


def env_world_size(environ: Mapping[str, str] | None = None) -> int:
    """``WORLD_SIZE`` from the environment (1 when unset): > 1 means "I am a worker"."""
    env = os.environ if environ is None else environ
    try:
        return max(1, int(env.get("WORLD_SIZE", "1")))
    except ValueError:
        raise DistributedError(
            f"WORLD_SIZE must be an integer, got {env['WORLD_SIZE']!r}"
        ) from None


def _int_env(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except KeyError:
        raise DistributedError(
            f"{key} is not set; start workers with torchrun or grapheme-train --nproc N "
            f"(which set {', '.join(_ENV_KEYS)})"
        ) from None
    except ValueError:
        raise DistributedError(f"{key} must be an integer, got {env[key]!r}") from None


def init_from_env(
    device: str | None = None,
    *,
    timeout_s: float | None = None,
    environ: Mapping[str, str] | None = None,
    quiet_others: bool = True,
) -> DistContext:
    """Join the process group described by the environment (a TCP rendezvous at
    ``MASTER_ADDR:MASTER_PORT``, as torchrun's ``env://``).

    ``device``: where the model's arrays live (``None``/``"cpu"``: gloo; ``"cuda"`` or
    ``"cuda:N"``: nccl on ``cuda:LOCAL_RANK`` resp. ``cuda:N``, made the current CUDA
    device, so a torch backend created afterwards with ``device="cuda"`` lands on this
    rank's GPU). ``timeout_s`` bounds
    every collective (default ``GRAPHEME_DIST_TIMEOUT`` or 30 s). With ``quiet_others``
    ranks other than 0 send their standard output to ``os.devnull`` (errors still show).
    Idempotent: a second call returns the existing context.
    """
    global _CURRENT
    if _CURRENT is not None:
        return _CURRENT
    dist = torch_distributed()
    env = os.environ if environ is None else environ
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        if key not in env:
            raise DistributedError(
                f"{key} is not set; start workers with torchrun or grapheme-train --nproc N"
            )
    rank, world = _int_env(env, "RANK"), _int_env(env, "WORLD_SIZE")
    local_rank = int(env.get("LOCAL_RANK", rank))
    if not 0 <= rank < world:
        raise DistributedError(f"RANK {rank} is outside 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
    if timeout_s is None:
        timeout_s = float(env.get("GRAPHEME_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
    if not timeout_s > 0:
        raise DistributedError(f"the collective timeout must be > 0 seconds, got {timeout_s}")
    backend, comm_device = _backend_for(device, local_rank)
    if backend == "nccl":  # so that a later "cuda" (no index) means this rank's GPU
        import torch

        torch.cuda.set_device(torch.device(comm_device))
    if not dist.is_initialized():
        try:
            dist.init_process_group(
                backend=backend,
                init_method=_tcp_address(env["MASTER_ADDR"], env["MASTER_PORT"]),
                rank=rank,
                world_size=world,
                timeout=datetime.timedelta(seconds=timeout_s),
            )
        except (RuntimeError, ValueError) as exc:
            raise DistributedError(
                f"rank {rank}: could not join the process group at "
                f"{env['MASTER_ADDR']}:{env['MASTER_PORT']} within {timeout_s:g} s ({exc})"
            ) from None
    if quiet_others and rank != 0:
        sys.stdout.flush()
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    _CURRENT = DistContext(rank, world, local_rank, backend, comm_device, timeout_s)
    return _CURRENT


def _tcp_address(host: str, port: str) -> str:
    """The rendezvous as a ``tcp://`` URL (what ``env://`` reads, from ``environ``)."""
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def _backend_for(device: str | None, local_rank: int) -> tuple[str, str]:
    if device is None or str(device) == "cpu":
        return "gloo", "cpu"
    text = str(device)
    if text.startswith("cuda"):
        return "nccl", f"cuda:{local_rank}" if text == "cuda" else text
    raise DistributedError(f"unsupported device {device!r} for data parallelism; use cpu or cuda")


def current() -> DistContext | None:
    """The context of this process, or ``None`` before :func:`init_from_env`."""
    return _CURRENT


def shutdown() -> None:
    """Leave the process group (safe to call when none was joined)."""
    global _CURRENT
    _CURRENT = None
    with contextlib.suppress(ImportError):
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
