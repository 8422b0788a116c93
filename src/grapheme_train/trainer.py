"""The training loop of the unified model, its per-epoch records and the evaluation.

One epoch: zero the gradients; for each domain, in order, write its
examples as one batch into the brain's input slice, forward, add the MSE gradient of
the brain's outputs (into the DagNN and the Embedding rows used); then one optimizer
step. The epoch's loss is the mean per-example loss measured in that pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from grapheme_train.data import Example, by_domain
from grapheme_train.errors import GraphemeTrainError, RoutingError
from grapheme_train.model import SharedAGIModel
from grapheme_train.modules import DOMAINS, InputEncoding
from grapheme_train.router import CognitiveRouter

__all__ = [
    "DomainScore",
    "EpochRecord",
    "NonFiniteLossError",
    "Trainer",
]


class NonFiniteLossError(GraphemeTrainError):
    """The loss (or a parameter) stopped being a finite number."""

    def __init__(self, epoch: int, what: str, value: float) -> None:
        super().__init__(f"{what} is not finite ({value}) at epoch {epoch}")
        self.epoch = epoch
        self.what = what
        self.value = value


@attrs.frozen
class EpochRecord:
    """Losses of one epoch: mean per-example loss overall and per domain."""

    epoch: int
    loss: float
    domain_loss: Mapping[str, float]
    delta: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as one metrics-file line (``epoch``, ``loss``, ``domain_loss``, ``delta``)."""
        return {
            "epoch": self.epoch,
            "loss": self.loss,
            "domain_loss": dict(self.domain_loss),
            "delta": self.delta,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> EpochRecord:
        """Rebuild a record written by :meth:`to_json` (checkpoint history)."""
        return cls(int(obj["epoch"]), float(obj["loss"]), dict(obj["domain_loss"]), obj["delta"])


@attrs.frozen
class DomainScore:
    """Evaluation of one domain: exact-match share of decoded answers and mean loss.

    An example counts as exact only if the router sends it to this domain's module and
    the decoded answer equals the expected text; ``misrouted`` counts the others that
    failed at routing. ``exact_match`` and ``loss`` are None when there are no examples.
    """

    examples: int
    exact_match: float | None
    loss: float | None
    misrouted: int = 0

    def to_json(self) -> dict[str, Any]:
        """The score as a JSON-able dict (as in the metrics file and ``--json``)."""
        return attrs.asdict(self)


@attrs.frozen
class _Batch:
    examples: tuple[Example, ...]
    encodings: tuple[InputEncoding, ...]
    targets: np.ndarray


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
    ) -> None:
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"learning rate must be a finite number > 0, got {lr}")
        if not examples:
            raise ValueError("no training examples")
        self.model = model
        self.lr = float(lr)
        self.examples = tuple(examples)
        self.epoch = epoch
        self.history: list[EpochRecord] = list(history)
        self.batches: dict[str, _Batch] = {}
        for domain, group in by_domain(self.examples).items():
            if group:
                module = model.modules[domain]
                self.batches[domain] = _Batch(
                    tuple(group),
                    tuple(module.encode_input(e.input) for e in group),
                    module.encode_answers([e.answer for e in group]),
                )

    def train_epoch(self) -> EpochRecord:
        """Run one epoch and return its record (the model is stepped once)."""
        epoch = self.epoch + 1
        model = self.model
        model.zero_grad()
        domain_loss: dict[str, float] = {}
        total = 0.0
        for domain, batch in self.batches.items():
            model.write_to_slice(domain, batch.encodings)
            model.forward()
            losses = model.accumulate_gradients(domain, batch.targets)
            mean = float(losses.mean())
            if not math.isfinite(mean):
                raise NonFiniteLossError(epoch, f"the {domain} loss", mean)
            domain_loss[domain] = mean
            total += float(losses.sum())
        model.apply_gradients(self.lr)
        loss = total / len(self.examples)
        previous = self.history[-1].loss if self.history else None
        record = EpochRecord(
            epoch, loss, domain_loss, None if previous is None else loss - previous
        )
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
            module = self.model.modules[domain]
            decoded, outputs = self.model.predict(domain, [e.input for e in group])
            targets = module.encode_answers([e.answer for e in group])
            loss = float(((outputs - targets) ** 2).mean())
            correct = misrouted = 0
            for ex, answer in zip(group, decoded, strict=True):
                try:
                    routed = router.route(ex.input).name == domain
                except RoutingError:
                    routed = False
                misrouted += not routed
                correct += routed and answer == ex.answer
            scores[domain] = DomainScore(len(group), correct / len(group), loss, misrouted)
        return scores

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
        meta = {
            "model": meta,
            "trainer": {
                "epoch": self.epoch,
                "lr": self.lr,
                "history": [r.to_json() for r in self.history],
            },
        }
        return meta, arrays
