"""SharedAGIModel: layout, shared parameters, real gradients, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_core import BackwardPass, ShapeError, StateError
from grapheme_train.data import builtin_examples, by_domain
from grapheme_train.model import ModelConfig, SharedAGIModel
from grapheme_train.modules import DOMAINS, default_modules

GROUPS = by_domain(builtin_examples())


def _model(**kw) -> SharedAGIModel:
    config = ModelConfig(**{"hidden": 6, "embedding_dim": 3, "dtype": "float64", **kw})
    return SharedAGIModel(default_modules(), config, "numpy")


def _batch(model: SharedAGIModel, domain: str):
    group = GROUPS[domain]
    encs = model.encode(domain, [e.input for e in group])
    targets = model.modules[domain].encode_answers([e.answer for e in group])
    return encs, targets


def test_layout_slices_and_node_ids() -> None:
    model = _model()
    modules = {m.name: m for m in default_modules()}
    assert list(model.slices) == list(DOMAINS)
    start_in = start_out = 0
    for brain, sl in model.slices.items():
        assert sl.input_count == modules[brain].input_size(3)
        assert sl.output_count == modules[brain].output_size
        assert sl.input_range.start == start_in and sl.output_range.start == start_out
        start_in, start_out = sl.input_range.stop, sl.output_range.stop
        assert len(model.output_node_ids[brain]) == sl.output_count
        assert len(model.input_node_ids[brain]) == sl.input_count
    assert start_in == model.n_inputs == len(model.dag.input_nodes)
    assert start_out == model.n_outputs == len(model.dag.output_nodes)
    flat = [n for b in DOMAINS for n in model.output_node_ids[b]]
    assert flat == model.dag.output_nodes


def test_trunk_is_shared_by_every_brain() -> None:
    model = _model()
    _, src, dst = model.dag.edges()
    trunk = set(model.trunk_node_ids)
    assert len(trunk) == 6
    edges = set(zip(src.tolist(), dst.tolist(), strict=True))
    for nid in model.dag.input_nodes:
        assert all((nid, t) in edges for t in trunk)
    for nid in model.dag.output_nodes:
        assert all((t, nid) in edges for t in trunk)
    assert model.dag.edge_count == 6 * (model.n_inputs + model.n_outputs)


def test_each_brain_trains_the_shared_trunk_and_only_its_outputs() -> None:
    model = _model()
    _, src, dst = model.dag.edges()
    trunk = np.array(model.trunk_node_ids)
    for brain in DOMAINS:
        model.zero_grad()
        encs, targets = _batch(model, brain)
        model.write_to_slice(brain, encs)
        model.forward()
        model.accumulate_gradients(brain, targets)
        grad = model.dag.get_gradients()["weight"]
        own_in = np.isin(src, model.input_node_ids[brain]) & np.isin(dst, trunk)
        own_out = np.isin(src, trunk) & np.isin(dst, model.output_node_ids[brain])
        other_out = np.isin(src, trunk) & np.isin(dst, model.dag.output_nodes) & ~own_out
        other_in = np.isin(src, model.dag.input_nodes) & ~own_in
        assert np.count_nonzero(grad[own_in]) > 0
        assert np.count_nonzero(grad[own_out]) > 0.9 * own_out.sum()
        assert not grad[other_out].any()
        assert not grad[other_in].any()  # other brains' inputs were zero


def _loss(model: SharedAGIModel, brain: str, encs, targets) -> float:
    model.write_to_slice(brain, encs)
    model.forward()
    y = model.read_from_slice(brain)
    return float(((y - targets) ** 2).mean(axis=1).sum())


@pytest.mark.parametrize("brain", ["math", "text"])
def test_gradients_match_finite_differences(brain: str) -> None:
    model = _model()
    encs, targets = _batch(model, brain)
    model.zero_grad()
    model.write_to_slice(brain, encs)
    model.forward()
    model.accumulate_gradients(brain, targets)
    dag_grad = model.dag.get_gradients()["weight"]
    emb_grad = model.embedding.get_gradients()["table"]
    weights = model.dag.get_parameters()["weight"]
    rng = np.random.default_rng(0)
    eps = 1e-6
    for e in rng.choice(np.flatnonzero(dag_grad), size=8, replace=False):
        w = weights.copy()
        w[e] += eps
        model.dag.set_parameters({"weight": w})
        up = _loss(model, brain, encs, targets)
        w[e] -= 2 * eps
        model.dag.set_parameters({"weight": w})
        down = _loss(model, brain, encs, targets)
        model.dag.set_parameters({"weight": weights})
        assert (up - down) / (2 * eps) == pytest.approx(dag_grad[e], rel=1e-5, abs=1e-9)
    table = model.embedding.get_parameters()["table"]
    rows = np.unique(np.nonzero(emb_grad)[0])
    assert rows.size >= 3  # characters used by the questions
    for r in rows[:4]:
        t = table.copy()
        t[r, 0] += eps
        model.embedding.set_parameters({"table": t})
        up = _loss(model, brain, encs, targets)
        t[r, 0] -= 2 * eps
        model.embedding.set_parameters({"table": t})
        down = _loss(model, brain, encs, targets)
        model.embedding.set_parameters({"table": table})
        assert (up - down) / (2 * eps) == pytest.approx(emb_grad[r, 0], rel=1e-5, abs=1e-9)


def test_accumulate_returns_per_example_mse_and_adds_up() -> None:
    model = _model()
    encs, targets = _batch(model, "vision")
    model.write_to_slice("vision", encs)
    y = model.forward()
    losses = model.accumulate_gradients("vision", targets)
    r = model.slices["vision"].output_range
    assert np.allclose(losses, ((y[:, r.start : r.stop] - targets) ** 2).mean(axis=1))
    once = model.dag.get_gradients()["weight"]
    model.accumulate_gradients("vision", targets)
    assert np.allclose(model.dag.get_gradients()["weight"], 2 * once)
    model.zero_grad()
    assert not model.dag.get_gradients()["weight"].any()
    assert model.gradient_norm() == 0


def test_apply_gradients_lowers_the_loss_and_zeroes() -> None:
    for optimizer in ("sgd", "adam"):
        model = _model(optimizer=optimizer, hidden=16)
        encs, targets = _batch(model, "math")
        losses = []
        for _ in range(30):
            model.write_to_slice("math", encs)
            model.forward()
            losses.append(model.accumulate_gradients("math", targets).mean())
            model.apply_gradients(1.0 if optimizer == "sgd" else 0.01)
            assert model.gradient_norm() == 0
        assert losses[-1] < 0.5 * losses[0], optimizer


def test_clip_gradients_scales_jointly() -> None:
    model = _model()
    encs, targets = _batch(model, "text")
    model.write_to_slice("text", encs)
    model.forward()
    model.accumulate_gradients("text", targets)
    before = model.gradient_norm()
    dag_before, emb_before = model.dag.gradient_norm(), model.embedding.gradient_norm()
    assert model.clip_gradients(before / 4) == pytest.approx(before)
    assert model.gradient_norm() == pytest.approx(before / 4, rel=1e-6)
    assert model.dag.gradient_norm() / model.embedding.gradient_norm() == pytest.approx(
        dag_before / emb_before, rel=1e-6
    )
    with pytest.raises(ValueError):
        model.clip_gradients(0)


def test_protocol_and_errors() -> None:
    model = _model()
    assert isinstance(model, BackwardPass)
    with pytest.raises(StateError):
        model.forward()
    with pytest.raises(StateError):
        model.read_from_slice("math")
    with pytest.raises(KeyError, match="no brain 'music'"):
        model.write_to_slice("music", np.zeros((1, 3)))
    with pytest.raises(ShapeError):
        model.write_to_slice("vision", np.zeros((2, 5)))
    model.write_to_slice("vision", np.zeros((2, model.slices["vision"].input_count)))
    with pytest.raises(ShapeError, match="differs"):
        model.write_to_slice("timeseries", np.zeros((3, model.slices["timeseries"].input_count)))
    model.forward()
    with pytest.raises(ShapeError):
        model.accumulate_gradients("vision", np.zeros((2, 3)))
    with pytest.raises(ValueError):
        SharedAGIModel([], ModelConfig())
    with pytest.raises(ValueError):
        ModelConfig(hidden=0)
    with pytest.raises(ValueError):
        ModelConfig(optimizer="rmsprop")


def test_raw_arrays_and_several_brains_in_one_forward() -> None:
    model = _model()
    rng = np.random.default_rng(1)
    xv = rng.uniform(size=(2, model.slices["vision"].input_count))
    xt = rng.uniform(size=(2, model.slices["timeseries"].input_count))
    model.write_to_slice("vision", xv)
    model.write_to_slice("timeseries", xt)
    both = model.forward()
    x = np.zeros((2, model.n_inputs))
    for brain, arr in (("vision", xv), ("timeseries", xt)):
        r = model.slices[brain].input_range
        x[:, r.start : r.stop] = arr
    assert np.allclose(both, model.dag.forward(x))


def test_seeds_and_state_round_trip() -> None:
    a, b, c = _model(seed=3), _model(seed=3), _model(seed=4)
    pa, pb, pc = (m.dag.get_parameters()["weight"] for m in (a, b, c))
    assert np.array_equal(pa, pb) and not np.array_equal(pa, pc)
    model = _model(optimizer="adam")
    encs, targets = _batch(model, "math")
    for _ in range(3):
        model.write_to_slice("math", encs)
        model.forward()
        model.accumulate_gradients("math", targets)
        model.apply_gradients(0.01)
    meta, arrays = model.state()
    clone = SharedAGIModel.from_state(meta, arrays)
    for m in (model, clone):  # both continue identically (Adam state included)
        m.write_to_slice("math", encs)
        m.forward()
        m.accumulate_gradients("math", targets)
        m.apply_gradients(0.01)
    assert np.array_equal(
        model.dag.get_parameters()["weight"], clone.dag.get_parameters()["weight"]
    )
    assert np.array_equal(
        model.embedding.get_parameters()["table"], clone.embedding.get_parameters()["table"]
    )
    assert clone.modules == model.modules and clone.config == model.config


def test_predict_decodes_each_brain() -> None:
    model = _model()
    answers, outputs = model.predict("vision", [e.input for e in GROUPS["vision"]])
    assert len(answers) == 4 and outputs.shape == (4, model.slices["vision"].output_count)
    assert answers == model.modules["vision"].decode_answers(outputs)


def test_public_contract_and_light_import() -> None:
    import subprocess
    import sys

    import grapheme_train

    assert grapheme_train.SharedAGIModel is SharedAGIModel
    for name in ("write_to_slice", "read_from_slice", "accumulate_gradients", "zero_grad",
                 "apply_gradients"):  # fmt: skip
        assert callable(getattr(SharedAGIModel, name))
    code = (
        "import sys, grapheme_train, grapheme_train.cli; "
        "print(sorted(m for m in ('torch', 'jax', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
