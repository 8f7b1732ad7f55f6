"""A hyperparameter search against the default recipe at the same total time, as a user runs them:
`actiscope tune DATA --weights imagenet --time-limit MINUTES --per-trial P` and `actiscope train DATA
--weights imagenet --time-limit MINUTES`, on one split. Does the search find better, on test images it
never saw?

    .venv/bin/actiscope data split ../shared/data/har15 --out /tmp/bench/split.json   # 70/15/15, seed 0
    .venv/bin/python bench/bench_tune.py --split /tmp/bench/split.json --minutes 60 --per-trial 6

    # a smoke run (minutes, not an hour): the 300-image subset, a one-minute search
    .venv/bin/python bench/bench_tune.py --data ../shared/data/har15/labels-dev300.csv --minutes 1 --per-trial 0.5

Without --split the split is made in the output folder. The shared ImageNet files (../shared/data/weights)
are imported into a fresh weights store first (the offline path of bench_transfer.py). Both sides are
scored by `actiscope evaluate` (PyTorch backend) on the split's test images: the search's `best/` (the
best trial by validation accuracy, its model as trained within --per-trial) and the recipe's run. Printed:
test accuracy and macro-F1, the best validation accuracy, trials run and pruned, and wall minutes end to end.
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
SHARED = ROOT.parent / "shared" / "data"
ACTISCOPE = str(Path(sys.executable).with_name("actiscope"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=SHARED / "har15", help="dataset (default: har15)")
    parser.add_argument(
        "--split", type=Path, help="split.json of DATA, the same for both (default: a new one)"
    )
    parser.add_argument(
        "--model", default="mobilenet_v2", help="an architecture with weights in shared/data/weights"
    )
    parser.add_argument("--minutes", type=float, default=60, help="the total budget of each side")
    parser.add_argument("--per-trial", type=float, default=6, help="minutes per trial of the search")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="bench-tune-")))
    parser.add_argument("--extra", default="", help="options added to both commands (a change to try)")
    args = parser.parse_args()
    env = {**os.environ, "ACTISCOPE_WEIGHTS": str(args.out / "weights")}
    for file in sorted((SHARED / "weights").glob("*-imagenet.safetensors")):
        model = file.name.removesuffix("-imagenet.safetensors")
        subprocess.run([ACTISCOPE, "weights", "import", str(file), "--model", model], env=env, check=True)
    split = args.split or args.out / "split.json"
    if args.split is None:
        subprocess.run([ACTISCOPE, "data", "split", str(args.data), "--out", str(split)], env=env, check=True)
    common = [
        str(args.data),
        "--split",
        str(split),
        "--model",
        args.model,
        "--weights",
        "imagenet",
        *args.extra.split(),
    ]
    results = [search(common, args, env), recipe(common, args, env)]
    print("\n| side | budget | test acc | macro-F1 | best val acc | trials (pruned) | wall min |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['side']} | {args.minutes:g} min | {r['test_acc']:.4f} | {r['test_f1']:.4f} | {r['val_acc']:.4f} | "
            f"{r['trials']} | {r['wall_minutes']:.1f} |"
        )


def _run(command: list[str], log: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    with log.open("w") as fh:
        subprocess.run(command, env=env, stdout=fh, stderr=subprocess.STDOUT, check=True)
    return (time.perf_counter() - began) / 60


def search(common: list[str], args: argparse.Namespace, env: dict[str, str]) -> dict:
    out = args.out / "tune"
    command = [
        ACTISCOPE,
        "tune",
        *common,
        "--out",
        str(out),
        "--time-limit",
        f"{args.minutes:g}",
        "--per-trial",
        f"{args.per_trial:g}",
    ]
    wall = _run(command, args.out / "tune.log", env)
    metrics = json.loads((out / "best" / "eval" / "metrics.json").read_text())
    with (out / "leaderboard.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    best = json.loads((out / "best" / "trial.json").read_text())
    result = {
        "side": f"tune ({args.per_trial:g} min per trial)",
        "test_acc": metrics["accuracy"],
        "test_f1": metrics["f1"]["macro"],
        "val_acc": best["val_acc"],
        "trials": f"{len(rows)} ({sum(r['state'].startswith('pruned') for r in rows)})",
        "wall_minutes": round(wall, 2),
        "best": rows[0],
    }
    print(json.dumps(result), flush=True)
    return result


def recipe(common: list[str], args: argparse.Namespace, env: dict[str, str]) -> dict:
    runs = args.out / "runs"
    command = [
        ACTISCOPE,
        "train",
        *common,
        "--time-limit",
        f"{args.minutes:g}",
        "--export",
        "none",
        "--out",
        str(runs),
        "--name",
        "recipe",
    ]
    wall = _run(command, args.out / "recipe.log", env)
    wall += _run(
        [ACTISCOPE, "evaluate", str(runs / "recipe"), "--backend", "torch"], args.out / "eval.log", env
    )
    metrics = json.loads((runs / "recipe" / "eval" / "metrics.json").read_text())
    with (runs / "recipe" / "history.csv").open(newline="") as fh:
        val = max(float(r["val_acc"]) for r in csv.DictReader(fh) if r["val_acc"])
    result = {
        "side": "default recipe",
        "test_acc": metrics["accuracy"],
        "test_f1": metrics["f1"]["macro"],
        "val_acc": val,
        "trials": "1 (0)",
        "wall_minutes": round(wall, 2),
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
