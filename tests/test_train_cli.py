"""The grapheme-train command line: the default run, files, faults, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from grapheme_core import get_backend
from grapheme_train.checkpoint import load_training
from grapheme_train.cli import cli
from grapheme_train.trainer import Trainer

DOMAINS = ("math", "text", "timeseries", "vision")


SMALL = ["--train-limit", "40", "--heldout", "8", "--batch-size", "32"]
"""Training commands run on a small seeded sample of the datasets, so the file stays fast
(the full default run is a benchmark; see docs/training.md)."""

_COMMANDS = {"backends", "plot", "conformance", "bench", "ask", "evaluate", "train"}


def invoke(*args: str | Path) -> Result:
    argv = [str(a) for a in args]
    if argv and argv[0] not in _COMMANDS and "--help" not in argv and "--resume" not in argv:
        argv = [*argv, *SMALL]
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


def metrics_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, dict, Path]:
    """``grapheme-train --backend numpy`` with defaults (plus machine-readable output)."""
    metrics = tmp_path_factory.mktemp("default") / "metrics.jsonl"
    result = invoke("--backend", "numpy", "--metrics-out", metrics, "--json", "--epochs", "12")
    assert result.exit_code == 0, result.output
    return result, json.loads(result.stdout), metrics


# -- the default run --------------------------------------------------------------------


def test_default_run_learns(default_run) -> None:
    _, summary, _ = default_run
    assert summary["backend"] == "numpy" and summary["epochs"] == 12
    assert summary["examples"] == {"train": 160, "heldout": 32}
    assert summary["final_loss"] <= 0.5 * summary["first_loss"]
    for domain in DOMAINS:
        held = summary["evaluation"]["heldout"][domain]
        assert held["examples"] == 8 and 0.0 <= held["exact_match"] <= 1.0
    assert summary["evaluation"]["train"]["vision"]["exact_match"] >= 0.9
    assert summary["gradient_share"]["all"] >= 0.10
    assert summary["examples_per_second"] > 0


def test_default_run_human_output(default_run) -> None:
    result, _, _ = default_run
    text = result.stderr  # with --json the tables go to stderr
    assert "brain slices" in text
    for header in ("epoch", *DOMAINS, "total", "delta"):
        assert header in text
    assert "training set (160 examples)" in text and "held-out set (32 examples" in text
    assert "exact-match" in text and "examples/s" in text
    assert "\r" not in text  # no progress bar without a terminal


def test_metrics_file(default_run) -> None:
    _, summary, path = default_run
    lines = metrics_lines(path)
    epochs, last = lines[:-1], lines[-1]
    assert [e["epoch"] for e in epochs] == list(range(1, 13))
    for e in epochs:
        assert set(e) == {"epoch", "loss", "domain_loss", "delta", "lr"}
        assert set(e["domain_loss"]) == set(DOMAINS)
    assert epochs[0]["delta"] is None
    assert epochs[5]["delta"] == pytest.approx(epochs[5]["loss"] - epochs[4]["loss"])
    assert epochs[0]["loss"] == summary["first_loss"]
    assert epochs[-1]["loss"] == summary["final_loss"]
    assert set(last) == {"evaluation"}
    for split in ("train", "heldout"):
        for domain in DOMAINS:
            assert set(last["evaluation"][split][domain]) >= {"examples", "exact_match", "loss"}
    assert last["evaluation"] == summary["evaluation"]


def test_table_output_on_stdout(tmp_path: Path) -> None:
    result = invoke("--epochs", "3")
    assert result.exit_code == 0
    assert result.stderr == ""
    out = result.stdout
    assert "brain slices" in out and "math" in out and "total" in out
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert [r.split()[0] for r in rows] == ["1", "2", "3"]


def test_quiet_and_json(tmp_path: Path) -> None:
    assert invoke("--epochs", "1", "-q").stdout == ""
    result = invoke("--epochs", "1", "-q", "--json")
    assert json.loads(result.stdout)["epochs"] == 1 and result.stderr == ""


def test_log_every(tmp_path: Path) -> None:
    out = invoke("--epochs", "10", "--log-every", "4").stdout
    rows = [line.split()[0] for line in out.splitlines() if line[:1].isdigit()]
    assert rows == ["1", "4", "8", "10"]


def test_help_and_default_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert all(c in result.stdout for c in ("train", "backends", "plot"))
    train_help = invoke("train", "--help").stdout
    for option in ("--backend", "--device", "--epochs", "--lr", "--optimizer", "--seed",
                   "--data", "--checkpoint", "--resume", "--metrics-out", "--json",
                   "--no-progress", "-q"):  # fmt: skip
        assert option in train_help
    assert invoke("--epochs", "-1").exit_code == 2
    assert invoke("--optimizer", "rmsprop").exit_code == 2
    assert invoke("--lr", "0").exit_code == 2


# -- reproducibility and resume -----------------------------------------------------------


def test_same_seed_gives_identical_metrics(tmp_path: Path) -> None:
    paths = [tmp_path / f"m{i}.jsonl" for i in range(3)]
    for path, seed in zip(paths, ("7", "7", "8"), strict=True):
        assert invoke("--epochs", "4", "--seed", seed, "--metrics-out", path, "-q").exit_code == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_resume_continues_to_the_same_final_metrics(tmp_path: Path) -> None:
    straight, resumed, ckpt = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.ckpt"
    base = ("--optimizer", "adam", "--seed", "3", "-q", "--json")
    full = invoke("--epochs", "7", "--metrics-out", straight, *base)
    part = invoke("--epochs", "3", "--checkpoint", ckpt, *base)
    assert full.exit_code == part.exit_code == 0
    meta, _ = load_training(ckpt)
    assert meta["trainer"]["epoch"] == 3
    rest = invoke("--resume", ckpt, "--epochs", "7", "--metrics-out", resumed, "-q", "--json")
    assert rest.exit_code == 0, rest.output
    assert resumed.read_bytes() == straight.read_bytes()
    a, b = json.loads(full.stdout), json.loads(rest.stdout)
    assert a["evaluation"] == b["evaluation"] and a["final_loss"] == b["final_loss"]
    assert load_training(ckpt)[0]["trainer"]["epoch"] == 7  # resume keeps saving there


def test_resume_refuses_what_would_change_the_result(tmp_path: Path) -> None:
    ckpt = tmp_path / "c.ckpt"
    assert invoke("--epochs", "1", "--checkpoint", ckpt, "-q").exit_code == 0
    result = invoke("--resume", ckpt, "--epochs", "2", "--seed", "9")
    assert result.exit_code == 2 and "--seed 9 differs from the checkpoint's 0" in result.stderr
    extra = tmp_path / "extra.jsonl"
    extra.write_text('{"input": "6 * 7", "answer": "42"}\n')
    result = invoke("--resume", ckpt, "--epochs", "2", "--data", extra)
    assert result.exit_code == 2 and "training data differ" in result.stderr
    result = invoke("--resume", tmp_path / "missing.ckpt")
    assert result.exit_code == 2 and "no such checkpoint" in result.stderr
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(ckpt.read_bytes()[:1000])
    result = invoke("--resume", broken)
    assert result.exit_code == 2 and "broken.ckpt" in result.stderr
    # Nothing left to do is not an error: it evaluates and stops.
    done = invoke("--resume", ckpt, "--epochs", "1", "-q", "--json")
    assert done.exit_code == 0 and json.loads(done.stdout)["epochs"] == 1


# -- data -----------------------------------------------------------------------------------


def test_malformed_data_stops_before_training(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"input": "6 * 7", "answer": "42"}\n{"input": "2 +", "answer": 2\n')
    metrics = tmp_path / "m.jsonl"
    result = invoke("--data", data, "--metrics-out", metrics)
    assert result.exit_code == 2
    assert f"{data}:2: invalid JSON" in result.stderr
    assert "epoch" not in result.stdout and not metrics.exists()


def test_untrainable_data_reports_file_and_line(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"input": "6 * 7", "answer": "42"}\n{"input": "8 / 0", "answer": "0"}\n')
    result = invoke("--data", data)
    assert result.exit_code == 2
    assert f"{data}:2: division by zero at position 2" in result.stderr


def test_data_file_examples_join_training(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(
        json.dumps({"input": "What color is grass", "answer": "?"}) + "\n"
        + json.dumps({"input": [5, 10, 15, 20], "answer": "25", "domain": "timeseries"}) + "\n"
        + json.dumps({"input": {"width": 2, "height": 2, "pixels": [1, 0, 0, 1]},
                      "answer": "diagonal"}) + "\n"
    )  # fmt: skip
    summary = json.loads(invoke("--data", data, "--epochs", "2", "-q", "--json").stdout)
    assert summary["examples"]["train"] == 4 * 40 + 3
    vision = summary["slices"]["vision"]["outputs"]
    assert vision[1] - vision[0] == 14  # the labels grow from the data: 13 + "diagonal"
    assert summary["evaluation"]["train"]["text"]["examples"] == 41


# -- backends -------------------------------------------------------------------------------


def test_unknown_backend_is_a_usage_error() -> None:
    result = invoke("--backend", "no-such-backend")
    assert result.exit_code == 2
    assert "no backend named 'no-such-backend'" in result.stderr and "numpy" in result.stderr


def test_device_the_backend_cannot_take() -> None:
    result = invoke("--backend", "numpy", "--device", "cuda:3")
    assert result.exit_code == 2 and "device" in result.stderr


def test_backends_command() -> None:
    result = invoke("backends")
    assert result.exit_code == 0 and "numpy" in result.stdout and "available" in result.stdout
    rows = json.loads(invoke("backends", "--json").stdout)["backends"]
    numpy_row = next(r for r in rows if r["name"] == "numpy")
    assert numpy_row["status"] == "available"


def _usable(name: str) -> bool:
    try:
        get_backend(name)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("name", ["torch", pytest.param("jax", marks=pytest.mark.slow), "example"])
def test_other_backends_agree_on_epoch_one(name: str) -> None:
    if not _usable(name):
        pytest.skip(f"backend {name} is not usable here")
    runs = {
        b: json.loads(
            invoke("--backend", b, "--epochs", "3", "--dtype", "float64", "-q", "--json").stdout
        )
        for b in ("numpy", name)
    }
    assert runs[name]["backend"] == name
    assert runs[name]["first_loss"] == pytest.approx(runs["numpy"]["first_loss"], rel=1e-4)
    assert runs[name]["final_loss"] < runs[name]["first_loss"]


# -- faults ---------------------------------------------------------------------------------


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    ckpt, metrics = tmp_path / "c.ckpt", tmp_path / "m.jsonl"
    result = invoke(
        "--lr", "1e6", "--optimizer", "sgd", "--epochs", "50",
        "--checkpoint", ckpt, "--metrics-out", metrics,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "not finite" in result.stderr
    assert "RuntimeWarning" not in result.output
    if not ckpt.exists():  # diverged within the first epoch (many minibatch steps)
        assert "no checkpoint was written" in result.stderr
        return
    assert "last good checkpoint" in result.stderr
    meta, _ = load_training(ckpt)
    good = meta["trainer"]["epoch"]
    assert f"(epoch {good})" in result.stderr
    assert [m["epoch"] for m in metrics_lines(metrics)] == list(range(1, good + 1))
    # The kept checkpoint resumes (it holds finite parameters).
    assert invoke("--resume", ckpt, "--epochs", str(good), "-q").exit_code == 0


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    real = Trainer.train_epoch

    def train_epoch(self: Trainer):
        if self.epoch + 1 == epoch:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


def test_ctrl_c_saves_a_checkpoint_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt, a, b = tmp_path / "c.ckpt", tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with monkeypatch.context() as m:
        _interrupt_at(m, 4)
        result = invoke("--epochs", "6", "--checkpoint", ckpt, "--metrics-out", a)
    assert result.exit_code == 130
    assert "after epoch 3" in result.stderr and f"--resume {ckpt}" in result.stderr
    assert load_training(ckpt)[0]["trainer"]["epoch"] == 3
    assert invoke("--resume", ckpt, "--epochs", "6", "--metrics-out", a, "-q").exit_code == 0
    assert invoke("--epochs", "6", "--metrics-out", b, "-q").exit_code == 0
    assert a.read_bytes() == b.read_bytes()


def test_ctrl_c_without_checkpoint_option_saves_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _interrupt_at(monkeypatch, 2)
    result = invoke("--epochs", "5")
    assert result.exit_code == 130
    saved = tmp_path / "grapheme-train-interrupted.ckpt"
    assert load_training(saved)[0]["trainer"]["epoch"] == 1


def test_real_sigint(tmp_path: Path) -> None:
    """Send SIGINT to a real process mid-training."""
    metrics, ckpt = tmp_path / "m.jsonl", tmp_path / "c.ckpt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    # The child restores Python's SIGINT handler in case this process ignores SIGINT.
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from grapheme_train.cli import main; main(sys.argv[1:])"
    )
    args = ["--epochs", "100000", "--checkpoint", str(ckpt), "--metrics-out", str(metrics), "-q",
            *SMALL]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    saved = load_training(ckpt)[0]["trainer"]["epoch"]
    assert saved >= 3 and f"after epoch {saved}" in err


# -- plot -----------------------------------------------------------------------------------


def test_plot(default_run, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    _, _, metrics = default_run
    out = tmp_path / "loss.png"
    result = invoke("plot", metrics, "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"epoch": 1, "loss": 1.0, "domain_loss": {}, "delta": null}\n{"oops": 1}\n')
    result = invoke("plot", bad, "-o", out)
    assert result.exit_code == 2 and f"{bad}:2:" in result.stderr


def test_progress_bar_only_on_a_terminal() -> None:
    import io

    from grapheme_train.progress import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = Progress(10, stream=tty)
    bar.update(5, 0.25)
    assert "[###############...............] 5/10 [" in tty.getvalue()  # then time, rate
    assert tty.getvalue().endswith("]  loss 2.500e-01")
    bar.clear()
    assert tty.getvalue().endswith("\r\033[K")
    bar.redraw()
    assert tty.getvalue().endswith("]  loss 2.500e-01")
    bar.close()
    end = tty.getvalue()
    bar.redraw()
    assert tty.getvalue() == end and end.endswith("\r\033[K")
    pipe = io.StringIO()
    for enabled, stream in ((True, pipe), (False, Tty())):
        quiet = Progress(10, enabled=enabled, stream=stream)
        quiet.update(3)
        quiet.close()
        assert stream.getvalue() == ""
