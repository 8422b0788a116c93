"""``--resume`` keeps the run: backend, device, options and metrics file (issue 12.4)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from grapheme_backends.numpy_backend import NumpyBackend
from grapheme_core import BackendSpec, hookimpl, register_plugin, unregister_plugin
from grapheme_train.checkpoint import load_training
from grapheme_train.cli import cli
from grapheme_train.session import DEFAULT_EPOCHS, Launch, ResumeWithoutEpochsError, merge_launch
from grapheme_train.trainer import Trainer

TINY = ("--hidden", "2", "--heldout", "0")


class TaggedNumpy(NumpyBackend):
    """The numpy backend with one factory option, to see options travel."""

    name = "tagged"

    def __init__(self, device: str = "cpu", tag: str = "") -> None:
        super().__init__(device)
        self.tag = tag


class _Plugin:
    @staticmethod
    @hookimpl
    def grapheme_backends():
        return [BackendSpec("tagged", TaggedNumpy, description="numpy with a tag option")]


@pytest.fixture(scope="module", autouse=True)
def tagged_backend():
    register_plugin(_Plugin(), "product-tagged")
    yield
    unregister_plugin("product-tagged")


def invoke(*args: str | Path, **env: str) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env=env)


@pytest.fixture
def started(tmp_path: Path) -> tuple[Path, Path]:
    """One epoch on ``tagged`` with a device, an option and a metrics file."""
    ckpt, metrics = tmp_path / "run.ckpt", tmp_path / "run.jsonl"
    result = invoke(
        "--backend", "tagged", "--device", "cpu", "--option", "tag=blue", *TINY,
        "--epochs", "1", "--checkpoint", ckpt, "--metrics-out", metrics, "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return ckpt, metrics


def test_checkpoint_records_the_launch(started):
    ckpt, metrics = started
    launch = load_training(ckpt)[0]["run"]["launch"]
    assert launch == {
        "backend": "tagged", "device": "cpu", "options": {"tag": "blue"},
        "metrics_out": str(metrics), "epochs": 1,
    }  # fmt: skip


def test_resume_uses_the_recorded_backend_options_and_metrics_file(started):
    ckpt, metrics = started
    # $GRAPHEME_BACKEND would pick numpy for a fresh run; the checkpoint's record wins.
    result = invoke("--resume", ckpt, "--epochs", "2", "-q", "--json", GRAPHEME_BACKEND="numpy")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["backend"] == "tagged" and summary["device"] == "cpu"
    assert summary["options"] == {"tag": "blue"}
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [line.get("epoch") for line in lines] == [1, 2, None]  # kept writing, then eval
    assert load_training(ckpt)[0]["run"]["launch"]["epochs"] == 2


def test_resume_on_another_backend_says_what_is_not_carried_over(started):
    ckpt, _ = started
    result = invoke("--resume", ckpt, "--epochs", "2", "--backend", "numpy", "--json")
    assert result.exit_code == 0, result.output
    assert "--backend numpy replaces the checkpoint's tagged" in result.stderr
    assert "--device cpu, --option tag=blue not carried over" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["backend"] == "numpy" and summary["options"] == {}


def test_resume_with_a_device_the_backend_refuses_is_a_clear_usage_error(started):
    ckpt, _ = started
    before = ckpt.read_bytes()
    result = invoke("--resume", ckpt, "--epochs", "2", "--device", "cuda")
    assert result.exit_code == 2
    assert "CPU only" in result.stderr and f"resuming {ckpt}" in result.stderr
    assert "--backend NAME picks another" in result.stderr
    assert ckpt.read_bytes() == before


def test_resume_without_epochs_trains_nothing_and_points_to_evaluate(started):
    ckpt, metrics = started
    before, metrics_before = ckpt.read_bytes(), metrics.read_bytes()
    result = invoke("--resume", ckpt)
    assert result.exit_code == 2
    assert "needs --epochs N" in result.stderr
    assert f"grapheme-train evaluate {ckpt}" in result.stderr
    assert "started with --epochs 1" in result.stderr
    assert ckpt.read_bytes() == before and metrics.read_bytes() == metrics_before


def test_ctrl_c_prints_a_continue_command_that_keeps_the_run(
    started, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    ckpt, metrics = started
    real = Trainer.train_epoch

    def interrupted(self: Trainer):
        if self.epoch == 2:
            raise KeyboardInterrupt
        return real(self)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "train_epoch", interrupted)
        result = invoke("--resume", ckpt, "--epochs", "4", "--option", "tag=blue")
    assert result.exit_code == 130
    command = result.stderr.strip().splitlines()[-1].strip()
    args = shlex.split(command)
    assert args[:5] == ["grapheme-train", "--resume", str(ckpt), "--epochs", "4"]
    for pair in (["--backend", "tagged"], ["--device", "cpu"], ["--option", "tag=blue"],
                 ["--metrics-out", str(metrics)]):  # fmt: skip
        i = args.index(pair[0])
        assert args[i : i + 2] == pair, command
    assert invoke(*args[1:], "-q").exit_code == 0
    assert load_training(ckpt)[0]["trainer"]["epoch"] == 4


def test_merge_launch_rules():
    fresh, notes = merge_launch(Launch(), None)
    assert fresh.epochs == DEFAULT_EPOCHS and notes == []
    saved = Launch("torch", "cuda:1", {"kernels": "csr"}, "m.jsonl", 10).to_json()
    with pytest.raises(ResumeWithoutEpochsError, match="started with --epochs 10"):
        merge_launch(Launch(), saved, "c.ckpt")
    same, notes = merge_launch(Launch(device="cuda:0", epochs=20), saved, "c.ckpt")
    assert (same.backend, same.device, same.options, same.metrics_out, same.epochs) == (
        "torch", "cuda:0", {"kernels": "csr"}, "m.jsonl", 20,
    )  # fmt: skip
    assert notes == ["--device cuda:0 replaces the checkpoint's cuda:1"]
    old, _ = merge_launch(Launch(epochs=3), {}, "old.ckpt")  # a checkpoint without a record
    assert old.backend is None and old.epochs == 3
