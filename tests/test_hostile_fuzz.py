"""Seeded fuzzing of both checkpoint kinds: every load succeeds faithfully or is a
CheckpointError, never another exception.

Cases: random byte flips, zip compression-method fields, manifest mutations (values
replaced by infinities, huge or negative numbers, wrong types, deep nesting; keys
dropped) and array mutations (dtype, shape, values), the last two re-checksummed so
that they reach the checks behind the checksum. ``GRAPHEME_FUZZ_CASES`` raises the
count (default 2,100 in all).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import random
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from grapheme_core import CheckpointError, DagNN
from grapheme_core.checkpoint import read_checkpoint
from grapheme_train.checkpoint import load_training, restore_trainer
from grapheme_train.cli import cli
from grapheme_train.session import merge_settings, prepare_data

CASES = int(os.environ.get("GRAPHEME_FUZZ_CASES", "2100"))

_WEIRD: list[Any] = [
    1e308 * 10,
    -1e308 * 10,
    10**400,
    -1,
    -(2**70),
    2**70,
    0.5,
    None,
    True,
    "x",
    "",
    [],
    {},
    json.loads("[" * 80 + "]" * 80),
    {"name": "rmsprop"},
    "float16",
    10**12,
]


def _dag_bytes(folder: Path) -> bytes:
    dag = DagNN(seed=3, optimizer="adam")
    x = dag.add_nodes(3, "input")
    h = dag.add_nodes(2, "hidden")
    y = dag.add_output()
    dag.add_edges(np.repeat(x, 2), np.tile(h, 3))
    dag.add_edges(h, [y, y])
    dag.forward(np.ones((2, 3)))
    dag.backward_accumulate(np.ones((2, 1)))
    dag.step(0.1)
    return dag.save(folder / "dag.gph").read_bytes()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fuzz")
    ckpt = folder / "train.ckpt"
    result = CliRunner().invoke(
        cli,
        ["--epochs", "1", "--hidden", "4", "--heldout", "1", "--train-limit", "40", "-q",
         "--no-progress",
         "--checkpoint", str(ckpt)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return {"dagnn": _dag_bytes(folder), "train": ckpt.read_bytes()}


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return buf.getvalue()


def _resealed(manifest: dict[str, Any], npz: bytes) -> bytes:
    manifest["arrays_sha256"] = hashlib.sha256(npz).hexdigest()
    return _zip({"manifest.json": json.dumps(manifest).encode(), "arrays.npz": npz})


def _leaves(obj: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _leaves(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:4]):
            out += _leaves(v, (*path, i))
    return out


def _mutate_manifest(rng: random.Random, data: bytes) -> bytes:
    members = _members(data)
    manifest = json.loads(members["manifest.json"])
    where = rng.choice(_leaves(manifest)[1:])
    parent = manifest
    for key in where[:-1]:
        parent = parent[key]
    if rng.random() < 0.15 and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = copy.deepcopy(rng.choice(_WEIRD))
    if rng.random() < 0.1:
        manifest["extra"] = [manifest.get("extra")] * 2
    return _resealed(manifest, members["arrays.npz"])


def _mutate_arrays(rng: random.Random, data: bytes) -> bytes:
    members = _members(data)
    manifest = json.loads(members["manifest.json"])
    with np.load(io.BytesIO(members["arrays.npz"])) as npz:
        arrays = {k: npz[k] for k in npz.files}
    name = rng.choice(sorted(arrays))
    arr = arrays[name]
    choice = rng.randrange(8)
    if choice == 0:
        arrays[name] = arr.astype(rng.choice([np.float16, np.int8, np.uint64, np.complex64, bool]))
    elif choice == 1:
        arrays[name] = arr[:-1] if arr.size else np.zeros(3)
    elif choice == 2 and arr.size:
        bad = arr.astype(np.float64).copy()
        bad.flat[rng.randrange(arr.size)] = rng.choice([np.nan, np.inf, -1.0, 1e300, 2.0**63])
        with np.errstate(over="ignore"):
            arrays[name] = bad.astype(arr.dtype) if arr.dtype.kind == "f" else bad
    elif choice == 3:
        arrays[name] = np.stack([arr, arr])
    elif choice == 4:
        del arrays[name]
    elif choice == 5:
        arrays["unexpected"] = np.zeros(2)
    elif choice == 6 and arr.size:
        shuffled = arr.copy()
        np.random.default_rng(rng.randrange(100)).shuffle(shuffled)
        arrays[name] = shuffled
    else:
        arrays[name] = np.array([str(v) for v in arr.flat[:3]])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    npz = buf.getvalue()
    if rng.random() < 0.3:  # flip a byte in an .npy header, checksum kept valid
        npz = _flip(rng, npz, span=(30, 200))
    return _resealed(manifest, npz)


def _flip(rng: random.Random, data: bytes, span: tuple[int, int] | None = None) -> bytes:
    out = bytearray(data)
    lo, hi = span or (0, len(out))
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(lo, min(hi, len(out)))
        out[i] = rng.randrange(256)
    return bytes(out)


def _compression_field(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    method = rng.randrange(1, 2**16).to_bytes(2, "little")
    for sig, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = 0
        while (i := out.find(sig, start)) >= 0:
            if rng.random() < 0.7:
                out[i + offset : i + offset + 2] = method
            start = i + 4
    return bytes(out)


def _deep_manifest(rng: random.Random, data: bytes) -> bytes:
    members = _members(data)
    depth = rng.choice([100, 5000, 200_000])
    raw = b'{"format": "grapheme-checkpoint", "meta": ' + b"[" * depth + b"]" * depth + b"}"
    return _zip({"manifest.json": raw, "arrays.npz": members["arrays.npz"]})


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    _flip,
    _compression_field,
    _mutate_manifest,
    _mutate_manifest,
    _mutate_arrays,
    _mutate_arrays,
    _deep_manifest,
]


def _same_dag(loaded: DagNN, path: Path) -> None:
    meta, arrays = read_checkpoint(path)
    got_meta, got = loaded.state()
    assert got_meta["seed"] == meta["seed"] and got_meta["dtype"] == meta["dtype"]
    for key, arr in arrays.items():
        np.testing.assert_array_equal(got[key], arr.astype(got[key].dtype))


def _load_dag(path: Path, _examples: Any) -> None:
    _same_dag(DagNN.load(path, backend="numpy"), path)


def _load_train(path: Path, examples: Any) -> None:
    meta, arrays = load_training(path)
    trainer = restore_trainer(meta, arrays, examples, "numpy", path)
    state, got = trainer.model.state()
    for key, arr in arrays.items():
        np.testing.assert_array_equal(got[key], arr.astype(got[key].dtype))


@pytest.mark.slow  # 2100 fuzzed checkpoints (about 6 s)
def test_fuzzed_checkpoints_load_faithfully_or_raise_checkpoint_error(
    sources: dict[str, bytes], tmp_path: Path
) -> None:
    rng = random.Random(14)
    settings = merge_settings({"hidden": 4, "heldout": 1, "train_limit": 40}, 1)
    examples = prepare_data([], settings).examples  # a small sample: restoring encodes it
    counts = {"ok": 0, "clean": 0}
    other: list[str] = []
    path = tmp_path / "case.ckpt"
    for case in range(CASES):
        kind = "dagnn" if case % 4 else "train"
        mutate = MUTATIONS[case % len(MUTATIONS)]
        path.write_bytes(mutate(rng, sources[kind]))
        load = _load_dag if kind == "dagnn" else _load_train
        try:
            load(path, examples)
            counts["ok"] += 1
        except CheckpointError:
            counts["clean"] += 1
        except Exception as exc:  # counting what escapes is the point
            other.append(f"case {case} {kind} {mutate.__name__}: {type(exc).__name__}: {exc}")
    print(f"fuzz: {CASES} cases, {counts['ok']} loaded, {counts['clean']} CheckpointError, "
          f"{len(other)} other")  # fmt: skip
    assert not other, "\n".join(other[:20])
    assert counts["clean"] > CASES // 2  # the mutations do reach the checks
