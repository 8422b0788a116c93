"""Domain modules: scoring, input encodings, Embedding gradients, answer codecs."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_core import Embedding
from grapheme_train.codec import DIGITS, END, LOWER, PRINTABLE, AnswerCodec, CharSlots
from grapheme_train.data import builtin_examples, by_domain, heldout_examples
from grapheme_train.errors import EncodingError
from grapheme_train.inputs import CsvInput, ImageInput, Input, SequenceInput, TextInput
from grapheme_train.modules import (
    DOMAINS,
    DomainModule,
    MathModule,
    TextModule,
    TimeSeriesModule,
    VisionModule,
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


def test_codec_round_trips_every_builtin_answer() -> None:
    for ex in builtin_examples():
        codec = MODULES[ex.domain].codec
        target = codec.encode(ex.answer)
        assert target.shape == (codec.size,)
        blocks = target.reshape(codec.slots, codec.block)
        assert (blocks.sum(axis=1) == 1).all() and set(np.unique(blocks)) == {0.0, 1.0}
        assert codec.decode(target) == ex.answer


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


def test_default_modules_order_and_sizes() -> None:
    modules = default_modules()
    assert tuple(m.name for m in modules) == DOMAINS
    sizes = {m.name: (m.input_size(DIM), m.output_size) for m in modules}
    assert sizes == {
        "math": (16 * DIM, 8 * 13),
        "text": (32 * DIM + 26, 16 * 96),
        "timeseries": (36, 8 * 13),
        "vision": (24, 12 * 39),
    }
    assert len(LOWER) + 1 == 39 and len(DIGITS) + 1 == 13 and len(PRINTABLE) + 1 == 96


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
def test_memorisation_is_possible(domain: str, emb: Embedding) -> None:
    """A least-squares linear read-out reproduces every training answer exactly.

    This is the property training relies on: encodings separate the examples and the
    targets decode back to the answers.
    """
    module = MODULES[domain]
    examples = by_domain(builtin_examples())[domain]
    x = module.input_matrix([module.encode_input(e.input) for e in examples], emb)
    x = np.hstack([x, np.ones((len(x), 1))])
    t = module.encode_answers([e.answer for e in examples])
    w, *_ = np.linalg.lstsq(x, t, rcond=None)
    assert module.decode_answers(x @ w) == [e.answer for e in examples]


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


def test_math_encoding_ignores_whitespace_and_checks_syntax() -> None:
    math = MathModule()
    a = math.encode_input(TextInput("2 + 3")).chars
    b = math.encode_input(TextInput(" 2+3 ")).chars
    assert (a == b).all() and a[:3].tolist() == [ord("2"), ord("+"), ord("3")]
    assert math.can_handle(TextInput("2 +")) == pytest.approx(0.4)
    assert math.can_handle(TextInput("What is 2 + 3?")) == 0
    with pytest.raises(EncodingError, match="not arithmetic"):
        math.encode_input(TextInput("2 +"))
    with pytest.raises(EncodingError, match="do not fit"):
        MathModule(max_chars=4).encode_input(TextInput("12 + 345"))


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


def test_text_features_are_letter_frequencies() -> None:
    text = TextModule()
    enc = text.encode_input(TextInput("  Abba!  "))
    assert enc.chars[:5].tolist() == [ord(c) for c in "Abba!"] and enc.chars[5] == -1
    freq = dict(zip("abcdefghijklmnopqrstuvwxyz", enc.features, strict=True))
    assert freq["a"] == pytest.approx(0.5) and freq["b"] == pytest.approx(0.5)
    assert enc.features.sum() == pytest.approx(1.0)
    # Case and a missing '?' leave the letter features unchanged.
    plain = text.encode_input(TextInput("what color is sky"))
    orig = text.encode_input(TextInput("What color is sky?"))
    assert np.allclose(plain.features, orig.features)
    assert not text.encode_input(TextInput("1234 ...")).features.any()


# -- time series ---------------------------------------------------------------------------


def test_timeseries_layout() -> None:
    ts = TimeSeriesModule(max_len=6)
    f = ts.encode_input(SequenceInput([1, 2, 4])).features
    shape, level, mask = f[:6], f[6:12], f[12:]
    assert shape.tolist() == [0, 0, 0, 0.25, 0.5, 1.0]
    assert mask.tolist() == [0, 0, 0, 1, 1, 1]
    assert level[-1] == pytest.approx(np.log2(5) / 4)
    # The same numbers from every input kind give the same encoding.
    for inp in (CsvInput("1, 2, 4"), TextInput("1, 2, 4")):
        assert np.array_equal(ts.encode_input(inp).features, f)
    # Proportional sequences share the shape but not the level.
    g = ts.encode_input(SequenceInput([10, 20, 40])).features
    assert np.allclose(g[:6], shape) and not np.allclose(g[6:12], level)
    neg = ts.encode_input(SequenceInput([-3, 0, 3])).features
    assert neg[:6].tolist() == [0, 0, 0, -1, 0, 1] and neg[9] < 0
    assert ts.encode_input(SequenceInput([0, 0])).features[:6].tolist() == [0] * 6
    with pytest.raises(EncodingError, match="longer than 6"):
        ts.encode_input(SequenceInput(range(7)))


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


def test_vision_features() -> None:
    vision = VisionModule()
    horizontal = [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    f = vision.encode_input(ImageInput(4, 4, horizontal)).features
    assert f[:16].tolist() == horizontal
    assert f[16:20].tolist() == [0, 1, 0, 0]  # row means
    assert f[20:24].tolist() == [0.25] * 4  # column means
