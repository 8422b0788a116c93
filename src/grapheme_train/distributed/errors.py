"""Errors of the data-parallel layer (all :class:`GraphemeTrainError`, so the CLI maps them)."""

from __future__ import annotations

from grapheme_train.errors import GraphemeTrainError

__all__ = [
    "DistributedError",
    "DistributedUnavailableError",
    "PeerLostError",
    "StructureMismatchError",
    "WorkerFailedError",
]


class DistributedError(GraphemeTrainError):
    """Something went wrong in data-parallel training."""


class DistributedUnavailableError(DistributedError):
    """torch (and so torch.distributed) is not installed, or no process group is set up."""


class StructureMismatchError(DistributedError):
    """The ranks' models no longer have the same topology (or dtype, or Embedding shape).

    ``groups`` maps each distinct structure digest (hex prefix) to the ranks holding it;
    ``differing`` lists the ranks whose structure differs from rank 0's."""

    def __init__(self, message: str, groups: dict[str, list[int]], differing: list[int]) -> None:
        super().__init__(message)
        self.groups = groups
        self.differing = differing


class PeerLostError(DistributedError):
    """A collective failed or timed out: another worker died, hung or is unreachable."""


class WorkerFailedError(DistributedError):
    """A local worker started by the launcher exited with an error."""

    def __init__(self, message: str, rank: int, returncode: int) -> None:
        super().__init__(message)
        self.rank = rank
        self.returncode = returncode
