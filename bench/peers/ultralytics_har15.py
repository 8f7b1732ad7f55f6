"""Ultralytics peer: YOLO("yolov8n-cls.yaml") from scratch on actiscope's split, same time budget.

Ultralytics wants train/val/test folders of class folders; they are made of symlinks in a temp dir.
Its own `time` argument fits the schedule to the budget.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import read_split, score


def main() -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    parser = argparse.ArgumentParser()
    parser.add_argument("--split", required=True)
    parser.add_argument("--minutes", type=float, default=25)
    parser.add_argument("--size", type=int, default=112)
    args = parser.parse_args()
    start = time.time()

    _, files = read_split(args.split)
    root = Path(tempfile.mkdtemp(prefix="ul-har15-"))
    for split, items in files.items():
        for path, label in items:
            target = root / split / label / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    model = YOLO("yolov8n-cls.yaml")
    hours = (args.minutes - 1.5) / 60  # leave time for the test pass
    model.train(
        data=str(root),
        epochs=1000,
        time=hours,
        imgsz=args.size,
        batch=64,
        workers=2,
        device="cpu",
        pretrained=False,
        plots=False,
        project=str(root / "runs"),
        name="cls",
        exist_ok=True,
    )
    best = YOLO(str(root / "runs" / "cls" / "weights" / "best.pt"))
    true, predicted = [], []
    for path, label in files["test"]:
        result = best.predict(path, imgsz=args.size, device="cpu", verbose=False)[0]
        true.append(label)
        predicted.append(result.names[int(result.probs.top1)])
    epochs = len((root / "runs" / "cls" / "results.csv").read_text().splitlines()) - 1
    print(
        json.dumps(
            {
                "tool": "ultralytics",
                "model": "yolov8n-cls",
                "image_size": args.size,
                "epochs_done": epochs,
                "wall_minutes": round((time.time() - start) / 60, 2),
                **score(true, predicted),
            }
        )
    )


if __name__ == "__main__":
    main()
