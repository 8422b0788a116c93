"""The small training API: fit / evaluate / predict, minibatches, callbacks (issue 12.3)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from grapheme_core import (
    Callback,
    DagNN,
    EarlyStopping,
    LambdaCallback,
    TrainingDivergedError,
    evaluate,
    fit,
    minibatches,
    predict,
)
from grapheme_core.fitting import accuracy, get_loss
from grapheme_core.losses import mse

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=float)


def _mlp(n_in: int, n_hidden: int, n_out: int, seed: int = 0, optimizer: str = "adam") -> DagNN:
    dag = DagNN(seed=seed, optimizer=optimizer)
    ins = dag.add_nodes(n_in, "input")
    hid = dag.add_nodes(n_hidden, "hidden", "tanh")
    out = dag.add_nodes(n_out, "output")
    dag.add_edges(np.repeat(ins, n_hidden), np.tile(hid, n_in))
    dag.add_edges(np.repeat(hid, n_out), np.tile(out, n_hidden))
    return dag


def test_xor_is_learned_train_accuracy():
    # XOR has only four points: there is no held-out set, so this is training accuracy.
    dag = _mlp(2, 4, 1)
    history = dag.fit(XOR_X, XOR_Y, loss="bce", epochs=300, batch_size=4, lr=0.05,
                      metrics=["accuracy"])  # fmt: skip
    assert history["accuracy"][-1] == 1.0
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    assert len(history["loss"]) == 300 and history.epoch == list(range(1, 301))
    assert ((dag.predict(XOR_X) > 0) == (XOR_Y > 0.5)).all()


def _blobs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    labels = rng.integers(0, 3, size=n)
    return centres[labels] + rng.normal(scale=0.6, size=(n, 2)), labels


def test_held_out_blobs_are_classified():
    rng = np.random.default_rng(7)
    x_train, y_train = _blobs(300, rng)
    x_test, y_test = _blobs(200, rng)  # later draws: never seen in training
    dag = _mlp(2, 6, 3)
    history = fit(dag, x_train, y_train, loss="cross_entropy", epochs=20, batch_size=32,
                  lr=0.02, metrics=["accuracy"], validation_data=(x_test, y_test))  # fmt: skip
    result = evaluate(dag, x_test, y_test, loss="cross_entropy", metrics=["accuracy"])
    assert result["accuracy"] > 0.9
    assert history["val_accuracy"][-1] == pytest.approx(result["accuracy"])
    assert history["val_loss"][-1] == pytest.approx(result["loss"])


def test_digits_on_a_held_out_split():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x, y = digits.data / 16.0, digits.target
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1300], order[1300:]  # disjoint by construction
    dag = _mlp(64, 12, 10)
    dag.fit(x[train], y[train], loss="cross_entropy", epochs=8, batch_size=32, lr=0.01)
    assert (
        dag.evaluate(x[test], y[test], loss="cross_entropy", metrics=["accuracy"])["accuracy"]
        > 0.85
    )


def test_same_seed_same_parameters_other_seed_other_order():
    def run(seed):
        dag = _mlp(2, 3, 1, optimizer="sgd")
        fit(dag, np.tile(XOR_X, (4, 1)), np.tile(XOR_Y, (4, 1)), epochs=3, batch_size=3,
            lr=0.1, seed=seed)  # fmt: skip
        return dag.get_parameters()["weight"]

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))


def test_minibatches_cover_every_row_once_per_epoch_and_shuffle_by_seed():
    batches = list(minibatches(10, 4, rng=3))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    again = list(minibatches(10, 4, rng=3))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    ordered = np.concatenate(list(minibatches(10, 4, shuffle=False)))
    assert ordered.tolist() == list(range(10))
    assert not np.array_equal(np.concatenate(batches), ordered)


def test_fit_step_equals_a_hand_written_loop():
    a, b = _mlp(2, 3, 1, optimizer="sgd"), _mlp(2, 3, 1, optimizer="sgd")
    fit(a, XOR_X, XOR_Y, loss="mse", epochs=1, batch_size=4, lr=0.1, shuffle=False)
    b.zero_grad()
    b.backward_accumulate(mse(b.forward(XOR_X), XOR_Y).grad)
    b.step(0.1)
    np.testing.assert_allclose(a.get_parameters()["weight"], b.get_parameters()["weight"])


class _Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs):
        self.calls.append(("train_begin", logs["epochs"]))

    def on_epoch_begin(self, epoch):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs):
        self.calls.append(("batch_end", batch))

    def on_epoch_end(self, epoch, logs):
        self.calls.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs):
        self.calls.append(("train_end", logs["epochs"]))


def test_callbacks_run_in_order():
    rec = _Recorder()
    seen = []
    fit(_mlp(2, 2, 1), XOR_X, XOR_Y, epochs=2, batch_size=3, metrics=["accuracy"],
        validation_data=(XOR_X, XOR_Y),
        callbacks=[rec, LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))])  # fmt: skip
    keys = ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert rec.calls == [
        ("train_begin", 2),
        ("epoch_begin", 1), ("batch_end", 0), ("batch_end", 1), ("epoch_end", 1, keys),
        ("epoch_begin", 2), ("batch_end", 0), ("batch_end", 1), ("epoch_end", 2, keys),
        ("train_end", 2),
    ]  # fmt: skip
    assert seen == [1, 2]
    with pytest.raises(TypeError, match="on_epoch_ending"):
        LambdaCallback(on_epoch_ending=print)


def test_early_stopping_stops_and_restores_the_best_weights():
    dag = _mlp(2, 3, 1)
    snapshots = []
    losses = iter([1.0, 0.5, 0.7, 0.8, 0.9, 0.2])

    class FakeVal(Callback):  # a scripted monitor, so the test does not depend on luck
        def on_epoch_end(self, epoch, logs):
            logs["score"] = next(losses)
            snapshots.append(self.state.dag.get_parameters()["weight"])

    stop = EarlyStopping("score", patience=2, restore_best_weights=True)
    history = fit(dag, XOR_X, XOR_Y, epochs=6, callbacks=[FakeVal(), stop], lr=0.1)
    assert history.stopped_epoch == 4 == stop.stopped_epoch
    assert len(history["loss"]) == 4
    assert stop.best == 0.5 and stop.best_epoch == 2
    np.testing.assert_array_equal(dag.get_parameters()["weight"], snapshots[1])


def test_early_stopping_on_an_unreported_metric_says_what_is_reported():
    with pytest.raises(KeyError, match=r"val_loss.*validation_data"):
        fit(_mlp(2, 2, 1), XOR_X, XOR_Y, epochs=1, callbacks=[EarlyStopping()])


def test_divergence_is_a_clear_error_before_the_bad_update():
    dag = _mlp(2, 2, 1)
    before = dag.get_parameters()["weight"]

    def bad_loss(y_pred, y_true):
        result = mse(y_pred, y_true)
        return type(result)(float("nan"), result.grad)

    with pytest.raises(TrainingDivergedError, match="smaller lr"):
        fit(dag, XOR_X, XOR_Y, loss=bad_loss, epochs=1)
    np.testing.assert_array_equal(dag.get_parameters()["weight"], before)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": "hinge"}, "unknown loss 'hinge'"),
        ({"epochs": -1}, "epochs must be >= 0"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"metrics": ["f1"]}, "unknown metric 'f1'"),
        ({"validation_data": (XOR_X,)}, "validation_data must be a pair"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit(_mlp(2, 2, 1), XOR_X, XOR_Y, **kwargs)


def test_one_output_accepts_flat_targets_like_keras():
    a, b = _mlp(2, 3, 1, optimizer="sgd"), _mlp(2, 3, 1, optimizer="sgd")
    fit(a, XOR_X, XOR_Y[:, 0], loss="bce", epochs=2, batch_size=2, lr=0.1)
    fit(b, XOR_X, XOR_Y, loss="bce", epochs=2, batch_size=2, lr=0.1)
    np.testing.assert_array_equal(a.get_parameters()["weight"], b.get_parameters()["weight"])
    assert evaluate(a, XOR_X, XOR_Y[:, 0], loss="bce") == evaluate(a, XOR_X, XOR_Y, loss="bce")


def test_mismatched_rows_and_verbose_output():
    with pytest.raises(ValueError, match="x has 4 rows but y has 3"):
        fit(_mlp(2, 2, 1), XOR_X, XOR_Y[:3])
    out = io.StringIO()
    fit(_mlp(2, 2, 1), XOR_X, XOR_Y, epochs=2, verbose=1, stream=out)
    lines = out.getvalue().splitlines()
    assert [ln.split("  ")[0] for ln in lines] == ["epoch 1/2", "epoch 2/2"]


def test_predict_in_batches_equals_one_pass_and_accuracy_rules():
    dag = _mlp(2, 3, 2)
    x = np.random.default_rng(0).normal(size=(10, 2))
    np.testing.assert_allclose(predict(dag, x, batch_size=3), dag.forward(x), rtol=1e-6)
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]])
    assert accuracy(logits, np.array([0, 1, 1]), "cross_entropy") == pytest.approx(2 / 3)
    assert accuracy(logits[:, :1], np.array([[1.0], [0.0], [0.0]]), "bce") == pytest.approx(2 / 3)
    assert get_loss("BCE") is get_loss("binary_cross_entropy")
