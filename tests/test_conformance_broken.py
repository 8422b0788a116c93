"""The conformance suite can fail: deliberately broken backends are caught, each by the
right check, with a message that names the check and the size of the error.

Each broken backend is the NumPy reference with one thing wrong, registered through
``grapheme_core.register_plugin`` exactly like a third-party plugin.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from grapheme_backends.numpy_backend import NumpyBackend
from grapheme_core import BackendSpec, hookimpl, register_plugin, unregister_plugin
from grapheme_core.conformance import CHECKS, run_check, run_conformance
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


# -- realistic one-line bugs the first suite let through (each fails exactly its checks) --
class ToNumpyView(NumpyBackend):
    """``to_numpy`` returns a view: later in-place updates show in old results."""

    def to_numpy(self, value):
        return np.asarray(value)


class ConcatAliasesWhenEmpty(NumpyBackend):
    """A "fast path" returning ``first`` itself when ``second`` is empty."""

    def concat(self, first, second):
        return first if second.shape[0] == 0 else super().concat(first, second)


class TakeSortsIndices(NumpyBackend):
    """Gathers through a boolean mask, so rows come back in ascending order."""

    def take(self, value, index):
        return value[np.isin(np.arange(value.shape[0]), index)]


class ScaleByPowerOfTwo(NumpyBackend):
    """Scales by the nearest power of two (an exponent-only "fast" multiply)."""

    def scale(self, value, factor):
        return super().scale(value, 2.0 ** np.round(np.log2(factor)) if factor > 0 else factor)


class SpectralSumSquares(NumpyBackend):
    """``norm(value, 2) ** 2``: right for vectors, the largest singular value for tables."""

    def sum_squares(self, value):
        return float(np.linalg.norm(value, 2) ** 2)


class NaiveSigmoid(NumpyBackend):
    """``exp(z) / (1 + exp(z))``: inf / inf = NaN once exp overflows."""

    def activate(self, activation, z):
        if activation is Activation.SIGMOID:
            with np.errstate(over="ignore", invalid="ignore"):
                e = np.exp(z)
                np.divide(e, 1 + e, out=z)
            return z
        return super().activate(activation, z)


class InputsAreSources(NumpyBackend):
    """Only inputs of the first level get their external value (inputs assumed sources)."""

    def forward(self, compiled, weight, bias, x):
        plan = compiled.plan
        late = plan.input_positions >= plan.level_offsets[min(1, plan.level_offsets.size - 1)]
        x = x.copy()
        x[:, late] = 0
        return super().forward(compiled, weight, bias, x)


class OutputsAreSinks(NumpyBackend):
    """Evaluates output nodes in a last pass: nodes fed by an output see 0."""

    def forward(self, compiled, weight, bias, x):
        plan = compiled.plan
        from_output = np.isin(plan.edge_src, plan.output_positions)
        weight = weight.copy()
        weight[plan.edge_order[from_output]] = 0
        return super().forward(compiled, weight, bias, x)


class BackwardUsesCurrentWeights(NumpyBackend):
    """Backward reads the current weights instead of those its forward used."""

    def backward(self, compiled, weight, bias, cache, grad_out):
        h, _ = cache
        current = self._load_weights(compiled, weight)
        return super().backward(compiled, weight, bias, (h, current), grad_out)


class BackwardConsumesCache(NumpyBackend):
    """Reuses the forward's node values as scratch space, so a second backward is wrong."""

    def backward(self, compiled, weight, bias, cache, grad_out):
        out = super().backward(compiled, weight, bias, cache, grad_out)
        cache[0][...] = 0
        return out


class SqueezesBatchOfOne(NumpyBackend):
    """``grad_x.squeeze(0)`` when the batch has one row."""

    def backward(self, compiled, weight, bias, cache, grad_out):
        gw, gb, gx = super().backward(compiled, weight, bias, cache, grad_out)
        return gw, gb, gx[0] if gx.shape[0] == 1 else gx


class LevelEdgeGradsForgetsRest(NumpyBackend):
    """The batched weight-gradient kernel without its pass over small-degree rows."""

    def level_edge_grads(self, kernel, delta, h, out):
        super().level_edge_grads(kernel, delta, h, out)
        if kernel.edge_stop - kernel.edge_start > self.edge_chunk_elements // h.shape[1]:
            out[kernel.rest_slots] = 0


class ReusesPlanWithSameCounts(NumpyBackend):
    """Skips recompiling when node and edge counts did not change (a one-slot cache)."""

    def __init__(self) -> None:
        self._last = None

    def compile(self, plan, dtype):
        key = (plan.num_nodes, plan.num_edges, dtype)
        if self._last is None or self._last[0] != key:
            self._last = (key, super().compile(plan, dtype))
        return self._last[1]


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
        {"accumulate.two_calls", "accumulate.one_forward_two_backward", "protocol.add"},
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
# the bugs of suite 2: name -> (class, exactly the checks that fail)
NEW = {
    "broken-to-numpy-view": (ToNumpyView, {"protocol.to_numpy_copies"}),
    "broken-concat-alias": (ConcatAliasesWhenEmpty, {"protocol.concat"}),
    "broken-take-sorted": (TakeSortsIndices, {"protocol.take"}),
    "broken-scale-pow2": (
        ScaleByPowerOfTwo,
        {"protocol.scale", "grad.clip_factor", "embedding.norm_clip"},
    ),
    "broken-sum-squares-2d": (SpectralSumSquares, {"protocol.sum_squares", "embedding.norm_clip"}),
    "broken-naive-sigmoid": (NaiveSigmoid, {"numeric.saturation"}),
    "broken-inputs-sources": (InputsAreSources, {"graph.edges_into_inputs"}),
    "broken-outputs-sinks": (OutputsAreSinks, {"graph.outputs_feed_nodes"}),
    "broken-backward-current-weights": (BackwardUsesCurrentWeights, {"grad.params_changed"}),
    "broken-backward-consumes-cache": (
        BackwardConsumesCache,
        # candidate gradients read the cache after the backward that consumed it
        {
            "accumulate.one_forward_two_backward",
            "candidate.oracle",
            "candidate.fd",
            "candidate.dense_level",
        },
    ),
    "broken-squeeze-batch-of-one": (SqueezesBatchOfOne, {"grad.single_row"}),
    "broken-level-edge-grads": (LevelEdgeGradsForgetsRest, {"scale.large_graph"}),
    "broken-plan-cache-by-counts": (
        ReusesPlanWithSameCounts,
        {"edit.random_sequences", "grad.activations"},  # graphs of equal size in a row
    ),
}
#: failures that are a wrong shape or a NaN rather than a sized numeric error
NO_ERROR_SIZE = {"dtype.kept", "grad.single_row", "numeric.saturation", "protocol.take"}
PLUGIN_NAME = "grapheme-tests-broken-backends"
# "max abs error 1.234e-02" (value comparisons) or "relative error 1.2e-01" (finite differences)
ERROR_SIZE = re.compile(r"(max abs error|relative error) \d\.\d+e[+-]\d+")


class BrokenPlugin:
    @staticmethod
    @hookimpl
    def grapheme_backends() -> list[BackendSpec]:
        classes = {name: row[0] for name, row in {**BROKEN, **NEW}.items()}
        return [
            BackendSpec(name, cls, description=cls.__doc__ or cls.__name__)
            for name, cls in classes.items()
        ]


@pytest.fixture(scope="module")
def registered():
    register_plugin(BrokenPlugin(), PLUGIN_NAME)
    try:
        yield
    finally:
        unregister_plugin(PLUGIN_NAME)


def _methods(cls: type, stop: type = object) -> set[str]:
    """The names of the methods ``cls`` defines or inherits from classes below ``stop``
    (dunders only ``__init__``)."""
    names: set[str] = set()
    for klass in cls.__mro__[: cls.__mro__.index(stop)]:
        names |= {n for n, v in vars(klass).items() if callable(v) and not n.startswith("__")}
        names |= {"__init__"} & set(vars(klass))
    return names


def _record(backend: NumpyBackend, calls: set[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for chk in CHECKS.values():
        calls.clear()
        result = run_check(chk, backend, label="numpy")
        assert result.outcome == "passed", result.message
        out[chk.id] = set(calls)
    return out


def reference_calls() -> dict[str, set[str]]:
    """Check id -> the backend methods that check calls on the NumPy reference, in both
    ways the reference can run.

    The reference picks some paths by testing its class (``type(self).edge_grads is
    NumpyBackend.edge_grads``: a subclass's own ``edge_grads`` replaces the batched
    kernels). So the suite is recorded twice: on an instance whose methods are shadowed
    by recording instance attributes (the class is the reference's: the paths of a
    subclass that overrides none of those seams) and on a subclass that overrides every
    method with a recording one (the paths of a subclass that overrides them). Every
    check must pass both ways.
    """
    calls: set[str] = set()
    methods = sorted(_methods(NumpyBackend) - {"__init__"})

    def recording(name: str, method):
        def spy(*args, **kwargs):
            calls.add(name)
            return method(*args, **kwargs)

        return spy

    plain = NumpyBackend()
    for name in methods:
        setattr(plain, name, recording(name, getattr(plain, name)))
    by_instance = _record(plain, calls)

    def overriding(name: str):
        def spy(self, *args, **kwargs):
            calls.add(name)
            return getattr(NumpyBackend, name)(self, *args, **kwargs)

        return spy

    subclass = type("RecordingBackend", (NumpyBackend,), {n: overriding(n) for n in methods})
    by_class = _record(subclass(), calls)
    return {c: by_instance[c] | by_class[c] for c in CHECKS}


def affected_checks(cls: type, calls: dict[str, set[str]]) -> set[str]:
    """The checks whose run on a ``cls`` instance can differ from the reference's.

    ``cls`` is the reference with some methods overridden (state set in ``__init__`` is
    only read by those methods). The checks are deterministic, so a check that calls no
    overridden method on the reference (either way it runs, see
    :func:`reference_calls`) runs the very same code on ``cls`` and passes as it does on
    the reference.
    """
    overridden = _methods(cls, stop=NumpyBackend) - {"__init__"}
    return {c for c, used in calls.items() if used & overridden}


@pytest.fixture(scope="module")
def calls():
    return reference_calls()


@pytest.fixture(scope="module")
def reports(registered, calls):
    """Per broken backend, the report of every check its defect can affect (the others
    are proven to pass by :func:`affected_checks`), plus the checks the test names."""
    out = {}
    for name, row in {**BROKEN, **NEW}.items():
        named = set(row[1]).union(*row[2:])
        out[name] = run_conformance(name, checks=sorted(affected_checks(row[0], calls) | named))
    return out


@pytest.mark.slow  # records the whole suite on the reference
def test_affected_checks_cover_every_check_a_defect_changes(calls):
    """The selection keeps every check a defect makes fail, and a method the reference
    only calls on a path chosen by its class still selects the checks of that path."""
    assert all(calls[c] for c in CHECKS if c != "backend.load")  # every check uses the backend
    for name, row in {**BROKEN, **NEW}.items():
        assert row[1] <= affected_checks(row[0], calls), name

    class OwnEdgeGrads(NumpyBackend):
        def edge_grads(self, delta, h, rows, cols):  # replaces the batched kernels
            return super().edge_grads(delta, h, rows, cols)

    backward = {c for c, used in calls.items() if "backward" in used}
    assert backward and backward <= affected_checks(OwnEdgeGrads, calls)
    assert affected_checks(NumpyBackend, calls) == set()


@pytest.mark.parametrize("name", [*BROKEN, *NEW])
def test_each_bug_fails_its_checks(registered, name):
    """The quick version (only the target checks run); the slow tests below run every
    check the bug can affect (see :func:`affected_checks`) and also check that nothing
    else fails."""
    must_fail = {**BROKEN, **NEW}[name][1]
    report = run_conformance(name, checks=sorted(must_fail))
    assert {r.check for r in report.failures()} == must_fail
    assert all(report.result(name, c).outcome == "failed" for c in must_fail)


def _failed_on_a_wrong_value(report, name: str, check: str):
    """The result of ``check`` on ``name``: failed on a wrong value (not a crash), with the
    standard message prefix and, where the check measures one, the size of the error."""
    result = report.result(name, check)
    assert result.outcome == "failed", result.message
    assert result.message.startswith(f"{check} failed on backend '{name}': ")
    if check not in NO_ERROR_SIZE:
        assert ERROR_SIZE.search(result.message), result.message
    return result


@pytest.mark.slow  # the reports fixture runs the affected checks per broken backend
@pytest.mark.parametrize("name", list(NEW))
def test_each_new_bug_fails_exactly_its_checks(reports, name):
    _, must_fail = NEW[name]
    report = reports[name]
    failed = {r.check for r in report.failures()}
    assert failed == must_fail, (
        f"{name}: expected exactly {sorted(must_fail)}, got {sorted(failed)}"
    )
    assert report.exit_code == 1 and not report.load_errors
    for check in must_fail:
        result = _failed_on_a_wrong_value(report, name, check)
        if check not in NO_ERROR_SIZE:
            assert result.ratio is not None and result.ratio > 1


@pytest.mark.slow  # the reports fixture runs the affected checks per broken backend
def test_saturation_failure_says_nan(reports):
    msg = reports["broken-naive-sigmoid"].result("broken-naive-sigmoid", "numeric.saturation")
    assert "non-finite value nan" in msg.message or "NaN" in msg.message, msg.message


@pytest.mark.slow  # the reports fixture runs the affected checks per broken backend
def test_single_row_failure_names_the_shape(reports):
    r = reports["broken-squeeze-batch-of-one"].result(
        "broken-squeeze-batch-of-one", "grad.single_row"
    )
    # the core's result guard (grapheme_core.guards) stops the wrong shape at the source
    assert re.search(r"returned input gradients of shape \[\d+\]", r.message), r.message
    assert re.search(r"expected shape \[1, \d+\]", r.message), r.message


@pytest.mark.slow  # the reports fixture runs the affected checks per broken backend
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
        result = _failed_on_a_wrong_value(report, name, check)
        if check not in NO_ERROR_SIZE:
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


@pytest.mark.slow  # the reports fixture runs the affected checks per broken backend
@pytest.mark.parametrize("name", NARROW)
def test_a_narrow_defect_fails_few_checks(reports, name):
    """A defect in one kernel fails the checks that exercise it, not the whole suite, so
    the report points at the kernel (a wrong forward or backward fails widely, as it must)."""
    failed = sorted(r.check for r in reports[name].failures())
    # at most 4 of the core checks (checks.py), as with the first suite; the later check
    # modules probe single methods directly (protocol.*) or the same kernel in new
    # situations, so they may add to that, but a narrow defect never fails a fifth of all
    core = [c for c in failed if CHECKS[c].func.__module__.endswith(".checks")]
    assert len(core) <= 4, f"{name}: {core}"
    assert len(failed) <= len(CHECKS) // 5, f"{name}: {failed}"


@pytest.mark.slow  # the reports fixture runs the affected checks per broken backend
def test_dtype_failure_names_both_dtypes(reports):
    msg = reports["broken-dtype"].result("broken-dtype", "dtype.kept").message
    assert "float32" in msg and "float64" in msg


@pytest.mark.slow  # the reports fixture runs the affected checks per broken backend
def test_activation_derivative_failure_names_the_activation(reports):
    msg = reports["broken-no-act-deriv"].result("broken-no-act-deriv", "grad.activations").message
    assert re.search(r"(RELU|LEAKY_RELU|SIGMOID|TANH) activation", msg), msg


@pytest.mark.slow  # the reports fixture runs the affected checks per broken backend
def test_sgd_failure_reports_the_learning_rate(reports):
    msg = reports["broken-sgd-ignores-lr"].result("broken-sgd-ignores-lr", "optim.sgd").message
    assert "step(lr=0.37)" in msg


# -- the same through pytest (the shipped pytest plugin) ---------------------------------------
def _pytest(pytester: pytest.Pytester, monkeypatch, *args: str) -> pytest.RunResult:
    """``pytest --pyargs grapheme_core.conformance ARGS`` in this process (the broken
    backends are registered by the ``registered`` fixture; ``runpytest_inprocess`` loads
    the ``pytest11`` entry-point plugins like a fresh ``pytest`` does)."""
    monkeypatch.delenv("GRAPHEME_BACKEND", raising=False)
    monkeypatch.delenv("GRAPHEME_CONFORMANCE_BACKENDS", raising=False)
    return pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--pyargs", "grapheme_core.conformance", *args
    )


def test_pytest_plugin_reports_the_failing_check(registered, pytester, monkeypatch):
    proc = _pytest(
        pytester,
        monkeypatch,
        "--grapheme-backend",
        "broken-no-act-deriv",
        "-k",
        "grad.oracle or forward.chain",
        "-q",
    )
    out = proc.stdout.str() + proc.stderr.str()
    assert proc.ret == 1, out
    assert "1 failed, 1 passed" in out
    assert "grad.oracle failed on backend 'broken-no-act-deriv'" in out
    assert ERROR_SIZE.search(out), out


@pytest.mark.slow  # two in-process pytest runs
def test_pytest_expected_failures_are_strict_xfails(registered, pytester, monkeypatch, tmp_path):
    listed = tmp_path / "expected.txt"
    listed.write_text("# known problems\ngrad.oracle   # derivative dropped\ngrad.fd\n")
    args = ("--grapheme-backend", "broken-no-act-deriv", "-k", "grad.oracle or grad.fd", "-q")
    proc = _pytest(pytester, monkeypatch, *args, "--grapheme-expected-failures", str(listed))
    assert proc.ret == 0, proc.stdout.str() + proc.stderr.str()
    assert "2 xfailed" in proc.stdout.str()
    # a listed check that passes is an XPASS, which fails the run (strict)
    listed.write_text("forward.chain\n")
    proc = _pytest(
        pytester,
        monkeypatch,
        "--grapheme-backend",
        "broken-no-act-deriv",
        "-k",
        "forward.chain",
        "-q",
        "--grapheme-expected-failures",
        str(listed),
    )
    out = proc.stdout.str() + proc.stderr.str()
    assert proc.ret == 1, out
    assert "XPASS(strict)" in out or "1 failed" in proc.stdout.str()
