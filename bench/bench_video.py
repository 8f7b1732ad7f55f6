"""Video models on the moving-squares task (actiscope.data.synthetic) at a fixed training budget.

For each model: held-out test accuracy (whole recordings kept out by the group-aware split), training
clips/s, and inference clips/s at batch 16 with PyTorch and with ONNX Runtime. Chance is 25%; a model
without time (frame-avg) cannot beat it by construction.

    .venv/bin/python bench/bench_video.py [--minutes 3] [--models convlstm,cnn-lstm,...] [--out DIR]

Run it alone: two cores shared with anything else make every figure wrong.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

MODELS = "convlstm,cnn-lstm,cnn-gru,frame-avg,r3d_18,r2plus1d_18,mc3_18"


def inference_rate(predictor: object, batch: np.ndarray, repeats: int = 5) -> float:
    predictor.probabilities(batch)  # type: ignore[attr-defined]
    start = time.perf_counter()
    for _ in range(repeats):
        predictor.probabilities(batch)  # type: ignore[attr-defined]
    return repeats * len(batch) / (time.perf_counter() - start)


def main() -> None:
    from actiscope.data.split import SplitManifest
    from actiscope.data.synthetic import make_moving_squares
    from actiscope.models.video import VIDEO_CNNS
    from actiscope.options import TrainOptions
    from actiscope.predict import Predictor
    from actiscope.workflows import train

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget per model")
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-video"))
    args = parser.parse_args()
    data = args.out / "squares"
    if not data.exists():
        make_moving_squares(data, clips_per_class=60, groups=20)
    rows = []
    for name in args.models.split(","):
        run = args.out / "runs" / name
        if not (run / "model" / "model.json").is_file():
            lr = 1e-3 if name in VIDEO_CNNS else 3e-3  # the ResNet-sized 3D CNNs: the rate the tests use
            config = TrainOptions.from_flat(
                data=str(data),
                model=name,
                image_size=32,
                frames=16,
                epochs=200,
                lr=lr,
                batch_size=16,
                warmup_epochs=1,
                augment="none",
                time_limit=args.minutes,
                out=str(args.out / "runs"),
                name=name,
                export="onnx",
                workers=0,
            )
            train(config)
        meta = json.loads((run / "model" / "model.json").read_text())
        with open(run / "history.csv", newline="") as fh:
            history = list(csv.DictReader(fh))
        train_rate = float(np.median([float(r["train_images_per_s"]) for r in history]))
        test = SplitManifest.load(run / "split.json").samples("test")
        torch_predictor = Predictor.load(run, backend="torch")
        batch = np.stack([torch_predictor.preprocess(s.path) for s in test[:16]])
        rates = {"torch": inference_rate(torch_predictor, batch)}
        if (run / "model" / "model.onnx").is_file():
            rates["onnx"] = inference_rate(Predictor.load(run, backend="onnx"), batch)
        rows.append((name, meta["metrics"]["test_acc"], len(history), train_rate, rates))
        print(
            f"{name}: test accuracy {meta['metrics']['test_acc']:.3f} after {len(history)} epochs", flush=True
        )

    print(
        f"\n| model | test accuracy | epochs in {args.minutes:g} min | train clips/s | "
        "infer clips/s torch | infer clips/s ONNX |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, acc, epochs, train_rate, rates in rows:
        onnx = f"{rates['onnx']:.1f}" if "onnx" in rates else "-"
        print(f"| {name} | {acc:.3f} | {epochs} | {train_rate:.1f} | {rates['torch']:.1f} | {onnx} |")


if __name__ == "__main__":
    main()
