"""The ``--metrics-out`` JSONL file: one object per epoch, then one with the evaluation.

Epoch lines: ``{"epoch": k, "loss": L, "domain_loss": {domain: L_d}, "delta": L - L_prev}``.
Last line: ``{"evaluation": {"train": {domain: {"examples", "exact_match", "loss",
"misrouted"}}, "heldout": {...}}}``. Times are left out so that two runs with one seed
write identical files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from grapheme_train.errors import DataError
from grapheme_train.trainer import DomainScore, EpochRecord

__all__ = ["MetricsWriter", "evaluation_json", "read_metrics"]


def evaluation_json(evaluation: Mapping[str, Mapping[str, DomainScore]]) -> dict[str, Any]:
    """``{set: {domain: score}}`` as plain JSON data."""
    return {
        name: {d: s.to_json() for d, s in scores.items()} for name, scores in evaluation.items()
    }


class MetricsWriter:
    """Writes the metrics file line by line (flushed), starting with ``history``."""

    def __init__(self, path: str | Path, history: Iterable[EpochRecord] = ()) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = self.path.open("w", encoding="utf-8")
        for record in history:
            self.write_epoch(record)

    def _write(self, obj: Mapping[str, Any]) -> None:
        self._fh.write(json.dumps(obj) + "\n")
        self._fh.flush()

    def write_epoch(self, record: EpochRecord) -> None:
        self._write(record.to_json())

    def write_evaluation(self, evaluation: Mapping[str, Mapping[str, DomainScore]]) -> None:
        self._write({"evaluation": evaluation_json(evaluation)})

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_numbers(obj: Mapping[str, Any]) -> None:
    """Losses must be JSON numbers (a string or bool would be coerced silently)."""
    values = [("epoch", obj.get("epoch")), ("loss", obj.get("loss"))]
    values += [(f"domain_loss.{k}", v) for k, v in dict(obj.get("domain_loss", {})).items()]
    for key, value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, got {value!r:.40}")
    if isinstance(obj["epoch"], float):
        raise ValueError(f"epoch must be an integer, got {obj['epoch']!r}")


def read_metrics(path: str | Path) -> tuple[list[EpochRecord], dict[str, Any] | None]:
    """Epoch records and the evaluation (if present); ``DataError`` as ``file:line: why``."""
    path = Path(path)
    records: list[EpochRecord] = []
    evaluation = None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(str(path), f"cannot read: {exc}") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if "evaluation" in obj:
                evaluation = obj["evaluation"]
                continue
            _check_numbers(obj)
            record = EpochRecord.from_json(obj)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise DataError(f"{path}:{lineno}", f"not a metrics line ({exc})") from None
        records.append(record)
    if not records:
        raise DataError(str(path), "no epoch lines")
    return records, evaluation
