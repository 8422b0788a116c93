"""JAX-specific tests of the jax backend (the generic matrix lives in the conformance suite).

Every numeric check is made against the float64 node-by-node oracle and against the NumPy
reference backend, for both kernel choices (``auto``: padded tables, the default, and
``segment``: one edge per row + ``segment_sum``). The small graphs here push their
backward through the incoming edges (the default for small levels); the ``segment``
backends pull it through the transposed edges instead (``push_edges = -1``), so both
backward forms are checked.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # every test here compiles XLA kernels
jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402

from grapheme_backends.jax_backend import JaxBackend, JaxCompiledPlan  # noqa: E402
from grapheme_backends.numpy_backend import NumpyBackend  # noqa: E402
from grapheme_core import (  # noqa: E402
    API_VERSION,
    Activation,
    Backend,
    DagNN,
    Embedding,
    NodeKind,
    get_backend,
)
from grapheme_core.oracle import Oracle  # noqa: E402

KERNELS = ("auto", "segment")
FWD_TOL = {"float32": {"rtol": 1e-5, "atol": 1e-6}, "float64": {"rtol": 1e-10, "atol": 1e-12}}
GRAD_TOL = {"float32": {"rtol": 1e-4, "atol": 1e-5}, "float64": {"rtol": 1e-10, "atol": 1e-12}}
NP_DTYPE = {"float32": np.float32, "float64": np.float64}


@pytest.fixture(params=KERNELS)
def kernel(request) -> str:
    return request.param


def jax_backend(kernel: str = "auto") -> JaxBackend:
    """A jax backend; ``segment`` ones also pull every level's backward (no push)."""
    backend = JaxBackend(kernel)
    if kernel == "segment":
        backend.push_edges = -1
    return backend


def random_dag(
    backend,
    dtype: str = "float32",
    seed: int = 0,
    n_in: int = 5,
    n_hidden: int = 30,
    n_out: int = 4,
    n_edges: int = 110,
    optimizer: str | None = None,
) -> DagNN:
    """A random DAG mixing every activation, with skip edges, multi-edges, an edge into an
    input node, node ids not in topological order, an input that feeds nothing and a
    hidden node with no edges. Same seed -> same graph and parameters on every backend."""
    rng = np.random.default_rng(seed)
    dag = DagNN(backend=backend, dtype=dtype, seed=seed, optimizer=optimizer)
    acts = list(Activation)
    inputs = dag.add_nodes(n_in, NodeKind.INPUT)
    hidden = np.array([dag.add_hidden(acts[i % len(acts)]) for i in range(n_hidden)])
    outputs = np.array([dag.add_output(acts[(i + 2) % len(acts)]) for i in range(n_out)])
    # a random topological order over the non-isolated nodes (ids are not in that order)
    feeders = np.concatenate([inputs[1:], rng.permutation(hidden[1:])])
    order = np.concatenate([feeders, outputs])
    pos = {int(v): i for i, v in enumerate(order)}
    src, dst = [], []
    for _ in range(n_edges):
        a, b = sorted(rng.choice(len(order), size=2, replace=False))
        if b < n_in - 1 and a >= b:
            continue
        src.append(int(order[a]))
        dst.append(int(order[b]))
    for o in outputs:  # every output is reached
        src.append(int(rng.choice(feeders)))
        dst.append(int(o))
    src.append(int(inputs[1]))  # an input node with an incoming edge
    dst.append(int(inputs[2]))
    src += src[:7]  # multi-edges
    dst += dst[:7]
    assert all(pos[s] < pos[d] for s, d in zip(src, dst, strict=True))
    dag.add_edges(src, dst, weights=rng.uniform(-1.2, 1.2, size=len(src)))
    bias = rng.uniform(-0.5, 0.5, size=dag.node_count)
    bias[np.isin(dag.nodes(), inputs)] = 0.0
    dag.set_parameters({"bias": bias})
    return dag


def batch(dag: DagNN, b: int = 6, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(-1.5, 1.5, size=(b, len(dag.input_nodes)))
    return x.astype(NP_DTYPE[dag.dtype]).astype(np.float64)


def probe(dag: DagNN, b: int = 6, seed: int = 2) -> np.ndarray:
    g = np.random.default_rng(seed).uniform(-1, 1, size=(b, len(dag.output_nodes)))
    return g.astype(NP_DTYPE[dag.dtype]).astype(np.float64)


def assert_matches(dag: DagNN, ref, x: np.ndarray, g: np.ndarray) -> None:
    """Forward output, dL/dx and the accumulated gradients of ``dag`` agree with ``ref``
    (an Oracle, or another DagNN run on the same batch)."""
    ftol, gtol = FWD_TOL[dag.dtype], GRAD_TOL[dag.dtype]
    y = dag.forward(x)
    dag.zero_grad()
    gx = dag.backward_accumulate(g)
    grads = dag.get_gradients()
    if isinstance(ref, Oracle):
        y_ref, expect = ref.forward(x), ref.gradients(x, g)
        gx_ref = expect["input"]
    else:
        y_ref = ref.forward(x)
        ref.zero_grad()
        gx_ref = ref.backward_accumulate(g)
        expect = ref.get_gradients()
    np.testing.assert_allclose(y, y_ref, **ftol)
    np.testing.assert_allclose(gx, gx_ref, **gtol)
    np.testing.assert_allclose(grads["weight"], expect["weight"], **gtol)
    np.testing.assert_allclose(grads["bias"], expect["bias"], **gtol)


# -- protocol and packaging ------------------------------------------------------------------
def test_protocol_and_registry():
    b = get_backend("jax")
    assert isinstance(b, JaxBackend)
    assert isinstance(b, Backend)
    assert b.name == "jax"
    assert b.api_version == API_VERSION
    methods = (
        "asarray to_numpy zeros concat take add scale sum_squares compile forward backward "
        "sgd_step adam_step gather_rows scatter_add_rows"
    )
    for method in methods.split():
        assert callable(getattr(b, method))


def test_import_grapheme_core_does_not_import_jax():
    code = (
        "import sys, grapheme_core, grapheme_backends.plugin; "
        "grapheme_core.list_backends(); "
        "assert 'jax' not in sys.modules, 'jax was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_kernel_option():
    assert get_backend("jax", kernel="segment").kernel == "segment"
    with pytest.raises(ValueError, match="kernel"):
        JaxBackend(kernel="dense")


def test_x64_enabled_and_dtypes_honoured():
    b = JaxBackend()
    assert jax.config.jax_enable_x64
    assert b.asarray(np.ones(3), "float64").dtype == jnp.float64
    assert b.asarray(np.ones(3), "float32").dtype == jnp.float32
    assert b.zeros((2, 3), "float64").dtype == jnp.float64
    # float32 arithmetic with Python scalars stays float32
    v = b.asarray(np.ones(3), "float32")
    assert b.scale(v, 0.5).dtype == jnp.float32
    assert b.sgd_step(v, v, 0.1).dtype == jnp.float32


def test_conversions():
    b = JaxBackend()
    host = np.arange(6, dtype=np.float64).reshape(2, 3)
    a = b.asarray(host, "float32")
    assert isinstance(a, jax.Array) and a.dtype == jnp.float32
    again = b.asarray(a, "float64")  # a jax array is accepted too
    assert again.dtype == jnp.float64
    back = b.to_numpy(again)
    assert isinstance(back, np.ndarray) and back.flags.writeable
    back[0, 0] = 99.0  # a copy: the device array is unchanged
    assert float(again[0, 0]) == 0.0
    np.testing.assert_array_equal(b.to_numpy(b.concat(a, a)), np.concatenate([host, host]))
    np.testing.assert_array_equal(b.to_numpy(b.take(a, np.array([1, 1, 0]))), host[[1, 1, 0]])
    assert b.sum_squares(a) == pytest.approx(float((host**2).sum()))
    np.testing.assert_array_equal(b.to_numpy(b.add(a, a)), 2 * host)


# -- numerics ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_dag_matches_oracle_and_numpy(kernel, dtype, seed):
    dag = random_dag(jax_backend(kernel), dtype, seed)
    x, g = batch(dag), probe(dag)
    assert_matches(dag, Oracle(dag), x, g)
    assert_matches(dag, random_dag(NumpyBackend(), dtype, seed), x, g)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_kept(dtype):
    dag = random_dag(JaxBackend(), dtype)
    x = batch(dag)
    y = dag.forward(x)
    dag.backward_accumulate(probe(dag))
    expect = NP_DTYPE[dtype]
    assert y.dtype == expect
    for group in (dag._params, dag._grads):
        for arr in group.values():
            assert isinstance(arr, jax.Array) and arr.dtype == expect
    dag.step(0.01)
    assert all(p.dtype == expect for p in dag._params.values())


def _chain_with_branches(backend, dtype="float64", depth=40) -> DagNN:
    """A deep chain with side nodes on some levels: many small levels of varying width,
    so several levels share one padded ``lax.scan`` group with masked rows."""
    rng = np.random.default_rng(3)
    dag = DagNN(backend=backend, dtype=dtype, seed=3)
    acts = list(Activation)
    inp = dag.add_nodes(2, NodeKind.INPUT)
    prev = [int(inp[0]), int(inp[1])]
    src, dst = [], []
    for level in range(depth):
        width = 1 + (level % 3)
        kind = NodeKind.OUTPUT if level == depth - 1 else NodeKind.HIDDEN
        nodes = dag.add_nodes(width, kind, acts[level % len(acts)])
        for v in nodes:
            for s in rng.choice(prev, size=min(2, len(prev)), replace=False):
                src.append(int(s))
                dst.append(int(v))
        src.append(prev[0])  # a multi-edge
        dst.append(int(nodes[0]))
        prev = [*nodes.tolist(), prev[0]]
    dag.add_edges(src, dst, weights=rng.uniform(0.6, 1.1, size=len(src)))
    bias = rng.uniform(-0.2, 0.2, size=dag.node_count)
    bias[:2] = 0.0
    dag.set_parameters({"bias": bias})
    return dag


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_deep_graph_runs_grouped_levels(kernel, dtype):
    dag = _chain_with_branches(jax_backend(kernel), dtype)
    compiled = dag._compiled_plan()
    assert isinstance(compiled, JaxCompiledPlan)
    assert any(g.count > 1 and g.masked for g in compiled.groups)
    assert len(compiled.groups) < dag.plan.num_levels
    x, g = batch(dag, 4), probe(dag, 4)
    assert_matches(dag, Oracle(dag), x, g)
    assert_matches(dag, _chain_with_branches(NumpyBackend(), dtype), x, g)


@pytest.mark.parametrize(("dtype", "push_edges"), [("float32", None), ("float64", -1)])
def test_wide_fan_in_and_fan_out_split_rows(dtype, push_edges):
    """One node with 300 inputs next to nodes with 1-2: the padded tables split long rows
    (pushed backward: the incoming table; pulled: the transposed one too)."""
    rng = np.random.default_rng(5)

    def build(backend):
        dag = DagNN(backend=backend, dtype=dtype, seed=5)
        inp = dag.add_nodes(300, NodeKind.INPUT)
        hid = dag.add_nodes(20, NodeKind.HIDDEN, "sigmoid")
        out = dag.add_nodes(3, NodeKind.OUTPUT, "tanh")
        src = [*inp.tolist(), *inp[:20].tolist(), *hid.tolist(), *hid.tolist()]
        dst = [int(hid[0])] * 300 + hid.tolist() + [int(out[0])] * 20 + [int(out[1])] * 20
        src += [int(inp[0])] * 23  # a wide fan-out next to fan-outs of 1-2
        dst += [*hid.tolist(), *out.tolist()]
        dag.add_edges(src, dst, weights=np.random.default_rng(5).uniform(-0.3, 0.3, len(src)))
        return dag

    backend = JaxBackend()
    if push_edges is not None:
        backend.push_edges = push_edges
    dag = build(backend)
    compiled = dag._compiled_plan()
    assert any(g.incoming is not None and g.incoming.split for g in compiled.groups)
    pulled = [g for g in compiled.groups if not g.push]
    assert any(g.outgoing is not None and g.outgoing.split for g in pulled) == (push_edges == -1)
    x = rng.uniform(-1, 1, size=(3, 300)).astype(NP_DTYPE[dtype]).astype(np.float64)
    g = probe(dag, 3)
    assert_matches(dag, Oracle(dag), x, g)
    assert_matches(dag, build(NumpyBackend()), x, g)


def test_small_graphs():
    b = JaxBackend()
    # empty
    dag = DagNN(backend=b, dtype="float64")
    assert dag.forward(np.zeros((3, 0))).shape == (3, 0)
    assert dag.backward_accumulate(np.zeros((3, 0))).shape == (3, 0)
    # a single output node without edges: y = act(bias)
    dag = DagNN(backend=b, dtype="float64")
    dag.add_output("sigmoid")
    dag.set_parameters({"bias": [0.3]})
    np.testing.assert_allclose(
        dag.forward(np.zeros((2, 0))), 1 / (1 + np.exp(-0.3)) * np.ones((2, 1))
    )
    dag.backward_accumulate(np.ones((2, 1)))
    s = 1 / (1 + np.exp(-0.3))
    np.testing.assert_allclose(dag.get_gradients()["bias"], [2 * s * (1 - s)])
    # input -> output, 1-D forward, disconnected nodes
    dag = DagNN(backend=b, dtype="float32")
    i = dag.add_input()
    dag.add_input()
    dag.add_hidden()
    o = dag.add_output("relu")
    dag.add_edge(i, o, 2.0)
    np.testing.assert_allclose(dag.forward(np.array([1.5, 7.0])), [3.0])
    np.testing.assert_allclose(dag.backward_accumulate(np.array([1.0])), [2.0, 0.0])


def test_backward_uses_the_weights_of_its_forward():
    dag = random_dag(JaxBackend(), "float64")
    ref = random_dag(NumpyBackend(), "float64")
    x, g = batch(dag), probe(dag)
    dag.forward(x)
    ref.forward(x)
    new = {"weight": dag.get_parameters()["weight"] * 0.5}
    dag.set_parameters(new)
    ref.set_parameters(new)
    dag.zero_grad()
    ref.zero_grad()
    np.testing.assert_allclose(dag.backward_accumulate(g), ref.backward_accumulate(g), rtol=1e-10)
    np.testing.assert_allclose(
        dag.get_gradients()["weight"], ref.get_gradients()["weight"], rtol=1e-10, atol=1e-12
    )


# -- compilation ------------------------------------------------------------------------------
def test_compiled_once_per_structure_version_and_retraced_at_most_once_after_edit():
    b = JaxBackend()
    dag = random_dag(b, "float32")
    x, g = batch(dag), probe(dag)
    for _ in range(3):
        dag.forward(x)
        dag.backward_accumulate(g)
        dag.step(0.01)  # parameter updates never recompile
    first = dag._compiled_plan()
    assert first.traces == {"forward": 1, "backward": 1}

    nodes = dag.nodes()
    dag.add_edge(int(nodes[0]), int(dag.output_nodes[0]), 0.25)  # a structural edit
    for _ in range(2):
        dag.forward(x)
        dag.backward_accumulate(g)
    second = dag._compiled_plan()
    assert second is not first
    assert second.plan.version == dag.version
    # one more edge changes the weight shape: at most one new trace, then none
    assert second.traces["forward"] <= 2 and second.traces["backward"] <= 2
    before = dict(second.traces)
    fresh = DagNN.from_state(*dag.state(), backend=NumpyBackend())
    np.testing.assert_allclose(dag.forward(x), fresh.forward(x), **FWD_TOL["float32"])
    assert second.traces == before


def test_edits_then_forward_equals_fresh_build(kernel):
    dag = random_dag(jax_backend(kernel), "float64", seed=4)
    x, g = batch(dag), probe(dag)
    dag.forward(x)
    eids, _, _ = dag.edges()
    dag.remove_edges(eids[:5])
    dag.remove_node(dag.hidden_nodes[3])
    new = dag.add_hidden("leaky_relu")
    dag.add_edges([dag.input_nodes[0], new], [new, dag.output_nodes[1]], weights=[0.7, -0.4])
    fresh = DagNN.from_state(*dag.state(), backend="numpy")
    assert_matches(dag, fresh, x, g)
    assert_matches(dag, Oracle(dag), x, g)


def test_backward_mode_of_a_level_is_kept_across_edits_near_the_threshold():
    """A level just over ``push_edges`` after an edit keeps pushing (no new program for a
    mode flip), a fresh backend pulls it; both are exact."""

    def build(backend, extra: int):
        rng = np.random.default_rng(8)
        dag = DagNN(backend=backend, dtype="float64", seed=8)
        inp = dag.add_nodes(8, NodeKind.INPUT)
        hid = dag.add_nodes(4, NodeKind.HIDDEN, "tanh")
        out = dag.add_nodes(3, NodeKind.OUTPUT, "sigmoid")
        src = [*rng.choice(inp, 20), *rng.choice(hid, 12)]
        dst = [*np.repeat(hid, 5), *np.repeat(out, 4)]
        dag.add_edges(src, dst, weights=rng.uniform(-1, 1, 32))
        if extra:
            dag.add_edges(inp[:extra], hid[:extra], weights=[0.3, -0.2, 0.5][:extra])
        return dag

    backend = JaxBackend()
    backend.push_edges = 20  # the hidden level has 20 incoming edges: it pushes
    dag = build(backend, 0)
    x, g = batch(dag, 3), probe(dag, 3)
    assert dag._compiled_plan().levels[1].push
    dag.forward(x)
    dag.add_edges(dag.input_nodes[:3], dag.hidden_nodes[:3], weights=[0.3, -0.2, 0.5])
    assert dag._compiled_plan().levels[1].push  # 23 edges: kept
    assert_matches(dag, Oracle(dag), x, g)
    fresh = JaxBackend()
    fresh.push_edges = 20
    other = build(fresh, 3)
    assert not other._compiled_plan().levels[1].push  # 23 > 20: pulled
    assert_matches(other, Oracle(other), x, g)


# -- optimizers and embeddings ---------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_optimizer_steps_match_numpy(optimizer, dtype):
    dag = random_dag(JaxBackend(), dtype, optimizer=optimizer)
    ref = random_dag(NumpyBackend(), dtype, optimizer=optimizer)
    x, g = batch(dag), probe(dag)
    for step in range(4):
        for model in (dag, ref):
            model.zero_grad()
            model.forward(x)
            model.backward_accumulate(g * (1 + step))
            model.step(0.05)
    tol = GRAD_TOL[dtype]
    for key in ("weight", "bias"):
        np.testing.assert_allclose(dag.get_parameters()[key], ref.get_parameters()[key], **tol)
    if optimizer == "adam":
        meta, arrays = dag.state()
        _, ref_arrays = ref.state()
        for name in ("m_weight", "v_weight", "m_bias", "v_bias"):
            np.testing.assert_allclose(arrays[name], ref_arrays[name], **tol)


def test_adam_and_sgd_kernels_directly():
    jb, nb = JaxBackend(), NumpyBackend()
    rng = np.random.default_rng(0)
    p, grad = rng.normal(size=50), rng.normal(size=50)
    m, v = rng.normal(size=50) * 0.1, rng.uniform(0, 0.1, size=50)
    args = (7, 0.01, 0.9, 0.999, 1e-8)
    out_j = jb.adam_step(*(jb.asarray(a, "float64") for a in (p, grad, m, v)), *args)
    out_n = nb.adam_step(p.copy(), grad, m.copy(), v.copy(), *args)
    for a, b in zip(out_j, out_n, strict=True):
        np.testing.assert_allclose(jb.to_numpy(a), b, rtol=1e-12)
    np.testing.assert_allclose(
        jb.to_numpy(jb.sgd_step(jb.asarray(p, "float64"), jb.asarray(grad, "float64"), 0.3)),
        p - 0.3 * grad,
        rtol=1e-14,
    )


def test_scatter_add_rows_repeated_indices_add_up():
    b = JaxBackend()
    table = b.zeros((5, 3), "float32")
    index = np.array([1, 3, 1, 1, 0])
    rows = np.arange(15, dtype=np.float64).reshape(5, 3)
    out = b.scatter_add_rows(table, index, b.asarray(rows, "float32"))
    expect = np.zeros((5, 3))
    np.add.at(expect, index, rows)
    np.testing.assert_array_equal(b.to_numpy(out), expect)
    assert float(jnp.abs(table).sum()) == 0.0  # functional: the input is untouched
    np.testing.assert_array_equal(b.to_numpy(b.gather_rows(out, index)), expect[index])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_embedding_matches_numpy(optimizer):
    emb = Embedding(40, 4, backend=JaxBackend(), seed=1, optimizer=optimizer)
    ref = Embedding(40, 4, backend="numpy", seed=1, optimizer=optimizer)
    np.testing.assert_array_equal(emb.lookup("abc"), ref.lookup("abc"))
    idx = [3, 7, 3, 3, 39, 100]  # repeats, and 100 clamps to 39
    grads = np.random.default_rng(0).normal(size=(len(idx), 4))
    for e in (emb, ref):
        e.backward(idx, grads)
        e.backward(idx[:2], grads[:2])
    np.testing.assert_allclose(
        emb.get_gradients()["table"], ref.get_gradients()["table"], rtol=1e-6
    )
    g = emb.get_gradients()["table"]
    np.testing.assert_allclose(g[3], grads[0] + grads[2] + grads[3] + grads[0], rtol=1e-6)
    for e in (emb, ref):
        e.step(0.1)
    np.testing.assert_allclose(
        emb.get_parameters()["table"], ref.get_parameters()["table"], rtol=1e-5, atol=1e-6
    )


def test_checkpoint_round_trip_between_numpy_and_jax(tmp_path):
    dag = random_dag(NumpyBackend(), "float64")
    x = batch(dag)
    path = dag.save(tmp_path / "model.ckpt")
    loaded = DagNN.load(path, backend="jax")
    assert loaded.backend.name == "jax"
    np.testing.assert_allclose(loaded.forward(x), dag.forward(x), rtol=1e-10)
    back = loaded.to_backend("numpy")
    np.testing.assert_allclose(back.forward(x), dag.forward(x), rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bookkeeping_host_and_device_paths_agree(dtype, monkeypatch):
    """The protocol's small operations run on the host for new shapes and on the device
    once a shape repeats (or for large arrays): both paths give the same values, dtype
    and copy semantics, whatever the index order (unsorted, repeated, empty)."""
    import grapheme_backends.jax_backend as jb

    rng = np.random.default_rng(3)
    v0, w0 = rng.normal(size=(7, 2)), rng.normal(size=(7, 2))
    index = np.array([6, 1, 1, 0, 4])
    results = {}
    for path, warm in (("host", 10**9), ("device", 0)):
        monkeypatch.setattr(jb, "_WARM", warm)
        monkeypatch.setattr(jb, "_HOST_EDIT", 10**9 if path == "host" else -1)
        b = JaxBackend()
        v, w = b.asarray(v0, dtype), b.asarray(w0, dtype)
        out = {
            "take": b.take(v, index),
            "take_empty": b.take(v, np.zeros(0, dtype=np.int64)),
            "concat": b.concat(v, w),
            "add": b.add(v, w),
            "scale": b.scale(v, 1 / 3),
            "zeros": b.zeros((3, 2), dtype),
            "gather": b.gather_rows(v, index),
            "scatter": b.scatter_add_rows(v, index, b.asarray(w0[:5], dtype)),
        }
        for name, arr in out.items():
            assert isinstance(arr, jax.Array) and arr.dtype == jnp.dtype(dtype), (path, name)
        results[path] = {k: b.to_numpy(a) for k, a in out.items()}
        results[path]["sum_squares"] = np.asarray(b.sum_squares(v))
        # the inputs are untouched by every operation
        np.testing.assert_array_equal(b.to_numpy(v), v0.astype(dtype))
        np.testing.assert_array_equal(b.to_numpy(w), w0.astype(dtype))
    host, device = results["host"], results["device"]
    v32, w32 = v0.astype(dtype), w0.astype(dtype)
    np.testing.assert_array_equal(host["take"], v32[index])
    assert host["take_empty"].shape == (0, 2)
    np.testing.assert_array_equal(host["concat"], np.concatenate([v32, w32]))
    np.testing.assert_array_equal(host["add"], v32 + w32)
    expect = v32.copy()
    np.add.at(expect, index, w32[:5])
    np.testing.assert_array_equal(host["scatter"], expect)
    rtol = 1e-6 if dtype == "float32" else 1e-14
    for name in host:
        np.testing.assert_allclose(host[name], device[name], rtol=rtol, err_msg=name)


def test_batch_padding_on_host_and_device_agree(monkeypatch):
    """A batch off the bucket ladder (5 -> 6) is padded and sliced back on the host for a
    new shape and on the device once it repeats; forward and backward agree exactly."""
    import grapheme_backends.jax_backend as jb

    outs = []
    for warm in (10**9, 0):
        monkeypatch.setattr(jb, "_WARM", warm)
        dag = random_dag(JaxBackend(), "float32", seed=4)
        x = np.random.default_rng(0).normal(size=(5, 5))
        y = dag.forward(x)
        dag.backward_accumulate(np.ones_like(y))
        outs.append((y, dag.get_gradients()["weight"]))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-6)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-6)
