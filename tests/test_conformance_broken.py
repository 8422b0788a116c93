"""The conformance suite can fail: deliberately broken backends are caught, each by the
right check, with a message that names the check and the size of the error.

Each broken backend is the NumPy reference with one thing wrong, registered through
``grapheme_core.register_plugin`` exactly like a third-party plugin.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from grapheme_backends.numpy_backend import NumpyBackend
from grapheme_core import BackendSpec, hookimpl, register_plugin, unregister_plugin
from grapheme_core.conformance import run_conformance
from grapheme_core.types import Activation


class NoActivationDerivative(NumpyBackend):
    """Mistake 1 of the Rust original: backward ignores act'(z)."""

    def activation_grad(self, activation: Activation, h: np.ndarray) -> np.ndarray | None:
        return None


class SgdIgnoresLearningRate(NumpyBackend):
    def sgd_step(self, param: np.ndarray, grad: np.ndarray, lr: float) -> np.ndarray:
        return super().sgd_step(param, grad, 0.01)


class GradientsDoNotAccumulate(NumpyBackend):
    """``add`` overwrites: the model's gradient buffer only keeps the last call."""

    def add(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return second.copy()


class ZeroWeightGradients(NumpyBackend):
    def backward(self, compiled, weight, bias, cache, grad_out):
        gw, gb, gx = super().backward(compiled, weight, bias, cache, grad_out)
        return np.zeros_like(gw), gb, gx


class AlwaysFloat64(NumpyBackend):
    """Computes everything in float64, whatever the model's dtype."""

    def asarray(self, value, dtype: str) -> np.ndarray:
        return super().asarray(value, "float64")

    def zeros(self, shape, dtype: str) -> np.ndarray:
        return super().zeros(shape, "float64")


class ScatterOverwrites(NumpyBackend):
    """Buffered fancy-index add: repeated embedding indices count once."""

    def scatter_add_rows(self, table, index, rows):
        table[index] += rows
        return table


class DropsBias(NumpyBackend):
    def forward(self, compiled, weight, bias, x):
        return super().forward(compiled, weight, np.zeros_like(bias), x)


class StaleWeights(NumpyBackend):
    """Keeps the weights of the first forward of each compiled plan."""

    def __init__(self) -> None:
        self._first: dict[int, tuple[object, np.ndarray]] = {}

    def forward(self, compiled, weight, bias, x):
        _, cached = self._first.setdefault(id(compiled), (compiled, weight.copy()))
        return super().forward(compiled, cached, bias, x)


class AdamWithoutBiasCorrection(NumpyBackend):
    def adam_step(self, param, grad, m, v, step, lr, beta1, beta2, eps):
        return super().adam_step(param, grad, m, v, 1, lr, beta1, beta2, eps)


# name -> (backend class, checks that must fail, checks that must still pass)
BROKEN = {
    "broken-no-act-deriv": (
        NoActivationDerivative,
        {"grad.oracle", "grad.activations", "grad.fd"},
        {"forward.chain", "forward.random_dags", "optim.sgd"},
    ),
    "broken-sgd-ignores-lr": (
        SgdIgnoresLearningRate,
        {"optim.sgd"},
        {"grad.oracle", "optim.adam", "forward.random_dags"},
    ),
    "broken-no-accumulate": (
        GradientsDoNotAccumulate,
        {"accumulate.two_calls"},
        {"grad.oracle", "forward.random_dags"},
    ),
    "broken-zero-grads": (
        ZeroWeightGradients,
        {"grad.oracle", "grad.fd"},
        {"forward.random_dags", "embedding.repeated_indices"},
    ),
    "broken-dtype": (AlwaysFloat64, {"dtype.kept"}, {"forward.random_dags", "grad.oracle"}),
    "broken-scatter": (
        ScatterOverwrites,
        {"embedding.repeated_indices"},
        {"embedding.lookup", "grad.oracle"},
    ),
    "broken-no-bias": (
        DropsBias,
        {"forward.single_node", "forward.chain", "forward.random_dags"},
        {"forward.empty", "embedding.lookup"},
    ),
    "broken-stale-weights": (
        StaleWeights,
        {"forward.after_set_parameters", "optim.sgd"},
        {"forward.random_dags", "grad.oracle"},
    ),
    "broken-adam": (
        AdamWithoutBiasCorrection,
        {"optim.adam", "embedding.adam"},
        {"optim.sgd", "grad.oracle"},
    ),
}
PLUGIN_NAME = "grapheme-tests-broken-backends"
# "max abs error 1.234e-02" (value comparisons) or "relative error 1.2e-01" (finite differences)
ERROR_SIZE = re.compile(r"(max abs error|relative error) \d\.\d+e[+-]\d+")


class BrokenPlugin:
    @staticmethod
    @hookimpl
    def grapheme_backends() -> list[BackendSpec]:
        return [
            BackendSpec(name, cls, description=cls.__doc__ or cls.__name__)
            for name, (cls, _, _) in BROKEN.items()
        ]


@pytest.fixture(scope="module")
def reports():
    register_plugin(BrokenPlugin(), PLUGIN_NAME)
    try:
        yield {name: run_conformance(name) for name in BROKEN}
    finally:
        unregister_plugin(PLUGIN_NAME)


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_backend_fails_the_right_checks(reports, name):
    _, must_fail, must_pass = BROKEN[name]
    report = reports[name]
    assert report.exit_code == 1
    assert not report.load_errors
    failed = {r.check for r in report.failures()}
    assert must_fail <= failed, (
        f"{name}: expected {sorted(must_fail)} to fail, got {sorted(failed)}"
    )
    for check in must_pass:
        assert report.result(name, check).outcome == "passed", report.result(name, check).message
    for check in must_fail:
        result = report.result(name, check)
        assert result.outcome == "failed", result.message  # a wrong value, not a crash
        assert result.message.startswith(f"{check} failed on backend '{name}': ")
        if check != "dtype.kept":
            assert ERROR_SIZE.search(result.message), result.message
            assert result.error is not None and result.error > 0
            assert result.ratio is not None and result.ratio > 1


NARROW = (
    "broken-sgd-ignores-lr",
    "broken-no-accumulate",
    "broken-scatter",
    "broken-stale-weights",
    "broken-adam",
    "broken-dtype",
)


@pytest.mark.parametrize("name", NARROW)
def test_a_narrow_defect_fails_few_checks(reports, name):
    """A defect in one kernel fails the checks that exercise it, not the whole suite, so
    the report points at the kernel (a wrong forward or backward fails widely, as it must)."""
    failed = sorted(r.check for r in reports[name].failures())
    assert len(failed) <= 4, f"{name}: {failed}"


def test_dtype_failure_names_both_dtypes(reports):
    msg = reports["broken-dtype"].result("broken-dtype", "dtype.kept").message
    assert "float32" in msg and "float64" in msg


def test_activation_derivative_failure_names_the_activation(reports):
    msg = reports["broken-no-act-deriv"].result("broken-no-act-deriv", "grad.activations").message
    assert re.search(r"(RELU|LEAKY_RELU|SIGMOID|TANH) activation", msg), msg


def test_sgd_failure_reports_the_learning_rate(reports):
    msg = reports["broken-sgd-ignores-lr"].result("broken-sgd-ignores-lr", "optim.sgd").message
    assert "step(lr=0.37)" in msg


# -- the same through pytest (the shipped pytest plugin) ---------------------------------------
PLUGIN_MODULE = """
from grapheme_core import register_plugin
from test_conformance_broken import BrokenPlugin

def pytest_configure(config):
    register_plugin(BrokenPlugin(), "grapheme-tests-broken-backends")
"""


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "register_broken.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    env_path = f"{tmp_path}:{Path(__file__).parent}"
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "register_broken", "-p", "no:cacheprovider"),
            *("--pyargs", "grapheme_core.conformance", *args),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**_env(), "PYTHONPATH": env_path},
    )


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "GRAPHEME_BACKEND"}


def test_pytest_plugin_reports_the_failing_check(tmp_path):
    proc = _pytest(
        tmp_path,
        "--grapheme-backend",
        "broken-no-act-deriv",
        "-k",
        "grad.oracle or forward.chain",
        "-q",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed, 1 passed" in out
    assert "grad.oracle failed on backend 'broken-no-act-deriv'" in out
    assert ERROR_SIZE.search(out), out


def test_pytest_expected_failures_are_strict_xfails(tmp_path):
    listed = tmp_path / "expected.txt"
    listed.write_text("# known problems\ngrad.oracle   # derivative dropped\ngrad.fd\n")
    args = ("--grapheme-backend", "broken-no-act-deriv", "-k", "grad.oracle or grad.fd", "-q")
    proc = _pytest(tmp_path, *args, "--grapheme-expected-failures", str(listed))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 xfailed" in proc.stdout
    # a listed check that passes is an XPASS, which fails the run (strict)
    listed.write_text("forward.chain\n")
    proc = _pytest(
        tmp_path,
        "--grapheme-backend",
        "broken-no-act-deriv",
        "-k",
        "forward.chain",
        "-q",
        "--grapheme-expected-failures",
        str(listed),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "XPASS(strict)" in proc.stdout + proc.stderr or "1 failed" in proc.stdout
