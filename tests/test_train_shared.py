"""The shared-trunk model and the new encodings: layout, gradients, encodings, data checks."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_train.datasets import load_splits
from grapheme_train.errors import DataError
from grapheme_train.inputs import ImageInput, SequenceInput, TextInput
from grapheme_train.model import ModelConfig, SharedAGIModel
from grapheme_train.modules import MathModule, TextModule, TimeSeriesModule, fit_modules
from grapheme_train.session import merge_settings, prepare_data


@pytest.fixture(scope="module")
def small():
    train = load_splits(0, 4, train_limit=12).train
    cfg = ModelConfig(hidden=6, encoder=5, trunk_depth=2, dtype="float64", seed=1)
    return train, SharedAGIModel(fit_modules(train), cfg, "numpy")


def test_layout_encoders_trunk_and_trunk_layers(small):
    _, model = small
    layers = model.trunk_layers()
    assert [len(t) for t in layers] == [6, 6]
    _, src, dst = model.dag.edges()
    # trunk-to-trunk edges are dense between consecutive trunk layers
    between = np.isin(src, layers[0]) & np.isin(dst, layers[1])
    assert between.sum() == 36
    for brain, enc in model.encoder_node_ids.items():
        assert len(enc) == 5
        assert (np.isin(src, enc) & np.isin(dst, layers[0])).sum() == 30, brain
    # a checkpoint round trip keeps the layers
    meta, arrays = model.state()
    again = SharedAGIModel.from_state(meta, arrays)
    assert [t.tolist() for t in again.trunk_layers()] == [t.tolist() for t in layers]


@pytest.mark.parametrize("brain", ["math", "text", "timeseries", "vision"])
def test_accumulate_gradients_match_finite_differences(small, brain):
    train, model = small
    group = [e for e in train if e.domain == brain][:3]
    module = model.modules[brain]
    enc = model.encode(brain, [e.input for e in group])
    targets = module.encode_answers([e.answer for e in group], enc)

    def loss() -> float:
        model.write_to_slice(brain, enc)
        model.forward()
        return float(module.loss(model.read_from_slice(brain), targets)[0].mean())

    model.zero_grad()
    model.write_to_slice(brain, enc)
    model.forward()
    losses = model.accumulate_gradients(brain, targets)
    assert losses.shape == (3,)
    grad = model.dag.get_gradients()["weight"]
    params = model.dag.get_parameters()
    rng = np.random.default_rng(0)
    for i in rng.choice(np.flatnonzero(grad), size=5, replace=False):
        w = params["weight"].copy()
        w[i] += 1e-6
        model.dag.set_parameters({"weight": w})
        up = loss()
        w[i] -= 2e-6
        model.dag.set_parameters({"weight": w})
        down = loss()
        w[i] += 1e-6
        model.dag.set_parameters({"weight": w})
        assert grad[i] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-8)
    model.zero_grad()


def test_math_encoding_is_by_place_value():
    m = MathModule()
    a = m.encode_input(TextInput("23 + 45")).features
    b = m.encode_input(TextInput(" 23+45 ")).features
    c = m.encode_input(TextInput("3 + 45")).features
    np.testing.assert_array_equal(a, b)
    # the units digit of the first operand sits in the same place for 23 and 3
    units = slice(3 * 11, 4 * 11)
    assert a[units].argmax() == c[units].argmax() == 1 + 3
    general = m.encode_input(TextInput("(1 + 2) * 4")).features
    assert general[: 2 * 4 * 11 + 4].sum() == 0 and general.sum() == m.max_chars


def test_text_context_is_right_aligned():
    t = TextModule(context=4)
    chars = t.encode_input(TextInput("Hello world")).chars
    assert chars.tolist() == [ord(c) for c in "orld"]
    assert t.encode_input(TextInput("ab")).chars.tolist() == [-1, -1, ord("a"), ord("b")]


def test_series_context_decodes_the_next_value():
    ts = TimeSeriesModule()
    enc = ts.encode_input(SequenceInput([2, 4, 6, 8, 10]))
    target = ts.encode_answers(["12"], [enc])
    assert ts.decode_answers(target, [enc]) == ["12"]


def test_vision_keeps_8x8_pixels():
    train = load_splits(0, 1, train_limit=5).train
    vision = fit_modules(train)[3]
    img = ImageInput(8, 8, list(np.linspace(0, 1, 64)))
    np.testing.assert_allclose(vision.encode_input(img).features, np.linspace(0, 1, 64))


@pytest.mark.parametrize(
    "line,reason",
    [
        ('{"input": "2 + 2", "answer": "four", "domain": "math"}', "outside"),
        ('{"input": [1, 2], "answer": "three"}', "not a number"),
        ('{"input": "Why?", "answer": "Because"}', "not one character"),
    ],
)
def test_untrainable_file_example_reports_its_line(tmp_path, line, reason):
    data = tmp_path / "d.jsonl"
    data.write_text(line + "\n")
    with pytest.raises(DataError, match=reason) as err:
        prepare_data([data], merge_settings({"train_limit": 5, "heldout": 1}, 1))
    assert "d.jsonl:1" in str(err.value)
