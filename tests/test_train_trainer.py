"""Trainer: real learning, determinism, exact resume, non-finite detection, evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_train.checkpoint import load_training, restore_trainer, save_training
from grapheme_train.data import Example, heldout_examples
from grapheme_train.inputs import TextInput
from grapheme_train.model import SharedAGIModel
from grapheme_train.router import CognitiveRouter
from grapheme_train.session import merge_settings, prepare_data
from grapheme_train.trainer import EpochRecord, NonFiniteLossError, Trainer


def _setup(epochs: int = 10, **given):
    settings = merge_settings(given, epochs)
    prepared = prepare_data([], settings)
    model = SharedAGIModel(prepared.modules, settings.model_config(), "numpy")
    return settings, prepared, Trainer(model, prepared.examples, settings.lr)


def _run(trainer: Trainer, epochs: int) -> list[EpochRecord]:
    while trainer.epoch < epochs:
        trainer.train_epoch()
    return trainer.history


def test_epoch_records() -> None:
    _, prepared, trainer = _setup()
    first = trainer.train_epoch()
    assert first.epoch == 1 and first.delta is None
    assert set(first.domain_loss) == {"math", "text", "timeseries", "vision"}
    sizes = {"math": 8, "text": 4, "timeseries": 4, "vision": 4}
    weighted = sum(first.domain_loss[d] * n for d, n in sizes.items()) / 20
    assert first.loss == pytest.approx(weighted)
    second = trainer.train_epoch()
    assert second.delta == pytest.approx(second.loss - first.loss)
    assert EpochRecord.from_json(second.to_json()) == second


def test_loss_really_falls_and_answers_come_out() -> None:
    _, prepared, trainer = _setup()
    history = _run(trainer, 60)
    assert history[-1].loss < 0.1 * history[0].loss
    for d in history[0].domain_loss:
        assert history[-1].domain_loss[d] < 0.2 * history[0].domain_loss[d], d
    scores = trainer.evaluate(prepared.examples, prepared.router)
    assert sum(s.exact_match * s.examples for s in scores.values()) >= 17


def test_untrained_model_does_not_answer() -> None:
    _, prepared, trainer = _setup()
    scores = trainer.evaluate(prepared.examples, prepared.router)
    assert sum(s.exact_match * s.examples for s in scores.values()) <= 10


def test_same_seed_same_history_other_seed_differs() -> None:
    a = _run(_setup(seed=5)[2], 5)
    b = _run(_setup(seed=5)[2], 5)
    c = _run(_setup(seed=6)[2], 5)
    assert a == b
    assert a[0].loss != c[0].loss


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path) -> None:
    settings, prepared, straight = _setup(optimizer="adam")
    _run(straight, 8)
    _, _, first = _setup(optimizer="adam")
    _run(first, 3)
    path = save_training(
        tmp_path / "c.ckpt", first.snapshot(), settings.run_meta(prepared.fingerprint)
    )
    meta, arrays = load_training(path)
    resumed = restore_trainer(meta, arrays, prepared.examples, "numpy")
    assert resumed.epoch == 3 and resumed.history == first.history
    _run(resumed, 8)
    assert resumed.history == straight.history
    for key in ("weight", "bias"):
        assert np.array_equal(
            resumed.model.dag.get_parameters()[key], straight.model.dag.get_parameters()[key]
        )
    assert resumed.evaluate(prepared.heldout) == straight.evaluate(prepared.heldout)


def test_non_finite_loss_is_detected_before_a_bad_step() -> None:
    _, _, trainer = _setup(optimizer="sgd", lr=1e6)
    with pytest.raises(NonFiniteLossError) as info, np.errstate(all="ignore"):
        for _ in range(50):
            trainer.train_epoch()
            trainer.snapshot()
    exc = info.value
    assert "not finite" in str(exc) and f"epoch {exc.epoch}" in str(exc)
    # The records kept are the finite ones.
    assert all(np.isfinite(r.loss) for r in trainer.history)


def test_evaluation_counts_misrouted_examples_as_wrong() -> None:
    _, prepared, trainer = _setup()
    _run(trainer, 60)
    good = trainer.evaluate(prepared.examples, prepared.router)
    assert good["math"].misrouted == 0
    picky = CognitiveRouter(0.99, prepared.modules)  # routes nothing
    scores = trainer.evaluate(prepared.examples, picky)
    for domain, score in scores.items():
        assert score.misrouted == score.examples
        assert score.exact_match == 0.0
        assert score.loss == pytest.approx(good[domain].loss)


def test_evaluation_of_an_empty_domain() -> None:
    _, prepared, trainer = _setup()
    only_text = [Example(TextInput("What color is sky?"), "Sky is blue", "text", "t:1")]
    scores = trainer.evaluate(only_text, prepared.router)
    assert scores["math"].examples == 0 and scores["math"].exact_match is None
    assert scores["text"].examples == 1


def test_heldout_set_is_reported_honestly() -> None:
    settings, prepared, trainer = _setup()
    _run(trainer, 40)
    assert prepared.heldout == tuple(
        e for e in prepared.heldout if e in heldout_examples(settings.seed, 8)
    )
    scores = trainer.evaluate(prepared.heldout, prepared.router)
    assert all(s.examples == 8 for s in scores.values())
    assert all(0.0 <= s.exact_match <= 1.0 for s in scores.values())


def test_trainer_rejects_bad_arguments() -> None:
    _, prepared, trainer = _setup()
    with pytest.raises(ValueError):
        Trainer(trainer.model, prepared.examples, 0.0)
    with pytest.raises(ValueError):
        Trainer(trainer.model, prepared.examples, float("nan"))
    with pytest.raises(ValueError):
        Trainer(trainer.model, [], 0.01)
