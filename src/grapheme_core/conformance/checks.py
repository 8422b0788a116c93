"""The check registry and the core conformance checks: named, stable ids, each comparing
a backend with the float64 oracle (:class:`grapheme_core.oracle.Oracle`) and/or finite
differences.

A check is a function of a :class:`Context` (the backend under test and the dtypes to
exercise) that returns quietly or raises :class:`CheckFailure` with a message naming what
was compared and how large the error was. Check ids never change meaning; new checks get
new ids. Register one with ``@check(id, title, requires=(capability, ...))``; the modules
that hold checks are listed in :data:`grapheme_core.conformance.suite.CHECK_MODULES`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from ..backend import API_VERSION, CAPABILITIES, Backend, backend_capabilities
from ..checkpoint import load_dagnn, load_embedding, save
from ..dagnn import DagNN
from ..embedding import Embedding, _initial_table
from ..gradcheck import check_dagnn_gradients
from ..optim import Adam
from ..oracle import Oracle
from ..types import Activation, InitStrategy, NodeKind
from . import graphs
from .graphs import Case
from .selection import compile_pattern
from .tolerances import (
    FD_EPS,
    FINITE_DIFFERENCES,
    FORWARD,
    GRAD,
    PARAM,
    CheckFailure,
    Tolerance,
    compare,
    require,
)

DTYPES = ("float32", "float64")
EXACT = Tolerance(0.0, 0.0)


@attrs.define
class Context:
    """What a check runs against: a loaded backend instance, its label, its capabilities
    and the dtypes to exercise (float64 only when the backend has that capability)."""

    backend: Backend
    name: str
    dtypes: tuple[str, ...] = DTYPES
    capabilities: frozenset[str] = frozenset(CAPABILITIES)

    def case(self, name: str, dtype: str, seed: int = 0, **kwargs: Any) -> Case:
        return graphs.build(name, self.backend, dtype, seed, **kwargs)

    def dag(self, dtype: str, **kwargs: Any) -> DagNN:
        return DagNN(backend=self.backend, dtype=dtype, **kwargs)

    @property
    def reference(self) -> Backend:
        """The NumPy reference backend (used only where a second backend is needed)."""
        from grapheme_backends.numpy_backend import NumpyBackend

        return NumpyBackend()


@attrs.frozen
class Check:
    """One registered check: its stable ``id``, a one-line ``title``, the function, and
    the backend capabilities it needs (without them it is reported "not applicable")."""

    id: str
    title: str
    func: Callable[[Context], None] = attrs.field(repr=False)
    requires: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]

    def __call__(self, ctx: Context) -> None:
        self.func(ctx)


CHECKS: dict[str, Check] = {}


def check(
    check_id: str, title: str, *, requires: Iterable[str] = ()
) -> Callable[[Callable[[Context], None]], Callable]:
    """Register the decorated function as conformance check ``check_id``.

    ``requires``: capability names (keys of :data:`grapheme_core.backend.CAPABILITIES`)
    the check needs; on a backend without one of them the check is not run and is reported
    as not applicable (never as a pass).
    """
    needs = tuple(str(r) for r in ([requires] if isinstance(requires, str) else requires))
    unknown = sorted(set(needs) - CAPABILITIES.keys())
    if unknown:
        raise ValueError(
            f"check {check_id!r} requires unknown capabilities {unknown}; "
            f"known: {sorted(CAPABILITIES)}"
        )

    def deco(fn: Callable[[Context], None]) -> Callable[[Context], None]:
        if check_id in CHECKS:
            raise ValueError(f"duplicate conformance check id {check_id!r}")
        CHECKS[check_id] = Check(check_id, title, fn, needs)
        return fn

    return deco


def check_ids() -> list[str]:
    """Every check id, in suite order."""
    return list(CHECKS)


def select(patterns: Iterable[str] | None = None) -> list[Check]:
    """Checks matching any of ``patterns``, in suite order.

    A pattern is an exact id, a word that is a substring of ids (``clip``), a glob
    (``grad.*``) or a ``pytest -k`` style expression (``"grad and not fd"``); see
    :mod:`grapheme_core.conformance.selection`. A pattern that matches nothing is a
    ``ValueError`` (so a typo cannot silently run nothing).
    """
    if patterns is None:
        return list(CHECKS.values())
    chosen: set[str] = set()
    for pattern in [patterns] if isinstance(patterns, str) else list(patterns):
        if pattern in CHECKS:
            chosen.add(pattern)
            continue
        predicate = compile_pattern(pattern)
        hits = [c for c in CHECKS if predicate(c)]
        if not hits:
            raise ValueError(
                f"no conformance check matches {pattern!r}; known ids: {', '.join(CHECKS)}"
            )
        chosen.update(hits)
    return [CHECKS[c] for c in CHECKS if c in chosen]


# -- helpers ---------------------------------------------------------------------------
def _grads_vs_oracle(label: str, case: Case, x: np.ndarray, probe: np.ndarray, gx: Any) -> None:
    """Compare the model's accumulated gradients (after zero_grad + one backward of
    ``probe`` at ``x``) and the returned ``dL/dx`` with the oracle."""
    dtype = case.dag.dtype
    want = Oracle(case.dag).gradients(x, probe)
    got = case.dag.get_gradients()
    tol = GRAD[dtype]
    compare(
        f"{label} [{dtype}] weight gradients (order of edges())", got["weight"], want["weight"], tol
    )
    compare(f"{label} [{dtype}] bias gradients (order of nodes())", got["bias"], want["bias"], tol)
    compare(f"{label} [{dtype}] input gradients dL/dx", gx, want["input"], tol)


def _forward_vs_oracle(label: str, dag: DagNN, x: np.ndarray) -> np.ndarray:
    got = dag.forward(x)
    compare(
        f"{label} [{dag.dtype}] forward output", got, Oracle(dag).forward(x), FORWARD[dag.dtype]
    )
    return got


def _dtype_is(what: str, value: Any, dtype: str) -> None:
    arr = np.asarray(value)
    require(
        isinstance(value, np.ndarray) and arr.dtype == np.dtype(dtype),
        f"{what}: expected a numpy array of dtype {dtype}, got "
        f"{type(value).__name__} of dtype {getattr(arr, 'dtype', '?')}",
    )


# -- backend ---------------------------------------------------------------------------
_PROTOCOL_METHODS = (
    "asarray",
    "to_numpy",
    "zeros",
    "concat",
    "take",
    "add",
    "scale",
    "sum_squares",
    "compile",
    "forward",
    "backward",
    "sgd_step",
    "adam_step",
    "gather_rows",
    "scatter_add_rows",
)


@check("backend.load", "the backend loads and implements kernel protocol " + API_VERSION)
def _backend_load(ctx: Context) -> None:
    b = ctx.backend
    missing = [m for m in _PROTOCOL_METHODS if not callable(getattr(b, m, None))]
    require(not missing, f"backend lacks protocol methods: {', '.join(missing)}")
    name = getattr(b, "name", None)
    require(
        isinstance(name, str) and bool(name), f"backend.name must be a non-empty str, got {name!r}"
    )
    version = str(getattr(b, "api_version", ""))
    require(
        version.split(".")[0] == API_VERSION.split(".")[0],
        f"backend.api_version is {version!r}; this grapheme speaks kernel API {API_VERSION}",
    )
    require(isinstance(b, Backend), "backend does not satisfy grapheme_core.Backend")
    try:
        backend_capabilities(b)
    except ValueError as exc:
        raise CheckFailure(f"backend.capabilities is invalid: {exc}") from None


# -- initialisation --------------------------------------------------------------------
@check("init.seeded", "same seed -> the same initial parameters as the host reference")
def _init_seeded(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        for strategy in InitStrategy:
            got = graphs.build("random_medium", ctx.backend, dtype, seed=7, init=strategy)
            ref = graphs.build("random_medium", ctx.reference, dtype, seed=7, init=strategy)
            for key in ("weight", "bias"):
                compare(
                    f"random_medium [{dtype}] initial {key} with init {strategy.name} "
                    "(must equal the host draw bit for bit)",
                    got.dag.get_parameters()[key],
                    ref.dag.get_parameters()[key],
                    EXACT,
                )
            a = ctx.dag(dtype, seed=3, init=strategy)
            b = ctx.dag(dtype, seed=3, init=strategy)
            for dag in (a, b):
                ids = dag.add_nodes(6, NodeKind.HIDDEN)
                dag.add_edges(ids[:-1], ids[1:])
            compare(
                f"two models with seed 3 [{dtype}] initial weights ({strategy.name})",
                a.get_parameters()["weight"],
                b.get_parameters()["weight"],
                EXACT,
            )


# -- forward ---------------------------------------------------------------------------
def _forward_check(name: str) -> None:
    def run(ctx: Context) -> None:
        for dtype in ctx.dtypes:
            case = ctx.case(name, dtype)
            _forward_vs_oracle(name, case.dag, case.x)

    check(f"forward.{name}", f"forward on {graphs.DESCRIPTIONS[name]} equals the oracle")(run)


for _name in graphs.CANONICAL:
    _forward_check(_name)


@check("forward.random_dags", "forward on random DAGs with skip and multi-edges equals the oracle")
def _forward_random(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        for name in graphs.RANDOM:
            for seed in (0, 1):
                case = ctx.case(name, dtype, seed=seed)
                _forward_vs_oracle(f"{name} seed {seed}", case.dag, case.x)


@check("forward.batches", "batch rows are independent; 1-D input, batch of 1 and of 33 agree")
def _forward_batches(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_medium", dtype, batch=33)
        oracle = Oracle(case.dag).forward(case.x)
        tol = FORWARD[dtype]
        compare(f"random_medium [{dtype}] batch of 33", case.dag.forward(case.x), oracle, tol)
        for b in (0, 17, 32):
            compare(
                f"random_medium [{dtype}] 1-D input (row {b})",
                case.dag.forward(case.x[b]),
                oracle[b],
                tol,
            )
            compare(
                f"random_medium [{dtype}] batch of 1 (row {b})",
                case.dag.forward(case.x[b : b + 1]),
                oracle[b : b + 1],
                tol,
            )
        compare(f"random_medium [{dtype}] repeated forward", case.dag.forward(case.x), oracle, tol)


@check("forward.after_set_parameters", "forward uses the current parameters, not cached ones")
def _forward_after_set(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_small", dtype)
        case.dag.forward(case.x)  # compile and run once with the old parameters
        params = case.dag.get_parameters()
        rng = np.random.default_rng(5)
        w = params["weight"] * -0.7 + rng.uniform(-0.2, 0.2, params["weight"].shape)
        b = np.where(params["bias"] != 0, params["bias"] + 0.3, 0.0)
        case.dag.set_parameters({"weight": w, "bias": b})
        _forward_vs_oracle("random_small after set_parameters", case.dag, case.x)


# -- gradients -------------------------------------------------------------------------
@check("grad.oracle", "backward gradients (weights, biases, inputs) equal the oracle's")
def _grad_oracle(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        for name in graphs.case_names():
            case = ctx.case(name, dtype)
            probe = case.probe()
            case.dag.zero_grad()
            case.dag.forward(case.x)
            gx = case.dag.backward_accumulate(probe)
            _grads_vs_oracle(name, case, case.x, probe, gx)


@check("grad.activations", "each activation's derivative is applied in backward")
def _grad_activations(ctx: Context) -> None:
    z = np.array([-3.1, -0.8, -0.2, 0.15, 0.7, 2.9])
    for dtype in ctx.dtypes:
        for act in Activation:
            dag = ctx.dag(dtype)
            x = dag.add_input()
            h = dag.add_hidden(act)
            y = dag.add_output(act)
            dag.add_edges([x, h, x], [h, y, y], [1.0, 0.9, -0.4])
            dag.set_parameters({"bias": [0.0, 0.05, -0.1]})
            case = Case(f"{act.name} node", dag, graphs._round(z[:, None], dtype))
            probe = graphs._round(np.linspace(-1.0, 1.2, z.size)[:, None], dtype)
            dag.forward(case.x)
            gx = dag.backward_accumulate(probe)
            _grads_vs_oracle(f"{act.name} activation", case, case.x, probe, gx)


@check(
    "grad.at_zero",
    "at z = 0 derivatives follow the oracle: relu'(0) = 0, leaky_relu'(0) = 0.01",
)
def _grad_at_zero(ctx: Context) -> None:
    # pre-activations exactly 0 are common (zero inputs, ZERO init); every backend must
    # agree with the oracle there, or training diverges between backends
    for dtype in ctx.dtypes:
        for act in Activation:
            dag = ctx.dag(dtype, init=InitStrategy.ZERO)
            x = dag.add_input(act)
            h = dag.add_hidden(act)
            y = dag.add_output(act)
            dag.add_edges([x, h, x], [h, y, y], [1.0, 1.0, 0.0])
            xs = np.array([[0.0], [0.0], [1.5], [-1.5]])
            probe = np.array([[1.0], [-0.5], [1.0], [1.0]])
            case = Case(f"{act.name} at zero", dag, xs)
            _forward_vs_oracle(case.name, dag, xs)
            gx = dag.backward_accumulate(probe)
            _grads_vs_oracle(case.name, case, xs, probe, gx)
            zero = ctx.dag(dtype, init=InitStrategy.ZERO)  # all-zero model: every z is 0
            ins = zero.add_nodes(2, NodeKind.INPUT)
            mid = zero.add_nodes(3, NodeKind.HIDDEN, act)
            out = zero.add_nodes(1, NodeKind.OUTPUT, act)
            zero.add_edges(np.repeat(ins, 3), np.tile(mid, 2))
            zero.add_edges(mid, np.repeat(out, 3))
            zcase = Case(f"{act.name} all-zero model", zero, np.zeros((2, 2)))
            zero.forward(zcase.x)
            gx = zero.backward_accumulate(np.ones((2, 1)))
            _grads_vs_oracle(zcase.name, zcase, zcase.x, np.ones((2, 1)), gx)


@check(
    "grad.fd",
    "analytic gradients (float64) equal central finite differences",
    requires=("float64",),
)
def _grad_fd(ctx: Context) -> None:
    for name in ("chain", "diamond", "multi_edges", "activations", "disconnected", "random_small"):
        case = ctx.case(name, "float64", batch=3)
        result = check_dagnn_gradients(case.dag, case.x, case.probe(), eps=FD_EPS)
        for group in ("weight", "bias", "input"):
            err = getattr(result, group)
            if not err <= FINITE_DIFFERENCES:
                raise CheckFailure(
                    f"{name} [float64] {group} gradients vs central finite differences "
                    f"(eps {FD_EPS:g}): relative error {err:.3e} > {FINITE_DIFFERENCES:g}, "
                    f"{err / FINITE_DIFFERENCES:.3g}x the tolerance",
                    error=err,
                    ratio=err / FINITE_DIFFERENCES,
                )


@check("grad.norm", "gradient_norm is the L2 norm of all parameter gradients")
def _grad_norm(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_medium", dtype)
        case.dag.forward(case.x)
        case.dag.backward_accumulate(case.probe())
        g = case.dag.get_gradients()
        want = np.sqrt(sum(np.sum(v.astype(np.float64) ** 2) for v in g.values()))
        compare(
            f"random_medium [{dtype}] gradient_norm()",
            case.dag.gradient_norm(),
            want,
            FORWARD[dtype],
        )


@check("grad.clip", "clip_gradients scales gradients to max_norm and returns the old norm")
def _grad_clip(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_medium", dtype)
        case.dag.forward(case.x)
        case.dag.backward_accumulate(case.probe())
        before = {k: v.astype(np.float64) for k, v in case.dag.get_gradients().items()}
        norm = np.sqrt(sum(np.sum(v**2) for v in before.values()))
        tol = FORWARD[dtype]
        returned = case.dag.clip_gradients(norm * 10)
        compare(f"[{dtype}] clip_gradients(10x norm) return value", returned, norm, tol)
        for key, v in case.dag.get_gradients().items():
            compare(f"[{dtype}] {key} gradients after a no-op clip", v, before[key], EXACT)
        returned = case.dag.clip_gradients(norm / 4)
        compare(f"[{dtype}] clip_gradients(norm/4) return value", returned, norm, tol)
        for key, v in case.dag.get_gradients().items():
            compare(f"[{dtype}] {key} gradients after clipping to norm/4", v, before[key] / 4, tol)
        compare(
            f"[{dtype}] gradient_norm() after clipping", case.dag.gradient_norm(), norm / 4, tol
        )


# -- accumulation --------------------------------------------------------------------
@check("accumulate.two_calls", "two backward calls ADD their gradients")
def _accumulate_two_calls(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_medium", dtype)
        x1, x2 = case.x, case.inputs(seed=9)
        p1, p2 = case.probe(seed=1), case.probe(seed=2)
        oracle = Oracle(case.dag)
        g1, g2 = oracle.gradients(x1, p1), oracle.gradients(x2, p2)
        case.dag.zero_grad()
        case.dag.forward(x1)
        gx1 = case.dag.backward_accumulate(p1)
        case.dag.forward(x2)
        gx2 = case.dag.backward_accumulate(p2)
        got = case.dag.get_gradients()
        tol = GRAD[dtype]
        for key in ("weight", "bias"):
            compare(
                f"random_medium [{dtype}] {key} gradients after two backward calls "
                "(must be the sum of both)",
                got[key],
                g1[key] + g2[key],
                tol,
            )
        compare(f"[{dtype}] dL/dx of the first call", gx1, g1["input"], tol)
        compare(f"[{dtype}] dL/dx of the second call", gx2, g2["input"], tol)


@check("accumulate.zero_grad", "zero_grad clears every gradient; accumulation restarts")
def _accumulate_zero_grad(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_medium", dtype)
        probe = case.probe()
        for _ in range(2):
            case.dag.forward(case.x)
            case.dag.backward_accumulate(probe)
        case.dag.zero_grad()
        for key, v in case.dag.get_gradients().items():
            compare(f"[{dtype}] {key} gradients after zero_grad", v, np.zeros(v.shape), EXACT)
        compare(f"[{dtype}] gradient_norm() after zero_grad", case.dag.gradient_norm(), 0.0, EXACT)
        case.dag.forward(case.x)
        gx = case.dag.backward_accumulate(probe)
        _grads_vs_oracle("random_medium after zero_grad", case, case.x, probe, gx)


# -- optimizers --------------------------------------------------------------------------
@check("optim.sgd", "step(lr) with SGD is p -= lr * g; gradients are kept")
def _optim_sgd(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_medium", dtype)
        dag = case.dag
        dag.forward(case.x)
        dag.backward_accumulate(case.probe())
        for lr in (0.37, 0.0, 0.0125):
            p0 = {k: v.astype(np.float64) for k, v in dag.get_parameters().items()}
            g0 = {k: v.astype(np.float64) for k, v in dag.get_gradients().items()}
            dag.step(lr)
            p1 = dag.get_parameters()
            for key in ("weight", "bias"):
                compare(
                    f"random_medium [{dtype}] {key} after SGD step(lr={lr})",
                    p1[key],
                    p0[key] - lr * g0[key],
                    PARAM[dtype],
                )
                compare(
                    f"[{dtype}] {key} gradients after step (must be kept)",
                    dag.get_gradients()[key],
                    g0[key],
                    EXACT,
                )
        _forward_vs_oracle("random_medium after SGD steps", dag, case.x)


def _adam_reference(
    p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, lr: float, opt: Adam
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = opt.beta1 * m + (1 - opt.beta1) * g
    v = opt.beta2 * v + (1 - opt.beta2) * g * g
    m_hat = m / (1 - opt.beta1**t)
    v_hat = v / (1 - opt.beta2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + opt.eps), m, v


_ADAM = Adam(beta1=0.8, beta2=0.95, eps=1e-7)


@check("optim.adam", "step(lr) with Adam matches a float64 bias-corrected Adam over 3 steps")
def _optim_adam(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_medium", dtype, optimizer=_ADAM)
        dag = case.dag
        state = {k: (np.zeros(0), np.zeros(0)) for k in ("weight", "bias")}
        for t, lr in enumerate((0.05, 0.02, 0.05), start=1):
            dag.zero_grad()
            dag.forward(case.inputs(seed=t))
            dag.backward_accumulate(case.probe(seed=t))
            p0 = {k: v.astype(np.float64) for k, v in dag.get_parameters().items()}
            g0 = {k: v.astype(np.float64) for k, v in dag.get_gradients().items()}
            dag.step(lr)
            p1 = dag.get_parameters()
            for key in ("weight", "bias"):
                m, v = state[key]
                if t == 1:
                    m, v = np.zeros_like(g0[key]), np.zeros_like(g0[key])
                want, m, v = _adam_reference(p0[key], g0[key], m, v, t, lr, _ADAM)
                state[key] = (m, v)
                compare(
                    f"random_medium [{dtype}] {key} after Adam step {t} (lr={lr}, "
                    f"beta1={_ADAM.beta1}, beta2={_ADAM.beta2}, eps={_ADAM.eps})",
                    p1[key],
                    want,
                    PARAM[dtype],
                )


# -- embeddings ------------------------------------------------------------------------
@check("embedding.seeded", "an Embedding's initial table equals the host draw for its seed")
def _embedding_seeded(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        for init in InitStrategy:
            emb = Embedding(40, 6, init, backend=ctx.backend, seed=11, dtype=dtype)
            want = _initial_table(np.random.default_rng(11), init, 40, 6).astype(dtype)
            compare(
                f"[{dtype}] initial table with init {init.name} (bit for bit)",
                emb.get_parameters()["table"],
                want,
                EXACT,
            )


@check("embedding.lookup", "lookup returns the table rows, indices clamped to vocab-1")
def _embedding_lookup(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        emb = Embedding(128, 5, backend=ctx.backend, seed=2, dtype=dtype)
        table = emb.get_parameters()["table"]
        idx = [72, 105, 0, 127, 105, 5000]
        compare(
            f"[{dtype}] lookup({idx})", emb.lookup(idx), table[[72, 105, 0, 127, 105, 127]], EXACT
        )
        compare(f"[{dtype}] lookup('hi!')", emb.lookup("hi!"), table[[104, 105, 33]], EXACT)


@check("embedding.repeated_indices", "Embedding.backward adds the rows of repeated indices")
def _embedding_repeated(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        emb = Embedding(16, 4, backend=ctx.backend, seed=0, dtype=dtype)
        rng = np.random.default_rng(4)
        idx = np.array([3, 5, 3, 3, 0, 5, 15, 99])  # 99 clamps to 15
        g1 = graphs._round(rng.uniform(-1, 1, (idx.size, 4)), dtype)
        g2 = graphs._round(rng.uniform(-1, 1, (3, 4)), dtype)
        want = np.zeros((16, 4))
        np.add.at(want, np.minimum(idx, 15), g1)
        emb.backward(idx, g1)
        compare(
            f"[{dtype}] gradients after backward with repeated indices",
            emb.get_gradients()["table"],
            want,
            GRAD[dtype],
        )
        np.add.at(want, [3, 3, 7], g2)
        emb.backward([3, 3, 7], g2)
        compare(
            f"[{dtype}] gradients after a second backward (must add)",
            emb.get_gradients()["table"],
            want,
            GRAD[dtype],
        )
        emb.zero_grad()
        compare(
            f"[{dtype}] gradients after zero_grad",
            emb.get_gradients()["table"],
            np.zeros((16, 4)),
            EXACT,
        )


@check("embedding.sgd", "Embedding.step with SGD updates exactly the rows with gradients")
def _embedding_sgd(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        emb = Embedding(16, 4, backend=ctx.backend, seed=0, dtype=dtype)
        emb.backward([1, 4, 4, 9], np.arange(16, dtype=np.float64).reshape(4, 4) / 10 - 0.7)
        t0 = emb.get_parameters()["table"].astype(np.float64)
        g0 = emb.get_gradients()["table"].astype(np.float64)
        emb.step(0.3)
        compare(
            f"[{dtype}] table after SGD step(lr=0.3)",
            emb.get_parameters()["table"],
            t0 - 0.3 * g0,
            PARAM[dtype],
        )


@check("embedding.adam", "Embedding.step with Adam matches a float64 Adam over 2 steps")
def _embedding_adam(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        emb = Embedding(16, 4, backend=ctx.backend, seed=0, dtype=dtype, optimizer=_ADAM)
        m = v = np.zeros((16, 4))
        for t in (1, 2):
            emb.zero_grad()
            rng = np.random.default_rng(t)
            emb.backward([2, 7, 7, 11], rng.uniform(-1, 1, (4, 4)))
            t0 = emb.get_parameters()["table"].astype(np.float64)
            g0 = emb.get_gradients()["table"].astype(np.float64)
            emb.step(0.05)
            want, m, v = _adam_reference(t0, g0, m, v, t, 0.05, _ADAM)
            compare(
                f"[{dtype}] table after Adam step {t}",
                emb.get_parameters()["table"],
                want,
                PARAM[dtype],
            )


# -- structural edits ----------------------------------------------------------------
def _after_edit(label: str, dag: DagNN, x: np.ndarray) -> None:
    """Forward and backward after an edit: equal to the oracle and to a fresh build."""
    got = _forward_vs_oracle(label, dag, x)
    fresh = graphs.rebuild(dag)
    compare(
        f"{label} [{dag.dtype}] forward vs a fresh build", got, fresh.forward(x), FORWARD[dag.dtype]
    )
    probe = graphs._round(
        np.random.default_rng(3).uniform(-1, 1, (x.shape[0], len(dag.output_nodes))), dag.dtype
    )
    dag.zero_grad()
    dag.forward(x)
    gx = dag.backward_accumulate(probe)
    _grads_vs_oracle(label, Case(label, dag, x), x, probe, gx)


@check("edit.add_edge_then_forward", "adding edges after a forward: forward equals a fresh build")
def _edit_add_edge(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_medium", dtype)
        dag = case.dag
        dag.forward(case.x)
        ins, outs, hidden = dag.input_nodes, dag.output_nodes, dag.hidden_nodes
        dag.add_edge(ins[0], outs[-1], 0.8)
        dag.add_edge(ins[1], outs[0])  # seeded initial weight
        dag.add_edges([ins[2], ins[2]], [hidden[5], hidden[5]], [0.4, -0.25])  # multi-edge
        _after_edit("random_medium + 4 edges", dag, case.x)


@check("edit.add_node_then_forward", "adding nodes after a forward: they are not skipped")
def _edit_add_node(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_medium", dtype)
        dag = case.dag
        dag.forward(case.x)
        old_in, old_out, hidden = dag.input_nodes, dag.output_nodes, dag.hidden_nodes
        new_in = dag.add_input()
        new_h = dag.add_hidden(Activation.TANH)
        new_out = dag.add_output(Activation.SIGMOID)
        dag.add_edges(
            [new_in, old_in[0], new_h, new_h, hidden[3]],
            [new_h, new_h, old_out[1], new_out, new_out],
            [0.9, -0.6, 0.7, 1.1, 0.5],
        )
        dag.set_parameters({"bias": np.where(np.isin(dag.nodes(), dag.input_nodes), 0.0, 0.1)})
        x = np.concatenate(
            [case.x, graphs._round(np.linspace(-1, 1, case.x.shape[0])[:, None], dtype)], axis=1
        )
        _after_edit("random_medium + 3 nodes", dag, x)


@check(
    "edit.remove_edge_then_forward", "removing edges after a forward: forward equals a fresh build"
)
def _edit_remove_edge(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_medium", dtype)
        dag = case.dag
        dag.forward(case.x)
        eids = dag.edges()[0]
        dag.remove_edge(int(eids[len(eids) // 2]))
        dag.remove_edges(eids[[0, 7, len(eids) - 1]])
        _after_edit("random_medium - 4 edges", dag, case.x)


@check(
    "edit.remove_node_then_forward", "removing nodes after a forward: forward equals a fresh build"
)
def _edit_remove_node(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_medium", dtype)
        dag = case.dag
        dag.forward(case.x)
        ins = dag.input_nodes
        dag.remove_node(dag.hidden_nodes[10])
        dag.remove_node(dag.hidden_nodes[0])
        dag.remove_node(dag.output_nodes[1])
        dag.remove_node(ins[2])
        x = np.delete(case.x, 2, axis=1)
        _after_edit("random_medium - 4 nodes", dag, x)


@check("edit.gradients_kept", "edits keep the gradients of surviving parameters")
def _edit_gradients_kept(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_medium", dtype)
        dag = case.dag
        dag.forward(case.x)
        dag.backward_accumulate(case.probe())
        g = dag.get_gradients()
        eids, src, dst = dag.edges()
        nodes = dag.nodes()
        dag.remove_edge(int(eids[4]))
        victim = dag.hidden_nodes[6]
        dag.remove_node(victim)
        keep_e = (np.arange(eids.size) != 4) & (src != victim) & (dst != victim)
        keep_n = nodes != victim
        got = dag.get_gradients()
        compare(
            f"[{dtype}] weight gradients of surviving edges",
            got["weight"],
            g["weight"][keep_e],
            EXACT,
        )
        compare(
            f"[{dtype}] bias gradients of surviving nodes", got["bias"], g["bias"][keep_n], EXACT
        )
        new_h = dag.add_hidden()
        dag.add_edge(dag.input_nodes[0], new_h)
        got = dag.get_gradients()
        compare(
            f"[{dtype}] weight gradients after adding an edge (old kept, new zero)",
            got["weight"],
            np.concatenate([g["weight"][keep_e], [0.0]]),
            EXACT,
        )
        compare(
            f"[{dtype}] bias gradients after adding a node (old kept, new zero)",
            got["bias"],
            np.concatenate([g["bias"][keep_n], [0.0]]),
            EXACT,
        )


# -- dtype -------------------------------------------------------------------------------
@check("dtype.kept", "float32 stays float32 and float64 stays float64 through every operation")
def _dtype_kept(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        for opt in ("sgd", "adam"):
            case = ctx.case("random_small", dtype, optimizer=opt)
            dag = case.dag
            where = f"[{dtype}, {opt}]"
            for key, v in dag.get_parameters().items():
                _dtype_is(f"{where} get_parameters()[{key!r}]", v, dtype)
            for x in (case.x, case.x.astype(np.float32), case.x.astype(np.float64).tolist()):
                y = dag.forward(x)
                _dtype_is(f"{where} forward() output for {type(x).__name__} input", y, dtype)
            gx = dag.backward_accumulate(case.probe())
            _dtype_is(f"{where} backward_accumulate() return (dL/dx)", gx, dtype)
            for key, v in dag.get_gradients().items():
                _dtype_is(f"{where} get_gradients()[{key!r}]", v, dtype)
            dag.step(0.1)
            for key, v in dag.get_parameters().items():
                _dtype_is(f"{where} get_parameters()[{key!r}] after step", v, dtype)
            dag.clip_gradients(1e-3)
            for key, v in dag.get_gradients().items():
                _dtype_is(f"{where} get_gradients()[{key!r}] after clip_gradients", v, dtype)
            dag.add_edge(dag.input_nodes[0], dag.add_output())
            dag.remove_node(dag.hidden_nodes[0])
            dag.step(0.1)
            for key, v in dag.get_parameters().items():
                _dtype_is(f"{where} get_parameters()[{key!r}] after edits", v, dtype)
            for key, v in dag.get_gradients().items():
                _dtype_is(f"{where} get_gradients()[{key!r}] after edits", v, dtype)
            y = dag.forward(graphs._round(np.ones((2, len(dag.input_nodes))), dtype))
            _dtype_is(f"{where} forward() output after edits", y, dtype)
            emb = Embedding(8, 3, backend=ctx.backend, dtype=dtype, optimizer=opt)
            _dtype_is(f"{where} Embedding.lookup()", emb.lookup([1, 2]), dtype)
            emb.backward([1, 1], np.ones((2, 3)))
            _dtype_is(f"{where} Embedding gradients", emb.get_gradients()["table"], dtype)
            emb.step(0.1)
            _dtype_is(f"{where} Embedding table after step", emb.get_parameters()["table"], dtype)


# -- checkpoints ---------------------------------------------------------------------------
def _trained(backend: Backend, dtype: str) -> tuple[DagNN, Case]:
    case = graphs.build("random_medium", backend, dtype, seed=4, optimizer=_ADAM)
    for t in (1, 2):
        case.dag.zero_grad()
        case.dag.forward(case.inputs(seed=t))
        case.dag.backward_accumulate(case.probe(seed=t))
        case.dag.step(0.02)
    case.dag.remove_node(case.dag.hidden_nodes[5])  # a hole in the id space
    return case.dag, case


def _same_model(label: str, loaded: DagNN, original: DagNN, x: np.ndarray) -> None:
    require(
        loaded.dtype == original.dtype, f"{label}: dtype {loaded.dtype}, saved {original.dtype}"
    )
    require(loaded.nodes().tolist() == original.nodes().tolist(), f"{label}: node ids differ")
    require(loaded.input_nodes == original.input_nodes, f"{label}: input nodes differ")
    require(loaded.output_nodes == original.output_nodes, f"{label}: output nodes differ")
    for a, b, what in zip(
        loaded.edges(), original.edges(), ("ids", "sources", "destinations"), strict=True
    ):
        require(np.array_equal(a, b), f"{label}: edge {what} differ")
    for key, v in original.get_parameters().items():
        compare(f"{label} {key} (bit for bit)", loaded.get_parameters()[key], v, EXACT)
    _forward_vs_oracle(label, loaded, x)


def _continue(dag: DagNN, case: Case) -> dict[str, np.ndarray]:
    dag.zero_grad()
    dag.forward(case.inputs(seed=3)[:, : len(dag.input_nodes)])
    dag.backward_accumulate(case.probe(seed=3)[:, : len(dag.output_nodes)])
    dag.step(0.02)
    return dag.get_parameters()


@check("checkpoint.roundtrip", "save then load on the same backend: same model, Adam resumes")
def _checkpoint_roundtrip(ctx: Context) -> None:
    with tempfile.TemporaryDirectory(prefix="grapheme-conformance-") as tmp:
        for dtype in ctx.dtypes:
            dag, case = _trained(ctx.backend, dtype)
            path = save(dag, Path(tmp) / f"model-{dtype}.gph")
            loaded = load_dagnn(path, backend=ctx.backend)
            _same_model(f"[{dtype}] reloaded model", loaded, dag, case.x)
            want, got = _continue(dag, case), _continue(loaded, case)
            for key in want:
                compare(
                    f"[{dtype}] {key} after one more Adam step on the reloaded model",
                    got[key],
                    want[key],
                    PARAM[dtype],
                )
            emb = Embedding(20, 3, backend=ctx.backend, seed=5, dtype=dtype)
            emb.backward([1, 2, 2], np.ones((3, 3)))
            emb.step(0.1)
            loaded_emb = load_embedding(
                save(emb, Path(tmp) / f"emb-{dtype}.gph"), backend=ctx.backend
            )
            compare(
                f"[{dtype}] reloaded embedding table",
                loaded_emb.get_parameters()["table"],
                emb.get_parameters()["table"],
                EXACT,
            )


@check("checkpoint.cross_backend", "a checkpoint written here loads on numpy and vice versa")
def _checkpoint_cross(ctx: Context) -> None:
    ref = ctx.reference
    with tempfile.TemporaryDirectory(prefix="grapheme-conformance-") as tmp:
        for dtype in ctx.dtypes:
            for source, target, label in (
                (ctx.backend, ref, f"written on {ctx.name}, loaded on numpy"),
                (ref, ctx.backend, f"written on numpy, loaded on {ctx.name}"),
            ):
                dag, case = _trained(source, dtype)
                path = save(dag, Path(tmp) / f"model-{dtype}.gph")
                loaded = load_dagnn(path, backend=target)
                _same_model(f"[{dtype}] checkpoint {label}", loaded, dag, case.x)
                want, got = _continue(dag, case), _continue(loaded, case)
                for key in want:
                    compare(
                        f"[{dtype}] checkpoint {label}: {key} after one more Adam step",
                        got[key],
                        want[key],
                        PARAM[dtype],
                    )
                emb = Embedding(20, 3, backend=source, seed=5, dtype=dtype)
                loaded_emb = load_embedding(
                    save(emb, Path(tmp) / f"emb-{dtype}.gph"), backend=target
                )
                compare(
                    f"[{dtype}] embedding {label}",
                    loaded_emb.get_parameters()["table"],
                    emb.get_parameters()["table"],
                    EXACT,
                )
