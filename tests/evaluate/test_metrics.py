from __future__ import annotations

import json
import math

import numpy as np
import pytest

from actiscope.evaluate.metrics import classification_metrics

NAMES = ["a", "b", "c", "d"]  # c is never predicted, d is not in the test set at all
Y = np.array([0, 0, 1, 1, 2, 2])
P = np.array(
    [
        [0.7, 0.1, 0.1, 0.1],  # a -> a
        [0.3, 0.5, 0.1, 0.1],  # a -> b
        [0.1, 0.8, 0.05, 0.05],  # b -> b
        [0.2, 0.6, 0.1, 0.1],  # b -> b
        [0.5, 0.1, 0.3, 0.1],  # c -> a
        [0.4, 0.3, 0.1, 0.2],  # c -> a, and c is only 4th: a top-3 miss
    ]
)


@pytest.fixture(scope="module")
def m() -> dict:
    return classification_metrics(Y, P, NAMES)


def test_headline_numbers_match_hand_computation(m: dict) -> None:
    assert m["images"] == 6
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0) / 3)  # over the classes present
    assert m["top_k_accuracy"] == {"3": pytest.approx(5 / 6)}  # 4 classes: no top-5
    # observed agreement 1/2, chance (2*3 + 2*3) / 36 = 1/3 -> (1/2 - 1/3) / (2/3)
    assert m["cohen_kappa"] == pytest.approx(0.25)
    expected_loss = -np.mean(np.log([0.7, 0.3, 0.8, 0.6, 0.3, 0.1]))
    assert m["log_loss"] == pytest.approx(expected_loss)
    # confidences .7 .5 .8 .6 .5 .4, right/wrong 1 0 1 1 0 0; the two .5 share a bin
    assert m["expected_calibration_error"] == pytest.approx((0.3 + 2 * 0.5 + 0.2 + 0.4 + 0.4) / 6)


def test_per_class_and_averages(m: dict) -> None:
    a, b, c, d = m["per_class"]
    assert (a["precision"], a["recall"], a["f1"], a["support"]) == pytest.approx((1 / 3, 1 / 2, 0.4, 2))
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == pytest.approx((2 / 3, 1.0, 0.8, 2))
    assert c["precision"] is None and c["recall"] == 0 and c["f1"] == 0 and c["predicted"] == 0
    assert d["precision"] is None and d["recall"] is None and d["f1"] is None and d["support"] == 0
    assert c["roc_auc"] == pytest.approx(6.5 / 8)  # .3 beats all four negatives, .1 ties three of them
    assert d["roc_auc"] is None and d["average_precision"] is None
    # Undefined values are left out of the macro average, not counted as 0.
    assert m["precision"]["macro"] == pytest.approx(0.5)
    assert m["recall"]["macro"] == pytest.approx(0.5)
    assert m["f1"]["macro"] == pytest.approx(0.4)
    assert m["precision"]["micro"] == m["recall"]["micro"] == pytest.approx(0.5)
    assert m["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [2, 0, 0, 0], [0, 0, 0, 0]]
    assert any("d: not in the evaluated images" in n for n in m["undefined"])
    assert any("c: never predicted" in n for n in m["undefined"])


def test_json_has_no_nan(m: dict) -> None:
    text = json.dumps(m, allow_nan=False)  # raises on NaN or infinity
    assert "NaN" not in text

    def walk(value: object) -> None:
        if isinstance(value, dict):
            [walk(v) for v in value.values()]
        elif isinstance(value, list):
            [walk(v) for v in value]
        elif isinstance(value, float):
            assert math.isfinite(value)

    walk(m)


def test_perfect_predictions_with_five_or_more_classes() -> None:
    y = np.arange(6).repeat(2)
    probs = np.eye(6)[y] * 0.9 + 0.1 / 6
    m = classification_metrics(y, probs, [f"k{i}" for i in range(6)])
    assert m["accuracy"] == 1 and m["f1"]["macro"] == 1 and m["cohen_kappa"] == pytest.approx(1)
    assert set(m["top_k_accuracy"]) == {"3", "5"} and m["roc_auc"]["macro"] == pytest.approx(1)
    assert m["undefined"] == []
