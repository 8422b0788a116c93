"""Checkpoints: round trips, atomic writes, every CheckpointError case."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from grapheme_core import CheckpointError, DagNN, Embedding, load_embedding, save
from grapheme_core import checkpoint as ckpt
from grapheme_core.generators import random_dag


def trained(optimizer="adam") -> DagNN:
    dag = random_dag(n_hidden=40, n_outputs=3, seed=2, optimizer=optimizer)
    x = np.random.default_rng(0).standard_normal((4, len(dag.input_nodes)))
    for _ in range(3):
        dag.zero_grad()
        dag.forward(x)
        dag.backward_accumulate(np.ones((4, 3)))
        dag.step(0.01)
    dag.remove_node(dag.hidden_nodes[3])  # holes in the id space must survive
    return dag


def test_round_trip_forwards_identically_and_keeps_training(tmp_path):
    dag = trained()
    path = dag.save(tmp_path / "model.gph")
    loaded = DagNN.load(path)
    assert loaded.input_nodes == dag.input_nodes and loaded.output_nodes == dag.output_nodes
    assert loaded.nodes().tolist() == dag.nodes().tolist()
    for a, b in zip(loaded.edges(), dag.edges(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(1).standard_normal((5, len(dag.input_nodes)))
    np.testing.assert_array_equal(loaded.forward(x), dag.forward(x))
    # gradients are on and training continues exactly like the original
    for model in (dag, loaded):
        model.zero_grad()
        model.forward(x)
        model.backward_accumulate(np.ones((5, 3)))
        model.step(0.01)
    assert loaded.gradient_norm() > 0
    np.testing.assert_array_equal(loaded.get_parameters()["weight"], dag.get_parameters()["weight"])
    # the seeded generator continues too: new edges get the same weights
    h1, h2 = dag.add_hidden(), loaded.add_hidden()
    dag.add_edge(dag.input_nodes[0], h1)
    loaded.add_edge(loaded.input_nodes[0], h2)
    assert h1 == h2
    np.testing.assert_array_equal(loaded.get_parameters()["weight"], dag.get_parameters()["weight"])


def test_dtype_and_optimizer_survive(tmp_path):
    dag = random_dag(n_hidden=5, n_outputs=1, dtype="float64", optimizer="adam")
    loaded = DagNN.load(dag.save(tmp_path / "m"))
    assert loaded.dtype == "float64" and loaded.optimizer == dag.optimizer


def test_file_format_is_a_zip_with_manifest_and_npz(tmp_path):
    path = trained().save(tmp_path / "m.gph")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["arrays.npz", "manifest.json"]
        manifest = json.loads(zf.read("manifest.json"))
        npz = np.load(io.BytesIO(zf.read("arrays.npz")), allow_pickle=False)
        assert {"node_id", "edge_src", "weight", "bias"} <= set(npz.files)
    assert manifest["format_version"] == ckpt.FORMAT_VERSION
    assert manifest["kind"] == "dagnn" and manifest["meta"]["backend"] == "numpy"


def test_crash_mid_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    dag = trained()
    path = dag.save(tmp_path / "m.gph")
    original = path.read_bytes()
    dag.add_hidden()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", explode)
    with pytest.raises(OSError, match="disk full"):
        dag.save(path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["m.gph"]  # no temporary left behind


def test_truncated_file(tmp_path):
    path = trained().save(tmp_path / "m.gph")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        DagNN.load(path)


def test_corrupted_bytes(tmp_path):
    path = trained().save(tmp_path / "m.gph")
    data = bytearray(path.read_bytes())
    start = data.find(b"arrays.npz") + 200
    data[start : start + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        DagNN.load(path)


def _rewrite_manifest(path, change):
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        blob = zf.read("arrays.npz")
    change(manifest)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("arrays.npz", blob)


def test_newer_format_is_refused_with_advice(tmp_path):
    path = trained().save(tmp_path / "m.gph")
    _rewrite_manifest(path, lambda m: m.update(format_version=ckpt.FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match=r"newer than this grapheme reads.*upgrade"):
        DagNN.load(path)


def test_wrong_kind_missing_file_and_foreign_zip(tmp_path):
    emb_path = save(Embedding(10, 2), tmp_path / "e.gph")
    with pytest.raises(CheckpointError, match="holds a 'embedding', expected a 'dagnn'"):
        DagNN.load(emb_path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        DagNN.load(tmp_path / "absent.gph")
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(CheckpointError, match="not a grapheme checkpoint"):
        DagNN.load(foreign)
    (tmp_path / "text.gph").write_text("not a zip")
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        DagNN.load(tmp_path / "text.gph")


def test_pickled_arrays_are_refused(tmp_path):
    meta, arrays = trained().state()
    arrays["node_kind"] = np.array([object()] * len(arrays["node_kind"]), dtype=object)
    path = tmp_path / "evil.gph"
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    manifest = {
        "format": ckpt.FORMAT,
        "format_version": 1,
        "kind": "dagnn",
        "meta": meta,
        "arrays_sha256": __import__("hashlib").sha256(blob).hexdigest(),
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("arrays.npz", blob)
    with pytest.raises(CheckpointError, match="corrupted arrays"):
        DagNN.load(path)


def test_inconsistent_contents(tmp_path):
    meta, arrays = trained().state()
    arrays["weight"] = arrays["weight"][:-1]
    path = ckpt.write_checkpoint(tmp_path / "bad.gph", "dagnn", meta, arrays)
    with pytest.raises(CheckpointError, match="inconsistent contents"):
        DagNN.load(path)


def test_embedding_round_trip(tmp_path):
    emb = Embedding(32, 4, seed=5, optimizer="adam")
    emb.backward([1, 1, 3], np.ones((3, 4)))
    emb.step(0.1)
    loaded = load_embedding(save(emb, tmp_path / "emb.gph"))
    np.testing.assert_array_equal(loaded.get_parameters()["table"], emb.get_parameters()["table"])
    for e in (emb, loaded):
        e.zero_grad()
        e.backward([3], np.ones((1, 4)))
        e.step(0.1)
    np.testing.assert_array_equal(loaded.get_parameters()["table"], emb.get_parameters()["table"])
