"""Shared test fixtures: backends whose compiled plans are shared across tests.

A JIT backend (jax) spends most of the test suite's time compiling, and the conformance
matrix builds the same seeded graphs many times (each check rebuilds its cases, each
checkpoint pair retrains its source model). ``shared_backend(name)`` returns one instance
per backend for the whole session whose ``compile`` is memoised by the plan's content:
a plan equal in every array to one compiled before gets that compiled object back. This
is transparent for backends whose compiled plans are immutable and stateless (jax's are
frozen and hold only jitted functions and index arrays), so it is applied to those only;
everything else gets the registry's instance unchanged.

Tests check results, not parallel speed (that is what the benchmarks are for), so every
math library runs one thread per test process: on a shared or small machine several
spinning worker threads per process cost several times the CPU for the same result.
Set the variables yourself to override. ``GRAPHEME_TRAIN_LIMIT`` (below) keeps the
command-line training runs of the tests small.
"""

from __future__ import annotations

import os

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_USER_THREADS = {v: os.environ[v] for v in _THREAD_VARS if v in os.environ}
for _var in _THREAD_VARS:
    os.environ.setdefault(_var, "1")  # read by libraries loaded from here on, subprocesses too
# XLA compiles without its backend optimisations and with the classic loop emitters
# instead of the (slower to compile) fusion emitters: the tests check values (which
# neither may change), and most of the jax column's time is compiling. The fusion-emitter
# switch alone more than halves the jax conformance column's CPU time (83 -> 35 CPU-s).
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_cpu_multi_thread_eigen=false --xla_backend_optimization_level=0 "
    "--xla_cpu_use_fusion_emitters=false",
)
# The CLI tests check plumbing, not learning: the unified trainer's --train-limit default
# comes from this variable, so a `grapheme-train` run in a test trains on 40 examples per
# domain unless the test gives --train-limit or removes the variable (the real default run).
os.environ.setdefault("GRAPHEME_TRAIN_LIMIT", "40")


def _one_blas_thread() -> None:
    """One thread for the BLAS libraries already loaded: pytest's own plugins import numpy
    (and its OpenBLAS, which sizes its thread pool at load) before this file runs, so the
    variables above come too late for it. Its idle workers spin-wait, which on a loaded
    machine costs several times the CPU of the work itself (a default training run took
    182 CPU-s instead of 28)."""
    if "OPENBLAS_NUM_THREADS" in _USER_THREADS or "OMP_NUM_THREADS" in _USER_THREADS:
        return
    try:
        from threadpoolctl import threadpool_limits  # a dependency of scikit-learn
    except ImportError:
        return
    threadpool_limits(limits=1, user_api="blas")


_one_blas_thread()

import hashlib  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

#: in-process pytest runs (collection of the shipped suite) instead of pytest subprocesses
pytest_plugins = ["pytester"]

#: backends whose compiled plans are immutable, so one compiled object serves every model
_MEMOISE = frozenset({"jax"})
_PLAN_ARRAYS = (
    "order",
    "position",
    "level_offsets",
    "edge_offsets",
    "indptr",
    "edge_order",
    "edge_src",
    "edge_row",
    "activation",
    "has_bias",
    "input_positions",
    "output_positions",
)


def plan_key(plan: Any, dtype: str) -> str:
    """A digest of everything in an ``ExecutionPlan`` a backend compiles (not its version)."""
    digest = hashlib.blake2b(f"{dtype}|{plan.num_nodes}|{plan.num_edges}".encode())
    for name in _PLAN_ARRAYS:
        arr = np.ascontiguousarray(getattr(plan, name))
        digest.update(f"|{name}:{arr.dtype}:{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def memoise_compile(backend: Any) -> Any:
    """A new instance of ``backend``'s class whose ``compile`` reuses equal plans."""
    twin = type(backend).__new__(type(backend))
    twin.__dict__.update(backend.__dict__)
    cache: dict[str, Any] = {}
    compile_plan = backend.compile

    def compile(plan: Any, dtype: str) -> Any:
        key = plan_key(plan, dtype)
        if key not in cache:
            cache[key] = compile_plan(plan, dtype)
        return cache[key]

    twin.compile = compile
    twin.compiled_plans = cache  # for tests of this fixture
    return twin


_SHARED: dict[str, Any] = {}


def shared(name: str) -> Any:
    """The session's instance of backend ``name`` (compile memoised for JIT backends)."""
    if name not in _SHARED:
        from grapheme_core import get_backend

        backend = get_backend(name)
        _SHARED[name] = memoise_compile(backend) if name in _MEMOISE else backend
    return _SHARED[name]


@pytest.fixture(scope="session")
def shared_backend() -> Callable[[str], Any]:
    """``shared_backend(name)``: one backend instance per name for the whole session."""
    return shared
