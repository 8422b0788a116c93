"""Docs and --help true and self-contained; rough edges of the CLI (issue 12.6 and 12.7)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from grapheme_train.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    yield prefix
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


def test_no_document_or_help_text_cites_a_design_document():
    pattern = re.compile(r"DESIGN|design sec", re.IGNORECASE)
    paths = [*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("src/**/*.py")]
    assert [str(p) for p in paths if pattern.search(p.read_text())] == []
    for command in _commands(cli):
        result = CliRunner().invoke(cli, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert not pattern.search(result.output), command


def test_numpy_accepts_device_cpu_as_the_cli_doc_says(tmp_path):
    doc = (ROOT / "docs/cli.md").read_text()
    assert "numpy accepts only `cpu`" in doc and "refuses it |" not in doc
    args = ["--backend", "numpy", "--device", "cpu", "--epochs", "1", "--hidden", "2", "-q"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    result = CliRunner().invoke(cli, ["--backend", "numpy", "--device", "cuda", "--epochs", "1"])
    assert result.exit_code == 2 and "CPU only" in result.output


@pytest.mark.slow
def test_sample_epoch_rows_in_the_cli_doc_match_a_real_run():
    doc = (ROOT / "docs/cli.md").read_text()
    sample = doc[doc.index("The rows below are from a quick run") :]
    rows = re.findall(r"^(\d+ +\S.*)$", sample[: sample.index("training set")], re.M)
    assert rows, "no sample rows found"
    args = ["--backend", "numpy", "--train-limit", "100", "--epochs", "3", "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    real = set(result.output.splitlines())
    assert [r for r in rows if r not in real] == []


def test_backends_marks_the_default_that_grapheme_backend_names():
    plain = CliRunner().invoke(cli, ["backends"], env={"GRAPHEME_BACKEND": ""})
    assert plain.exit_code == 0
    assert re.search(r"^numpy \*\s", plain.output, re.M)
    assert "* default: numpy (built-in default)" in plain.output
    assert "(default)" not in plain.output
    chosen = CliRunner().invoke(cli, ["backends", "--json"], env={"GRAPHEME_BACKEND": "jax"})
    payload = json.loads(chosen.output)
    assert payload["format"] == 1
    assert payload["default"] == "jax" and payload["default_from"] == "$GRAPHEME_BACKEND"
    marked = {r["name"] for r in payload["backends"] if r["default"]}
    assert marked == ({"jax"} if any(r["name"] == "jax" for r in payload["backends"]) else set())
    text = CliRunner().invoke(cli, ["backends"], env={"GRAPHEME_BACKEND": "nosuch"}).output
    assert "* default: nosuch ($GRAPHEME_BACKEND); no installed plugin provides it" in text


def test_json_outputs_carry_a_format_version(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--epochs", "1", "--hidden", "2", "--heldout", "0", "--checkpoint", "c.ckpt"]
    train = CliRunner().invoke(cli, [*args, "--json", "-q"])
    assert train.exit_code == 0, train.output
    assert json.loads(train.stdout)["format"] == 1
    assert next(iter(json.loads(train.stdout))) == "format"
    shown = CliRunner().invoke(cli, ["show", "c.ckpt", "--json"])
    assert json.loads(shown.output)["format"] == 1
    listed = CliRunner().invoke(cli, ["backends", "--json"])
    assert json.loads(listed.output)["format"] == 1
