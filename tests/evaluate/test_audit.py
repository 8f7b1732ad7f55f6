"""The label audit: confident learning finds labels flipped on purpose, on features and on real images."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest

from actiscope.evaluate.audit import (
    AuditError,
    audit,
    confident_joint,
    label_issues,
    out_of_sample_probabilities,
)
from tests.conftest import SHARED_DATA

WEIGHTS = SHARED_DATA / "weights" / "mobilenet_v2-imagenet.safetensors"
HAR15 = SHARED_DATA / "har15"


def _flip(
    labels: np.ndarray, fraction: float, classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, set[int]]:
    flipped = rng.choice(len(labels), int(fraction * len(labels)), replace=False)
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, classes, len(flipped))) % classes
    return noisy, set(flipped.tolist())


def test_the_confident_joint_counts_by_per_class_thresholds() -> None:
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6], [0.95, 0.05]])
    joint, confident, thresholds = confident_joint(labels, probs)
    assert np.allclose(thresholds, [0.8, (0.8 + 0.6 + 0.05) / 3])
    # image 1 (p=0.7 for class 0 under a 0.8 threshold, 0.3 for class 1 under 0.48) counts for no class
    assert confident.tolist() == [0, -1, 1, 1, 0]
    assert joint.tolist() == [[1, 0], [1, 2]]
    assert label_issues(labels, probs).tolist() == [4]


def test_flipped_labels_are_found_with_high_precision_and_recall() -> None:
    rng = np.random.default_rng(0)
    classes, per_class = 6, 80
    centres = rng.normal(0, 3, (classes, 16))
    labels = np.repeat(np.arange(classes), per_class)
    features = centres[labels] + rng.normal(0, 1, (len(labels), 16))
    noisy, flipped = _flip(labels, 0.1, classes, rng)
    probs = out_of_sample_probabilities(features, noisy, folds=5, seed=0)
    found = set(label_issues(noisy, probs).tolist())
    precision, recall = len(found & flipped) / len(found), len(found & flipped) / len(flipped)
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)
    # least likely given label first: the first issues are flipped ones
    assert set(label_issues(noisy, probs)[:20].tolist()) <= flipped


def test_too_few_images_for_the_folds_is_one_clear_error() -> None:
    with pytest.raises(AuditError, match="smallest class has only 3 images"):
        out_of_sample_probabilities(np.zeros((6, 2)), np.array([0, 0, 0, 1, 1, 1]), folds=5)


@pytest.mark.skipif(
    not (WEIGHTS.is_file() and HAR15.is_dir()), reason="needs ../shared/data (har15 and weights)"
)
def test_the_audit_finds_flipped_har15_labels(tmp_path: Path) -> None:
    """dev300 (300 real images, 15 classes) with 10% of its labels flipped to another class on purpose."""
    rng = np.random.default_rng(0)
    with open(HAR15 / "labels-dev300.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    names = sorted({r["label"] for r in rows})
    labels = np.array([names.index(r["label"]) for r in rows])
    noisy, flipped = _flip(labels, 0.1, len(names), rng)
    data = tmp_path / "data"
    data.mkdir()
    (data / "images").symlink_to((HAR15 / "images").resolve())
    with open(data / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "label"])
        writer.writerows([r["filename"], names[y]] for r, y in zip(rows, noisy, strict=True))
    result = audit(data, out=tmp_path / "audit", weights=str(WEIGHTS), folds=5)
    flipped_files = {rows[i]["filename"] for i in flipped}
    top = [Path(i.file).name for i in result.issues[: 2 * len(flipped)]]
    recall = len(set(top) & flipped_files) / len(flipped_files)
    precision = len(set(top[: len(flipped)]) & flipped_files) / len(flipped)
    assert recall >= 0.6 and precision >= 0.5, (precision, recall, len(result.issues))
    with open(result.table, newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert [r["rank"] for r in table[:3]] == ["1", "2", "3"] and all(r["exclude"] == "yes" for r in table)
    assert result.grid.is_file() and result.summary.is_file() and result.images == 300


def test_audit_then_exclude_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Three images moved into the wrong class folder: the audit ranks them first, and split and train
    leave out what the reviewed audit.csv marks."""
    import torch

    from actiscope.cli import main
    from actiscope.data.split import SplitManifest
    from actiscope.engine.fit import split_manifest
    from actiscope.models.registry import create_model
    from actiscope.options import TrainOptions

    data, classes, moved = _colours_with_three_moved(tmp_path / "data")
    torch.manual_seed(0)
    weights = tmp_path / "features.pth"  # any fixed network: colours separate on its features
    torch.save(create_model("simple-cnn", len(classes)).state_dict(), weights)
    code = main(
        [
            "data",
            "audit",
            str(data),
            "--model",
            "simple-cnn",
            "--weights",
            str(weights),
            "--image-size",
            "32",
            "--folds",
            "4",
            "--out",
            str(tmp_path / "audit"),
        ]
    )
    assert code == 0
    table = tmp_path / "audit" / "audit.csv"
    with open(table, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    found = [r for r in rows if Path(r["file"]).name in {p.name for p in moved}]
    assert len(found) >= 2 and rows[: len(found)] == found  # the moved images first, nothing else before them
    assert all(r["suggested"] == classes[0] for r in found)
    assert "images whose given label is unlikely" in capsys.readouterr().out
    # the reviewer keeps the first as it is: only the other two are excluded
    rows[0]["exclude"] = "no"
    with open(table, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert (
        main(["data", "split", str(data), "--exclude", str(table), "--out", str(tmp_path / "split.json")])
        == 0
    )
    kept = {Path(e.path).name for e in SplitManifest.load(tmp_path / "split.json").entries}
    gone = {Path(r["file"]).name for r in rows if r["exclude"] == "yes"}
    assert gone and not kept & gone and Path(rows[0]["file"]).name in kept
    manifest = split_manifest(TrainOptions.from_flat(data=str(data), exclude=str(table)))
    assert not {Path(e.path).name for e in manifest.entries} & gone


def test_without_pretrained_weights_a_cnn_per_fold_finds_the_moved_images(
    tmp_path: Path, offline_weights: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`--weights auto` where no weights can be had (offline, nothing imported): a warning says so and the
    quick recipe trains a small CNN from scratch per fold; of three images moved into the wrong class
    folder, most are still ranked first, with their true class suggested."""
    data, classes, moved = _colours_with_three_moved(tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="actiscope"):
        result = audit(data, out=tmp_path / "audit", weights="auto", image_size=32, folds=4)
    assert "audit from scratch, no pretrained weights" in caplog.text
    assert "actiscope weights import" in caplog.text
    assert result.method == "scratch" and result.images == 20 * len(classes)
    # a weaker recipe than pretrained features (which rank all three first, above): most of them, first
    top = {Path(i.file).name for i in result.issues[:5]}
    found = {m.name for m in moved} & top
    assert len(found) >= 2, [(i.file, i.p_given) for i in result.issues[:8]]
    assert all(i.suggested == classes[0] for i in result.issues if Path(i.file).name in found)


def _colours_with_three_moved(root: Path) -> tuple[Path, list[str], list[Path]]:
    """Colour classes of 20 images at 32 px, three of the first class moved into the second's folder."""
    import shutil

    from tests.conftest import write_colour_classes

    data = write_colour_classes(root, per_class=20, size=32)
    classes = sorted(p.name for p in data.iterdir())
    moved = []
    for image in sorted((data / classes[0]).iterdir())[:3]:
        moved.append(data / classes[1] / ("moved-" + image.name))
        shutil.move(image, moved[-1])
    return data, classes, moved
