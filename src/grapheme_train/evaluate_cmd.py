"""``grapheme-train evaluate CHECKPOINT [--data FILE]``: score a trained model.

Without ``--data`` it rebuilds the run's own held-out split from the seed stored in the
checkpoint (the datasets are deterministic); with ``--data`` it scores the examples of a
JSONL file (unlabelled ones are routed). Prints the per-domain table, or ``--json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from grapheme_core import CheckpointError
from grapheme_train.ask import load_model
from grapheme_train.data import load_jsonl, route_examples
from grapheme_train.datasets import load_splits
from grapheme_train.errors import GraphemeTrainError
from grapheme_train.metrics import evaluation_json
from grapheme_train.report import evaluation_table
from grapheme_train.trainer import Trainer

__all__ = ["evaluate_command"]


@click.command("evaluate")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE.jsonl",
    help="Score these examples instead of the built-in held-out split.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
def evaluate_command(checkpoint: Path, data: Path | None, as_json: bool) -> None:
    """Per-domain exact match of a checkpoint on held-out data or your own file."""
    try:
        model, router, meta = load_model(checkpoint)
        run = meta["run"]
        splits = load_splits(int(run.get("seed", 0)), run.get("heldout"), run.get("train_limit"))
        examples = splits.heldout if data is None else route_examples(load_jsonl(data), router)
        trainer = Trainer(model, splits.train, float(meta["trainer"].get("lr", 0.003)))
        scores = trainer.evaluate(examples, router)
    except (CheckpointError, GraphemeTrainError, OSError, KeyError) as exc:
        err = click.ClickException(str(exc))
        err.exit_code = 2
        raise err from None
    name = "heldout" if data is None else str(data)
    if as_json:
        click.echo(json.dumps(evaluation_json({name: scores}), indent=2))
    else:
        click.echo("\n".join(evaluation_table(scores)))
