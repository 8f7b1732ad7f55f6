"""curves.png: a run's loss and accuracy per epoch, drawn from its history (matplotlib, Agg backend).

It lives beside the training loop that writes the history (engine), not with the evaluation plots: the
engine draws it after every epoch, and nothing in the engine may import the evaluation layer above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from actiscope.files import atomic_output


def plot_curves(rows: Sequence[dict[str, float]], path: Path) -> None:
    """Loss and accuracy per epoch, train and validation, with the best validation epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, title in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "accuracy")):
        for stage, style in (("train", "-"), ("val", "-o")):
            values = [r.get(f"{stage}_{metric}") for r in rows]
            points = [(e, v) for e, v in zip(epochs, values, strict=True) if v is not None and v == v]
            if points:
                ax.plot(*zip(*points, strict=True), style, label=stage, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    val = [(r["epoch"], r["val_acc"]) for r in rows if r.get("val_acc") is not None]
    if val:
        best_epoch, best_acc = max(val, key=lambda p: p[1])
        for ax in (loss_ax, acc_ax):
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1)
        acc_ax.annotate(
            f"best {best_acc:.3f} @ {best_epoch}",
            (best_epoch, best_acc),
            textcoords="offset points",
            xytext=(5, -12),
            fontsize=8,
        )
    loss_ax.legend()
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
