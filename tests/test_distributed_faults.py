"""Faults: killing one of two workers ends the run with a clear error within 60 s, and
the last checkpoint (written by rank 0 only, atomically) still loads and resumes."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grapheme_train.distributed import load_progress

pytestmark = [
    pytest.mark.slow,
    # only the workers need torch; this process does not import it (2 CPU-seconds)
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch"),
    pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds workers via /proc"),
]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_killed_worker_stops_the_run_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "run.ckpt"
    cmd = [
        sys.executable, "-m", "grapheme_train.distributed", "train", "--nproc", "2",
        "--steps", "1000000", "--batch", "8", "--checkpoint", str(ckpt),
        "--checkpoint-every", "10", "--timeout", "30",
    ]  # fmt: skip
    launcher = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not ckpt.exists():
            assert launcher.poll() is None, launcher.communicate()
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.1)
        victims = [p for p in _children(launcher.pid) if _rank_of(p) == 1]
        assert victims, "rank 1 not found"
        os.kill(victims[0], signal.SIGKILL)
        killed = time.monotonic()
        _out, err = launcher.communicate(timeout=60)
        elapsed = time.monotonic() - killed
    finally:
        if launcher.poll() is None:
            launcher.kill()
    text = err.decode()
    assert launcher.returncode != 0
    assert elapsed < 60
    assert "worker rank 1" in text and "SIGKILL" in text, text
    dag, meta = load_progress(ckpt)  # the last good checkpoint
    done = int(meta["step"])
    assert done > 0 and done % 10 == 0 and dag.edge_count > 0
    resumed = subprocess.run(
        [sys.executable, "-m", "grapheme_train.distributed", "train", "--resume", str(ckpt),
         "--steps", "5", "--checkpoint-every", "5", "--json"],
        env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert int(load_progress(ckpt)[1]["step"]) == done + 5
