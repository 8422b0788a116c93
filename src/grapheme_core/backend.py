"""The kernel protocol every compute backend implements.

A backend never sees Python objects per node: it compiles a whole
:class:`~grapheme_core.plan.ExecutionPlan` once (per structural version) into whatever
suits it, then runs forward and backward over levels. Parameters are backend-native
arrays owned by the model; the model only moves them through the methods below.

Arrays returned by a method may be new objects or updated inputs; callers always use the
return value (that is what lets an immutable-array backend such as JAX fit).

``grapheme_backends.numpy_backend.NumpyBackend`` is the complete reference
implementation; a new backend can subclass it and override piecemeal.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from .plan import ExecutionPlan

#: Version of this protocol. Plugins declare the version they implement in their
#: ``BackendSpec``; a different major version is refused with ``IncompatibleBackendError``,
#: any minor version of the same major loads. 1.1 added the optional
#: :meth:`Backend.candidate_edge_grads` (capability ``candidate_edge_grads``); a 1.0 plugin
#: without it keeps working for everything except RigL regrowth.
API_VERSION = "1.1"

Array = Any  # a backend-native array (numpy.ndarray, torch.Tensor, jax.Array, ...)

#: Optional abilities a backend may have, by name, with what each one means. A backend
#: declares what it has as ``capabilities`` (any iterable of these names); the conformance
#: suite reports the checks of a missing capability as not applicable, and features that
#: need one (RigL needs ``candidate_edge_grads``) say why they cannot run.
CAPABILITIES: dict[str, str] = {
    "float64": "models in float64 as well as float32",
    "candidate_edge_grads": (
        "API 1.1: gradients for edges that do not exist yet (used by RigL regrowth)"
    ),
}


def backend_capabilities(backend: Any) -> frozenset[str]:
    """The capabilities ``backend`` has: its declared ``capabilities`` attribute if it has
    one, else ``float64`` plus ``candidate_edge_grads`` when it implements that method."""
    declared = getattr(backend, "capabilities", None)
    if declared is not None:
        caps = frozenset(str(c) for c in declared)
        unknown = caps - CAPABILITIES.keys()
        if unknown:
            raise ValueError(
                f"backend {getattr(backend, 'name', backend)!r} declares unknown capabilities "
                f"{sorted(unknown)}; known: {sorted(CAPABILITIES)}"
            )
        return caps
    caps = {"float64"}
    if callable(getattr(backend, "candidate_edge_grads", None)):
        caps.add("candidate_edge_grads")
    return frozenset(caps)


@runtime_checkable
class Backend(Protocol):
    """The kernel protocol of a compute backend (see the module docstring): conversion,
    the DagNN forward/backward kernels, optimizer updates and embedding row kernels.
    """

    name: str
    api_version: str

    # -- conversion and bookkeeping -------------------------------------------------
    def asarray(self, value: Any, dtype: str) -> Array:
        """Host data (or a native array) as a native array of ``dtype`` (float32/float64)."""

    def to_numpy(self, value: Array) -> np.ndarray:
        """A host NumPy copy of ``value``."""

    def zeros(self, shape: tuple[int, ...], dtype: str) -> Array:
        """A native array of zeros of ``shape`` and ``dtype``."""

    def concat(self, first: Array, second: Array) -> Array:
        """Concatenate along axis 0 (used when the graph grows)."""

    def take(self, value: Array, index: np.ndarray) -> Array:
        """Rows ``value[index]`` (used to compact after removals)."""

    def add(self, first: Array, second: Array) -> Array:
        """``first + second``; may update ``first`` in place."""

    def scale(self, value: Array, factor: float) -> Array:
        """``value * factor``; may update in place."""

    def sum_squares(self, value: Array) -> float:
        """``sum(value ** 2)`` as a Python float (for gradient norms)."""

    # -- the DagNN kernels ----------------------------------------------------------
    def compile(self, plan: ExecutionPlan, dtype: str) -> Any:
        """Prepare kernels for one plan; called once per structural version."""

    def forward(self, compiled: Any, weight: Array, bias: Array, x: Array) -> tuple[Array, Any]:
        """``x`` is ``[B, n_inputs]``; returns ``([B, n_outputs], cache for backward)``.

        ``weight`` is ordered like the model's edges, ``bias`` like its node slots.
        """

    def backward(
        self, compiled: Any, weight: Array, bias: Array, cache: Any, grad_out: Array
    ) -> tuple[Array, Array, Array]:
        """Reverse pass for ``dL/dy = grad_out`` (``[B, n_outputs]``): the gradient of the
        forward pass that produced ``cache``, with the weights that pass used (``weight``
        is the current vector, which an optimizer step may have changed since).

        Returns ``(dL/dweight [E], dL/dbias [N], dL/dx [B, n_inputs])``; the bias
        gradient of input nodes is zero. Gradients are returned, not accumulated.
        """

    # -- optimizers -----------------------------------------------------------------
    def sgd_step(self, param: Array, grad: Array, lr: float) -> Array:
        """``param - lr * grad`` (may update ``param`` in place)."""

    def adam_step(
        self,
        param: Array,
        grad: Array,
        m: Array,
        v: Array,
        step: int,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
    ) -> tuple[Array, Array, Array]:
        """One bias-corrected Adam update (``step`` counts from 1); returns (param, m, v)."""

    # -- embeddings -----------------------------------------------------------------
    def gather_rows(self, table: Array, index: np.ndarray) -> Array:
        """``table[index]`` for integer ``index`` of any length."""

    def scatter_add_rows(self, table: Array, index: np.ndarray, rows: Array) -> Array:
        """``table[index] += rows`` where repeated indices add up."""


@runtime_checkable
class CandidateEdgeGrads(Protocol):
    """API 1.1, optional: the kernel behind RigL regrowth (capability
    ``candidate_edge_grads``). Kept out of :class:`Backend` so that a 1.0 backend still
    satisfies that protocol; ``isinstance(backend, CandidateEdgeGrads)`` says whether a
    backend has it."""

    def candidate_edge_grads(
        self,
        compiled: Any,
        weight: Array,
        bias: Array,
        cache: Any,
        grad_out: Array,
        src: np.ndarray,
        dst: np.ndarray,
    ) -> Array:
        """Gradients for edges that do not exist yet: ``out[k] = sum_b dL/dz[dst[k], b] *
        h[src[k], b]`` for the forward that made ``cache`` and the backward of ``grad_out``.

        ``src``/``dst`` are topological positions of the plan (int64 host arrays of equal
        length ``K``); ``dL/dz`` is the pre-activation gradient the backward computes. This
        is ``dL/dw`` of an edge ``src -> dst`` added with weight 0 (which leaves the forward
        unchanged). Implementations work in ``O(K * B)`` memory chunks, never ``N x N``.
        Optional: a backend without it lacks the ``candidate_edge_grads`` capability.
        """


def to_host(backend: Backend, value: Any) -> np.ndarray:
    """A NumPy view (or copy) of user data: array-likes, this backend's arrays, or another
    library's tensors (a torch tensor may require grad or live on a GPU: it is detached
    and moved first, without importing torch here)."""
    if isinstance(value, np.ndarray | list | tuple | float | int | np.generic):
        return np.asarray(value)
    detach = getattr(value, "detach", None)
    if callable(detach) and callable(getattr(value, "cpu", None)):
        return np.asarray(detach().cpu().numpy())
    return np.asarray(backend.to_numpy(value))


def dtype_name(dtype: Any) -> str:
    """``"float32"``/``"float64"`` from a name, a NumPy/JAX dtype or a ``torch.dtype``
    (anything else comes back as its string, for the caller to reject)."""
    try:
        return str(np.dtype(dtype))
    except TypeError:
        return str(dtype).removeprefix("torch.")
