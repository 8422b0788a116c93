"""grapheme core: DAG-shaped neural networks with real reverse-mode gradients.

Importing this package imports neither torch nor jax, prints nothing and writes nothing.
"""

from __future__ import annotations

from . import limits as limits
from .about import DISTRIBUTION, __version__
from .backend import API_VERSION, Backend
from .checkpoint import load_dagnn, load_embedding, read_checkpoint, save, write_checkpoint
from .dagnn import DagNN
from .embedding import Embedding
from .errors import (
    BackendLoadError,
    BackendNotFoundError,
    CapabilityError,
    CheckpointError,
    CycleError,
    GraphemeError,
    GraphError,
    IncompatibleBackendError,
    NonFiniteError,
    ShapeError,
    StateError,
)
from .fitting import (
    Callback,
    EarlyStopping,
    History,
    LambdaCallback,
    TrainingDivergedError,
    evaluate,
    fit,
    minibatches,
    predict,
)
from .hookspecs import hookimpl
from .optim import SGD, Adam
from .plan import ExecutionPlan
from .protocols import BackwardPass
from .registry import (
    BackendInfo,
    BackendSpec,
    get_backend,
    list_backends,
    register_plugin,
    unregister_plugin,
    use_backend,
)
from .slices import BrainSlice, CognitiveBrainOrchestrator
from .types import Activation, EdgeId, InitStrategy, NodeId, NodeKind

__all__ = [
    "API_VERSION",
    "DISTRIBUTION",
    "SGD",
    "Activation",
    "Adam",
    "Backend",
    "BackendInfo",
    "BackendLoadError",
    "BackendNotFoundError",
    "BackendSpec",
    "BackwardPass",
    "BrainSlice",
    "Callback",
    "CapabilityError",
    "CheckpointError",
    "CognitiveBrainOrchestrator",
    "CycleError",
    "DagNN",
    "EarlyStopping",
    "EdgeId",
    "Embedding",
    "ExecutionPlan",
    "GraphError",
    "GraphemeError",
    "History",
    "IncompatibleBackendError",
    "InitStrategy",
    "LambdaCallback",
    "NodeId",
    "NodeKind",
    "NonFiniteError",
    "ShapeError",
    "StateError",
    "TrainingDivergedError",
    "__version__",
    "evaluate",
    "fit",
    "get_backend",
    "hookimpl",
    "list_backends",
    "load_dagnn",
    "load_embedding",
    "minibatches",
    "predict",
    "read_checkpoint",
    "register_plugin",
    "save",
    "unregister_plugin",
    "use_backend",
    "write_checkpoint",
]
