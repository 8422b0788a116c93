"""SharedAGIModel: one DagNN shared by every brain, plus the character Embedding.

Layout: the input nodes are the brains' input slices side by side (allocated by
``CognitiveBrainOrchestrator`` in module order). Each brain's inputs feed its own
*encoder* layer (``encoder`` nodes); every encoder feeds the first *trunk* layer; the
``trunk_depth`` trunk layers (``hidden`` nodes each) are chained by trunk-to-trunk edges;
the last trunk layer feeds every output slice. So every brain's gradient reaches every
trunk parameter (see :meth:`SharedAGIModel.gradient_share`). A brain whose module asks
for it (the time series) also has direct input -> output edges.

Training one brain on a batch::

    model.zero_grad()
    model.write_to_slice("math", encodings)   # or a [B, n_in] array
    model.forward()
    losses = model.accumulate_gradients("math", targets)   # MSE, backward, Embedding
    model.apply_gradients(lr)                  # optimizer step, then zero_grad
"""

from __future__ import annotations

import itertools
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

    hidden: int = attrs.field(default=128, validator=_positive)
    trunk_depth: int = attrs.field(default=2, validator=_positive)
    encoder: int = attrs.field(default=64, validator=_positive)
    embedding_dim: int = attrs.field(default=8, validator=_positive)
    vocab_size: int = attrs.field(default=128, validator=_positive)
    activation: str = attrs.field(
        default="leaky_relu", converter=lambda a: Activation.parse(a).name.lower()
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
        layers: Mapping[str, Any] | None = None,
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
        if dag is None:
            dag, layers = self._build_dag(backend)
        self.dag = dag
        self._check_layout()
        inputs, outputs = self.dag.input_nodes, self.dag.output_nodes
        self.input_node_ids: dict[str, list[NodeId]] = {
            b: inputs[s.input_range.start : s.input_range.stop] for b, s in self.slices.items()
        }
        self.output_node_ids: dict[str, list[NodeId]] = {
            b: outputs[s.output_range.start : s.output_range.stop] for b, s in self.slices.items()
        }
        if layers is None:
            layers = self._derived_layers()
        self.encoder_node_ids: dict[str, list[NodeId]] = {
            b: [int(n) for n in ids] for b, ids in layers["encoders"].items()
        }
        self._trunk: list[np.ndarray] = [np.asarray(t, dtype=np.int64) for t in layers["trunk"]]
        self.trunk_node_ids: list[NodeId] = [int(n) for t in self._trunk for n in t]
        self._pending: dict[str, tuple[np.ndarray, Sequence[InputEncoding] | None]] = {}
        self._last: tuple[dict[str, Sequence[InputEncoding] | None], np.ndarray] | None = None

    # -- construction ------------------------------------------------------------------
    def _build_dag(self, backend: str | Backend | None) -> tuple[DagNN, dict[str, Any]]:
        cfg = self.config
        dag = DagNN(
            backend=self.embedding.backend if backend is None else backend,
            dtype=cfg.dtype,
            seed=cfg.derived_seed(0),
            optimizer=cfg.optimizer,
        )
        ins = dag.add_nodes(self.n_inputs, "input")
        encoders = {b: dag.add_nodes(cfg.encoder, "hidden", cfg.activation) for b in self.slices}
        trunk = [
            dag.add_nodes(cfg.hidden, "hidden", cfg.activation) for _ in range(cfg.trunk_depth)
        ]
        outs = dag.add_nodes(self.n_outputs, "output", Activation.LINEAR)

        def dense(src: np.ndarray, dst: np.ndarray) -> None:
            dag.add_edges(np.repeat(src, len(dst)), np.tile(dst, len(src)))

        for b, sl in self.slices.items():
            r, o = sl.input_range, sl.output_range
            dense(ins[r.start : r.stop], encoders[b])
            dense(encoders[b], trunk[0])
            if self.modules[b].linear_skip:
                dense(ins[r.start : r.stop], outs[o.start : o.stop])
        for a, b in itertools.pairwise(trunk):
            dense(a, b)
        dense(trunk[-1], outs)
        layers = {
            "encoders": {b: e.tolist() for b, e in encoders.items()},
            "trunk": [t.tolist() for t in trunk],
        }
        return dag, layers

    def _derived_layers(self) -> dict[str, Any]:
        """Layer ids of a DagNN built by :meth:`_build_dag` (hidden nodes in build order)."""
        hidden = np.asarray(self.dag.hidden_nodes, dtype=np.int64)
        enc, width = self.config.encoder, self.config.hidden
        encoders = {b: hidden[i * enc : (i + 1) * enc].tolist() for i, b in enumerate(self.slices)}
        start = enc * len(self.slices)
        trunk = [
            hidden[start + i * width : start + (i + 1) * width].tolist()
            for i in range(self.config.trunk_depth)
        ]
        return {"encoders": encoders, "trunk": trunk}

    def trunk_layers(self) -> list[np.ndarray]:
        """Node ids of the shared trunk layers, in forward order.

        Every brain's gradient reaches these layers; a topology rule may drop and regrow
        edges between consecutive layers of this list (and only there).
        """
        return [t.copy() for t in self._trunk]

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
    def accumulate_gradients(
        self, brain: str, targets: np.ndarray, *, divisor: float | None = None
    ) -> np.ndarray:
        """Add the gradients of the brain's loss; return the per-example losses ``[B]``.

        The loss is the brain's head loss (softmax cross-entropy per slot for characters
        and labels, MSE for numbers; ``targets`` from ``module.encode_answers``), summed
        over the batch and divided by ``divisor`` (default: the batch size, i.e. the
        mean). It is back-propagated through the DagNN (zero on every other output) and
        the input gradients of staged encodings flow into the Embedding rows they used.
        """
        y = self.read_from_slice(brain)
        assert self._last is not None
        losses, g = self.modules[brain].loss(y, targets)
        grad = np.zeros_like(self._last[1])
        r = self.slices[brain].output_range
        grad[:, r.start : r.stop] = g / (len(y) if divisor is None else divisor)
        self._backward(grad, self._last[0])
        return losses

    def _backward(
        self, grad: np.ndarray, staged: Mapping[str, Sequence[InputEncoding] | None]
    ) -> None:
        grad_x = self.dag.backward_accumulate(grad)
        for written, encodings in staged.items():
            if encodings:
                ir = self.slices[written].input_range
                rows, row_grads = self.modules[written].embedding_gradients(
                    encodings, grad_x[:, ir.start : ir.stop], self.embedding
                )
                if rows.size:
                    self.embedding.backward(rows, row_grads)

    def accumulate_mixed(
        self, parts: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], divisor: float
    ) -> dict[str, np.ndarray]:
        """One forward/backward over rows of several brains at once (a mixed minibatch).

        ``parts``: ``(brain, chars [b, S], features [b, F], targets)`` per brain; each row
        fills only its brain's input slice and its loss only reaches its brain's outputs.
        The summed loss is divided by ``divisor`` (the global batch size). Returns each
        brain's per-example losses.
        """
        x = np.zeros((sum(len(p[2]) for p in parts), self.n_inputs))
        row = 0
        spans = []
        for brain, chars, feats, _ in parts:
            module, ir = self.modules[brain], self.slices[brain].input_range
            width = module.char_slots.width(self.embedding.dim)
            block = x[row : row + len(feats), ir.start : ir.stop]
            if width:
                block[:, :width] = module.char_slots.embed(chars, self.embedding)
            block[:, width:] = feats
            spans.append((row, row + len(feats)))
            row += len(feats)
        y = np.asarray(self.dag.forward(x), dtype=np.float64)
        grad = np.zeros_like(y)
        out: dict[str, np.ndarray] = {}
        for (brain, _chars, _, targets), (a, b) in zip(parts, spans, strict=True):
            r = self.slices[brain].output_range
            losses, g = self.modules[brain].loss(y[a:b, r.start : r.stop], targets)
            grad[a:b, r.start : r.stop] = g / divisor
            out[brain] = losses
        grad_x = self.dag.backward_accumulate(grad)
        for (brain, chars, _, _), (a, b) in zip(parts, spans, strict=True):
            module = self.modules[brain]
            if module.char_slots.count:
                ir = self.slices[brain].input_range
                width = module.char_slots.width(self.embedding.dim)
                rows, row_grads = module.char_slots.gradients(
                    chars, grad_x[a:b, ir.start : ir.start + width], self.embedding
                )
                if rows.size:
                    self.embedding.backward(rows, row_grads)
        self._last = None
        return out

    def gradient_share(
        self, samples: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    ) -> dict[str, float]:
        """Share of the DagNN's parameters (weights and biases) with a non-zero gradient
        from each brain's batch alone, and from every brain (``"all"``).

        ``samples``: ``brain -> (chars, features, targets)``. Gradients are zeroed before
        and after, so training state is unchanged.
        """
        total = self.dag.num_parameters
        reached: dict[str, np.ndarray] = {}
        self.zero_grad()
        for brain, (chars, feats, targets) in samples.items():
            self.accumulate_mixed([(brain, chars, feats, targets)], max(len(feats), 1))
            g = self.dag.get_gradients()
            reached[brain] = np.concatenate([g["weight"], g["bias"]]) != 0
            self.zero_grad()
        share = {b: float(m.sum() / total) for b, m in reached.items()}
        if reached:
            share["all"] = float(np.logical_and.reduce(list(reached.values())).sum() / total)
        return share

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
        module = self.modules[brain]
        return module.decode_answers(outputs, self.encode(brain, inputs)), outputs

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
            "layers": {
                "encoders": self.encoder_node_ids,
                "trunk": [t.tolist() for t in self._trunk],
            },
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
        return cls(modules, config, dag=dag, embedding=embedding, layers=meta.get("layers"))

    def describe(self) -> dict[str, int]:
        """Sizes: nodes, edges, parameters (DagNN + Embedding)."""
        return {
            "inputs": self.n_inputs,
            "hidden": len(self.trunk_node_ids),
            "trunk_layers": len(self._trunk),
            "encoder": sum(len(e) for e in self.encoder_node_ids.values()),
            "outputs": self.n_outputs,
            "nodes": self.dag.node_count,
            "edges": self.dag.edge_count,
            "parameters": self.dag.num_parameters + self.embedding.vocab_size * self.embedding.dim,
        }
