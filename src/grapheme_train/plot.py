"""``grapheme-train plot``: per-domain loss curves from a metrics file (needs matplotlib)."""

from __future__ import annotations

from pathlib import Path

from grapheme_core.about import install_hint
from grapheme_train.errors import GraphemeTrainError
from grapheme_train.metrics import read_metrics
from grapheme_train.modules import DOMAINS

__all__ = ["PlotOutputError", "PlotUnavailableError", "plot_metrics"]


class PlotUnavailableError(GraphemeTrainError):
    """matplotlib is not installed."""


class PlotOutputError(GraphemeTrainError):
    """The image cannot be written there: unknown format, missing folder, no permission."""


def _check_output(output: Path, formats: dict[str, str]) -> None:
    """Refuse, before drawing, an output whose format or folder is unusable."""
    suffix = output.suffix.lower().lstrip(".")
    if suffix not in formats:
        known = ", ".join(f".{k}" for k in sorted(formats))
        raise PlotOutputError(f"-o {output}: unknown image format {output.suffix!r}; use {known}")
    parent = output.parent
    if not parent.is_dir():
        raise PlotOutputError(f"-o {output}: the folder {parent} does not exist; create it first")
    if output.is_dir():
        raise PlotOutputError(f"-o {output}: is a directory")


def _number(value: object) -> float:
    """A metrics figure as a float (NaN where the record has none)."""
    return float(value) if isinstance(value, int | float) else float("nan")


def plot_metrics(metrics: str | Path, output: str | Path) -> Path:
    """Draw the total and per-domain loss per epoch (log scale) into ``output``; for a
    ``--topology`` run, a second panel shows the trunk density and the edge count."""
    records, _ = read_metrics(metrics)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailableError(f"plotting needs matplotlib: {install_hint('plot')}") from None
    output = Path(output)
    probe = plt.figure()
    formats = probe.canvas.get_supported_filetypes()
    plt.close(probe)
    _check_output(output, formats)
    epochs = [r.epoch for r in records]
    density = [_number(r.extra.get("density")) for r in records]
    edges = [_number(r.extra.get("edges")) for r in records]
    topology = any(v == v for v in density)  # a --topology run: draw its trunk too
    fig, axes = plt.subplots(
        2 if topology else 1, 1, figsize=(7, 7 if topology else 4.5), dpi=120, squeeze=False
    )
    ax = axes[0][0]
    for domain in DOMAINS:
        values = [r.domain_loss.get(domain) for r in records]
        if any(v is not None for v in values):
            ax.plot(epochs, [float("nan") if v is None else v for v in values], label=domain)
    ax.plot(epochs, [r.loss for r in records], label="total", color="black", linewidth=2)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (per example)")
    ax.set_title(f"grapheme-train: loss per domain ({Path(metrics).name})")
    ax.grid(True, which="both", alpha=0.3)
    if topology:
        low = axes[1][0]
        low.plot(epochs, density, color="tab:purple", label="trunk density")
        low.set_ylabel("trunk density")
        low.set_xlabel("epoch")
        low.grid(True, alpha=0.3)
        right = low.twinx()
        right.plot(epochs, edges, color="tab:gray", linestyle="--", label="edges (model)")
        right.set_ylabel("edges")
        low.legend(loc="upper left")
        right.legend(loc="upper right")
    ax.legend()
    fig.tight_layout()
    try:
        fig.savefig(output)
    except OSError as exc:
        raise PlotOutputError(f"-o {output}: cannot write ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
    return output
