"""DataParallel in a one-rank gloo group (in this process, loopback): buckets, zero-copy
views, reduction modes, extras, hooks; the launcher's option handling and failure report."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from grapheme_core import DagNN, Embedding  # noqa: E402
from grapheme_train.distributed import (  # noqa: E402
    DataParallel,
    DistributedHook,
    SeededRewire,
    WorkerFailedError,
    init_from_env,
    launch_local,
    shutdown,
)
from grapheme_train.distributed.buckets import make_slot, plan_buckets  # noqa: E402
from grapheme_train.distributed.launcher import free_port, strip_option  # noqa: E402


@pytest.fixture(scope="module")
def group():
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0",
           "WORLD_SIZE": "1"}  # fmt: skip
    ctx = init_from_env(timeout_s=10, environ=env)
    yield ctx
    shutdown()


def _dag(backend: str = "numpy", dtype: str = "float64") -> DagNN:
    dag = DagNN(backend=backend, dtype=dtype, seed=0)
    ins = dag.add_nodes(4, "input")
    hid = dag.add_nodes(5, "hidden", "tanh")
    out = dag.add_nodes(2, "output")
    dag.add_edges(np.repeat(ins, 5), np.tile(hid, 4))
    dag.add_edges(np.repeat(hid, 2), np.tile(out, 5))
    return dag


class _Model:  # SharedAGIModel-shaped: a dag and an embedding
    def __init__(self) -> None:
        self.dag = _dag()
        self.embedding = Embedding(10, 3, seed=0, dtype="float64")


def _fill_gradients(model) -> None:
    dag = model.dag if hasattr(model, "dag") else model
    dag.forward(np.linspace(-1, 1, 8).reshape(2, 4))
    dag.backward_accumulate(np.ones((2, 2)))
    if hasattr(model, "embedding"):
        model.embedding.backward([1, 1, 4], np.ones((3, 3)))


def test_context_reports_rank_and_shard(group) -> None:
    assert (group.rank, group.world_size, group.backend, group.device) == (0, 1, "gloo", "cpu")
    assert group.shard == (0, 1) and group.is_writer


def test_numpy_slots_share_memory_and_torch_slots_are_the_tensor() -> None:
    arr = np.zeros(5)
    slot = make_slot(arr, torch.device("cpu"), lambda h: None)
    assert slot.zero_copy and slot.tensor.data_ptr() == arr.ctypes.data
    t = torch.zeros(7)
    assert make_slot(t, torch.device("cpu"), lambda h: None).tensor.data_ptr() == t.data_ptr()
    readonly = np.zeros(3)
    readonly.flags.writeable = False
    stored = []
    staged = make_slot(readonly, torch.device("cpu"), stored.append)
    assert not staged.zero_copy
    staged.tensor += 2
    staged.store(staged.tensor)
    np.testing.assert_array_equal(stored[0], [2, 2, 2])


def test_buckets_pack_small_arrays_in_order_and_keep_big_ones_alone() -> None:
    cpu = torch.device("cpu")
    slots = [make_slot(np.zeros(n), cpu, lambda h: None) for n in (3, 4, 100, 2, 2)]
    slots.append(make_slot(np.zeros(2, dtype=np.float32), cpu, lambda h: None))
    buckets = plan_buckets(slots, bucket_elements=10)
    sizes = [[s.tensor.numel() for s in b] for b in buckets]
    assert sizes == [[3, 4], [100], [2, 2], [2]]  # the float32 array starts a new bucket


def test_reduce_keeps_sums_in_place_and_mean_divides(group) -> None:
    model = _Model()
    parallel = DataParallel(model, reduce="sum", bucket_elements=16)
    _fill_gradients(model)
    before = model.dag.get_gradients()
    table = model.embedding.get_gradients()["table"]
    weight_array = model.dag.gradient_arrays()["weight"]
    extra = parallel.all_reduce_gradients(extra=[1.5, 2.5])
    np.testing.assert_array_equal(extra, [1.5, 2.5])
    assert model.dag.gradient_arrays()["weight"] is weight_array  # reduced in place
    for k, v in model.dag.get_gradients().items():
        np.testing.assert_array_equal(v, before[k])  # one rank: the sum is the value itself
    np.testing.assert_array_equal(model.embedding.get_gradients()["table"], table)
    assert parallel.structure_checks == 2
    mean = DataParallel(model, reduce="mean")
    _fill_gradients(model)
    np.testing.assert_array_equal(mean.all_reduce_gradients(extra=[3.0]), [3.0])


def test_start_state_broadcast_keeps_a_single_rank_unchanged(group) -> None:
    dag = _dag()
    dag.forward(np.ones((1, 4)))
    dag.backward_accumulate(np.ones((1, 2)))
    dag.step(0.1)
    params = dag.get_parameters()
    DataParallel(dag)
    for k, v in params.items():
        np.testing.assert_array_equal(dag.get_parameters()[k], v)


@pytest.mark.parametrize("backend", ["torch", pytest.param("jax", marks=pytest.mark.slow)])
def test_other_backends_reduce(group, backend: str) -> None:
    if backend == "jax":
        pytest.importorskip("jax")
    dag = _dag(backend)
    parallel = DataParallel(dag, reduce="mean")
    _fill_gradients(dag)
    expected = dag.get_gradients()
    parallel.all_reduce_gradients()
    for k, v in dag.get_gradients().items():
        np.testing.assert_allclose(v, expected[k])


def test_hook_all_reduces_on_gradients(group) -> None:
    dag = _dag()
    hook = DistributedHook(DataParallel(dag))

    class Trainer:
        model = dag

    _fill_gradients(dag)
    hook.on_gradients(Trainer(), 1)
    assert hook.name == "distributed" and hook.parallel.steps == 1
    assert hook.on_epoch_end(Trainer(), 1, None) == {"world_size": 1}
    assert hook.reduce_sum([0.25, 1.0]) == [0.25, 1.0]
    hook.load_state_dict({"world_sizes": [2]})
    assert hook.state_dict() == {"world_sizes": [2, 1]}

    class Other:
        model = _dag()

    with pytest.raises(ValueError, match="another model"):
        hook.on_gradients(Other(), 2)


def test_wrapping_something_else_is_a_clear_error(group) -> None:
    with pytest.raises(TypeError, match="DagNN or a SharedAGIModel"):
        DataParallel(object())
    with pytest.raises(ValueError, match="reduce must be"):
        DataParallel(_dag(), reduce="max")


def test_seeded_rewire_is_deterministic_and_acyclic() -> None:
    a, b = _dag(), _dag()
    ra = SeededRewire(0.2, seed=4).update(a, 3)
    rb = SeededRewire(0.2, seed=4).update(b, 3)
    assert len(ra.removed) == len(ra.added) == 6
    np.testing.assert_array_equal(ra.removed, rb.removed)
    assert a.structure_hash() == b.structure_hash() and a.edge_count == 30
    SeededRewire(0.2, seed=4).update(b, 4)  # another step, another edit
    assert a.structure_hash() != b.structure_hash()
    with pytest.raises(ValueError, match="drop_fraction"):
        SeededRewire(1.5)


def test_strip_option() -> None:
    assert strip_option(["--nproc", "2", "--epochs", "3"], "--nproc") == ["--epochs", "3"]
    assert strip_option(["--nproc=2", "-q"], "--nproc") == ["-q"]


def test_launcher_reports_the_failing_worker_and_stops_the_others() -> None:
    code = "import os,sys,time\nif os.environ['RANK']=='1': sys.exit(3)\ntime.sleep(60)"
    t0 = time.monotonic()
    with pytest.raises(
        WorkerFailedError, match=r"worker rank 1 \(pid \d+\) exited with code 3"
    ) as e:
        launch_local(["-c", code], 2, grace_s=0.5)
    assert "rank 0 did not stop within 0.5 s and was terminated" in str(e.value)
    assert time.monotonic() - t0 < 15  # rank 0 was stopped, not awaited for 60 s
    assert launch_local(["-c", "import sys; sys.exit(0)"], 2) == 0
    assert sys.executable


def test_launcher_blames_the_killed_worker_not_the_one_that_aborted_after_it() -> None:
    """Both dead at the same poll: rank 1 was SIGKILLed, rank 0 then aborted (gloo does
    that when its peer vanishes). The killed worker is the cause."""
    code = (
        "import os,signal,time\n"
        "if os.environ['RANK']=='1': os.kill(os.getpid(), signal.SIGKILL)\n"
        "time.sleep(0.3); os.abort()"
    )
    with pytest.raises(WorkerFailedError, match=r"worker rank 1 \(pid \d+\) was killed by SIGKILL"):
        launch_local(["-c", code], 2, grace_s=0.5, poll_s=1.0)  # one poll sees both dead


@pytest.mark.slow  # three training processes (each imports torch)
def test_cli_nproc_2_trains_the_unified_model_like_one_process(tmp_path) -> None:
    """`grapheme-train --nproc 2` with a SET topology on the trunk equals one process with
    the same global batch (float64), and only rank 0 wrote the checkpoint."""
    from click.testing import CliRunner

    from grapheme_train.checkpoint import load_training
    from grapheme_train.cli import cli

    args = ["--dtype", "float64", "--train-limit", "40", "--epochs", "2", "--batch-size", "32"]
    args += ["--topology", "set", "--density", "0.5", "--update-every", "2", "-q"]
    runs = {}
    for nproc in (1, 2):
        path = tmp_path / f"run{nproc}.ckpt"
        result = CliRunner().invoke(cli, [*args, "--nproc", str(nproc), "--checkpoint", str(path)])
        assert result.exit_code == 0, result.output
        runs[nproc] = load_training(path)
    (meta1, arrays1), (meta2, arrays2) = runs[1], runs[2]
    for key in ("dag.weight", "dag.bias", "embedding.table", "dag.m_weight"):
        a, b = arrays1[key], arrays2[key]
        assert a.shape == b.shape, key
        assert np.max(np.abs(a - b)) <= 1e-12 * max(1.0, np.max(np.abs(a))), key
    for key in ("dag.edge_id", "dag.edge_src", "dag.edge_dst"):  # the same topology
        np.testing.assert_array_equal(arrays1[key], arrays2[key])
    history1, history2 = meta1["trainer"]["history"], meta2["trainer"]["history"]
    assert history2[-1]["world_size"] == 2 and history2[-1]["edges"] == history1[-1]["edges"]
    assert history2[-1]["loss"] == pytest.approx(history1[-1]["loss"], rel=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1.ckpt", "run2.ckpt"]


def test_cli_support_detects_the_trainer_interface() -> None:
    import click

    from grapheme_train.distributed.cli_support import (
        data_parallel_run,
        trainer_supports_sharding,
    )

    class Sharded:
        def __init__(self, model, examples, lr, *, hooks=(), shard=(0, 1)) -> None: ...

    class Plain:
        def __init__(self, model, examples, lr) -> None: ...

    assert trainer_supports_sharding(Sharded) and not trainer_supports_sharding(Plain)
    assert data_parallel_run(1, Plain) is None  # one process: nothing to do
    with pytest.raises(click.UsageError, match="needs a trainer"):
        data_parallel_run(2, Sharded)  # not connected by the caller: refused


def test_shared_agi_model_is_wrapped_dag_and_embedding(group) -> None:
    from grapheme_train.model import ModelConfig, SharedAGIModel
    from grapheme_train.modules import default_modules

    model = SharedAGIModel(default_modules(), ModelConfig(hidden=4, dtype="float64"))
    parallel = DataParallel(model)
    assert [name for name, _ in parallel.parts] == ["dag", "embedding"]
    from grapheme_train.data import builtin_examples

    text = [e for e in builtin_examples() if e.domain == "text"][:2]
    model.write_to_slice("text", model.encode("text", [e.input for e in text]))
    model.forward()
    model.accumulate_gradients(  # the text brain answers one next character
        "text", model.modules["text"].encode_answers([e.answer[:1] for e in text])
    )
    table = model.embedding.get_gradients()["table"]
    assert np.abs(table).sum() > 0  # the Embedding rows used got gradients
    parallel.all_reduce_gradients()
    np.testing.assert_array_equal(model.embedding.get_gradients()["table"], table)
