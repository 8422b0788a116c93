"""Hostile input to the core: crafted checkpoints, lying backends, overflow, odd paths."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grapheme_backends.numpy_backend import NumpyBackend
from grapheme_core import CheckpointError, DagNN, Embedding, limits, load_embedding, save
from grapheme_core.checkpoint import check_target, read_checkpoint, write_checkpoint
from grapheme_core.errors import GraphError, ShapeError


def small_dag(optimizer: str = "adam", dtype: str = "float32") -> DagNN:
    dag = DagNN(seed=1, optimizer=optimizer, dtype=dtype)
    x = dag.add_nodes(2, "input")
    h = dag.add_hidden()
    y = dag.add_output()
    dag.add_edges([x[0], x[1], h], [h, h, y])
    dag.forward(np.ones((1, 2)))
    dag.backward_accumulate(np.ones((1, 1)))
    dag.step(0.1)
    return dag


def reseal(path: Path, manifest: dict[str, Any] | bytes, arrays: dict[str, np.ndarray]) -> Path:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    if isinstance(manifest, dict):
        manifest = dict(manifest, arrays_sha256=hashlib.sha256(blob).hexdigest())
        manifest = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", manifest)
        zf.writestr("arrays.npz", blob)
    return path


@pytest.fixture()
def parts(tmp_path: Path) -> tuple[Path, dict[str, Any], dict[str, np.ndarray]]:
    path = small_dag().save(tmp_path / "m.gph")
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    return path, manifest, read_checkpoint(path)[1]


# -- 1. every failure is a CheckpointError ---------------------------------------------------


def test_every_compression_method_value_is_a_checkpoint_error(tmp_path: Path) -> None:
    data = bytearray(small_dag().save(tmp_path / "m.gph").read_bytes())
    offsets = [i + 8 for i in range(len(data)) if data[i : i + 4] == b"PK\x03\x04"]
    offsets += [i + 10 for i in range(len(data)) if data[i : i + 4] == b"PK\x01\x02"]
    bad = tmp_path / "bad.gph"
    for method in [*range(1, 100), 0xFFFF]:  # 8 (deflate), 12 (bzip2), 14 (lzma), 99 (aes)...
        for off in offsets:
            data[off : off + 2] = method.to_bytes(2, "little")
        bad.write_bytes(bytes(data))
        with pytest.raises(CheckpointError):
            DagNN.load(bad)


@pytest.mark.parametrize(
    "key,value",
    [
        ("optimizer_steps", 1e999),
        ("seed", 1e999),
        ("next_node_id", 1e999),
        ("next_edge_id", -5),
        ("seed", 10**40),
        ("rng", [1]),
        ("rng", {"bit_generator": "PCG64"}),
        ("dtype", None),  # not float64
        ("dtype", "float16"),
        ("optimizer", {"name": "rmsprop"}),  # unknown is an error, not SGD
        ("optimizer", {"name": "adam", "beta1": 1e999}),
        ("optimizer", "adam"),
        ("init", 3),
    ],
)
def test_crafted_dagnn_metadata_is_a_checkpoint_error(parts, tmp_path, key, value) -> None:
    _, manifest, arrays = parts
    manifest["meta"][key] = value
    with pytest.raises(CheckpointError, match=r"inconsistent contents|corrupted"):
        DagNN.load(reseal(tmp_path / "bad.gph", manifest, arrays))


def test_deeply_nested_manifest_is_a_checkpoint_error(parts, tmp_path) -> None:
    _, _, arrays = parts
    raw = b'{"format": "grapheme-checkpoint", "meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(CheckpointError, match="nested"):
        DagNN.load(reseal(tmp_path / "deep.gph", raw, arrays))


@pytest.mark.parametrize("version", ["1", 1.0, True, 0, None, [1]])
def test_format_version_must_be_a_positive_integer(parts, tmp_path, version) -> None:
    _, manifest, arrays = parts
    manifest["format_version"] = version
    with pytest.raises(CheckpointError, match="format_version"):
        DagNN.load(reseal(tmp_path / "v.gph", manifest, arrays))


# -- 2. what is loaded is validated ---------------------------------------------------------


@pytest.mark.parametrize(
    "name,value",
    [
        ("node_kind", np.array([0, 0, 1, 7], dtype=np.int8)),  # unknown kind
        ("node_id", np.array([0, 1, 1, 3])),  # duplicate
        ("node_id", np.array([-1, 1, 2, 3])),  # negative
        ("node_id", np.array([0.0, 1.0, 2.0, 3.0])),  # not integral
        ("edge_id", np.array([0, 1, 2], dtype=np.float32)),
        ("weight", np.array([1, 2, 3], dtype=np.int64)),  # float weights only
        ("weight", np.array([1, 2, 3], dtype=np.float16)),
        ("bias", np.array([0, 0, 1e300, 0])),  # overflows float32
        ("v_weight", np.array([-1.0, 0.0, 0.0], dtype=np.float32)),  # negative 2nd moment
        ("m_bias", np.array([0, 0, np.nan, 0], dtype=np.float32)),
    ],
)
def test_crafted_arrays_are_a_checkpoint_error(parts, tmp_path, name, value) -> None:
    _, manifest, arrays = parts
    arrays[name] = value
    with pytest.raises(CheckpointError, match="inconsistent contents"):
        DagNN.load(reseal(tmp_path / "bad.gph", manifest, arrays))


def test_moments_without_adam_or_missing_halves_are_refused(parts, tmp_path) -> None:
    _, manifest, arrays = parts
    partial = {k: v for k, v in arrays.items() if k != "v_bias"}
    with pytest.raises(CheckpointError, match="all four or none"):
        DagNN.load(reseal(tmp_path / "a.gph", manifest, partial))
    manifest["meta"]["optimizer"] = {"name": "sgd"}
    with pytest.raises(CheckpointError, match="stored for SGD"):
        DagNN.load(reseal(tmp_path / "b.gph", manifest, arrays))


def test_exactly_the_documented_members(parts, tmp_path) -> None:
    path, _, _ = parts
    extra = tmp_path / "extra.gph"
    extra.write_bytes(path.read_bytes())
    with zipfile.ZipFile(extra, "a") as zf:
        zf.writestr("payload.sh", b"echo hi")
    with pytest.raises(CheckpointError, match="members"):
        DagNN.load(extra)


# -- 3. resource limits before allocation ----------------------------------------------------


def test_zip_bomb_is_refused_before_decompressing(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.gph"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", b"{}")
        zf.writestr("arrays.npz", b"\0" * (8 * 2**20))  # 8 MB of zeros in a few kB
    assert bomb.stat().st_size < 100_000
    with pytest.raises(CheckpointError, match="compression method"):
        DagNN.load(bomb)


def test_array_header_claiming_a_huge_shape_is_refused(parts, tmp_path) -> None:
    path, manifest, arrays = parts
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**11,)}
    )
    npz = io.BytesIO()
    with zipfile.ZipFile(npz, "w") as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.save(member, arr)
            zf.writestr(f"{name}.npy", member.getvalue())
        zf.writestr("huge.npy", header.getvalue() + b"\0" * 12)
    raw = npz.getvalue()
    manifest = dict(manifest, arrays_sha256=hashlib.sha256(raw).hexdigest())
    crafted = tmp_path / "huge.gph"
    with zipfile.ZipFile(crafted, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("arrays.npz", raw)
    with pytest.raises(CheckpointError, match="array_elements"):
        DagNN.load(crafted)
    with limits.override(array_elements=2), pytest.raises(CheckpointError, match="array_elements"):
        DagNN.load(path)


def test_huge_embedding_vocabulary_is_refused_before_allocating(tmp_path: Path) -> None:
    path = save(Embedding(8, 2, seed=0), tmp_path / "emb.gph")
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    manifest["meta"]["vocab_size"] = 10**12
    crafted = reseal(tmp_path / "big.gph", manifest, read_checkpoint(path)[1])
    with pytest.raises(CheckpointError, match=r"embedding_elements.*GRAPHEME_LIMIT_"):
        load_embedding(crafted)


def test_limits_are_raised_by_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHEME_LIMIT_HIDDEN", "1e6")
    assert limits.get("hidden") == 10**6
    monkeypatch.setenv("GRAPHEME_LIMIT_HIDDEN", "lots")
    with pytest.raises(ValueError, match="GRAPHEME_LIMIT_HIDDEN"):
        limits.get("hidden")


# -- 5. the core checks what a backend returns -----------------------------------------------


class HalfForward(NumpyBackend):
    name = "half-forward"

    def forward(self, compiled, weight, bias, x):
        y, cache = super().forward(compiled, weight, bias, x)
        return y.astype(np.float16), cache


class ScalarWeightGrad(NumpyBackend):
    name = "scalar-grad"

    def backward(self, compiled, weight, bias, cache, grad):
        gw, gb, gx = super().backward(compiled, weight, bias, cache, grad)
        return gw[:1], gb, gx


def _on(backend: Any) -> DagNN:
    dag = DagNN(backend=backend)
    x = dag.add_nodes(2, "input")
    dag.add_edges(x, [dag.add_output()] * 2)
    return dag


def test_float16_forward_output_names_backend_and_method() -> None:
    with pytest.raises(ShapeError, match=r"'half-forward'.*forward.*float16"):
        _on(HalfForward()).forward(np.ones((3, 2)))


def test_wrong_shaped_gradient_is_an_error_not_broadcast() -> None:
    dag = _on(ScalarWeightGrad())
    dag.forward(np.ones((3, 2)))
    with pytest.raises(ShapeError, match=r"'scalar-grad'.*backward.*weight gradients"):
        dag.backward_accumulate(np.ones((3, 1)))
    assert np.all(dag.get_gradients()["weight"] == 0)  # nothing was added


# -- 6. overflow --------------------------------------------------------------------------


def test_clip_gradients_survives_float32_overflow() -> None:
    dag = _on("numpy")
    dag.set_parameters({"weight": [1.0, 1.0]})
    dag.forward(np.full((1, 2), 1e19))
    dag.backward_accumulate(np.full((1, 1), 1e1))  # weight grads 1e20 each
    true = math.hypot(1e20, 1e20)
    assert dag.gradient_norm() == pytest.approx(true, rel=1e-6)
    assert dag.clip_gradients(1.0) == pytest.approx(true, rel=1e-6)
    np.testing.assert_allclose(dag.gradient_norm(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(dag.get_gradients()["weight"], [2**-0.5] * 2, rtol=1e-5)


def test_embedding_clip_survives_float32_overflow() -> None:
    emb = Embedding(4, 2, seed=0)
    emb.backward([0, 1], np.full((2, 2), 3e19))
    assert emb.gradient_norm() == pytest.approx(6e19, rel=1e-6)
    emb.clip_gradients(2.0)
    assert emb.gradient_norm() == pytest.approx(2.0, rel=1e-5)


def test_values_overflowing_the_model_dtype_are_refused() -> None:
    dag = _on("numpy")
    before = dag.get_parameters()["weight"].copy()
    with pytest.raises(GraphError, match="overflow float32"):
        dag.add_edge(dag.input_nodes[0], dag.output_nodes[0], weight=1e300)
    with pytest.raises(ValueError, match="overflow float32"):
        dag.set_parameters({"weight": [1e300, 0.0]})
    np.testing.assert_array_equal(dag.get_parameters()["weight"], before)
    assert dag.edge_count == 2
    DagNN(dtype="float64").add_nodes(1, "input")  # float64 takes 1e300 fine
    with pytest.raises(ValueError, match="overflow float32"):
        Embedding(2, 2).set_parameters({"table": np.full((2, 2), 1e39)})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_forward_input_is_an_error(bad: float) -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        _on("numpy").forward(np.array([[1.0, bad]]))


# -- 7. saving never replaces what it should not -------------------------------------------


def test_symlink_target_is_written_and_the_link_kept(tmp_path: Path) -> None:
    target = tmp_path / "real.gph"
    link = tmp_path / "link.gph"
    link.symlink_to(target)
    small_dag().save(link)
    assert link.is_symlink() and target.is_file()
    assert DagNN.load(link).edge_count == 3


def test_directory_device_and_empty_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="directory"):
        small_dag().save(tmp_path)
    fifo = tmp_path / "fifo"  # a non-regular file; never a real device, which a
    os.mkfifo(fifo)  # regression would replace when the tests run as root
    with pytest.raises(CheckpointError, match="regular file"):
        small_dag().save(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    with pytest.raises(CheckpointError, match="empty"):
        check_target("")


def test_orphan_temp_files_of_a_killed_save_are_removed(tmp_path: Path) -> None:
    dead = 2**22 + 12345  # above the default pid_max: no such process
    orphan = tmp_path / f".m.gph.grapheme-{dead}-abc123_x.tmp"
    orphan.write_bytes(b"partial")
    mine = tmp_path / f".m.gph.grapheme-{os.getpid()}-zzz.tmp"  # a live writer's: kept
    other = tmp_path / f".other.gph.grapheme-{dead}-abc.tmp"  # another target's: kept
    user = tmp_path / ".m.gph.notes.tmp"  # not our pattern: kept
    for f in (mine, other, user):
        f.write_bytes(b"keep")
    small_dag().save(tmp_path / "m.gph")
    assert not orphan.exists()
    assert mine.exists() and other.exists() and user.exists()


def test_checkpoint_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = small_dag().save(tmp_path / "a.gph")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        path.chmod(0o640)
        small_dag().save(path)  # replacing keeps the existing mode
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert stat.S_IMODE(small_dag().save(tmp_path / "b.gph").stat().st_mode) == 0o600
    finally:
        os.umask(old)


# -- the writer's backend is the default on load -------------------------------------------


def test_load_uses_the_writers_backend_when_installed(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = DagNN(backend="torch").save(tmp_path / "t.gph")
    assert DagNN.load(path).backend.name == "torch"
    assert DagNN.load(path, backend="numpy").backend.name == "numpy"


def test_load_falls_back_with_a_warning_when_the_writer_is_missing(tmp_path: Path) -> None:
    meta, arrays = small_dag().state()
    meta["backend"] = "no-such-backend"
    path = write_checkpoint(tmp_path / "x.gph", "dagnn", meta, arrays)
    with pytest.warns(UserWarning, match="no-such-backend"):
        assert DagNN.load(path).backend.name == "numpy"
