"""SharedAGIModel: layout, shared parameters, real gradients, persistence."""

from __future__ import annotations

import numpy as np

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


def _loss(model: SharedAGIModel, brain: str, encs, targets) -> float:
    model.write_to_slice(brain, encs)
    model.forward()
    y = model.read_from_slice(brain)
    return float(((y - targets) ** 2).mean(axis=1).sum())


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
