"""Transfer learning from ImageNet on har15, as a user runs it: `actiscope train DATA --model M --weights
imagenet [--mode linear] --time-limit MINUTES` with every other option from the recipe, one run after the
other on the same split, against the from-scratch recipe at the same budget.

    .venv/bin/actiscope data split ../shared/data/har15 --out /tmp/bench/split.json   # 70/15/15, seed 0
    .venv/bin/python bench/bench_transfer.py --split /tmp/bench/split.json --minutes 10,30 \\
        [--runs mobilenet_v2:finetune,mobilenet_v2:linear,squeezenet1_0:finetune,squeezenet1_0:linear,resnet18:scratch]

The shared ImageNet files (../shared/data/weights) are imported into a fresh weights store first, so
`--weights imagenet` takes the offline path a user on a closed network takes. Per run: test accuracy and
macro-F1 (the best-validation checkpoint on the test split, never trained on), the best validation
accuracy (the run's own figure; it should agree with the test figure within about 2 points), epochs, and
the wall time end to end. Linear runs ignore the budget: they take what one feature pass and the head
take. The fastai peer on the same weights and split: peers/fastai_transfer.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT.parent / "shared" / "data" / "weights"
ACTISCOPE = str(Path(sys.executable).with_name("actiscope"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", required=True, help="split.json of har15 (the same for every run)")
    parser.add_argument("--minutes", default="10", help="comma-separated budgets")
    parser.add_argument(
        "--runs",
        default="mobilenet_v2:finetune,mobilenet_v2:linear,squeezenet1_0:finetune,"
        "squeezenet1_0:linear,resnet18:scratch",
    )
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="bench-transfer-")))
    parser.add_argument("--extra", default="", help="options added to every train command (a change to try)")
    args = parser.parse_args()
    env = {**os.environ, "ACTISCOPE_WEIGHTS": str(args.out / "weights")}
    for file in sorted(WEIGHTS.glob("*-imagenet.safetensors")):
        model = file.name.removesuffix("-imagenet.safetensors")
        subprocess.run([ACTISCOPE, "weights", "import", str(file), "--model", model], env=env, check=True)
    results = []
    for minutes in args.minutes.split(","):
        for spec in args.runs.split(","):
            model, mode = spec.split(":")
            if mode == "linear" and any(r["run"] == spec for r in results):
                continue  # no budget to follow: once is enough
            results.append(run(model, mode, float(minutes), args, env))
            print(json.dumps(results[-1]), flush=True)
    print("\n| run | budget | test acc | macro-F1 | best val acc | val - test | epochs | wall min |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['run']} | {r['budget']} | {r['test_acc']:.4f} | {r['test_f1']:.4f} | {r['val_acc']:.4f} | "
            f"{100 * (r['val_acc'] - r['test_acc']):+.1f} pt | {r['epochs']} | {r['wall_minutes']:.1f} |"
        )


def run(model: str, mode: str, minutes: float, args: argparse.Namespace, env: dict[str, str]) -> dict:
    name = f"{model}-{mode}-{minutes:g}"
    command = [
        ACTISCOPE,
        "train",
        str(ROOT.parent / "shared" / "data" / "har15"),
        "--split",
        args.split,
        "--model",
        model,
        "--out",
        str(args.out),
        "--name",
        name,
        "--export",
        "none",
    ]
    if mode == "scratch":  # the from-scratch recipe, as `--weights auto` falls back to it
        command += [
            "--image-size",
            "112",
            "--batch-size",
            "64",
            "--epochs",
            "30",
            "--lr",
            "2e-3",
            "--warmup-epochs",
            "1",
            "--label-smoothing",
            "0.1",
            "--time-limit",
            f"{minutes:g}",
        ]
    else:
        command += ["--weights", "imagenet", "--mode", mode]
        if mode == "finetune":
            command += ["--time-limit", f"{minutes:g}"]
    command += args.extra.split()
    began = time.perf_counter()
    log = args.out / f"{name}.log"
    with log.open("w") as fh:
        subprocess.run(command, env=env, stdout=fh, stderr=subprocess.STDOUT, check=True)
    wall = (time.perf_counter() - began) / 60
    meta = json.loads((args.out / name / "model" / "model.json").read_text())
    with (args.out / name / "history.csv").open() as fh:
        history = list(csv.DictReader(fh))
    m = meta["metrics"]
    return {
        "run": f"{model}:{mode}",
        "budget": f"{minutes:g} min" if mode != "linear" else "-",
        "test_acc": m["test_acc"],
        "test_f1": m["test_f1"],
        "val_acc": max(float(r["val_acc"]) for r in history),
        "epochs": len(history),
        "wall_minutes": round(wall, 2),
        "precision": m.get("precision"),
        "recipe": next((line for line in log.read_text().splitlines() if line.startswith("recipe:")), ""),
    }


if __name__ == "__main__":
    main()
