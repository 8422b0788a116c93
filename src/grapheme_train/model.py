"""SharedAGIModel: one DagNN shared by every brain, plus the character Embedding.

Layout: the input nodes are the brains' input slices side by side (allocated by
``CognitiveBrainOrchestrator`` in module order), then a hidden *trunk*, then the output
slices. Every input node feeds every trunk node and every trunk node feeds every
output node, so each domain's loss trains the same trunk parameters.

Training one brain on a batch::

    model.zero_grad()
    model.write_to_slice("math", encodings)   # or a [B, n_in] array
    model.forward()
    losses = model.accumulate_gradients("math", targets)   # MSE, backward, Embedding
    model.apply_gradients(lr)                  # optimizer step, then zero_grad
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from grapheme_core import (
    Activation,
    Backend,
    BrainSlice,
    CognitiveBrainOrchestrator,
    DagNN,
    Embedding,
    NodeId,
    ShapeError,
    StateError,
)
from grapheme_train.errors import GraphemeTrainError
from grapheme_train.modules import DomainModule, InputEncoding, module_config, module_from_config

__all__ = ["ModelConfig", "SharedAGIModel"]

_OPTIMIZERS = ("sgd", "adam")
_DTYPES = ("float32", "float64")


def _positive(_inst: object, attr: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attr.name} must be a positive integer, got {value!r}")


@attrs.frozen
class ModelConfig:
    """Hyper-parameters of the shared model (everything but the modules' sizes)."""

    hidden: int = attrs.field(default=64, validator=_positive)
    embedding_dim: int = attrs.field(default=8, validator=_positive)
    vocab_size: int = attrs.field(default=128, validator=_positive)
    activation: str = attrs.field(
        default="tanh", converter=lambda a: Activation.parse(a).name.lower()
    )
    dtype: str = attrs.field(default="float32", validator=attrs.validators.in_(_DTYPES))
    seed: int = 0
    optimizer: str = attrs.field(default="adam", validator=attrs.validators.in_(_OPTIMIZERS))

    def derived_seed(self, stream: int) -> int:
        """Independent seeds for the DagNN (0) and the Embedding (1)."""
        return int(np.random.SeedSequence([self.seed, stream]).generate_state(1)[0])


class SharedAGIModel:
    """The shared DagNN, its brain slices, ``output_node_ids`` and the Embedding."""

    def __init__(
        self,
        modules: Sequence[DomainModule],
        config: ModelConfig | None = None,
        backend: str | Backend | None = None,
        *,
        dag: DagNN | None = None,
        embedding: Embedding | None = None,
    ) -> None:
        self.config = config = config or ModelConfig()
        if not modules:
            raise ValueError("a SharedAGIModel needs at least one module")
        self.modules: dict[str, DomainModule] = {}
        for module in modules:
            if module.name in self.modules:
                raise ValueError(f"two modules named {module.name!r}")
            self.modules[module.name] = module
        dim = config.embedding_dim
        self.slices: dict[str, BrainSlice] = CognitiveBrainOrchestrator().allocate_brain_slices(
            (m.name, m.input_size(dim), m.output_size) for m in modules
        )
        self.n_inputs = CognitiveBrainOrchestrator.total_input_nodes(self.slices)
        self.n_outputs = CognitiveBrainOrchestrator.total_output_nodes(self.slices)
        self.embedding = embedding or Embedding(
            config.vocab_size,
            dim,
            backend=backend,
            seed=config.derived_seed(1),
            dtype=config.dtype,
            optimizer=config.optimizer,
        )
        self.dag = dag or self._build_dag(backend)
        self._check_layout()
        inputs, outputs = self.dag.input_nodes, self.dag.output_nodes
        self.input_node_ids: dict[str, list[NodeId]] = {
            b: inputs[s.input_range.start : s.input_range.stop] for b, s in self.slices.items()
        }
        self.output_node_ids: dict[str, list[NodeId]] = {
            b: outputs[s.output_range.start : s.output_range.stop] for b, s in self.slices.items()
        }
        self.trunk_node_ids: list[NodeId] = self.dag.hidden_nodes
        self._pending: dict[str, tuple[np.ndarray, Sequence[InputEncoding] | None]] = {}
        self._last: tuple[dict[str, Sequence[InputEncoding] | None], np.ndarray] | None = None

    # -- construction ------------------------------------------------------------------
    def _build_dag(self, backend: str | Backend | None) -> DagNN:
        cfg = self.config
        dag = DagNN(
            backend=self.embedding.backend if backend is None else backend,
            dtype=cfg.dtype,
            seed=cfg.derived_seed(0),
            optimizer=cfg.optimizer,
        )
        ins = dag.add_nodes(self.n_inputs, "input")
        trunk = dag.add_nodes(cfg.hidden, "hidden", cfg.activation)
        outs = dag.add_nodes(self.n_outputs, "output", Activation.LINEAR)
        dag.add_edges(np.repeat(ins, cfg.hidden), np.tile(trunk, self.n_inputs))
        dag.add_edges(np.repeat(trunk, self.n_outputs), np.tile(outs, cfg.hidden))
        return dag

    def _check_layout(self) -> None:
        got = (len(self.dag.input_nodes), len(self.dag.output_nodes))
        if got != (self.n_inputs, self.n_outputs):
            raise GraphemeTrainError(
                f"the DagNN has {got[0]} inputs and {got[1]} outputs, but the brain slices "
                f"need {self.n_inputs} and {self.n_outputs}"
            )

    # -- slices --------------------------------------------------------------------------
    def _slice(self, brain: str) -> BrainSlice:
        try:
            return self.slices[brain]
        except KeyError:
            raise KeyError(f"no brain {brain!r} (brains: {', '.join(self.slices)})") from None

    def encode(self, brain: str, inputs: Sequence[Any]) -> list[InputEncoding]:
        """Encode inputs with the brain's module."""
        module = self.modules[self._slice(brain).brain_id]
        return [module.encode_input(inp) for inp in inputs]

    def write_to_slice(self, brain: str, values: Sequence[InputEncoding] | np.ndarray) -> None:
        """Stage the next forward's inputs for ``brain``.

        ``values``: module encodings (characters are then looked up in the Embedding now,
        and ``accumulate_gradients`` trains those rows) or a ``[B, input_count]`` array.
        Brains not written get zeros. All brains written before one forward share B.
        """
        sl = self._slice(brain)
        encodings: Sequence[InputEncoding] | None = None
        if isinstance(values, np.ndarray):
            matrix = np.asarray(values, dtype=np.float64)
            if matrix.ndim == 1:
                matrix = matrix[None, :]
        else:
            encodings = list(values)
            matrix = self.modules[brain].input_matrix(encodings, self.embedding)
        if matrix.ndim != 2 or matrix.shape[1] != sl.input_count:
            raise ShapeError(
                f"brain {brain!r} takes [batch, {sl.input_count}] inputs, got {matrix.shape}"
            )
        for other, (staged, _) in self._pending.items():
            if other != brain and staged.shape[0] != matrix.shape[0]:
                raise ShapeError(
                    f"batch of {matrix.shape[0]} for {brain!r} differs from {staged.shape[0]} "
                    f"already written for {other!r}"
                )
        self._pending[brain] = (matrix, encodings)

    def forward(self) -> np.ndarray:
        """Run the DagNN on the staged inputs; returns all outputs ``[B, n_outputs]``."""
        if not self._pending:
            raise StateError("write_to_slice() before forward()")
        batch = next(iter(self._pending.values()))[0].shape[0]
        x = np.zeros((batch, self.n_inputs))
        for brain, (matrix, _) in self._pending.items():
            r = self.slices[brain].input_range
            x[:, r.start : r.stop] = matrix
        y = np.asarray(self.dag.forward(x), dtype=np.float64)
        self._last = ({b: enc for b, (_, enc) in self._pending.items()}, y)
        self._pending = {}
        return y

    def read_from_slice(self, brain: str) -> np.ndarray:
        """The brain's outputs ``[B, output_count]`` from the last forward (float64)."""
        if self._last is None:
            raise StateError("forward() before read_from_slice()")
        r = self._slice(brain).output_range
        return self._last[1][:, r.start : r.stop]

    # -- gradients -----------------------------------------------------------------------
    def accumulate_gradients(self, brain: str, targets: np.ndarray) -> np.ndarray:
        """Add the gradients of the brain's MSE loss; return the per-example losses ``[B]``.

        ``dL/dy = 2 (y - t) / n`` on the brain's ``n`` outputs (zero on every other
        output), back-propagated through the DagNN; the input gradients of staged
        encodings flow into the Embedding rows they used.
        """
        y = self.read_from_slice(brain)
        t = np.asarray(targets, dtype=np.float64)
        if t.shape != y.shape:
            raise ShapeError(f"targets for {brain!r} must have shape {y.shape}, got {t.shape}")
        assert self._last is not None
        err = y - t
        n = err.shape[1]
        grad = np.zeros_like(self._last[1])
        r = self.slices[brain].output_range
        grad[:, r.start : r.stop] = 2.0 * err / n
        grad_x = self.dag.backward_accumulate(grad)
        for written, encodings in self._last[0].items():
            if encodings:
                ir = self.slices[written].input_range
                rows, row_grads = self.modules[written].embedding_gradients(
                    encodings, grad_x[:, ir.start : ir.stop], self.embedding
                )
                if rows.size:
                    self.embedding.backward(rows, row_grads)
        return (err**2).mean(axis=1)

    backward_accumulate = accumulate_gradients

    def zero_grad(self) -> None:
        """Reset the gradients of the DagNN and the embedding."""
        self.dag.zero_grad()
        self.embedding.zero_grad()

    def step(self, lr: float) -> None:
        """One optimizer step of the DagNN and the Embedding (gradients are kept)."""
        self.dag.step(lr)
        self.embedding.step(lr)

    def apply_gradients(self, lr: float) -> None:
        """Step (SGD or Adam, per the config), then zero the gradients."""
        self.step(lr)
        self.zero_grad()

    def gradient_norm(self) -> float:
        """Joint L2 norm of the DagNN and embedding gradients."""
        return float(np.hypot(self.dag.gradient_norm(), self.embedding.gradient_norm()))

    def clip_gradients(self, max_norm: float) -> float:
        """Scale all gradients together to a joint norm of at most ``max_norm``."""
        if not max_norm > 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm}")
        norm = self.gradient_norm()
        if norm > max_norm:
            factor = max_norm / (norm + 1e-12)
            for part in (self.dag, self.embedding):
                part_norm = part.gradient_norm()
                if part_norm > 0:
                    part.clip_gradients(part_norm * factor)
        return norm

    # -- inference -----------------------------------------------------------------------
    def predict(self, brain: str, inputs: Sequence[Any]) -> tuple[list[str], np.ndarray]:
        """Decoded answers and raw outputs ``[B, output_count]`` of ``brain`` for inputs."""
        self.write_to_slice(brain, self.encode(brain, inputs))
        self.forward()
        outputs = self.read_from_slice(brain)
        return self.modules[brain].decode_answers(outputs), outputs

    # -- persistence ---------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(meta, arrays)`` holding everything needed to continue training exactly."""
        dag_meta, dag_arrays = self.dag.state()
        emb_meta, emb_arrays = self.embedding.state()
        meta = {
            "config": attrs.asdict(self.config),
            "modules": [module_config(m) for m in self.modules.values()],
            "dag": dag_meta,
            "embedding": emb_meta,
        }
        arrays = {f"dag.{k}": v for k, v in dag_arrays.items()}
        arrays.update({f"embedding.{k}": v for k, v in emb_arrays.items()})
        return meta, arrays

    @classmethod
    def from_state(
        cls,
        meta: Mapping[str, Any],
        arrays: Mapping[str, np.ndarray],
        backend: str | Backend | None = None,
    ) -> SharedAGIModel:
        """Rebuild a model saved by :meth:`state`, on ``backend`` (any backend)."""

        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

        config = ModelConfig(**meta["config"])
        modules = [module_from_config(m) for m in meta["modules"]]
        dag = DagNN.from_state(meta["dag"], part("dag."), backend=backend)
        embedding = Embedding.from_state(meta["embedding"], part("embedding."), backend=backend)
        return cls(modules, config, dag=dag, embedding=embedding)

    def describe(self) -> dict[str, int]:
        """Sizes: nodes, edges, parameters (DagNN + Embedding)."""
        return {
            "inputs": self.n_inputs,
            "hidden": len(self.trunk_node_ids),
            "outputs": self.n_outputs,
            "nodes": self.dag.node_count,
            "edges": self.dag.edge_count,
            "parameters": self.dag.num_parameters + self.embedding.vocab_size * self.embedding.dim,
        }
