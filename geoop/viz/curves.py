"""Training curves: train loss and validation error per epoch."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure


def plot_history(history: Sequence[dict], path: str | Path, title: str = "training") -> Path:
    """PNG of the `metrics.jsonl` records: train loss and (when present) validation relative L2, log scale."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.semilogy(epochs, [h["train_loss"] for h in history], label="train (relative L2)")
    if any("val_rel_l2" in h for h in history):
        ax.semilogy([h["epoch"] for h in history if "val_rel_l2" in h],
                    [h["val_rel_l2"] for h in history if "val_rel_l2" in h], label="validation (relative L2)")
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
