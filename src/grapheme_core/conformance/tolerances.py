"""The suite's tolerances and the comparison that turns a mismatch into a message.

A value passes when ``|got - want| <= atol + rtol * |want|`` (the rule of
``numpy.isclose``), elementwise, with ``want`` computed by the float64 oracle.
"""

from __future__ import annotations

import attrs
import numpy as np


@attrs.frozen
class Tolerance:
    rtol: float
    atol: float

    def __str__(self) -> str:
        return f"rtol {self.rtol:g}, atol {self.atol:g}"


#: Forward values against the oracle: float64 rtol 1e-10; float32 rtol 1e-5 /
#: atol 1e-6. (float64 gets a tiny atol so values that cancel to ~0 are judged absolutely.)
FORWARD = {"float64": Tolerance(1e-10, 1e-12), "float32": Tolerance(1e-5, 1e-6)}
#: Gradients against the oracle: float32 rtol 1e-4 / atol 1e-5.
GRAD = {"float64": Tolerance(1e-9, 1e-11), "float32": Tolerance(1e-4, 1e-5)}
#: Parameters after an optimizer step, compared with the step computed in float64 from the
#: parameters and gradients the model reported before it.
PARAM = FORWARD
#: Analytic gradients (float64 model) against central finite differences (eps 1e-6):
#: ``max |analytic - numeric| / max(1, max |numeric|)`` must stay below this.
FINITE_DIFFERENCES = 1e-6
FD_EPS = 1e-6


class CheckFailure(AssertionError):
    """A conformance check found a wrong value. ``error`` is the worst absolute error,
    ``ratio`` the worst ``error / allowed`` (``> 1`` means out of tolerance)."""

    def __init__(
        self, message: str, *, error: float | None = None, ratio: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error = error
        self.ratio = ratio


def compare(what: str, got: object, want: object, tol: Tolerance) -> None:
    """Raise :class:`CheckFailure` naming ``what`` and the size of the worst error."""
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    if g.shape != w.shape:
        raise CheckFailure(f"{what}: got shape {list(g.shape)}, expected {list(w.shape)}")
    if g.size == 0:
        return
    bad_finite = ~np.isfinite(g) & np.isfinite(w)
    if bad_finite.any():
        idx = _index(np.unravel_index(int(np.flatnonzero(bad_finite)[0]), g.shape))
        raise CheckFailure(
            f"{what}: non-finite value {g[idx]} at {list(idx)}, expected {w[idx]:.9g} "
            f"({int(bad_finite.sum())} of {g.size} values non-finite)",
            error=float("inf"),
            ratio=float("inf"),
        )
    err = np.abs(g - w)
    allowed = tol.atol + tol.rtol * np.abs(w)
    if np.all(err <= allowed):
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err > allowed, err / allowed, 0.0)  # inf where an exact match was due
    idx = _index(np.unravel_index(int(np.argmax(ratio)), g.shape))
    n_bad = int(np.count_nonzero(err > allowed))
    raise CheckFailure(
        f"{what}: max abs error {float(err.max()):.3e}; worst at {list(idx)}: got "
        f"{g[idx]:.9g}, expected {w[idx]:.9g}, error {err[idx]:.3e} > allowed "
        f"{allowed[idx]:.3e} ({tol}){_times(float(ratio[idx]))}; "
        f"{n_bad} of {g.size} values out of tolerance",
        error=float(err.max()),
        ratio=float(ratio[idx]),
    )


def require(condition: bool, message: str) -> None:
    """Raise :class:`CheckFailure` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailure(message)


def _times(ratio: float) -> str:
    return (
        f", {ratio:.3g}x the tolerance" if np.isfinite(ratio) else " (an exact match is required)"
    )


def _index(idx: tuple) -> tuple[int, ...]:
    return tuple(int(i) for i in idx)
