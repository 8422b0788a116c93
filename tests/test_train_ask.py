"""``ask`` and ``evaluate`` on a checkpoint: every input kind, and ask == evaluate."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from grapheme_train.ask import ask, load_model, parse_input
from grapheme_train.cli import cli
from grapheme_train.data import example_to_json
from grapheme_train.datasets import load_splits
from grapheme_train.inputs import ImageInput, SequenceInput, TextInput

ARGS = ["--backend", "numpy", "--epochs", "2", "--train-limit", "300", "--heldout", "40", "-q"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ask") / "run.ckpt"
    result = CliRunner().invoke(cli, ["train", *ARGS, "--checkpoint", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return path, json.loads(result.stdout)


def test_parse_input_kinds():
    assert isinstance(parse_input("23 + 45"), TextInput)
    assert parse_input("[1, 2, 3]") == SequenceInput([1, 2, 3])
    img = parse_input('{"width": 2, "height": 1, "pixels": [0, 1]}')
    assert isinstance(img, ImageInput) and img.width == 2
    assert isinstance(parse_input("[not json"), TextInput)


@pytest.mark.parametrize(
    "given,brain",
    [
        ("23 + 45", "math"),
        ("The return statement", "text"),
        ("[1, 2, 3, 4, 5]", "timeseries"),
        ('{"width": 4, "height": 4, "pixels": [1,1,1,1,1,0,0,1,1,0,0,1,1,1,1,1]}', "vision"),
    ],
)
def test_ask_every_input_kind_json(ckpt, given, brain):
    result = CliRunner().invoke(cli, ["ask", str(ckpt[0]), given, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["brain"] == brain
    assert isinstance(out["answer"], str) and 0.0 <= out["confidence"] <= 1.0
    if brain == "text":
        assert len(out["next"]) == 1


def test_ask_reproduces_evaluate_on_heldout(ckpt):
    path, summary = ckpt
    model, router, meta = load_model(path)
    held = load_splits(meta["run"]["seed"], meta["run"]["heldout"]).heldout
    result = CliRunner().invoke(cli, ["evaluate", str(path), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)["heldout"]
    for domain in ("math", "timeseries", "vision", "text"):
        group = [e for e in held if e.domain == domain]
        hits = 0
        for e in group:
            try:
                got = ask(model, router, e.input)
            except Exception:
                continue
            answer = got.next if domain == "text" else got.answer
            hits += got.brain == domain and answer == e.answer
        assert hits / len(group) == pytest.approx(scores[domain]["exact_match"])
        assert scores[domain]["exact_match"] == pytest.approx(
            summary["evaluation"]["heldout"][domain]["exact_match"]
        )


def test_evaluate_user_file(ckpt, tmp_path):
    data = tmp_path / "mine.jsonl"
    held = load_splits(0, 5).heldout
    data.write_text("\n".join(json.dumps(example_to_json(e)) for e in held) + "\n")
    result = CliRunner().invoke(cli, ["evaluate", str(ckpt[0]), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)[str(data)]
    assert {d: s["examples"] for d, s in scores.items()} == dict.fromkeys(
        ("math", "text", "timeseries", "vision"), 5
    )


def test_ask_bad_checkpoint_is_a_usage_error(tmp_path):
    bad = tmp_path / "x.ckpt"
    bad.write_text("nope")
    result = CliRunner().invoke(cli, ["ask", str(bad), "1 + 1"])
    assert result.exit_code == 2


def test_heldout_too_large_caps_with_a_note(tmp_path):
    result = CliRunner().invoke(
        cli, ["train", *ARGS[:-3], "--epochs", "0", "--heldout", "100000", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert any("only" in n for n in summary["notes"])
    assert summary["examples"]["heldout"] < 4 * 100000


@pytest.mark.slow
def test_default_run_answers_23_plus_45(tmp_path, monkeypatch):
    monkeypatch.delenv("GRAPHEME_TRAIN_LIMIT", raising=False)  # the real default run
    path = tmp_path / "run.ckpt"
    result = CliRunner().invoke(cli, ["train", "--backend", "numpy", "--seed", "0", "-q",
                                      "--checkpoint", str(path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = CliRunner().invoke(cli, ["ask", str(path), "23 + 45"])
    assert out.stdout.strip() == "68"
