"""Embedding and brain-slice allocation."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_core import (
    BackwardPass,
    BrainSlice,
    CognitiveBrainOrchestrator,
    DagNN,
    Embedding,
    InitStrategy,
    ShapeError,
)


def test_lookup_clamps_code_points_and_accepts_strings():
    emb = Embedding(128, 4, seed=1)
    table = emb.get_parameters()["table"]
    np.testing.assert_array_equal(emb.lookup("a☃"), table[[97, 127]])
    np.testing.assert_array_equal(emb.lookup([0, 5000]), table[[0, 127]])
    with pytest.raises(ValueError, match=">= 0"):
        emb.lookup([-1])


def test_backward_repeated_indices_add_and_zero_grad():
    emb = Embedding(16, 3, dtype="float64")
    grads = np.arange(12, dtype=np.float64).reshape(4, 3)
    emb.backward([2, 5, 2, 2], grads)
    g = emb.get_gradients()["table"]
    np.testing.assert_allclose(g[2], grads[0] + grads[2] + grads[3])
    np.testing.assert_allclose(g[5], grads[1])
    assert np.count_nonzero(g.sum(axis=1)) == 2
    emb.backward([5], grads[:1])  # accumulates across calls
    np.testing.assert_allclose(emb.get_gradients()["table"][5], grads[1] + grads[0])
    emb.zero_grad()
    assert emb.gradient_norm() == 0.0
    with pytest.raises(ShapeError, match=r"\[2, 3\]"):
        emb.backward([1, 2], np.zeros((3, 3)))


def test_step_moves_only_used_rows_with_sgd():
    emb = Embedding(16, 2, dtype="float64")
    before = emb.get_parameters()["table"]
    emb.backward([3], np.array([[1.0, -2.0]]))
    emb.step(0.5)
    after = emb.get_parameters()["table"]
    np.testing.assert_allclose(after[3], before[3] - 0.5 * np.array([1.0, -2.0]))
    np.testing.assert_array_equal(np.delete(after, 3, axis=0), np.delete(before, 3, axis=0))


def test_decode_returns_nearest_printable_character():
    emb = Embedding(256, 8, seed=0, dtype="float64")
    for ch in "aZ7 ~é":
        assert emb.decode(emb.lookup(ch)[0]) == ch
    assert emb.decode(emb.lookup("a")[0] + 1e-4) == "a"
    assert emb.decode(emb.lookup([10])[0]).isprintable()  # '\n' is not printable


@pytest.mark.parametrize("init", list(InitStrategy))
def test_init_strategies_are_seeded(init):
    a = Embedding(64, 8, init=init, seed=3).get_parameters()["table"]
    b = Embedding(64, 8, init=init, seed=3).get_parameters()["table"]
    np.testing.assert_array_equal(a, b)
    if init is InitStrategy.ZERO:
        assert not a.any()
    elif init is InitStrategy.XAVIER:
        assert np.abs(a).max() <= np.sqrt(6 / (64 + 8))
    elif init is InitStrategy.UNIFORM:
        assert np.abs(a).max() <= 0.1


def test_backward_pass_protocol():
    assert isinstance(DagNN(), BackwardPass)
    assert isinstance(Embedding(4, 2), BackwardPass)


def test_slices_are_contiguous_in_request_order():
    orch = CognitiveBrainOrchestrator()
    slices = orch.allocate_brain_slices([("math", 10, 4), ("text", 0, 6), ("vision", 16, 2)])
    assert list(slices) == ["math", "text", "vision"]
    assert slices["math"] == BrainSlice("math", range(0, 10), range(0, 4))
    assert slices["text"].input_range == range(10, 10) and slices["text"].output_range == range(
        4, 10
    )
    assert slices["vision"].input_range == range(10, 26)
    assert slices["vision"].input_count == 16 and slices["vision"].output_count == 2
    assert orch.total_input_nodes(slices) == 26
    assert orch.total_output_nodes(slices) == 12


def test_slice_errors():
    orch = CognitiveBrainOrchestrator()
    with pytest.raises(ValueError, match="duplicate brain id 'a'"):
        orch.allocate_brain_slices([("a", 1, 1), ("a", 2, 2)])
    with pytest.raises(ValueError, match="non-negative"):
        orch.allocate_brain_slices([("a", -1, 1)])
    with pytest.raises(ValueError, match="non-negative"):
        orch.allocate_brain_slices([("a", 1, -3)])
    with pytest.raises(ValueError):
        BrainSlice("x", range(5, 0, -1), range(0))
    assert orch.allocate_brain_slices([]) == {}
    numpy_sizes = orch.allocate_brain_slices([("a", np.int64(3), np.int32(2))])
    assert numpy_sizes["a"].input_range == range(0, 3)
    with pytest.raises(ValueError, match="non-negative"):
        orch.allocate_brain_slices([("a", 2.0, 1)])
