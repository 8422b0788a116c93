"""Checkpoints: a zip holding ``manifest.json`` and ``arrays.npz``. Never pickle.

Layout (format 1)::

    manifest.json   {"format": "grapheme-checkpoint", "format_version": 1,
                     "kind": "dagnn" | "embedding" | <any label>, "written_by": {...},
                     "arrays_sha256": "...", "meta": {...}}
    arrays.npz      named NumPy arrays, loaded with allow_pickle=False

Files are written to a temporary sibling, fsynced, then renamed over the target, so a
crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError

FORMAT = "grapheme-checkpoint"
FORMAT_VERSION = 1


def write_checkpoint(
    path: str | Path, kind: str, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> Path:
    """Atomically write a checkpoint file; returns its path."""
    from .about import DISTRIBUTION, __version__

    path = Path(path)
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    blob = buf.getvalue()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "written_by": {"package": DISTRIBUTION, "version": __version__},
        "arrays_sha256": hashlib.sha256(blob).hexdigest(),
        "meta": dict(meta),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
                zf.writestr("arrays.npz", blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def read_checkpoint(
    path: str | Path, kind: str | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read ``(meta, arrays)``; ``CheckpointError`` says what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if not {"manifest.json", "arrays.npz"} <= names:
                raise CheckpointError(
                    f"{path}: not a grapheme checkpoint (members {sorted(names)})"
                )
            manifest = json.loads(zf.read("manifest.json"))
            blob = zf.read("arrays.npz")
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile) as exc:
        raise CheckpointError(f"{path}: truncated or corrupted file ({exc})") from exc
    except (ValueError, KeyError) as exc:  # bad JSON, CRC mismatch
        raise CheckpointError(f"{path}: corrupted file ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a grapheme checkpoint (bad manifest)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {version} is newer than this grapheme reads "
            f"({FORMAT_VERSION}); upgrade grapheme to load it"
        )
    if kind is not None and manifest.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {manifest.get('kind')!r}, expected a {kind!r}")
    if hashlib.sha256(blob).hexdigest() != manifest.get("arrays_sha256"):
        raise CheckpointError(f"{path}: corrupted file (array checksum mismatch)")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: corrupted arrays ({exc})") from exc
    return manifest.get("meta", {}), arrays


def save(obj: Any, path: str | Path) -> Path:
    """Save a DagNN or an Embedding."""
    from .dagnn import DagNN
    from .embedding import Embedding

    if isinstance(obj, DagNN):
        kind = "dagnn"
    elif isinstance(obj, Embedding):
        kind = "embedding"
    else:
        raise TypeError(f"cannot save a {type(obj).__name__}; expected DagNN or Embedding")
    meta, arrays = obj.state()
    return write_checkpoint(path, kind, meta, arrays)


def load_dagnn(path: str | Path, backend: Any = None):
    """Read a DagNN checkpoint (``DagNN.save``) onto ``backend``; ``CheckpointError`` if
    the file is missing, corrupted or holds something else.
    """
    from .dagnn import DagNN

    meta, arrays = read_checkpoint(path, "dagnn")
    return _rebuild(path, DagNN.from_state, meta, arrays, backend)


def load_embedding(path: str | Path, backend: Any = None):
    """Read an Embedding checkpoint onto ``backend``; ``CheckpointError`` as for
    :func:`load_dagnn`.
    """
    from .embedding import Embedding

    meta, arrays = read_checkpoint(path, "embedding")
    return _rebuild(path, Embedding.from_state, meta, arrays, backend)


def _rebuild(path, build, meta, arrays, backend):
    try:
        return build(meta, arrays, backend=backend)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{path}: inconsistent contents ({type(exc).__name__}: {exc})"
        ) from exc
