"""The minibatch training loop of the unified model, its per-epoch records and evaluation.

One *step* takes ``batch_size / brains`` rows from every brain (a mixed-domain
minibatch, so every step trains the shared trunk on every domain), runs one forward and
one backward pass of the DagNN over all of them (:meth:`SharedAGIModel.accumulate_mixed`),
calls the hooks' ``on_gradients``, then takes one optimizer step at the scheduled
learning rate. An *epoch* is enough steps to see every example of the largest brain once;
smaller brains cycle through fresh permutations. Shuffling is seeded by
``(seed, epoch, brain)``, so the same seed gives the same run and a resumed run
continues exactly. The learning rate halves every ``half_life`` epochs (per step) down
to ``lr * min_lr_ratio``.

Data parallelism: with ``shard=(rank, world_size)`` a process uses rows
``rank::world_size`` of every global minibatch and divides its summed loss by the global
batch size, so the SUM over ranks of their gradients is the one-process gradient.

Hooks (objects with a ``name`` and any of ``on_gradients(trainer, step)``,
``on_step_end(trainer, step)``, ``on_epoch_end(trainer, epoch, record) -> dict | None``,
``state_dict()`` / ``load_state_dict(d)``) run in list order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs
import numpy as np

from grapheme_core.errors import NonFiniteError
from grapheme_train.baselines import BigramBaseline
from grapheme_train.data import Example, by_domain
from grapheme_train.errors import GraphemeTrainError, RoutingError
from grapheme_train.heads import per_slot_nll
from grapheme_train.model import SharedAGIModel
from grapheme_train.modules import DOMAINS
from grapheme_train.router import CognitiveRouter

__all__ = [
    "DomainScore",
    "EncodedSet",
    "EpochRecord",
    "NonFiniteLossError",
    "Trainer",
    "TrainerHook",
    "encode_set",
]


class NonFiniteLossError(GraphemeTrainError):
    """The loss (or a parameter) stopped being a finite number."""

    def __init__(self, epoch: int, what: str, value: float) -> None:
        super().__init__(f"{what} is not finite ({value}) at epoch {epoch}")
        self.epoch = epoch
        self.what = what
        self.value = value


class TrainerHook(Protocol):
    """A plug-in called by the trainer (every method is optional; see the module doc)."""

    name: str


@attrs.frozen
class EpochRecord:
    """Losses of one epoch: mean per-example loss overall and per domain, plus extras."""

    epoch: int
    loss: float
    domain_loss: Mapping[str, float]
    delta: float | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record as one metrics-file line (``epoch``, ``loss``, ``domain_loss``,
        ``delta`` and any extra per-epoch figures from hooks)."""
        out = {
            "epoch": self.epoch,
            "loss": self.loss,
            "domain_loss": dict(self.domain_loss),
            "delta": self.delta,
        }
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> EpochRecord:
        """Rebuild a record written by :meth:`to_json` (checkpoint history)."""
        known = {"epoch", "loss", "domain_loss", "delta"}
        extra = {k: v for k, v in obj.items() if k not in known}
        return cls(
            int(obj["epoch"]), float(obj["loss"]), dict(obj["domain_loss"]), obj["delta"], extra
        )


@attrs.frozen
class DomainScore:
    """Evaluation of one domain: exact-match share of decoded answers and mean loss.

    An example counts as exact only if the router sends it to this domain's module and
    the decoded answer equals the expected text; ``misrouted`` counts the others that
    failed at routing. ``exact_match`` and ``loss`` are None when there are no examples.
    ``extra`` holds domain-specific figures (text: bits per character and the bigram
    baseline on the same split).
    """

    examples: int
    exact_match: float | None
    loss: float | None
    misrouted: int = 0
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The score as a JSON-able dict (as in the metrics file and ``--json``)."""
        out = {
            "examples": self.examples,
            "exact_match": self.exact_match,
            "loss": self.loss,
            "misrouted": self.misrouted,
        }
        out.update(self.extra)
        return out


@attrs.frozen(eq=False)
class EncodedSet:
    """One brain's examples as arrays: character codes, features, targets, contexts."""

    examples: tuple[Example, ...]
    chars: np.ndarray
    features: np.ndarray
    targets: np.ndarray
    contexts: np.ndarray | None

    def __len__(self) -> int:
        return len(self.examples)

    def rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.chars[idx], self.features[idx], self.targets[idx]


def encode_set(model: SharedAGIModel, domain: str, group: Sequence[Example]) -> EncodedSet:
    """Encode a brain's examples once (the training hot path then only indexes arrays)."""
    module = model.modules[domain]
    encodings = [module.encode_input(e.input) for e in group]
    chars = (
        np.stack([e.chars for e in encodings])
        if encodings
        else np.zeros((0, module.char_slots.count), dtype=np.int64)
    )
    feats = (
        np.stack([e.features for e in encodings])
        if encodings
        else np.zeros((0, module.feature_count))
    )
    targets = module.encode_answers([e.answer for e in group], encodings)
    return EncodedSet(tuple(group), chars, feats, targets, module.contexts(encodings))


class Trainer:
    """Trains a :class:`SharedAGIModel` on resolved examples (every one has a domain)."""

    def __init__(
        self,
        model: SharedAGIModel,
        examples: Sequence[Example],
        lr: float,
        *,
        epoch: int = 0,
        history: Iterable[EpochRecord] = (),
        batch_size: int = 256,
        total_epochs: int | None = None,
        min_lr_ratio: float = 0.05,
        half_life: float = 3.0,
        seed: int = 0,
        hooks: Sequence[Any] = (),
        shard: tuple[int, int] | None = None,
    ) -> None:
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"learning rate must be a finite number > 0, got {lr}")
        if not examples:
            raise ValueError("no training examples")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if shard is not None:
            rank, world = shard
            if not (world >= 1 and 0 <= rank < world):
                raise ValueError(
                    f"shard must be (rank, world_size) with 0 <= rank < world_size, got {shard}"
                )
        self.model = model
        self.lr = float(lr)
        self.examples = tuple(examples)
        self.epoch = epoch
        self.history: list[EpochRecord] = list(history)
        self.batch_size = int(batch_size)
        self.total_epochs = total_epochs
        self.min_lr_ratio = float(min_lr_ratio)
        self.half_life = float(half_life)
        self.seed = int(seed)
        self.hooks = list(hooks)
        self.shard = shard
        self.sets: dict[str, EncodedSet] = {
            d: encode_set(model, d, g) for d, g in by_domain(self.examples).items() if g
        }
        self.bigram = (
            BigramBaseline.fit(self.sets["text"].examples) if "text" in self.sets else None
        )

    # -- schedule ------------------------------------------------------------------------
    @property
    def per_brain(self) -> int:
        """Rows per brain in one global minibatch."""
        return max(1, self.batch_size // len(self.sets))

    @property
    def steps_per_epoch(self) -> int:
        """Steps that show every example of the largest brain once."""
        return math.ceil(max(len(s) for s in self.sets.values()) / self.per_brain)

    def lr_at(self, step: int) -> float:
        """The learning rate of global step ``step`` (0-based).

        It halves every ``half_life`` epochs (smoothly, per step) down to
        ``lr * min_lr_ratio``. It depends on the step only, never on how many epochs the
        run asks for, so a run extended with ``--resume --epochs N`` is exactly the run
        that asked for N epochs from the start.
        """
        decay = 0.5 ** (step / (self.half_life * self.steps_per_epoch))
        return self.lr * max(self.min_lr_ratio, decay)

    def _order(self, epoch: int, index: int, size: int, need: int) -> np.ndarray:
        """Seeded row order of one brain for ``epoch``: fresh permutations until ``need``."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, index]))
        reps = math.ceil(need / size)
        return np.concatenate([rng.permutation(size) for _ in range(reps)])[:need]

    # -- training ------------------------------------------------------------------------
    def _call(self, method: str, *args: Any) -> list[Any]:
        out = []
        for hook in self.hooks:
            fn = getattr(hook, method, None)
            if fn is not None:
                out.append(fn(self, *args))
        return out

    def train_epoch(self) -> EpochRecord:
        """Run one epoch of minibatch steps and return its record."""
        epoch = self.epoch + 1
        model = self.model
        per, steps = self.per_brain, self.steps_per_epoch
        orders = {
            d: self._order(epoch, i, len(s), per * steps)
            for i, (d, s) in enumerate(self.sets.items())
        }
        sums = dict.fromkeys(self.sets, 0.0)
        global_batch = per * len(self.sets)
        rank, world = self.shard or (0, 1)
        model.zero_grad()
        for k in range(steps):
            step = (epoch - 1) * steps + k
            parts = []
            for d, s in self.sets.items():
                idx = orders[d][k * per : (k + 1) * per][rank::world]
                parts.append((d, *s.rows(idx)))
            try:
                losses = model.accumulate_mixed(parts, global_batch)
            except NonFiniteError:  # the Embedding rows fed to the DagNN have diverged
                raise NonFiniteLossError(epoch, "an input of the shared model", math.nan) from None
            for d, value in losses.items():
                sums[d] += float(value.sum())
            self._call("on_gradients", step)
            model.step(self.lr_at(step))
            model.zero_grad()
            self._call("on_step_end", step)
        for hook in self.hooks:  # data parallel: every rank reports the global-batch losses
            reduce_sum = getattr(hook, "reduce_sum", None)
            if reduce_sum is not None:
                sums = dict(zip(sums, reduce_sum(list(sums.values())), strict=True))
        rows = per * steps
        domain_loss = {d: v / rows for d, v in sums.items()}
        loss = sum(sums.values()) / (rows * len(self.sets))
        for d, v in domain_loss.items():
            if not math.isfinite(v):
                raise NonFiniteLossError(epoch, f"the {d} loss", v)
        previous = self.history[-1].loss if self.history else None
        record = EpochRecord(
            epoch, loss, domain_loss, None if previous is None else loss - previous
        )
        extra: dict[str, Any] = {"lr": self.lr_at(epoch * steps - 1)}
        for got in self._call("on_epoch_end", epoch, record):
            if got:
                extra.update(got)
        record = attrs.evolve(record, extra=extra)
        self.epoch = epoch
        self.history.append(record)
        return record

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(
        self, examples: Sequence[Example], router: CognitiveRouter | None = None
    ) -> dict[str, DomainScore]:
        """Per-domain exact match and mean loss of ``examples`` (no gradients)."""
        router = router or CognitiveRouter(0.5, self.model.modules.values())
        scores: dict[str, DomainScore] = {}
        groups = by_domain(examples)
        for domain in DOMAINS:
            group = groups.get(domain, [])
            if domain not in self.model.modules or not group:
                scores[domain] = DomainScore(len(group), None, None)
                continue
            scores[domain] = self._score(domain, group, router)
        return scores

    def _score(self, domain: str, group: Sequence[Example], router: CognitiveRouter) -> DomainScore:
        model, module = self.model, self.model.modules[domain]
        enc = encode_set(model, domain, group)
        outputs = self.forward_rows(domain, enc.chars, enc.features)
        encodings = (
            [module.encode_input(e.input) for e in group] if enc.contexts is not None else None
        )
        decoded = module.decode_answers(outputs, encodings)
        losses, _ = module.loss(outputs, enc.targets)
        correct = misrouted = 0
        for ex, answer in zip(group, decoded, strict=True):
            try:
                routed = router.route(ex.input).name == domain
            except RoutingError:
                routed = False
            misrouted += not routed
            correct += routed and answer == ex.answer
        extra: dict[str, Any] = {}
        if domain == "text":
            head = module.codec
            nll = per_slot_nll(outputs, enc.targets, head.classes)
            extra["next_char_accuracy"] = float(
                np.mean([a == e.answer for a, e in zip(decoded, group, strict=True)])
            )
            extra["bits_per_char"] = float(nll.mean() / math.log(2))
            if self.bigram is not None:
                extra["bigram"] = self.bigram.score(group)
        return DomainScore(len(group), correct / len(group), float(losses.mean()), misrouted, extra)

    def forward_rows(
        self, domain: str, chars: np.ndarray, features: np.ndarray, chunk: int = 2048
    ) -> np.ndarray:
        """The brain's outputs for encoded rows (in chunks, no gradients)."""
        model = self.model
        module, ir = model.modules[domain], model.slices[domain].input_range
        r = model.slices[domain].output_range
        width = module.char_slots.width(model.embedding.dim)
        out = []
        for a in range(0, len(features), chunk):
            f = features[a : a + chunk]
            x = np.zeros((len(f), model.n_inputs))
            if width:
                x[:, ir.start : ir.start + width] = module.char_slots.embed(
                    chars[a : a + chunk], model.embedding
                )
            x[:, ir.start + width : ir.stop] = f
            y = np.asarray(model.dag.forward(x), dtype=np.float64)
            out.append(y[:, r.start : r.stop])
        return np.concatenate(out) if out else np.zeros((0, r.stop - r.start))

    def gradient_share(self, rows: int = 64) -> dict[str, float]:
        """SharedAGIModel.gradient_share on the first ``rows`` training rows of each brain."""
        samples = {d: s.rows(np.arange(min(rows, len(s)))) for d, s in self.sets.items()}
        return self.model.gradient_share(samples)

    def predictions(self, examples: Sequence[Example]) -> list[tuple[Example, str]]:
        """Each example with the answer decoded by its own brain."""
        out = []
        for domain, group in by_domain(examples).items():
            if group:
                decoded, _ = self.model.predict(domain, [e.input for e in group])
                out += list(zip(group, decoded, strict=True))
        return out

    # -- state ---------------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(meta, arrays)`` of model and trainer; non-finite parameters are an error."""
        meta, arrays = self.model.state()
        for name, arr in arrays.items():
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                bad = arr[~np.isfinite(arr)][0]
                raise NonFiniteLossError(self.epoch, f"the updated parameter array {name}", bad)
        hooks = {h.name: h.state_dict() for h in self.hooks if getattr(h, "state_dict", None)}
        meta = {
            "model": meta,
            "trainer": {
                "epoch": self.epoch,
                "lr": self.lr,
                "batch_size": self.batch_size,
                "total_epochs": self.total_epochs,
                "min_lr_ratio": self.min_lr_ratio,
                "half_life": self.half_life,
                "seed": self.seed,
                "history": [r.to_json() for r in self.history],
                "hooks": hooks,
            },
        }
        return meta, arrays

    def load_hook_states(self, states: Mapping[str, Any]) -> None:
        """Give each hook its saved ``state_dict`` (from a checkpoint's ``trainer.hooks``)."""
        for hook in self.hooks:
            if hook.name in states and getattr(hook, "load_state_dict", None):
                hook.load_state_dict(states[hook.name])
