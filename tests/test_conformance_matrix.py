"""The conformance matrix: every check for every backend (numpy, torch, jax and the example
third-party plugin), plus the cross-backend guarantees of DESIGN sec. 5.

A backend whose optional library is missing is a visible skip naming what to install; a
backend that is installed but fails to load fails loudly. CI installs everything, so
nothing is skipped there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from itertools import permutations
from pathlib import Path

import numpy as np
import pytest

from conftest import shared
from grapheme_core import Backend, DagNN, Embedding, get_backend, list_backends
from grapheme_core.conformance import CHECKS, build, run_check
from grapheme_core.conformance.tolerances import FORWARD, PARAM, compare
from grapheme_core.oracle import Oracle
from grapheme_core.types import InitStrategy

ROOT = Path(__file__).resolve().parents[1]
INSTALL = {
    "numpy": "pip install -e .",
    "torch": "pip install -e '.[torch]'",
    "jax": "pip install -e '.[jax]'",
    "example": "pip install -e examples/third_party_backend",
}
MATRIX = tuple(INSTALL)
#: jax compiles every graph with XLA: its column is most of the suite's time
SLOW = pytest.mark.slow


def _params(rows):
    """Parameters with the slow mark on those involving jax."""
    return [pytest.param(*r, marks=SLOW) if "jax" in r else pytest.param(*r) for r in rows]


DTYPES = ("float32", "float64")


def require(name: str) -> Backend:
    """The backend, or a visible skip when it is not installed here.

    The instance is the session's shared one (tests/conftest.py): a JIT backend then
    compiles each distinct graph of the matrix once, not once per test.
    """
    row = {r.name: r for r in list_backends()}.get(name)
    if row is None:
        pytest.skip(f"backend {name!r} is not installed; {INSTALL[name]}")
    if row.status == "unavailable":
        pytest.skip(f"backend {name!r} is unavailable ({row.detail}); {INSTALL[name]}")
    get_backend(name)  # installed but broken: fails here, loudly
    return shared(name)


@pytest.mark.parametrize("check_id", list(CHECKS))
@pytest.mark.parametrize("backend", _params([(b,) for b in MATRIX]))
def test_conformance(backend: str, check_id: str) -> None:
    result = run_check(check_id, require(backend), label=backend)
    if result.outcome != "passed":
        pytest.fail(result.message, pytrace=False)


# -- cross-backend -------------------------------------------------------------------------
@pytest.mark.parametrize("backend", _params([(b,) for b in MATRIX if b != "numpy"]))
def test_same_seed_gives_identical_initial_parameters(backend: str) -> None:
    other, reference = require(backend), require("numpy")
    for dtype in DTYPES:
        for init in InitStrategy:
            a = build("random_wide", other, dtype, seed=21, init=init).dag.get_parameters()
            b = build("random_wide", reference, dtype, seed=21, init=init).dag.get_parameters()
            for key in ("weight", "bias"):
                assert a[key].dtype == b[key].dtype == np.dtype(dtype)
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{dtype} {init} {key}")
        emb_a = Embedding(300, 8, backend=other, seed=21, dtype=dtype).get_parameters()["table"]
        emb_b = Embedding(300, 8, backend=reference, seed=21, dtype=dtype).get_parameters()["table"]
        np.testing.assert_array_equal(emb_a, emb_b)


def _train(backend: Backend, dtype: str) -> tuple[DagNN, np.ndarray]:
    case = build("random_medium", backend, dtype, seed=8, optimizer="adam")
    dag = case.dag
    for t in range(3):
        dag.zero_grad()
        dag.forward(case.inputs(seed=t))
        dag.backward_accumulate(case.probe(seed=t))
        dag.step(0.01)
    dag.remove_node(dag.hidden_nodes[2])
    dag.add_edge(dag.input_nodes[0], dag.output_nodes[-1], 0.25)
    return dag, case.x


@pytest.mark.parametrize(("source", "target"), _params(list(permutations(MATRIX, 2))))
def test_checkpoint_loads_on_another_backend_and_forwards_identically(
    source: str, target: str, tmp_path: Path
) -> None:
    src, dst = require(source), require(target)
    for dtype in DTYPES:
        dag, x = _train(src, dtype)
        path = dag.save(tmp_path / f"{source}-{dtype}.gph")
        loaded = DagNN.load(path, backend=dst)
        assert loaded.backend is dst and loaded.dtype == dtype
        assert loaded.nodes().tolist() == dag.nodes().tolist()
        for key, value in dag.get_parameters().items():
            np.testing.assert_array_equal(loaded.get_parameters()[key], value)
        got, want = loaded.forward(x), dag.forward(x)
        compare(
            f"{source}->{target} [{dtype}] forward vs oracle",
            got,
            Oracle(loaded).forward(x),
            FORWARD[dtype],
        )
        compare(
            f"{source}->{target} [{dtype}] forward vs the source model", got, want, FORWARD[dtype]
        )
        # optimizer state travels too: one more Adam step agrees
        for model in (dag, loaded):
            model.zero_grad()
            model.forward(x)
            model.backward_accumulate(np.ones((x.shape[0], len(model.output_nodes))))
            model.step(0.01)
        for key, value in dag.get_parameters().items():
            compare(
                f"{source}->{target} [{dtype}] {key} after a step",
                loaded.get_parameters()[key],
                value,
                PARAM[dtype],
            )


# -- the example third-party plugin ---------------------------------------------------------
def test_example_backend_is_a_plugin_with_its_own_kernels() -> None:
    backend = require("example")
    from grapheme_example_backend.backend import ExampleBackend

    from grapheme_backends.numpy_backend import NumpyBackend

    assert type(backend) is ExampleBackend and isinstance(backend, NumpyBackend)
    row = {r.name: r for r in list_backends()}["example"]
    assert row.plugin == "example" and row.status == "available"

    calls: list[str] = []

    class Spy(ExampleBackend):
        def edge_grads(self, delta, h, rows, cols):
            calls.append("edge_grads")
            return super().edge_grads(delta, h, rows, cols)

        def activate(self, activation, z):
            calls.append(f"activate:{activation.name}")
            return super().activate(activation, z)

    case = build("activations", Spy(), "float64")
    case.dag.forward(case.x)
    case.dag.backward_accumulate(case.probe())
    assert "edge_grads" in calls and "activate:SIGMOID" in calls
    want = Oracle(case.dag).gradients(case.x, case.probe())["weight"]
    np.testing.assert_allclose(case.dag.get_gradients()["weight"], want, rtol=1e-10, atol=1e-12)


def _run_pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHEME_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**base, **(env or {})},
    )


@SLOW  # a pytest subprocess
def test_shipped_suite_passes_for_the_example_plugin_under_pytest() -> None:
    require("example")
    proc = _run_pytest("--pyargs", "grapheme_core.conformance", "--grapheme-backend", "example")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"{len(CHECKS)} passed" in out
    assert "failed" not in out and "skipped" not in out


@SLOW  # four in-process pytest collections
def test_shipped_suite_selects_backends(pytester: pytest.Pytester, monkeypatch) -> None:
    """Collection only, so pytest runs in this process (``runpytest_inprocess`` loads the
    ``pytest11`` entry-point plugins like a fresh ``pytest`` does); the test above runs a
    real pytest process."""
    for key in [k for k in os.environ if k.startswith("GRAPHEME_")]:
        monkeypatch.delenv(key)

    def collected(*args: str, env: dict[str, str] | None = None) -> list[str]:
        with monkeypatch.context() as m:
            for key, value in (env or {}).items():
                m.setenv(key, value)
            result = pytester.runpytest_inprocess(
                "-p", "no:cacheprovider", "--pyargs", "grapheme_core.conformance",
                "--collect-only", "-q", *args,
            )  # fmt: skip
        out = result.stdout.lines
        assert result.ret == 0, "\n".join(out + result.stderr.lines)
        return [line for line in out if "::test_conformance[" in line]

    def backends(ids: list[str]) -> set[str]:
        return {i.split("[", 1)[1].split("-", 1)[0] for i in ids}

    one = collected("--grapheme-backend", "numpy")
    assert len(one) == len(CHECKS) and backends(one) == {"numpy"}
    assert any(i.endswith("[numpy-grad.fd]") for i in one)
    two = collected("--grapheme-backend", "numpy,example", "--grapheme-backend", "numpy")
    assert backends(two) == {"numpy", "example"} and len(two) == 2 * len(CHECKS)
    env = collected(env={"GRAPHEME_CONFORMANCE_BACKENDS": "example"})
    assert backends(env) == {"example"}
    everything = collected()  # no option: every backend the registry lists
    assert backends(everything) == {r.name for r in list_backends()}


def test_project_test_run_does_not_collect_the_shipped_suite_twice() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests"]
    shipped = ROOT / "src" / "grapheme_core" / "conformance" / "test_conformance.py"
    assert shipped.is_file()


def test_shared_backends_reuse_compiled_plans_only_for_equal_structures() -> None:
    from conftest import memoise_compile

    backend = memoise_compile(get_backend("numpy"))
    a = build("random_small", backend, "float32").dag
    b = build("random_small", backend, "float32").dag
    assert a._compiled_plan() is b._compiled_plan()  # equal plans: compiled once
    assert build("random_small", backend, "float64").dag._compiled_plan() is not a._compiled_plan()
    b.add_edge(b.input_nodes[0], b.output_nodes[0], 0.5)
    assert b._compiled_plan() is not a._compiled_plan()
    x = build("random_small", backend, "float32").x
    compare("memoised backend forward", b.forward(x), Oracle(b).forward(x), FORWARD["float32"])
    assert len(backend.compiled_plans) == 3
