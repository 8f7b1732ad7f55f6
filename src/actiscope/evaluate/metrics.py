"""Every number of an evaluation from true labels and predicted probabilities (scikit-learn does the math).

A value that is undefined on the data (the precision of a class never predicted, the recall or AUC of a
class absent from the test set) is None in the JSON and explained in `undefined`, never NaN or a silent 0.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

ECE_BINS = 15


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """y_true: (n,) class indices; probs: (n, C) rows summing to 1."""
    from sklearn import metrics as skm

    n_classes = len(class_names)
    labels = list(range(n_classes))
    y_pred = probs.argmax(1)
    support = np.bincount(y_true, minlength=n_classes)
    predicted = np.bincount(y_pred, minlength=n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about exactly the cases reported in `undefined`
        per_class = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=np.nan)
        averages = {
            average: skm.precision_recall_fscore_support(
                y_true, y_pred, labels=labels, average=average, zero_division=np.nan
            )
            for average in ("macro", "micro", "weighted")
        }
        balanced = skm.balanced_accuracy_score(y_true, y_pred)
        kappa = skm.cohen_kappa_score(y_true, y_pred, labels=labels)
    result: dict[str, Any] = {
        "images": len(y_true),
        "accuracy": float((y_pred == y_true).mean()),
        "balanced_accuracy": balanced,
        "top_k_accuracy": {
            str(k): skm.top_k_accuracy_score(y_true, probs, k=k, labels=labels)
            for k in (3, 5)
            if n_classes > k
        },
        **{
            name: {average: values[i] for average, values in averages.items()}
            for i, name in enumerate(("precision", "recall", "f1"))
        },
        "cohen_kappa": kappa,
        "log_loss": skm.log_loss(y_true, np.clip(probs, 1e-12, 1.0), labels=labels),
        "expected_calibration_error": calibration(y_true, probs)["ece"],
    }
    roc, ap = _one_vs_rest(y_true, probs, n_classes)
    result["roc_auc"] = {"micro": roc.pop("micro"), "macro": roc.pop("macro")}
    result["average_precision"] = {"micro": ap.pop("micro"), "macro": ap.pop("macro")}
    result["per_class"] = [
        {
            "class": name,
            "precision": per_class[0][c],
            "recall": per_class[1][c],
            "f1": per_class[2][c],
            "support": int(support[c]),
            "predicted": int(predicted[c]),
            "roc_auc": roc[c],
            "average_precision": ap[c],
        }
        for c, name in enumerate(class_names)
    ]
    result["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    result["undefined"] = _undefined_notes(class_names, support, predicted)
    return _json_safe(result)


def calibration(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> dict[str, Any]:
    """Expected calibration error over equal-width confidence bins, and the bins (for reliability.png)."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        acc, conf = float(correct[mask].mean()), float(confidence[mask].mean())
        ece += mask.mean() * abs(acc - conf)
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": int(mask.sum()),
                "accuracy": acc,
                "confidence": conf,
            }
        )
    return {"ece": float(ece), "bins": rows}


def _one_vs_rest(
    y_true: np.ndarray, probs: np.ndarray, n_classes: int
) -> tuple[dict[Any, float | None], dict[Any, float | None]]:
    """Per-class ROC AUC and average precision (None where undefined), plus micro and macro averages."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    onehot = np.eye(n_classes, dtype=int)[y_true]
    roc: dict[Any, float | None] = {}
    ap: dict[Any, float | None] = {}
    for c in range(n_classes):
        positives = int(onehot[:, c].sum())
        roc[c] = float(roc_auc_score(onehot[:, c], probs[:, c])) if 0 < positives < len(y_true) else None
        ap[c] = float(average_precision_score(onehot[:, c], probs[:, c])) if positives else None
    for scores, score in ((roc, roc_auc_score), (ap, average_precision_score)):
        defined = [v for v in scores.values() if v is not None]
        scores["macro"] = float(np.mean(defined)) if defined else None
        scores["micro"] = float(score(onehot.ravel(), probs.ravel())) if len(y_true) else None
    return roc, ap


def _undefined_notes(class_names: Sequence[str], support: np.ndarray, predicted: np.ndarray) -> list[str]:
    notes = []
    for c, name in enumerate(class_names):
        if support[c] == 0:
            notes.append(f"{name}: not in the evaluated images; its recall, ROC AUC and AP are undefined")
        if predicted[c] == 0:
            notes.append(f"{name}: never predicted; its precision is undefined")
    return notes


def _json_safe(value: Any) -> Any:
    """NaN and numpy scalars out: undefined numbers become None."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
