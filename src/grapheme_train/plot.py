"""``grapheme-train plot``: per-domain loss curves from a metrics file (needs matplotlib)."""

from __future__ import annotations

from pathlib import Path

from grapheme_core.about import install_hint
from grapheme_train.errors import GraphemeTrainError
from grapheme_train.metrics import read_metrics
from grapheme_train.modules import DOMAINS

__all__ = ["PlotUnavailableError", "plot_metrics"]


class PlotUnavailableError(GraphemeTrainError):
    """matplotlib is not installed."""


def plot_metrics(metrics: str | Path, output: str | Path) -> Path:
    """Draw the total and per-domain loss per epoch (log scale) into ``output``."""
    records, _ = read_metrics(metrics)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailableError(f"plotting needs matplotlib: {install_hint('plot')}") from None
    epochs = [r.epoch for r in records]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for domain in DOMAINS:
        values = [r.domain_loss.get(domain) for r in records]
        if any(v is not None for v in values):
            ax.plot(epochs, [float("nan") if v is None else v for v in values], label=domain)
    ax.plot(epochs, [r.loss for r in records], label="total", color="black", linewidth=2)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared error")
    ax.set_title(f"grapheme-train: loss per domain ({Path(metrics).name})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output)
    plt.close(fig)
    return output
