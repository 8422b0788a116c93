"""Trainer: minibatch epochs, determinism, exact resume, hooks, sharding, evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_train.checkpoint import load_training, restore_trainer, save_training
from grapheme_train.model import ModelConfig, SharedAGIModel
from grapheme_train.session import merge_settings, prepare_data
from grapheme_train.trainer import EpochRecord, NonFiniteLossError, Trainer

SMALL = {"train_limit": 48, "heldout": 8}


@pytest.fixture(scope="module")
def prepared():
    return prepare_data([], merge_settings(SMALL, 3))


def _trainer(prepared, seed=0, hooks=(), shard=None, lr=0.01, batch_size=32):
    model = SharedAGIModel(prepared.modules, ModelConfig(hidden=16, encoder=8, seed=seed), "numpy")
    return Trainer(model, prepared.examples, lr, batch_size=batch_size, seed=seed, hooks=hooks,
                   shard=shard)  # fmt: skip


def test_epoch_records_and_loss_falls(prepared):
    t = _trainer(prepared)
    assert t.steps_per_epoch == 6  # 48 examples per brain, 8 rows per brain per step
    first = t.train_epoch()
    assert first.epoch == 1 and first.delta is None and set(first.domain_loss) == set(t.sets)
    assert first.loss == pytest.approx(np.mean(list(first.domain_loss.values())))
    for _ in range(5):
        last = t.train_epoch()
    assert last.loss < first.loss
    assert EpochRecord.from_json(last.to_json()) == last


def test_same_seed_same_history_other_seed_differs(prepared):
    runs = []
    for seed in (3, 3, 4):
        t = _trainer(prepared, seed=seed)
        runs.append([t.train_epoch().loss for _ in range(2)])
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_resume_from_checkpoint_equals_uninterrupted(prepared, tmp_path):
    straight = _trainer(prepared)
    for _ in range(3):
        straight.train_epoch()
    part = _trainer(prepared)
    part.train_epoch()
    path = save_training(tmp_path / "c.ckpt", part.snapshot(), {})
    meta, arrays = load_training(path)
    resumed = restore_trainer(meta, arrays, prepared.examples, "numpy")
    while resumed.epoch < 3:
        resumed.train_epoch()
    assert [r.loss for r in resumed.history] == [r.loss for r in straight.history]


class _Recorder:
    def __init__(self, name, log):
        self.name, self.log, self.loaded = name, log, None

    def on_gradients(self, trainer, step):
        assert trainer.model.dag.gradient_norm() > 0  # before the optimizer step
        self.log.append((self.name, "grad", step))

    def on_step_end(self, trainer, step):
        assert trainer.model.dag.gradient_norm() == 0  # after zero_grad
        self.log.append((self.name, "end", step))

    def on_epoch_end(self, trainer, epoch, record):
        return {f"{self.name}_epoch": epoch}

    def state_dict(self):
        return {"calls": len(self.log)}

    def load_state_dict(self, d):
        self.loaded = d


def test_hooks_run_in_order_and_save_state(prepared, tmp_path):
    log = []
    hooks = [_Recorder("a", log), _Recorder("b", log)]
    t = _trainer(prepared, hooks=hooks)
    record = t.train_epoch()
    assert log[:4] == [("a", "grad", 0), ("b", "grad", 0), ("a", "end", 0), ("b", "end", 0)]
    assert record.extra["a_epoch"] == 1 and record.extra["b_epoch"] == 1
    meta, arrays = t.snapshot()
    fresh = _Recorder("a", [])
    restore_trainer(meta, arrays, prepared.examples, "numpy", hooks=[fresh])
    assert fresh.loaded == {"calls": len(log)}


def test_shards_sum_to_the_global_gradient(prepared):
    def grads(shard):
        t = _trainer(prepared, shard=shard)
        parts = []
        rank, world = shard or (0, 1)
        for d, s in t.sets.items():
            parts.append((d, *s.rows(np.arange(8)[rank::world])))
        t.model.zero_grad()
        t.model.accumulate_mixed(parts, 8 * len(t.sets))
        return t.model.dag.get_gradients()["weight"]

    whole = grads(None)
    summed = grads((0, 3)) + grads((1, 3)) + grads((2, 3))
    np.testing.assert_allclose(summed, whole, rtol=1e-5, atol=1e-7)


def test_lr_decays_by_step_only(prepared):
    t = _trainer(prepared)
    per = t.steps_per_epoch
    assert t.lr_at(0) == 0.01
    assert t.lr_at(3 * per) == pytest.approx(0.005)
    assert t.lr_at(10**6) == pytest.approx(0.01 * t.min_lr_ratio)


def test_non_finite_loss_is_detected(prepared):
    t = _trainer(prepared, lr=1e12)
    with pytest.raises(NonFiniteLossError), np.errstate(all="ignore"):
        for _ in range(5):
            t.train_epoch()


def test_evaluation_reports_text_baseline(prepared):
    t = _trainer(prepared)
    scores = t.evaluate(prepared.heldout, prepared.router)
    assert scores["math"].examples == 8
    text = scores["text"].to_json()
    assert {"next_char_accuracy", "bits_per_char", "bigram"} <= set(text)
    assert text["bits_per_char"] > 0 and 0 <= text["bigram"]["next_char_accuracy"] <= 1


def test_gradient_share_is_reported_and_trunk_reached_by_all(prepared):
    t = _trainer(prepared)
    share = t.gradient_share()
    assert set(share) == {*t.sets, "all"}
    trunk_edges = 16 * 16
    assert share["all"] >= trunk_edges / t.model.dag.num_parameters


def test_trainer_rejects_bad_arguments(prepared):
    model = SharedAGIModel(prepared.modules, ModelConfig(hidden=4, encoder=4), "numpy")
    with pytest.raises(ValueError, match="learning rate"):
        Trainer(model, prepared.examples, float("nan"))
    with pytest.raises(ValueError, match="no training examples"):
        Trainer(model, [], 0.1)
    with pytest.raises(ValueError, match="shard"):
        Trainer(model, prepared.examples, 0.1, shard=(2, 2))
