"""Domain modules: scoring, input encodings, Embedding gradients, answer codecs."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_core import Embedding
from grapheme_train.codec import DIGITS, END, PRINTABLE, AnswerCodec, CharSlots
from grapheme_train.data import builtin_examples, by_domain, heldout_examples
from grapheme_train.errors import EncodingError
from grapheme_train.inputs import CsvInput, ImageInput, Input, SequenceInput, TextInput
from grapheme_train.modules import (
    DOMAINS,
    DomainModule,
    MathModule,
    default_modules,
)
from grapheme_train.modules.vision import resample

DIM = 6


@pytest.fixture
def emb() -> Embedding:
    return Embedding(128, DIM, seed=3, dtype="float64")


MODULES = {m.name: m for m in default_modules()}
INPUTS: list[Input] = [
    TextInput("2 + 3"),
    TextInput("What color is sky?"),
    SequenceInput([1, 2, 3]),
    CsvInput("1,2,3"),
    ImageInput(4, 4, [0.0] * 16),
]


# -- codec -----------------------------------------------------------------------------


def test_codec_decodes_noisy_activations_by_nearest_code() -> None:
    rng = np.random.default_rng(0)
    codec = AnswerCodec(PRINTABLE, 16)
    answers = ["Cat have 4 legs", "Sky is blue", "", "~!{} ok"]
    targets = codec.encode_batch(answers)
    noisy = targets + rng.uniform(-0.45, 0.45, targets.shape)
    assert codec.decode_batch(noisy) == answers
    # Shrinking every activation keeps the arg-max.
    assert codec.decode_batch(0.3 * targets) == answers


def test_codec_stops_at_first_end() -> None:
    codec = AnswerCodec("ab", 4)
    acts = np.zeros((4, 3))
    acts[0, 1] = acts[1, 0] = acts[2, 2] = acts[3, 2] = 1  # "a", END, "b", "b"
    assert codec.decode(acts.reshape(-1)) == "a"


def test_codec_rejects_what_it_cannot_represent() -> None:
    codec = AnswerCodec(DIGITS, 3)
    assert codec.problem("12") is None
    with pytest.raises(EncodingError, match="more than 3 slots"):
        codec.encode("1234")
    with pytest.raises(EncodingError, match="'x' at 1"):
        codec.encode("1x")
    with pytest.raises(ValueError, match="shape"):
        codec.decode_batch(np.zeros((2, 5)))
    for alphabet in ("", "aa", "a" + END):
        with pytest.raises(ValueError):
            AnswerCodec(alphabet, 2)
    with pytest.raises(ValueError):
        AnswerCodec("a", 0)


def test_char_slots_pad_clamp_and_reject(emb: Embedding) -> None:
    slots = CharSlots(4)
    assert slots.indices("ab").tolist() == [97, 98, -1, -1]
    with pytest.raises(EncodingError, match="do not fit in 4"):
        slots.indices("abcde")
    acts = slots.embed(slots.indices("aé"), emb).reshape(4, DIM)
    table = emb.get_parameters()["table"]
    assert np.allclose(acts[0], table[97])
    assert np.allclose(acts[1], table[127])  # code point 233 clamped to vocab-1
    assert (acts[2:] == 0).all()


# -- scoring ---------------------------------------------------------------------------


@pytest.mark.parametrize("module", list(MODULES.values()), ids=list(MODULES))
def test_scores_are_confidences(module: DomainModule) -> None:
    for inp in INPUTS:
        assert 0.0 <= module.can_handle(inp) <= 1.0


def test_each_module_accepts_only_its_kinds() -> None:
    image, seq = ImageInput(1, 1, [1]), SequenceInput([1])
    assert MODULES["vision"].can_handle(image) > 0 and MODULES["vision"].can_handle(seq) == 0
    assert MODULES["math"].can_handle(image) == 0 and MODULES["math"].can_handle(seq) == 0
    assert MODULES["text"].can_handle(image) == 0
    assert MODULES["timeseries"].can_handle(TextInput("hello")) == 0
    assert MODULES["math"].can_handle(TextInput("1 + (2 * 3)")) > MODULES["text"].can_handle(
        TextInput("1 + (2 * 3)")
    )
    text = MODULES["text"]
    assert text.can_handle(TextInput("Hello there")) > text.can_handle(TextInput("Hi 1234567"))
    for module in MODULES.values():
        for inp in INPUTS:
            if module.can_handle(inp) == 0:
                with pytest.raises(EncodingError, match="cannot handle"):
                    module.encode_input(inp)


# -- input encodings -------------------------------------------------------------------


@pytest.mark.parametrize("domain", DOMAINS)
def test_training_inputs_are_distinct_and_well_shaped(domain: str, emb: Embedding) -> None:
    module = MODULES[domain]
    examples = by_domain(builtin_examples())[domain]
    encs = [module.encode_input(e.input) for e in examples]
    x = module.input_matrix(encs, emb)
    assert x.shape == (len(examples), module.input_size(DIM))
    assert np.isfinite(x).all() and np.abs(x).max() <= 1.0 + 1e-9
    # Every pair of training inputs must differ, or no network could tell them apart.
    dists = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    assert (dists[~np.eye(len(x), dtype=bool)] > 1e-3).all()
    assert module.input_matrix([], emb).shape == (0, module.input_size(DIM))


@pytest.mark.parametrize("domain", DOMAINS)
def test_embedding_gradients_match_finite_differences(domain: str, emb: Embedding) -> None:
    module = MODULES[domain]
    examples = by_domain(builtin_examples())[domain] + by_domain(heldout_examples(1, 3))[domain]
    encs = [module.encode_input(e.input) for e in examples]
    rng = np.random.default_rng(5)
    weights = rng.normal(size=(len(encs), module.input_size(DIM)))

    def loss() -> float:
        return float((weights * module.input_matrix(encs, emb)).sum())

    rows, grads = module.embedding_gradients(encs, weights, emb)
    emb.zero_grad()
    emb.backward(rows, grads)
    analytic = emb.get_gradients()["table"]
    if module.char_slots.count == 0:
        assert rows.size == 0 and not analytic.any()
        return
    table = emb.get_parameters()["table"]
    used = np.unique(rows)
    assert len(used) >= 3
    for r in used[:6]:
        for c in range(DIM):
            bumped = table.copy()
            bumped[r, c] += 1e-3
            emb.set_parameters({"table": bumped})
            up = loss()
            bumped[r, c] -= 2e-3
            emb.set_parameters({"table": bumped})
            down = loss()
            emb.set_parameters({"table": table})
            assert (up - down) / 2e-3 == pytest.approx(analytic[r, c], rel=1e-6, abs=1e-9)
    untouched = np.setdiff1d(np.arange(128), used)
    assert not analytic[untouched].any()


# -- math --------------------------------------------------------------------------------


def test_math_solve_and_answer_check() -> None:
    math = MathModule()
    assert math.solve(TextInput("(1 + 2) * 4")) == "12"
    assert math.answer_problem(TextInput("2 + 2"), "4") is None
    assert math.answer_problem(TextInput("2 + 2"), "4.0") is None
    assert "wrong" in math.answer_problem(TextInput("2 + 2"), "5")
    assert "division by zero" in math.answer_problem(TextInput("4 / (2 - 2)"), "0")
    with pytest.raises(EncodingError, match="wrong"):
        math.check_example(TextInput("3 * 3"), "6")


# -- text --------------------------------------------------------------------------------


# -- time series ---------------------------------------------------------------------------


# -- vision --------------------------------------------------------------------------------


def test_resample_is_exact_at_native_size_and_averages_blocks() -> None:
    rng = np.random.default_rng(0)
    pix = rng.uniform(size=16)
    assert np.allclose(resample(ImageInput(4, 4, pix), 4, 4), pix.reshape(4, 4))
    big = rng.uniform(size=(8, 8))
    down = resample(ImageInput(8, 8, big.reshape(-1)), 4, 4)
    assert np.allclose(down, big.reshape(4, 2, 4, 2).mean(axis=(1, 3)))
    small = np.array([[0.0, 1.0], [0.5, 0.25]])
    up = resample(ImageInput(2, 2, small.reshape(-1)), 4, 4)
    assert np.allclose(up, np.kron(small, np.ones((2, 2))))
    odd = resample(ImageInput(3, 1, [0, 0.3, 0.9]), 1, 1)
    assert odd[0, 0] == pytest.approx(0.4)
