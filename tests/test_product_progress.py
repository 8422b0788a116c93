"""Progress like the tools people know: rate and ETA, status lines, terminals only (12.5)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from grapheme_train import bench as B
from grapheme_train import cli as C
from grapheme_train.progress import Progress, Status, format_duration


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_shows_elapsed_eta_and_rate():
    term, clock = FakeTerminal(), Clock()
    bar = Progress(10, stream=term, clock=clock)
    clock.now += 4.0
    bar.update(2, loss=0.5)
    line = term.getvalue().split("\r\033[K")[-1]
    assert line.startswith("[######........................] 2/10 ")
    assert "[00:04<00:16, 2.00 s/epoch]" in line  # 0.5 epoch/s reads as seconds per epoch
    assert line.endswith("loss 5.000e-01")
    clock.now += 1.0
    bar.update(10)
    assert "[00:05<00:00, 2.00 epoch/s]" in term.getvalue().split("\r\033[K")[-1]


def test_progress_and_status_draw_nothing_off_a_terminal_or_when_disabled():
    for stream, enabled in ((io.StringIO(), True), (FakeTerminal(), False)):
        bar = Progress(5, enabled=enabled, stream=stream)
        bar.update(1, 0.1)
        line = Status("bench", 3, enabled=enabled, stream=stream)
        line.step("x")
        line.close()
        assert stream.getvalue() == ""


def test_format_duration():
    assert format_duration(0) == "00:00"
    assert format_duration(61.4) == "01:01"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(float("nan")) == "?" and format_duration(float("inf")) == "?"


def _terminal_status(monkeypatch, module, term: FakeTerminal) -> None:
    real = Status
    monkeypatch.setattr(module, "Status", lambda *a, **k: real(*a, **k, stream=term))


def test_bench_says_what_it_is_doing_on_a_terminal(monkeypatch):
    term = FakeTerminal()
    _terminal_status(monkeypatch, B, term)
    result = CliRunner().invoke(B.bench, ["--small", "--tiny", "--runs", "1", "--json"])
    assert result.exit_code == 0, result.output
    shown = term.getvalue()
    assert "bench numpy: [1/2] small graph" in shown
    assert "bench numpy: [2/2] naive node-by-node reference" in shown
    assert shown.endswith("\r\033[K")  # erased before the result is printed
    payload = json.loads(result.stdout)
    assert payload["format"] == 1 and payload["backend"] == "numpy"


def test_plot_says_what_it_is_doing_on_a_terminal(monkeypatch, tmp_path: Path):
    pytest.importorskip("matplotlib")
    metrics = tmp_path / "m.jsonl"
    runner = CliRunner()
    args = ["--epochs", "2", "--hidden", "2", "--heldout", "0", "-q", "--metrics-out"]
    assert runner.invoke(C.cli, [*args, str(metrics)]).exit_code == 0
    term = FakeTerminal()
    _terminal_status(monkeypatch, C, term)
    result = runner.invoke(C.cli, ["plot", str(metrics), "-o", str(tmp_path / "l.png")])
    assert result.exit_code == 0, result.output
    assert f"plot: drawing {metrics} into {tmp_path / 'l.png'}" in term.getvalue()
    assert term.getvalue().endswith("\r\033[K")


def test_training_bar_shows_rate_and_eta_on_a_terminal(monkeypatch):
    term = FakeTerminal()
    real = Progress
    monkeypatch.setattr(C, "Progress", lambda *a, **k: real(*a, **k, stream=term))
    result = CliRunner().invoke(C.cli, ["--epochs", "3", "--hidden", "2", "--heldout", "0"])
    assert result.exit_code == 0, result.output
    frames = [f for f in term.getvalue().split("\r\033[K") if f]
    assert frames[-1].startswith("[" + "#" * 30 + "] 3/3 [")
    assert "epoch/s]" in frames[-1] or "s/epoch]" in frames[-1]
    assert "<00:00," in frames[-1]
    assert term.getvalue().endswith("\r\033[K")  # the bar is gone before the report
    quiet = FakeTerminal()
    monkeypatch.setattr(C, "Progress", lambda *a, **k: real(*a, **k, stream=quiet))
    args = ["--epochs", "2", "--hidden", "2", "--heldout", "0", "--no-progress"]
    assert CliRunner().invoke(C.cli, args).exit_code == 0
    assert quiet.getvalue() == ""
