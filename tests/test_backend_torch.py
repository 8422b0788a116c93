"""Torch-specific tests of the torch backend (the generic matrix lives in the conformance suite).

Every numeric check is made against the float64 node-by-node oracle and against the NumPy
reference backend, for both kernel choices (``csr``, the default, and ``index_add``).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from grapheme_backends.numpy_backend import NumpyBackend  # noqa: E402
from grapheme_backends.torch_backend import (  # noqa: E402
    DeviceUnavailableError,
    TorchBackend,
    resolve_device,
)
from grapheme_core import (  # noqa: E402
    API_VERSION,
    Activation,
    Backend,
    BackendLoadError,
    DagNN,
    Embedding,
    NodeKind,
    get_backend,
)
from grapheme_core.oracle import Oracle  # noqa: E402

#: "csr" runs small levels through host_levels (NumPy/SciPy views) on the CPU, as by
#: default; "csr-torch" turns that off so every level takes torch's sparse CSR kernels
KERNELS = ("csr", "csr-torch", "index_add")
ACTIVATIONS = list(Activation)
FWD_TOL = {"float32": {"rtol": 1e-5, "atol": 1e-6}, "float64": {"rtol": 1e-10, "atol": 1e-12}}
GRAD_TOL = {"float32": {"rtol": 1e-4, "atol": 1e-5}, "float64": {"rtol": 1e-10, "atol": 1e-12}}


@pytest.fixture(params=KERNELS)
def kernels(request) -> str:
    return request.param


def make_backend(kernels: str) -> TorchBackend:
    """The backend for one ``KERNELS`` variant."""
    if kernels == "csr-torch":
        return get_backend("torch", kernels="csr", host_level_edges=0)
    return TorchBackend(kernels=kernels)


def random_dag(
    backend,
    dtype: str = "float32",
    seed: int = 0,
    n_in: int = 4,
    n_hidden: int = 14,
    n_out: int = 3,
    n_edges: int = 45,
    optimizer: str | None = None,
) -> DagNN:
    """A random DAG mixing every activation, with skip edges, multi-edges, an input that
    feeds nothing and a hidden node with no edges at all. Same seed -> same graph and
    parameters on every backend."""
    rng = np.random.default_rng(seed)
    dag = DagNN(backend=backend, dtype=dtype, seed=seed, optimizer=optimizer)
    dag.add_nodes(n_in, NodeKind.INPUT)
    for i in range(n_hidden):
        dag.add_nodes(1, NodeKind.HIDDEN, ACTIVATIONS[i % len(ACTIVATIONS)])
    for i in range(n_out):
        dag.add_nodes(1, NodeKind.OUTPUT, ACTIVATIONS[(i + 2) % len(ACTIVATIONS)])
    n = n_in + n_hidden + n_out
    isolated = n_in + n_hidden - 1  # last hidden node: no edges in or out
    dead_input = n_in - 1  # feeds nothing
    dst = rng.integers(n_in, n, size=n_edges)
    dst = dst[dst != isolated]
    src = np.array([rng.integers(0, d) for d in dst])
    bad = (src == isolated) | (src == dead_input)
    src, dst = src[~bad], dst[~bad]
    # multi-edges (repeat some pairs) and long skip edges input -> output
    src = np.concatenate([src, src[:5], np.zeros(n_out, dtype=np.int64)])
    dst = np.concatenate([dst, dst[:5], np.arange(n - n_out, n)])
    dag.add_edges(src, dst, weights=rng.uniform(-1.2, 1.2, size=src.shape[0]))
    bias = rng.uniform(-0.5, 0.5, size=n)
    bias[:n_in] = 0.0
    dag.set_parameters({"bias": bias})
    return dag


def close(actual, expected, tol) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), **tol)


# -- protocol and registration --------------------------------------------------------------
def test_registered_factory_and_protocol():
    backend = get_backend("torch")
    assert isinstance(backend, TorchBackend)
    assert isinstance(backend, Backend)
    assert backend.name == "torch"
    assert backend.api_version == API_VERSION
    assert backend.device == torch.device("cpu")
    assert backend.kernels == "csr"


def test_import_grapheme_core_does_not_import_torch():
    code = (
        "import sys, grapheme_core, grapheme_backends.plugin\n"
        "from grapheme_core import list_backends\n"
        "list_backends()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- numerics vs the oracle and the NumPy reference -------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_matches_oracle_and_numpy(kernels, dtype, seed):
    dag = random_dag(make_backend(kernels), dtype, seed)
    ref = random_dag("numpy", dtype, seed)
    x = np.random.default_rng(100 + seed).standard_normal((5, len(dag.input_nodes)))
    y = dag.forward(x)
    assert y.dtype == np.dtype(dtype)
    close(y, Oracle(dag).forward(x), FWD_TOL[dtype])
    close(y, ref.forward(x), FWD_TOL[dtype])
    # a 1-D forward is one batch row
    close(dag.forward(x[0]), y[0], FWD_TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradients_match_oracle_and_numpy(kernels, dtype, seed):
    dag = random_dag(make_backend(kernels), dtype, seed)
    ref = random_dag("numpy", dtype, seed)
    rng = np.random.default_rng(200 + seed)
    x = rng.standard_normal((6, len(dag.input_nodes)))
    g = rng.standard_normal((6, len(dag.output_nodes)))
    dag.forward(x)
    ref.forward(x)
    gx = dag.backward_accumulate(g)
    gx_ref = ref.backward_accumulate(g)
    oracle = Oracle(dag).gradients(x, g)
    grads, ref_grads = dag.get_gradients(), ref.get_gradients()
    tol = GRAD_TOL[dtype]
    for key in ("weight", "bias"):
        assert grads[key].dtype == np.dtype(dtype)
        close(grads[key], oracle[key], tol)
        close(grads[key], ref_grads[key], tol)
    close(gx, oracle["input"], tol)
    close(gx, gx_ref, tol)
    # the input nodes carry no bias, so no bias gradient either
    inputs = np.isin(dag.nodes(), dag.input_nodes)
    assert np.all(grads["bias"][inputs] == 0)


def test_gradients_accumulate_and_are_returned_fresh(kernels):
    dag = random_dag(make_backend(kernels), "float64", 5)
    x = np.random.default_rng(0).standard_normal((3, len(dag.input_nodes)))
    g = np.ones((3, len(dag.output_nodes)))
    dag.forward(x)
    dag.backward_accumulate(g)
    once = dag.get_gradients()
    dag.forward(x)
    dag.backward_accumulate(g)
    twice = dag.get_gradients()
    for key in once:
        close(twice[key], 2 * once[key], FWD_TOL["float64"])


def test_backward_uses_the_weights_of_its_forward(kernels):
    """Parameters replaced between forward and backward: like the NumPy reference, the
    backward pass uses the weights the forward loaded."""
    dag = random_dag(make_backend(kernels), "float64", 3)
    ref = random_dag("numpy", "float64", 3)
    x = np.random.default_rng(1).standard_normal((4, len(dag.input_nodes)))
    g = np.random.default_rng(2).standard_normal((4, len(dag.output_nodes)))
    expected = Oracle(dag).gradients(x, g)
    for model in (dag, ref):
        model.forward(x)
        model.set_parameters({"weight": np.zeros(model.edge_count)})
        model.backward_accumulate(g)
    close(dag.get_gradients()["weight"], expected["weight"], GRAD_TOL["float64"])
    close(ref.get_gradients()["weight"], expected["weight"], GRAD_TOL["float64"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parallel_edges(kernels, dtype):
    """Multi-edges only: A_l is 1x1 from three edges; each edge gets its own gradient."""
    dag = DagNN(backend=make_backend(kernels), dtype=dtype)
    a, b = dag.add_input(), dag.add_output("tanh")
    dag.add_edges([a, a, a], [b, b, b], weights=[0.5, -0.25, 0.125])
    x = np.array([[0.3], [-1.7]])
    g = np.array([[1.0], [-2.0]])
    oracle = Oracle(dag)
    close(dag.forward(x), oracle.forward(x), FWD_TOL[dtype])
    gx = dag.backward_accumulate(g)
    expected = oracle.gradients(x, g)
    close(dag.get_gradients()["weight"], expected["weight"], GRAD_TOL[dtype])
    close(gx, expected["input"], GRAD_TOL[dtype])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_csr_tensors_satisfy_torch_invariants(seed):
    """Rows with unsorted sources and multi-edges still give valid CSR tensors
    (sorted, distinct columns), checked by torch itself."""
    backend = make_backend("csr-torch")  # every level on torch's CSR tensors
    backend.check_sparse_invariants = True
    dag = random_dag(backend, "float64", seed, n_hidden=25, n_edges=120)
    x = np.random.default_rng(seed).standard_normal((3, len(dag.input_nodes)))
    dag.forward(x)
    dag.backward_accumulate(np.ones((3, len(dag.output_nodes))))
    expected = Oracle(dag).gradients(x, np.ones((3, len(dag.output_nodes))))
    close(dag.get_gradients()["weight"], expected["weight"], GRAD_TOL["float64"])


def test_backward_is_repeatable_and_leaves_the_cache_alone(kernels):
    """Calling the kernel twice on one forward cache returns the same fresh gradients."""
    backend = make_backend(kernels)
    dag = random_dag(backend, "float64", 6)
    compiled = dag._compiled_plan()
    w, b = dag._params["weight"], dag._params["bias"]
    x = backend.asarray(np.random.default_rng(0).standard_normal((4, 4)), "float64")
    y, cache = backend.forward(compiled, w, b, x)
    h_before = cache.h.clone()
    g = torch.ones_like(y)
    first = backend.backward(compiled, w, b, cache, g)
    second = backend.backward(compiled, w, b, cache, g)
    assert torch.equal(cache.h, h_before)
    for a, c in zip(first, second, strict=True):
        assert a is not c
        assert torch.equal(a, c)


def test_checkpoint_from_torch_loads_on_numpy(tmp_path, kernels):
    dag = random_dag(make_backend(kernels), "float32", 8, optimizer="adam")
    x = np.random.default_rng(0).standard_normal((3, len(dag.input_nodes)))
    y = dag.forward(x)
    dag.backward_accumulate(np.ones_like(y))
    dag.step(0.01)
    path = dag.save(tmp_path / "model.ckpt")
    on_numpy = DagNN.load(path, backend="numpy")
    close(on_numpy.forward(x), dag.forward(x), FWD_TOL["float32"])
    back = on_numpy.to_backend(make_backend(kernels))
    close(back.forward(x), dag.forward(x), FWD_TOL["float32"])


def test_chunked_index_add_kernels_agree(monkeypatch):
    """Tiny chunks force many chunks per level in every index_add kernel."""
    backend = TorchBackend(kernels="index_add")
    monkeypatch.setattr(backend, "edge_chunk_elements", 7)
    dag = random_dag(backend, "float64", 4, n_hidden=30, n_edges=150)
    x = np.random.default_rng(3).standard_normal((5, len(dag.input_nodes)))
    g = np.random.default_rng(4).standard_normal((5, len(dag.output_nodes)))
    oracle = Oracle(dag)
    close(dag.forward(x), oracle.forward(x), FWD_TOL["float64"])
    gx = dag.backward_accumulate(g)
    expected = oracle.gradients(x, g)
    close(dag.get_gradients()["weight"], expected["weight"], GRAD_TOL["float64"])
    close(dag.get_gradients()["bias"], expected["bias"], GRAD_TOL["float64"])
    close(gx, expected["input"], GRAD_TOL["float64"])


def test_larger_graph_matches_numpy(kernels):
    """Wide levels, many edges per row and mixed activation groups inside one level."""
    rng = np.random.default_rng(7)
    acts = rng.integers(0, len(ACTIVATIONS), size=600)
    models = []
    for backend in (make_backend(kernels), "numpy"):
        dag = DagNN(backend=backend, dtype="float32", seed=7)
        dag.add_nodes(32, NodeKind.INPUT)
        for a in acts:
            dag.add_nodes(1, NodeKind.HIDDEN, ACTIVATIONS[int(a)])
        dag.add_nodes(16, NodeKind.OUTPUT, "tanh")
        rng_e = np.random.default_rng(8)
        dst = rng_e.integers(32, 648, size=8000)
        src = (rng_e.random(8000) * dst).astype(np.int64)
        dag.add_edges(src, dst)
        models.append(dag)
    x = rng.standard_normal((16, 32))
    g = rng.standard_normal((16, 16))
    y, y_ref = (m.forward(x) for m in models)
    close(y, y_ref, FWD_TOL["float32"])
    gx, gx_ref = (m.backward_accumulate(g) for m in models)
    close(gx, gx_ref, GRAD_TOL["float32"])
    for key in ("weight", "bias"):
        close(models[0].get_gradients()[key], models[1].get_gradients()[key], GRAD_TOL["float32"])


def test_edits_recompile_and_match_numpy(kernels):
    models = [random_dag(b, "float64", 9) for b in (make_backend(kernels), "numpy")]
    x = np.random.default_rng(0).standard_normal((3, len(models[0].input_nodes)))
    for m in models:
        m.forward(x)
        hidden = m.hidden_nodes
        new = m.add_hidden("sigmoid")
        m.add_edges([hidden[0], new], [new, m.output_nodes[0]], weights=[0.7, -1.1])
        m.remove_edge(int(m.edges()[0][3]))
        m.remove_node(hidden[2])
    close(models[0].forward(x), models[1].forward(x), FWD_TOL["float64"])
    close(models[0].forward(x), Oracle(models[0]).forward(x), FWD_TOL["float64"])


def test_degenerate_graphs(kernels):
    backend = make_backend(kernels)
    empty = DagNN(backend=backend)
    assert empty.forward(np.zeros((2, 0))).shape == (2, 0)

    single = DagNN(backend=backend, dtype="float64")
    single.add_input("tanh")
    close(single.forward(np.array([[0.5], [-1.0]])), np.zeros((2, 0)), FWD_TOL["float64"])

    no_edges = DagNN(backend=backend, dtype="float64")
    no_edges.add_input()
    out = no_edges.add_output("sigmoid")
    no_edges.set_parameters({"bias": [0.0, 0.3]})
    y = no_edges.forward(np.zeros((3, 1)))
    close(y, np.full((3, 1), 1 / (1 + np.exp(-0.3))), FWD_TOL["float64"])
    no_edges.backward_accumulate({out: np.ones(3)})
    s = 1 / (1 + np.exp(-0.3))
    close(no_edges.get_gradients()["bias"], [0.0, 3 * s * (1 - s)], FWD_TOL["float64"])

    # an empty batch
    dag = random_dag(backend, "float32", 0)
    y = dag.forward(np.zeros((0, len(dag.input_nodes))))
    assert y.shape == (0, len(dag.output_nodes))
    gx = dag.backward_accumulate(np.zeros((0, len(dag.output_nodes))))
    assert gx.shape == (0, len(dag.input_nodes))
    assert not np.any(dag.get_gradients()["weight"])


# -- dtype, device, threads, TF32 ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_kept(kernels, dtype):
    tdt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    dag = random_dag(make_backend(kernels), dtype, 0, optimizer="adam")
    x = np.random.default_rng(0).standard_normal((2, len(dag.input_nodes)))  # float64 input
    assert dag.forward(x).dtype == np.dtype(dtype)
    dag.backward_accumulate(np.ones((2, len(dag.output_nodes))))
    dag.step(0.01)
    for group in (dag._params, dag._grads, dag._moments["weight"], dag._moments["bias"]):
        for value in group.values():
            assert isinstance(value, torch.Tensor)
            assert value.dtype == tdt
    for arrays in (dag.get_parameters(), dag.get_gradients()):
        assert all(a.dtype == np.dtype(dtype) for a in arrays.values())


def test_dtype_strings():
    b = TorchBackend()
    assert b.zeros((2, 3), "float32").dtype == torch.float32
    assert b.zeros((2,), "float64").dtype == torch.float64
    assert b.asarray([1, 2], np.float64).dtype == torch.float64
    with pytest.raises(ValueError, match="float16"):
        b.zeros((1,), "float16")


def test_cpu_devices():
    assert TorchBackend().device == torch.device("cpu")
    assert TorchBackend(device="cpu").device == torch.device("cpu")
    assert TorchBackend(device=torch.device("cpu")).device == torch.device("cpu")
    assert get_backend("torch", device="cpu").device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_absent_cuda_device_is_a_clear_error(device):
    with pytest.raises(DeviceUnavailableError, match=f"'{device}'.*not available") as info:
        TorchBackend(device=device)
    assert isinstance(info.value, BackendLoadError)
    assert isinstance(info.value, ValueError)
    # through the registry the message still names the device
    with pytest.raises(ValueError, match=f"'{device}'.*not available"):
        get_backend("torch", device=device)


def test_out_of_range_cuda_index_is_a_clear_error():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(DeviceUnavailableError, match=f"cuda:{count + 7}"):
        resolve_device(f"cuda:{count + 7}")


@pytest.mark.parametrize("device", ["tpu", "meta", "cuda:x", ""])
def test_bad_device_names(device):
    with pytest.raises(ValueError, match=repr(device)):
        TorchBackend(device=device)


def test_bad_options():
    with pytest.raises(ValueError, match="kernels"):
        TorchBackend(kernels="dense")
    with pytest.raises(ValueError, match="num_threads"):
        TorchBackend(num_threads=0)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="host_level_edges"):
            TorchBackend(host_level_edges=bad)
    with pytest.raises(ValueError, match="rejected options"):
        get_backend("torch", colour="blue")


def test_num_threads_set_when_given_and_respected_otherwise():
    before = torch.get_num_threads()
    try:
        TorchBackend(num_threads=1)
        assert torch.get_num_threads() == 1
        TorchBackend()  # no option: the current setting is left alone
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_tf32_is_off():
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    TorchBackend()
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 is False


def test_compiled_plan_lives_on_the_device():
    dag = random_dag(TorchBackend(), "float32", 0)
    compiled = dag._compiled_plan()
    assert compiled.order.device == torch.device("cpu")
    for level in compiled.levels:
        for t in (level.crow, level.col, level.weight_index, level.t_crow, level.t_col):
            assert t is None or (t.dtype == torch.int64 and t.device.type == "cpu")


@pytest.mark.slow  # a fresh interpreter importing torch
def test_no_warnings_in_a_fresh_process():
    """Torch's one-time sparse warnings are silenced; nothing else warns."""
    code = (
        "import numpy as np\n"
        "from grapheme_core import DagNN\n"
        "from grapheme_backends.torch_backend import TorchBackend\n"
        "for kernels in ('csr', 'index_add'):\n"
        "    dag = DagNN(backend=TorchBackend(kernels=kernels))\n"
        "    a, b = dag.add_input(), dag.add_output('tanh')\n"
        "    dag.add_edges([a, a], [b, b])\n"
        "    y = dag.forward(np.ones((2, 1)))\n"
        "    dag.backward_accumulate(np.ones_like(y))\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


# -- conversion ---------------------------------------------------------------------------------
def test_asarray_and_to_numpy():
    b = TorchBackend()
    host = np.arange(4, dtype=np.float32)
    t = b.asarray(host, "float32")
    assert isinstance(t, torch.Tensor)
    assert t.dtype == torch.float32
    t += 1
    assert host[0] == 0, "asarray must not alias NumPy memory"
    src = torch.arange(3, dtype=torch.float64, requires_grad=True)
    t2 = b.asarray(src, "float32")
    assert t2.dtype == torch.float32
    assert not t2.requires_grad
    assert b.asarray([[1, 2]], "float64").shape == (1, 2)
    out = b.to_numpy(t)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32
    out[0] = 99
    assert t[0] == 1, "to_numpy must return a copy"
    close(b.to_numpy(src), [0, 1, 2], FWD_TOL["float64"])


def test_forward_accepts_tensors():
    dag = random_dag(TorchBackend(), "float64", 2)
    x = np.random.default_rng(0).standard_normal((3, len(dag.input_nodes)))
    close(dag.forward(torch.from_numpy(x)), dag.forward(x), FWD_TOL["float64"])


def test_array_helpers_match_numpy():
    b, ref = TorchBackend(), NumpyBackend()
    a = np.array([1.0, -2.0, 3.0, 4.0])
    c = np.array([0.5, 0.5, 0.5, 0.5])
    idx = np.array([3, 0, 0])
    for dtype in ("float32", "float64"):
        t = b.asarray(a, dtype)
        close(b.concat(t, b.asarray(c, dtype)), np.concatenate([a, c]), FWD_TOL[dtype])
        close(b.take(t, idx), a[idx], FWD_TOL[dtype])
        close(b.add(b.asarray(a, dtype), b.asarray(c, dtype)), a + c, FWD_TOL[dtype])
        close(b.scale(b.asarray(a, dtype), 0.25), a * 0.25, FWD_TOL[dtype])
        assert b.sum_squares(t) == pytest.approx(ref.sum_squares(ref.asarray(a, dtype)))
        assert b.sum_squares(b.zeros((0,), dtype)) == 0.0


# -- optimizers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_optimizer_kernels_match_numpy(dtype):
    b, ref = TorchBackend(), NumpyBackend()
    rng = np.random.default_rng(0)
    p, g = rng.standard_normal(50), rng.standard_normal(50)
    close(
        b.sgd_step(b.asarray(p, dtype), b.asarray(g, dtype), 0.03),
        ref.sgd_step(ref.asarray(p, dtype), ref.asarray(g, dtype), 0.03),
        FWD_TOL[dtype],
    )
    tp, tm, tv = (b.asarray(a, dtype) for a in (p, np.zeros(50), np.zeros(50)))
    rp, rm, rv = (ref.asarray(a, dtype) for a in (p, np.zeros(50), np.zeros(50)))
    for step in range(1, 4):
        gs = rng.standard_normal(50)
        tp, tm, tv = b.adam_step(tp, b.asarray(gs, dtype), tm, tv, step, 0.01, 0.9, 0.999, 1e-8)
        rp, rm, rv = ref.adam_step(rp, ref.asarray(gs, dtype), rm, rv, step, 0.01, 0.9, 0.999, 1e-8)
    for t, r in ((tp, rp), (tm, rm), (tv, rv)):
        assert t.dtype == {"float32": torch.float32, "float64": torch.float64}[dtype]
        close(b.to_numpy(t), r, FWD_TOL[dtype])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_steps_match_numpy(kernels, optimizer, dtype):
    models = [
        random_dag(b, dtype, 11, optimizer=optimizer) for b in (make_backend(kernels), "numpy")
    ]
    rng = np.random.default_rng(12)
    for _ in range(4):
        x = rng.standard_normal((8, len(models[0].input_nodes)))
        target = rng.standard_normal((8, len(models[0].output_nodes)))
        for m in models:
            m.zero_grad()
            y = m.forward(x)
            m.backward_accumulate(y - target)
            m.clip_gradients(5.0)
            m.step(0.05)
    tol = GRAD_TOL[dtype]
    for key in ("weight", "bias"):
        close(models[0].get_parameters()[key], models[1].get_parameters()[key], tol)


# -- embeddings ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_embedding_gather_scatter_repeated_indices(dtype):
    b = TorchBackend()
    table = np.arange(12, dtype=np.float64).reshape(4, 3)
    t = b.asarray(table, dtype)
    idx = np.array([2, 0, 2, 2, 3])
    close(b.gather_rows(t, idx), table[idx], FWD_TOL[dtype])
    rows = np.random.default_rng(0).standard_normal((5, 3))
    grad = b.scatter_add_rows(b.zeros((4, 3), dtype), idx, b.asarray(rows, dtype))
    expected = np.zeros((4, 3))
    np.add.at(expected, idx, rows)
    assert grad.dtype == t.dtype
    close(b.to_numpy(grad), expected, FWD_TOL[dtype])
    assert b.gather_rows(t, np.zeros(0, dtype=np.int64)).shape == (0, 3)


def test_embedding_class_matches_numpy():
    embs = [
        Embedding(40, 5, backend=b, seed=1, optimizer="adam") for b in (TorchBackend(), "numpy")
    ]
    g = np.random.default_rng(0).standard_normal((6, 5))
    for e in embs:
        e.backward([1, 2, 1, 1, 39, 99], g)  # 99 clamps to row 39, a repeat
        e.step(0.1)
    close(embs[0].get_gradients()["table"], embs[1].get_gradients()["table"], GRAD_TOL["float32"])
    close(embs[0].get_parameters()["table"], embs[1].get_parameters()["table"], GRAD_TOL["float32"])
    close(embs[0].lookup([1, 1, 39]), embs[1].lookup([1, 1, 39]), FWD_TOL["float32"])
