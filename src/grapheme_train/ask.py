"""``grapheme-train ask CHECKPOINT INPUT``: put one input to a trained model.

The checkpoint alone rebuilds the model (it stores the model's configuration, modules and
the run's routing threshold). INPUT is parsed as JSON when it is a JSON list (a
sequence, ``[1, 2, 3]``) or object (an image ``{"width", "height", "pixels"}`` or
``{"csv": "1,2,3"}``); anything else is text. The router picks the brain; the brain's
answer is decoded with a confidence in [0, 1] (softmax probability of the decoded
answer, or for a numeric answer ``1 - 2 |value - nearest integer|``). A text brain
predicts the next character (``next``) and continues the text greedily up to the first
``.`` or ``max_chars`` characters (``answer``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import click
import numpy as np

from grapheme_core import CheckpointError
from grapheme_train.checkpoint import load_training
from grapheme_train.data import input_from_json
from grapheme_train.errors import GraphemeTrainError
from grapheme_train.inputs import Input, TextInput
from grapheme_train.model import SharedAGIModel
from grapheme_train.router import CognitiveRouter

__all__ = ["Answer", "ask", "ask_command", "load_model", "parse_input"]


@attrs.frozen
class Answer:
    """What the model says about one input."""

    brain: str
    answer: str
    confidence: float
    next: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"brain": self.brain, "answer": self.answer, "confidence": self.confidence}
        if self.next is not None:
            out["next"] = self.next
        return out


def load_model(path: str | Path) -> tuple[SharedAGIModel, CognitiveRouter, dict[str, Any]]:
    """The model, its router and the checkpoint's meta, from a training checkpoint."""
    meta, arrays = load_training(path)
    try:
        model = SharedAGIModel.from_state(meta["model"], arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: inconsistent contents ({exc})") from exc
    threshold = float(meta["run"].get("threshold", 0.5))
    return model, CognitiveRouter(threshold, model.modules.values()), meta


def parse_input(text: str) -> Input:
    """INPUT as given on the command line: a JSON list/object, else text."""
    stripped = text.strip()
    if stripped[:1] in "[{":
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            return TextInput(text)
        return input_from_json(value)
    return TextInput(text)


def ask(model: SharedAGIModel, router: CognitiveRouter, inp: Input, max_chars: int = 40) -> Answer:
    """Route ``inp`` and decode the chosen brain's answer (RoutingError if none fits)."""
    brain = router.route(inp).name
    module = model.modules[brain]
    if brain != "text":
        model.write_to_slice(brain, [module.encode_input(inp)])
        model.forward()
        out = model.read_from_slice(brain)
        answers, conf = module.decode_with_confidence(out, [module.encode_input(inp)])
        return Answer(brain, answers[0], float(conf[0]))
    assert isinstance(inp, TextInput)
    text, produced, confidences = inp.text, "", []
    for _ in range(max_chars):
        model.write_to_slice(brain, [module.encode_input(TextInput(text))])
        model.forward()
        chars, conf = module.decode_with_confidence(model.read_from_slice(brain))
        produced += chars[0]
        text += chars[0]
        confidences.append(float(conf[0]))
        if chars[0] == ".":
            break
    answer = produced.strip().removesuffix(".")
    return Answer(brain, answer, float(np.prod(confidences)), next=produced[0])


@click.command("ask")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("input_text", metavar="INPUT")
@click.option("--json", "as_json", is_flag=True, help="Print {brain, answer, confidence} as JSON.")
def ask_command(checkpoint: Path, input_text: str, as_json: bool) -> None:
    """Ask a trained model: text, a [1, 2, 3] sequence, or a JSON image."""
    try:
        model, router, _ = load_model(checkpoint)
        result = ask(model, router, parse_input(input_text))
    except (CheckpointError, GraphemeTrainError, OSError) as exc:
        err = click.ClickException(str(exc))
        err.exit_code = 2
        raise err from None
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        click.echo(result.answer)
        click.echo(f"  brain {result.brain}, confidence {result.confidence:.3f}", err=True)
