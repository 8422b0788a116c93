"""Local workers without torchrun: ``grapheme-train --nproc N`` on one machine.

:func:`launch_local` starts ``N`` copies of a Python command on the loopback interface
(``MASTER_ADDR=127.0.0.1``, a free port), with the environment torchrun would give them
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``), and watches them: when
one exits with an error, the others get ``grace_s`` seconds to stop by themselves (their
collectives fail once a peer is gone), then are terminated, then killed. It never waits
on a dead group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from grapheme_train.distributed.errors import WorkerFailedError

__all__ = ["LAUNCHED_ENV", "free_port", "launch_local", "strip_option"]

LAUNCHED_ENV = "GRAPHEME_LAUNCHED"
"""Set to ``1`` in workers started by :func:`launch_local` (so they never launch again)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (for the rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def strip_option(argv: Sequence[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE`` (e.g. ``--nproc``)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == name:
            skip = True
            continue
        if arg.startswith(name + "="):
            continue
        out.append(arg)
    return out


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


def launch_local(
    argv: Sequence[str],
    nproc: int,
    *,
    env: Mapping[str, str] | None = None,
    grace_s: float = 10.0,
    poll_s: float = 0.05,
) -> int:
    """Run ``python *argv`` as ``nproc`` workers; return 0 when all succeed.

    When a worker fails, raise :class:`WorkerFailedError` naming it (rank, exit code or
    signal) after the others have stopped (by themselves within ``grace_s``, else
    terminated). Ctrl-C is passed to the workers (they save and exit), then awaited.
    """
    if int(nproc) < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    port = free_port()
    base = dict(os.environ if env is None else env)
    procs: list[subprocess.Popen] = []
    try:
        for rank in range(nproc):
            worker_env = {
                **base,
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(nproc),
                "LOCAL_WORLD_SIZE": str(nproc),
                "GROUP_RANK": "0",
                LAUNCHED_ENV: "1",
            }
            procs.append(subprocess.Popen([sys.executable, *argv], env=worker_env))
        return _watch(procs, grace_s, poll_s)
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        _stop(procs, grace_s)
        raise
    finally:
        _stop(procs, 0.0)


def _watch(procs: list[subprocess.Popen], grace_s: float, poll_s: float) -> int:
    while True:
        codes = [p.poll() for p in procs]
        failed = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            # a worker killed by a signal is the cause; the others' errors are its effect
            # (SIGABRT is a worker aborting itself, e.g. gloo after its peer vanished)
            rank, code = min(failed, key=lambda rc: (rc[1] >= 0, rc[1] == -signal.SIGABRT, rc[0]))
            stopped = _stop(procs, grace_s)
            others = [
                f"rank {r} did not stop within {grace_s:g} s and was terminated"
                if r in stopped
                else f"rank {r} {_describe(p.returncode)}"
                for r, p in enumerate(procs)
                if r != rank and (r in stopped or p.returncode not in (None, 0))
            ]
            raise WorkerFailedError(
                f"worker rank {rank} (pid {procs[rank].pid}) {_describe(code)}; "
                f"stopped the other workers" + (f" ({'; '.join(others)})" if others else ""),
                rank,
                code,
            )
        if all(c == 0 for c in codes):
            return 0
        time.sleep(poll_s)


def _stop(procs: list[subprocess.Popen], grace_s: float) -> set[int]:
    """Let running workers finish within ``grace_s``, then terminate, then kill; returns
    the ranks that had to be stopped."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.05)
    stopped = {r for r, p in enumerate(procs) if p.poll() is None}
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.05)
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    return stopped
