"""Plots as PNG files (matplotlib, Agg backend), written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actiscope.files import atomic_output


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    _pyplot().close(fig)


def _class_font(n: int) -> float:
    return max(4.0, min(10.0, 200 / max(n, 1)))


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Counts and row-normalised side by side; the figure grows with the classes (readable at 40)."""
    plt = _pyplot()
    n = len(class_names)
    side = max(5.0, 0.32 * n + 2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side, side))
    rows = matrix.sum(1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    font = _class_font(n)
    for ax, values, title, fmt in (
        (axes[0], matrix, "counts", "d"),
        (axes[1], normalised, "row-normalised (recall)", ".2f"),
    ):
        image = ax.imshow(values, cmap="Blues")
        ax.set_xticks(range(n), class_names, rotation=90, fontsize=font)
        ax.set_yticks(range(n), class_names, fontsize=font)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        if n <= 25:  # numbers in the cells while they fit
            top = values.max() if values.size else 0
            for i in range(n):
                for j in range(n):
                    ax.text(
                        j,
                        i,
                        format(values[i, j], fmt),
                        ha="center",
                        va="center",
                        fontsize=font * 0.8,
                        color="white" if values[i, j] > top / 2 else "black",
                    )
    _save(fig, path)


def plot_roc(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """One-vs-rest ROC per class with its AUC, plus the micro and macro averages."""
    from sklearn.metrics import auc, roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    onehot = np.eye(len(class_names), dtype=int)[y_true]
    grid, curves = np.linspace(0, 1, 201), []
    for c, name in enumerate(class_names):
        if 0 < onehot[:, c].sum() < len(y_true):
            fpr, tpr, _ = roc_curve(onehot[:, c], probs[:, c])
            curves.append(np.interp(grid, fpr, tpr))
            ax.plot(fpr, tpr, linewidth=0.8, alpha=0.6, label=f"{name} ({auc(fpr, tpr):.2f})")
    fpr, tpr, _ = roc_curve(onehot.ravel(), probs.ravel())
    ax.plot(fpr, tpr, "k-", linewidth=2, label=f"micro average ({auc(fpr, tpr):.2f})")
    if curves:
        macro = np.mean(curves, axis=0)
        ax.plot(grid, macro, "k--", linewidth=2, label=f"macro average ({auc(grid, macro):.2f})")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, one class vs rest")
    ax.legend(
        fontsize=_class_font(len(class_names) + 2) * 0.8, loc="lower right", ncol=1 + len(class_names) // 20
    )
    _save(fig, path)


def plot_pr(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Precision-recall per class with its average precision, plus the micro average."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    onehot = np.eye(len(class_names), dtype=int)[y_true]
    for c, name in enumerate(class_names):
        if onehot[:, c].any():
            precision, recall, _ = precision_recall_curve(onehot[:, c], probs[:, c])
            ap = average_precision_score(onehot[:, c], probs[:, c])
            ax.plot(recall, precision, linewidth=0.8, alpha=0.6, label=f"{name} ({ap:.2f})")
    precision, recall, _ = precision_recall_curve(onehot.ravel(), probs.ravel())
    ap = average_precision_score(onehot.ravel(), probs.ravel())
    ax.plot(recall, precision, "k-", linewidth=2, label=f"micro average ({ap:.2f})")
    ax.set(xlabel="recall", ylabel="precision", title="precision-recall (average precision)", ylim=(0, 1.02))
    ax.legend(
        fontsize=_class_font(len(class_names) + 2) * 0.8, loc="lower left", ncol=1 + len(class_names) // 20
    )
    _save(fig, path)


def plot_reliability(bins: Sequence[dict[str, float]], ece: float, path: Path) -> None:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    plt = _pyplot()
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(6, 7), height_ratios=(3, 1), sharex=True)
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    width = (bins[0]["high"] - bins[0]["low"]) if bins else 0.1
    ax.bar(centres, [b["accuracy"] for b in bins], width=width * 0.9, label="accuracy", alpha=0.7)
    ax.plot(
        [b["confidence"] for b in bins],
        [b["accuracy"] for b in bins],
        "ro-",
        markersize=3,
        label="mean confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set(ylabel="accuracy", title=f"reliability (ECE {ece:.3f})", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    counts.bar(centres, [b["count"] for b in bins], width=width * 0.9, color="grey")
    counts.set(xlabel="confidence", ylabel="images")
    _save(fig, path)


def plot_per_class(names: Sequence[str], f1: Sequence[float | None], path: Path) -> None:
    """F1 per class, best first; an undefined F1 is drawn as a gap and labelled."""
    plt = _pyplot()
    order = sorted(range(len(names)), key=lambda i: -1.0 if (v := f1[i]) is None else v, reverse=True)
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.25 * len(names) + 1)))
    values = [f1[i] or 0.0 for i in order]
    ax.barh(
        range(len(order)), values, color=["tab:blue" if f1[i] is not None else "lightgrey" for i in order]
    )
    ax.set_yticks(
        range(len(order)),
        [names[i] + ("" if f1[i] is not None else " (undefined)") for i in order],
        fontsize=_class_font(len(names)),
    )
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="F1", title="F1 per class")
    for y, v in enumerate(values):
        ax.text(v + 0.01, y, f"{v:.2f}", va="center", fontsize=_class_font(len(names)) * 0.8)
    _save(fig, path)


def plot_mistakes(
    items: Sequence[tuple[Path, str, str, float]],
    path: Path,
    *,
    columns: int = 4,
    labels: tuple[str, str] = ("true", "predicted"),
) -> None:
    """The most confident wrong predictions: (image or clip, true, predicted, confidence), one tile each
    (a clip shows its middle frame). `labels` names the two labels (the audit's given and suggested)."""
    from PIL import Image

    from actiscope.data.images import load_image
    from actiscope.data.video import is_video_path, preview_frame

    plt = _pyplot()
    rows = max(1, -(-len(items) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (image_path, true, predicted, confidence) in zip(axes.ravel(), items, strict=False):
        image = (
            Image.fromarray(preview_frame(image_path))
            if is_video_path(image_path)
            else load_image(image_path)
        )
        image.thumbnail((256, 256))
        ax.imshow(image)
        ax.set_title(f"{labels[0]}: {true}\n{labels[1]}: {predicted} ({confidence:.2f})", fontsize=8)
    if not items:
        axes[0, 0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    _save(fig, path)


def plot_compare(points: Sequence[tuple[str, float, float, float]], ylabel: str, path: Path) -> None:
    """(name, inference ms, score, parameters in millions) per model: score against inference cost."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, ms, score, params in points:
        ax.scatter(ms, score, s=30 + 8 * params, alpha=0.7)
        ax.annotate(name, (ms, score), textcoords="offset points", xytext=(5, 5), fontsize=8)
    from matplotlib.ticker import ScalarFormatter

    ax.set_xscale("log")
    for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis(ScalarFormatter())
    ax.set(
        xlabel="CPU inference ms/image (batch 1, log scale)",
        ylabel=ylabel,
        title=f"{ylabel} against inference cost (marker size: parameters)",
    )
    ax.grid(alpha=0.3)
    _save(fig, path)
