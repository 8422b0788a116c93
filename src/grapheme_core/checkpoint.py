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
import re
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint_validate as validate
from . import limits
from .errors import CheckpointError

FORMAT = "grapheme-checkpoint"
FORMAT_VERSION = 1


def write_checkpoint(
    path: str | Path, kind: str, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> Path:
    """Atomically write a checkpoint file; returns the path written.

    A symlink is followed: its target is replaced (the link stays). A directory, device
    or other non-regular file at ``path`` is refused (``CheckpointError``) and left
    alone. The file gets the mode an ordinary new file would (``0o666 & ~umask``), or
    the mode of the file it replaces. Temporary files left by a killed save to the same
    path (``.NAME.grapheme-PID-*.tmp`` whose process is gone) are removed.
    """
    from .about import DISTRIBUTION, __version__

    path = check_target(path)
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
    _remove_orphans(path)
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.grapheme-{os.getpid()}-", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            with contextlib.suppress(OSError):  # e.g. filesystems without permissions
                os.fchmod(fh.fileno(), mode)
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


def check_target(path: str | Path) -> Path:
    """The file a save to ``path`` writes (a symlink's target); ``CheckpointError`` if
    ``path`` is empty or names a directory, device, FIFO or socket. Call it before
    training so that a bad ``--checkpoint`` fails at once."""
    if str(path) == "":
        raise CheckpointError("the checkpoint path is empty")
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        what = "a directory" if path.is_dir() else "not a regular file (a device, FIFO or socket)"
        raise CheckpointError(f"{path}: is {what}; a checkpoint must be a regular file")
    return path


_ORPHAN = re.compile(r"\.(?P<name>.+)\.grapheme-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp")


def _remove_orphans(path: Path) -> None:
    """Delete our own temporary files for ``path`` whose writing process no longer runs."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            match = _ORPHAN.fullmatch(entry.name)
            if not match or match["name"] != path.name or not entry.is_file(follow_symlinks=False):
                continue
            if int(match["pid"]) != os.getpid() and not _alive(int(match["pid"])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (someone else's) or cannot tell: keep the file
    return True


def _file_mode(path: Path) -> int:
    """The mode of the file being replaced, else what ``open(path, "w")`` would give."""
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o7777
    return 0o666 & ~_umask()


def _umask() -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc: read it by setting it (briefly) and restoring it
    os.umask(mask)
    return mask


def read_checkpoint(
    path: str | Path, kind: str | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read ``(meta, arrays)``; ``CheckpointError`` says what is wrong with the file.

    Nothing else escapes: whatever a damaged or crafted file triggers (a zip method
    this Python lacks, JSON nested too deep, a size over :mod:`grapheme_core.limits`)
    is reported as a ``CheckpointError`` naming the file.
    """
    path = Path(path)
    try:
        return _read(path, kind)
    except CheckpointError:
        raise
    except limits.LimitExceeded as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    except RecursionError as exc:
        raise CheckpointError(f"{path}: corrupted file (nested too deeply)") from exc
    except MemoryError as exc:
        raise CheckpointError(f"{path}: corrupted file (claims more memory than exists)") from exc
    except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile) as exc:
        raise CheckpointError(f"{path}: truncated or corrupted file ({exc})") from exc
    except Exception as exc:  # zlib.error, NotImplementedError, ValueError, ...
        raise CheckpointError(
            f"{path}: corrupted file ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc


def _read(path: Path, kind: str | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    limits.check("checkpoint_bytes", path.stat().st_size, f"{path}: file size")
    with zipfile.ZipFile(path) as zf:
        validate.check_container(zf, path)
        raw = zf.read("manifest.json")
        blob = zf.read("arrays.npz")
    manifest = json.loads(raw, parse_constant=_no_constant)
    validate.check_json_depth(manifest, path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a grapheme checkpoint (bad manifest)")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(
            f"{path}: format_version must be a positive integer, got {version!r:.40}"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {version} is newer than this grapheme reads "
            f"({FORMAT_VERSION}); upgrade grapheme to load it"
        )
    if not isinstance(manifest.get("kind"), str):
        raise CheckpointError(f"{path}: manifest kind must be a string")
    if kind is not None and manifest["kind"] != kind:
        raise CheckpointError(f"{path}: holds a {manifest['kind']!r:.40}, expected a {kind!r}")
    if hashlib.sha256(blob).hexdigest() != manifest.get("arrays_sha256"):
        raise CheckpointError(f"{path}: corrupted file (array checksum mismatch)")
    meta = manifest.get("meta", {})
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: manifest meta must be a JSON object")
    return meta, validate.check_npz(blob, path)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid in a checkpoint manifest")


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
    _check(validate.check_dagnn, meta, arrays, path)
    return _rebuild(path, DagNN.from_state, meta, arrays, _writer_backend(meta, backend, path))


def load_embedding(path: str | Path, backend: Any = None):
    """An Embedding from a checkpoint; ``backend`` as for :func:`load_dagnn`."""
    from .embedding import Embedding

    meta, arrays = read_checkpoint(path, "embedding")
    _check(validate.check_embedding, meta, arrays, path)
    return _rebuild(path, Embedding.from_state, meta, arrays, _writer_backend(meta, backend, path))


def _check(check, meta, arrays, path) -> None:
    try:
        check(meta, arrays, path)
    except CheckpointError as exc:
        why = str(exc).removeprefix(f"{path}: ")
        raise CheckpointError(f"{path}: inconsistent contents ({why})") from None
    except Exception as exc:  # a crafted value the checks did not foresee
        raise CheckpointError(
            f"{path}: inconsistent contents ({type(exc).__name__}: {exc})"
        ) from exc


def _writer_backend(meta: Mapping[str, Any], backend: Any, path: str | Path) -> Any:
    """``backend`` if given; else the writer's backend if it loads; else ``None`` (default)."""
    from .errors import GraphemeError
    from .registry import get_backend

    if backend is not None:
        return get_backend(backend)
    name = meta.get("backend")
    if not isinstance(name, str):
        return None
    try:
        return get_backend(name)
    except (GraphemeError, ValueError) as exc:
        warnings.warn(
            f"{path} was written on backend {name!r}, which is not usable here ({exc}); "
            "loading it on the default backend",
            stacklevel=3,
        )
        return None


def _rebuild(path, build, meta, arrays, backend):
    try:
        return build(meta, arrays, backend=backend)
    except (RecursionError, MemoryError, Exception) as exc:
        raise CheckpointError(
            f"{path}: inconsistent contents ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
