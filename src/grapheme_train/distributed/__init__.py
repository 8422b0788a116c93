"""Data-parallel training on ``torch.distributed`` (gloo on CPU, NCCL on GPU), any backend.

* :func:`init_from_env` joins the process group that ``torchrun`` or
  ``grapheme-train --nproc N`` (:func:`launch_local`) describe in the environment;
* :class:`DataParallel` wraps a DagNN or a SharedAGIModel: identical start state, the
  gradient all-reduce in flat buckets, the cross-rank structure check;
* :class:`DistributedHook` is the trainer hook (``on_gradients``);
* :func:`train_data_parallel` is a self-contained data-parallel loop over a DagNN;
* :class:`SeededRewire` is a deterministic SET-style edit, identical on every rank.

torch is imported only when a process group is used.
"""

from grapheme_train.distributed.context import (
    DistContext,
    current,
    env_world_size,
    init_from_env,
    shutdown,
)
from grapheme_train.distributed.errors import (
    DistributedError,
    DistributedUnavailableError,
    PeerLostError,
    StructureMismatchError,
    WorkerFailedError,
)
from grapheme_train.distributed.hook import DistributedHook
from grapheme_train.distributed.launcher import launch_local
from grapheme_train.distributed.loop import load_progress, save_progress, train_data_parallel
from grapheme_train.distributed.parallel import DataParallel
from grapheme_train.distributed.rewire import SeededRewire

__all__ = [
    "DataParallel",
    "DistContext",
    "DistributedError",
    "DistributedHook",
    "DistributedUnavailableError",
    "PeerLostError",
    "SeededRewire",
    "StructureMismatchError",
    "WorkerFailedError",
    "current",
    "env_world_size",
    "init_from_env",
    "launch_local",
    "load_progress",
    "save_progress",
    "shutdown",
    "train_data_parallel",
]
