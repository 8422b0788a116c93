"""Each loss's gradient equals central finite differences of its value."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_core import ShapeError
from grapheme_core.losses import binary_cross_entropy, mse, softmax_cross_entropy


def _fd(f, y: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(y)
    for i in np.ndindex(y.shape):
        up, down = y.copy(), y.copy()
        up[i] += eps
        down[i] -= eps
        g[i] = (f(up) - f(down)) / (2 * eps)
    return g


RNG = np.random.default_rng(0)


def test_mse_gradient_and_value():
    y, t = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 3))
    res = mse(y, t)
    assert res.value == pytest.approx(((y - t) ** 2).sum() / 4)
    np.testing.assert_allclose(res.grad, _fd(lambda v: mse(v, t).value, y), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape", [(5, 4), (5, 12), (5, 3, 4)])
def test_softmax_cross_entropy_gradient(shape):
    z = RNG.normal(size=shape) * 3
    slots = int(np.prod(shape[1:])) // 4
    labels = RNG.integers(0, 4, size=(5, slots))
    labels[0, 0] = -1  # masked slot
    res = softmax_cross_entropy(z, labels.reshape(5) if slots == 1 else labels, classes=4)
    fd = _fd(lambda v: softmax_cross_entropy(v, labels, classes=4).value, z)
    np.testing.assert_allclose(res.grad, fd, rtol=1e-5, atol=1e-8)
    assert res.grad.shape == z.shape


def test_softmax_cross_entropy_saturated_is_finite_and_masked_slot_is_free():
    z = np.array([[1000.0, -1000.0, 0.0]])
    res = softmax_cross_entropy(z, np.array([1]))
    assert np.isfinite(res.value) and res.value == pytest.approx(2000.0)
    assert softmax_cross_entropy(z, np.array([-1])).value == 0.0


def test_binary_cross_entropy_gradient_and_saturation():
    z = RNG.normal(size=(6, 2)) * 4
    t = RNG.uniform(size=(6, 2))
    res = binary_cross_entropy(z, t)
    fd = _fd(lambda v: binary_cross_entropy(v, t).value, z)
    np.testing.assert_allclose(res.grad, fd, rtol=1e-5, atol=1e-8)
    big = binary_cross_entropy(np.array([[800.0, -800.0]]), np.array([[0.0, 1.0]]))
    assert big.value == pytest.approx(1600.0) and np.all(np.isfinite(big.grad))


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ShapeError, match="target shape"):
        mse(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ShapeError, match="slots of 4 classes"):
        softmax_cross_entropy(np.zeros((2, 6)), np.zeros((2,), dtype=int), classes=4)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        softmax_cross_entropy(np.zeros((1, 3)), np.array([3]))


def test_backend_capabilities_declared_and_derived():
    from grapheme_core.backend import backend_capabilities

    class Declared:
        name = "d"
        capabilities = ("float64",)

    class Derived:
        name = "x"

        def candidate_edge_grads(self):  # pragma: no cover - presence is what counts
            pass

    assert backend_capabilities(Declared()) == {"float64"}
    assert backend_capabilities(Derived()) == {"float64", "candidate_edge_grads"}
    Declared.capabilities = ("warp-drive",)
    with pytest.raises(ValueError, match="unknown capabilities"):
        backend_capabilities(Declared())
