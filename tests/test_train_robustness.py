"""Regression tests for bugs found reviewing grapheme_train (parser, data, CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from grapheme_train import MathOverflowError, default_router
from grapheme_train.cli import cli
from grapheme_train.data import load_jsonl
from grapheme_train.errors import DataError, InputError, LowConfidenceError
from grapheme_train.inputs import ImageInput, SequenceInput, TextInput
from grapheme_train.mathparse import MAX_DIGITS, MathSyntaxError, evaluate
from grapheme_train.modules import MathModule
from grapheme_train.trainer import NonFiniteLossError, Trainer

SMALL = ["--train-limit", "40", "--heldout", "8", "--batch-size", "32"]
_COMMANDS = {"backends", "plot", "conformance", "bench", "ask", "evaluate", "train"}


def invoke(*args: str | Path) -> Result:
    """Training runs use a small seeded sample of the datasets (fast)."""
    argv = [str(a) for a in args]
    if argv and argv[0] not in _COMMANDS and "--help" not in argv and "--resume" not in argv:
        argv = [*argv, *SMALL]
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


# -- math parser: numbers beyond Python's int <-> str digit limit ---------------------------


def test_math_number_literal_with_too_many_digits_is_a_syntax_error() -> None:
    with pytest.raises(MathSyntaxError, match=f"longer than {MAX_DIGITS} digits") as info:
        evaluate("1 + " + "9" * 5000)
    assert info.value.position == 4


def test_math_intermediate_value_too_large_is_a_math_error() -> None:
    text = "*".join(["999999999"] * 600)  # a 5400-digit product
    with pytest.raises(MathOverflowError, match="more than"):
        evaluate(text)
    # A large but representable value still works.
    assert evaluate("9" * 3000 + "+1") == 10**3000


def test_router_and_math_module_do_not_crash_on_huge_numbers() -> None:
    module = MathModule()
    assert module.can_handle(TextInput("9" * 5000)) == 0.4
    with pytest.raises(LowConfidenceError):
        default_router().route(TextInput("9" * 5000))
    product = TextInput("*".join(["999999999"] * 600))
    assert module.answer_problem(product, "1") is not None  # a reason, not a ValueError


# -- JSONL ----------------------------------------------------------------------------------


def test_jsonl_with_utf8_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"input": "7 * 6", "answer": "42"}\n{"input": "1", "answer": "1"}\n'
    )
    examples = load_jsonl(path)
    assert [e.answer for e in examples] == ["42", "1"]
    assert examples[0].source == f"{path}:1"


def test_jsonl_bom_only_in_first_line_is_special(tmp_path: Path) -> None:
    path = tmp_path / "bom2.jsonl"
    path.write_bytes(b'{"input": "1", "answer": "1"}\n\xef\xbb\xbf{"input": "1", "answer": "1"}\n')
    with pytest.raises(DataError, match=r"bom2.jsonl:2: invalid JSON"):
        load_jsonl(path)


def test_jsonl_integer_beyond_the_digit_limit_is_reported_with_file_and_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text(
        '{"input": "1", "answer": "1"}\n{"input": [1, ' + "9" * 5000 + '], "answer": "1"}\n'
    )
    with pytest.raises(DataError, match=r"big.jsonl:2: invalid JSON"):
        load_jsonl(path)


def test_integer_too_large_for_a_float_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="finite"):
        SequenceInput([1, 10**400])
    with pytest.raises(InputError, match="finite"):
        ImageInput(1, 1, [10**400])
    path = tmp_path / "ov.jsonl"
    path.write_text('{"input": [1, 1' + "0" * 400 + '], "answer": "1"}\n')
    with pytest.raises(DataError, match=r"ov.jsonl:1: sequence\[1\] must be finite"):
        load_jsonl(path)


@pytest.mark.parametrize(
    "line",
    [
        '{"input": [1, ' + "9" * 5000 + '], "answer": "1"}',
        '{"input": "' + "9" * 5000 + '", "answer": "1", "domain": "math"}',
        '{"input": "' + "*".join(["999999999"] * 600) + '", "answer": "1"}',
        '{"input": [1, 1' + "0" * 400 + '], "answer": "1"}',
    ],
)
def test_cli_huge_numbers_in_data_are_usage_errors(tmp_path: Path, line: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(line + "\n")
    result = invoke("--data", path, "--epochs", "1", "-q")
    assert result.exit_code == 2, result.output
    assert f"{path}:1: " in result.stderr
    assert "Traceback" not in result.output


# -- CLI option values ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_cli_non_finite_learning_rate_is_a_usage_error(value: str) -> None:
    result = invoke("--lr", value, "--epochs", "1", "-q")
    assert result.exit_code == 2
    assert "--lr" in result.stderr


def test_cli_negative_seed_is_a_usage_error() -> None:
    result = invoke("--seed", "-1", "--epochs", "1", "-q")
    assert result.exit_code == 2
    assert "--seed" in result.stderr


def test_cli_unwritable_checkpoint_is_a_usage_error_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = invoke("--checkpoint", blocker / "c.ckpt", "--epochs", "1")
    assert result.exit_code == 2
    assert "--checkpoint" in result.stderr and "cannot write" in result.stderr
    assert "epoch " not in result.stdout  # no training happened


def test_cli_unwritable_metrics_file_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = invoke("--metrics-out", blocker / "m.jsonl", "--epochs", "1", "-q")
    assert result.exit_code == 2
    assert "--metrics-out" in result.stderr


def test_checkpoint_write_failure_mid_run_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import grapheme_train.loop as loop_module

    def broken_save(*args: object, **kwargs: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loop_module, "save_training", broken_save)
    result = invoke("--checkpoint", tmp_path / "c.ckpt", "--epochs", "2", "-q")
    assert result.exit_code == 1
    assert "No space left on device" in result.stderr


def test_non_finite_loss_after_resume_names_the_resumed_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = tmp_path / "c.ckpt"
    assert invoke("--checkpoint", ckpt, "--epochs", "2", "-q").exit_code == 0

    def train_epoch(self: Trainer):
        raise NonFiniteLossError(self.epoch + 1, "the math loss", float("nan"))

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    result = invoke("--resume", ckpt, "--epochs", "4", "-q")
    assert result.exit_code == 1
    assert f"(epoch 2) is kept at {ckpt}" in result.stderr
    assert "no checkpoint was written" not in result.stderr


# -- conformance CLI surface ----------------------------------------------------------------


def test_conformance_short_help_is_not_cut_at_an_abbreviation() -> None:
    result = invoke("--help")
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("conformance"))
    assert "(DESIGN sec." not in line


def test_conformance_unwritable_report_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = invoke(
        "conformance", "-b", "numpy", "-k", "forward.chain", "--report", blocker / "r.json"
    )
    assert result.exit_code == 2
    assert "--report" in result.stderr


# -- non-finite loss: the state kept must really have a finite loss -------------------------


def _strict_json(line: str) -> object:
    def refuse(value: str) -> object:
        raise ValueError(f"non-standard JSON constant {value}")

    return json.loads(line, parse_constant=refuse)
