"""Plain-text tables for the trainer's terminal output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from grapheme_train.model import SharedAGIModel
from grapheme_train.modules import DOMAINS
from grapheme_train.trainer import DomainScore, EpochRecord

__all__ = ["epoch_header", "epoch_row", "evaluation_table", "slice_table", "table"]


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,)
) -> list[str]:
    """Columns right-aligned except those in ``left``, with a rule under the header."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = (
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(parts).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def slice_table(model: SharedAGIModel, examples: Mapping[str, int]) -> list[str]:
    """Brain slices: input and output node ranges, sizes, training examples."""
    rows = []
    for brain, sl in model.slices.items():
        ins, outs = sl.input_range, sl.output_range
        rows.append(
            [
                brain,
                f"{ins.start}..{ins.stop - 1}" if ins else "-",
                str(sl.input_count),
                f"{outs.start}..{outs.stop - 1}" if outs else "-",
                str(sl.output_count),
                str(examples.get(brain, 0)),
            ]
        )
    rows.append(
        ["total", "", str(model.n_inputs), "", str(model.n_outputs), str(sum(examples.values()))]
    )
    return table(["brain", "inputs", "n_in", "outputs", "n_out", "examples"], rows)


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.3e}"


_EPOCH_COLUMNS = ["epoch", *DOMAINS, "total", "delta"]
_EPOCH_WIDTHS = [6] + [max(len(d), 9) for d in DOMAINS] + [9, 10]
# a --topology run adds the model's edge count and the trunk's density
_TOPOLOGY_COLUMNS, _TOPOLOGY_WIDTHS = ["edges", "density"], [9, 7]


def _fixed(cells: Sequence[str], widths: Sequence[int]) -> str:
    parts = (
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )
    return "  ".join(parts)


def _widths(topology: bool) -> list[int]:
    return _EPOCH_WIDTHS + (_TOPOLOGY_WIDTHS if topology else [])


def epoch_header(topology: bool = False) -> list[str]:
    """Header and rule of the per-epoch table (``topology``: with edges and density)."""
    columns = _EPOCH_COLUMNS + (_TOPOLOGY_COLUMNS if topology else [])
    widths = _widths(topology)
    return [_fixed(columns, widths), "  ".join("-" * w for w in widths)]


def epoch_row(record: EpochRecord, topology: bool = False) -> str:
    """One row of the per-epoch table (aligned with :func:`epoch_header`)."""
    delta = "-" if record.delta is None else f"{record.delta:+.2e}"
    losses = (_loss(record.domain_loss.get(d)) for d in DOMAINS)
    cells = [str(record.epoch), *losses, _loss(record.loss), delta]
    if topology:
        edges, density = record.extra.get("edges"), record.extra.get("density")
        cells.append("-" if edges is None else str(edges))
        cells.append(f"{density:.4f}" if isinstance(density, int | float) else "-")
    return _fixed(cells, _widths(topology))


def evaluation_table(scores: Mapping[str, DomainScore]) -> list[str]:
    """Per-domain examples, exact-match % and mean loss, with a total row."""
    rows = []
    total = correct = 0
    loss_sum = 0.0
    misrouted = 0
    for domain in DOMAINS:
        s = scores.get(domain)
        if s is None:
            continue
        exact = "-" if s.exact_match is None else f"{100 * s.exact_match:.1f}%"
        rows.append([domain, str(s.examples), exact, _loss(s.loss), str(s.misrouted)])
        if s.examples and s.exact_match is not None and s.loss is not None:
            total += s.examples
            correct += round(s.exact_match * s.examples)
            loss_sum += s.loss * s.examples
            misrouted += s.misrouted
    if total:
        rows.append(
            [
                "all",
                str(total),
                f"{100 * correct / total:.1f}%",
                _loss(loss_sum / total),
                str(misrouted),
            ]
        )
    return table(["domain", "examples", "exact-match", "mean loss", "misrouted"], rows)
