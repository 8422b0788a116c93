"""Hostile input through the CLI: every case is a clear message and a documented exit code."""

from __future__ import annotations

import errno
import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from grapheme_core import read_checkpoint, write_checkpoint
from grapheme_train import cli as cli_module
from grapheme_train.cli import cli

FAST = ["--hidden", "4", "--heldout", "1", "-q", "--no-progress"]


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "run.ckpt"
    result = invoke("--epochs", "1", *FAST, "--checkpoint", path)
    assert result.exit_code == 0, result.output
    return path


def _no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# -- resume from crafted training checkpoints -------------------------------------------------


@pytest.mark.parametrize(
    "part,key,value,words",
    [
        ("trainer", "epoch", float("inf"), "corrupted"),  # written as Infinity
        ("trainer", "epoch", 10**30, "trainer.epoch"),
        ("trainer", "epoch", 1.5, "trainer.epoch"),
        ("run", "heldout", 10**12, "run.heldout"),  # used to hang generating examples
        ("run", "hidden", 10**9, "run.hidden"),
        ("trainer", "lr", -1.0, "trainer.lr"),
    ],
)
def test_resume_from_crafted_checkpoint_is_exit_2(trained, tmp_path, part, key, value, words):
    meta, arrays = read_checkpoint(trained)
    meta[part][key] = value
    bad = write_checkpoint(tmp_path / "bad.ckpt", "grapheme-train", meta, arrays)
    result = invoke("--resume", bad, "--epochs", "2", "-q", "--no-progress")
    assert result.exit_code == 2, result.output
    assert words in result.output
    _no_traceback(result)


# -- sizes over the limits, before memory is spent -------------------------------------------


def test_huge_hidden_is_a_usage_error_naming_the_limit() -> None:
    result = invoke("--hidden", "100000", "--epochs", "0", "-q")
    assert result.exit_code == 2
    assert "hidden=65536" in result.output and "GRAPHEME_LIMIT_HIDDEN" in result.output


def test_data_from_dev_zero_is_refused_at_once() -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    result = invoke("--data", "/dev/zero", "--epochs", "0", "-q")
    assert result.exit_code == 2 and "data_line_bytes" in result.output


def test_a_one_megabyte_data_line_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "big.jsonl"
    data.write_text(json.dumps({"input": "a" * 2**20, "answer": "b"}) + "\n")
    result = invoke("--data", data, "--epochs", "0", "-q")
    assert result.exit_code == 2
    assert f"{data}:1" in result.output and "GRAPHEME_LIMIT_DATA_LINE_BYTES" in result.output


@pytest.mark.parametrize("where", ["--data", "plot"])
def test_deeply_nested_json_lines_are_clean_errors(tmp_path: Path, where: str) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 20_000 + "]" * 20_000 + "\n")
    if where == "plot":
        result = invoke("plot", path, "-o", tmp_path / "x.png")
    else:
        result = invoke("--data", path, "--epochs", "0", "-q")
    assert result.exit_code == 2 and f"{path}:1" in result.output
    _no_traceback(result)


# -- where checkpoints may be saved ----------------------------------------------------------


def test_empty_checkpoint_path_is_a_usage_error() -> None:
    result = invoke("--checkpoint", "", "--epochs", "0", "-q")
    assert result.exit_code == 2 and "empty" in result.output


def test_device_checkpoint_is_refused_before_training(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"  # stands in for a device: a regression must not replace /dev/null
    os.mkfifo(fifo)
    result = invoke("--checkpoint", fifo, "--epochs", "1", *FAST)
    assert result.exit_code == 2 and "regular file" in result.output
    assert Path(fifo).is_fifo()


# -- metrics: disk full ----------------------------------------------------------------------


def test_disk_full_while_writing_metrics_is_a_clean_exit_1(monkeypatch, tmp_path) -> None:
    real = cli_module.MetricsWriter

    class FullDisk(real):
        def write_evaluation(self, evaluation):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli_module, "MetricsWriter", FullDisk)
    result = invoke("--epochs", "0", *FAST, "--metrics-out", tmp_path / "m.jsonl")
    assert result.exit_code == 1, result.output
    assert "cannot write" in result.output and "No space left" in result.output
    _no_traceback(result)


# -- plot ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def metrics_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("m") / "m.jsonl"
    lines = [{"epoch": 1, "loss": 1.0, "domain_loss": {"math": 1.0}, "delta": None}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_plot_unknown_format_is_exit_2(metrics_file, tmp_path) -> None:
    result = invoke("plot", metrics_file, "-o", tmp_path / "loss.xyz")
    assert result.exit_code == 2 and "unknown image format" in result.output


def test_plot_refuses_a_missing_folder_and_creates_nothing(metrics_file, tmp_path) -> None:
    target = tmp_path / "missing" / "dir" / "x.png"
    result = invoke("plot", metrics_file, "-o", target)
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "missing").exists()


def test_plot_unwritable_output_is_exit_2(metrics_file, tmp_path, monkeypatch) -> None:
    import matplotlib.figure

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", refuse)
    result = invoke("plot", metrics_file, "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "Permission denied" in result.output


@pytest.mark.parametrize("loss", ['"1.5"', "true", '"abc"', "[1]"])
def test_metrics_line_with_non_numeric_loss_is_an_error(tmp_path, loss) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"epoch": 1, "loss": ' + loss + ', "domain_loss": {}, "delta": null}\n')
    result = invoke("plot", path, "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "loss must be a number" in result.output


# -- Ctrl-C ----------------------------------------------------------------------------------


def test_ctrl_c_during_start_up_exits_130_without_traceback(monkeypatch, capsys) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "prepare_data", interrupted)
    with pytest.raises(SystemExit) as info:
        cli_module.main(["--epochs", "1", *FAST])
    assert info.value.code == 130
    assert "Traceback" not in capsys.readouterr().err


def test_double_ctrl_c_still_reports_the_checkpoint(monkeypatch, tmp_path) -> None:
    from grapheme_train.loop import EpochLoop

    saved = EpochLoop.save_last_good

    def first_ctrl_c(self):
        raise KeyboardInterrupt

    def second_ctrl_c_while_saving(self, path):
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C again
        return saved(self, path)

    monkeypatch.setattr(EpochLoop, "run", first_ctrl_c)
    monkeypatch.setattr(EpochLoop, "save_last_good", second_ctrl_c_while_saving)
    ckpt = tmp_path / "run.ckpt"
    result = invoke("--epochs", "3", *FAST, "--checkpoint", ckpt)
    assert result.exit_code == 130, result.output
    assert f"--resume {ckpt}" in result.output
    assert ckpt.is_file()


def test_ctrl_c_while_the_cli_imports_exits_130_without_traceback(monkeypatch, capsys) -> None:
    import importlib.abc
    import sys

    import grapheme_launch

    class Interrupting(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "grapheme_train.cli":
                raise KeyboardInterrupt  # the user presses Ctrl-C mid-import
            return None

    monkeypatch.delitem(sys.modules, "grapheme_train.cli")
    monkeypatch.setattr(sys, "meta_path", [Interrupting(), *sys.meta_path])
    with pytest.raises(SystemExit) as info:
        grapheme_launch.main()
    assert info.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
