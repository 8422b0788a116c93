"""``grapheme-train show CHECKPOINT``: what is inside a checkpoint, without training.

Reads a model checkpoint (``DagNN.save``) or a training checkpoint (``--checkpoint``) and
prints the graph summary (:func:`grapheme_core.graphview.summary`), plus the run settings
and position of a training checkpoint. ``--dot FILE`` writes Graphviz DOT text (``-`` for
stdout); ``--json`` prints the same facts as one JSON object. The model is rebuilt on the
numpy backend: looking needs no accelerator.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import numpy as np

from grapheme_core import CheckpointError, DagNN, read_checkpoint
from grapheme_core.graphview import graph_stats, summary, to_dot
from grapheme_train.jsonout import dumps

__all__ = ["load_checkpoint_dag", "show"]


def load_checkpoint_dag(path: Path) -> tuple[DagNN, str, dict[str, Any]]:
    """``(dag, kind, meta)`` from a DagNN or training checkpoint, the DagNN on numpy."""
    meta, arrays = read_checkpoint(path)
    kind = _kind(path)
    try:
        if kind == "dagnn":
            return DagNN.from_state(meta, arrays, backend="numpy"), kind, meta
        if kind == "grapheme-train":
            return _training_dag(meta, arrays), kind, meta
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: inconsistent contents ({type(exc).__name__}: {exc})"
        ) from exc
    raise CheckpointError(
        f"{path}: holds a {kind!r}; show reads DagNN checkpoints (DagNN.save) and training "
        "checkpoints (grapheme-train --checkpoint)"
    )


def _kind(path: Path) -> str:
    import json
    import zipfile

    with zipfile.ZipFile(path) as zf:  # read_checkpoint has already validated the file
        return str(json.loads(zf.read("manifest.json")).get("kind"))


def _training_dag(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> DagNN:
    model = meta["model"]
    if "dag" in model:
        part = {k[4:]: v for k, v in arrays.items() if k.startswith("dag.")}
        return DagNN.from_state(model["dag"], part, backend="numpy")
    from grapheme_train.model import SharedAGIModel

    return SharedAGIModel.from_state(model, arrays, backend="numpy").dag


def _training_facts(meta: Mapping[str, Any]) -> dict[str, Any]:
    trainer = meta.get("trainer", {})
    history = trainer.get("history") or []
    last = history[-1] if history else {}
    run = {k: v for k, v in meta.get("run", {}).items() if k not in ("fingerprint", "launch")}
    launch = meta.get("run", {}).get("launch") or {}
    return {
        "epoch": trainer.get("epoch"),
        "final_loss": last.get("loss"),
        "run": run,
        "launch": launch,
    }


def _training_lines(training: Mapping[str, Any]) -> str:
    """The epoch, the last loss, where it ran and the run settings, for humans."""
    launch = training["launch"]
    loss = training["final_loss"]
    first = f"epoch {training['epoch']}"
    if launch.get("epochs") is not None:
        first += f" of {launch['epochs']}"
    if loss is not None:
        first += f", last epoch loss {loss:.4e}"
    if launch.get("backend"):
        where = launch["backend"] + (f" ({launch['device']})" if launch.get("device") else "")
        opts = " ".join(f"{k}={v}" for k, v in (launch.get("options") or {}).items())
        first += f"; trained on {where}" + (f" with {opts}" if opts else "")
    if launch.get("metrics_out"):
        first += f"; metrics to {launch['metrics_out']}"
    settings = ", ".join(f"{k} {v}" for k, v in training["run"].items())
    return first + (f"\nsettings: {settings}" if settings else "")


@click.command("show", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dot",
    "dot_file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    metavar="FILE",
    help="Also write the graph as Graphviz DOT text to FILE ('-': stdout).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the facts as one JSON object.")
def show(checkpoint: Path, dot_file: Path | None, as_json: bool) -> None:
    """Summarize the graph in a checkpoint: nodes per kind and level, edges, parameters.

    Reads DagNN checkpoints (DagNN.save) and training checkpoints (--checkpoint); for the
    latter it also prints the epoch reached and the run settings. Render a --dot file
    with `dot -Tsvg model.dot -o model.svg`.
    """
    try:
        dag, kind, meta = load_checkpoint_dag(checkpoint)
    except CheckpointError as exc:
        raise click.UsageError(str(exc)) from None
    training = _training_facts(meta) if kind == "grapheme-train" else None
    if dot_file is not None:
        text = to_dot(dag)
        if str(dot_file) == "-":
            click.echo(text, nl=False)
            return
        if not dot_file.parent.is_dir():
            raise click.UsageError(f"--dot {dot_file}: the folder {dot_file.parent} does not exist")
        dot_file.write_text(text)
    if as_json:
        payload: dict[str, Any] = {"checkpoint": str(checkpoint), "kind": kind}
        payload["graph"] = graph_stats(dag)
        payload["written_on"] = meta.get("backend") or meta.get("model", {}).get("dag", {}).get(
            "backend"
        )
        if training is not None:
            payload["training"] = training
        click.echo(dumps(payload))
        return
    click.echo(f"{checkpoint}: {'training checkpoint' if training else 'DagNN checkpoint'}")
    if training is not None:
        click.echo(_training_lines(training))
    click.echo("")
    click.echo(summary(dag))
    if dot_file is not None:
        click.echo(f"\nwrote {dot_file}")
