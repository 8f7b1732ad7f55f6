"""From scratch against the peers (issue #20): actiscope's `train --weights none --time-limit M` as a user runs
it, Ultralytics `yolov8n-cls` from scratch and fastai `vision_learner(resnet18, pretrained=False)`, on one
split, one after the other, at each budget. Test accuracy and macro-F1 of each, and actiscope's ratio to
the best peer at that budget.

    .venv/bin/actiscope data split ../shared/data/har15 --out /tmp/bench/split.json   # 70/15/15, seed 0
    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch torchvision fastai ultralytics
    .venv/bin/python bench/bench_scratch.py --split /tmp/bench/split.json --minutes 10 30 \\
        --peers-python /tmp/peers/bin/python

    # a change to try on actiscope's side only (a row of the table in the note), peers left out
    .venv/bin/python bench/bench_scratch.py --split /tmp/bench/split.json --minutes 10 --only actiscope \\
        --extra "--ema 0.998"

The peers run from their own environment (never project dependencies) through bench/peers/, at 128 px
with two workers as the issue asks. actiscope is scored by `actiscope evaluate` (PyTorch backend) on the
split's test images; each budget covers everything the training command does (cache, training, validation,
the test pass).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HAR15 = ROOT.parent / "shared" / "data" / "har15"
ACTISCOPE = str(Path(sys.executable).with_name("actiscope"))
PEERS = {"ultralytics": "ultralytics_har15.py", "fastai": "fastai_har15.py"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", required=True, type=Path, help="split.json of har15, the same for all")
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 30], help="budgets (default: 10 30)")
    parser.add_argument("--peers-python", type=Path, help="the peers' environment's python")
    parser.add_argument(
        "--only", default="actiscope,ultralytics,fastai", help="comma-separated: which tools to run"
    )
    parser.add_argument("--size", type=int, default=128, help="the peers' input size (default: 128)")
    parser.add_argument("--extra", default="", help="options added to actiscope's train command")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="bench-scratch-")))
    args = parser.parse_args()
    tools = args.only.split(",")
    if any(t in PEERS for t in tools) and args.peers_python is None:
        parser.error("the peers need --peers-python (their own environment), or leave them out with --only")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for minutes in args.minutes:
        for tool in tools:
            row = actiscope(minutes, args) if tool == "actiscope" else peer(tool, minutes, args)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("\n| tool | budget | test acc | macro-F1 | epochs | wall min | vs best peer |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        peers = [r["accuracy"] for r in rows if r["tool"] in PEERS and r["minutes"] == row["minutes"]]
        ratio = f"{row['accuracy'] / max(peers):.2f}x" if peers and row["tool"] == "actiscope" else ""
        print(
            f"| {row['tool']} | {row['minutes']:g} min | {row['accuracy']:.4f} | {row['macro_f1']:.4f} | "
            f"{row['epochs']} | {row['wall_minutes']:.1f} | {ratio} |"
        )


def _run(command: list[str], log: Path) -> float:
    began = time.perf_counter()
    with log.open("w") as fh:
        subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, check=True)
    return (time.perf_counter() - began) / 60


def actiscope(minutes: float, args: argparse.Namespace) -> dict:
    name = f"actiscope-{minutes:g}"
    command = [
        ACTISCOPE,
        "train",
        str(HAR15),
        "--split",
        str(args.split),
        "--weights",
        "none",
        "--time-limit",
        f"{minutes:g}",
        "--export",
        "none",
        "--out",
        str(args.out),
        "--name",
        name,
        *args.extra.split(),
    ]
    wall = _run(command, args.out / f"{name}.log")
    _run([ACTISCOPE, "evaluate", str(args.out / name), "--backend", "torch"], args.out / f"{name}-eval.log")
    metrics = json.loads((args.out / name / "eval" / "metrics.json").read_text())
    meta = json.loads((args.out / name / "model" / "model.json").read_text())
    recipe = next(
        (line for line in (args.out / f"{name}.log").read_text().splitlines() if "recipe:" in line), ""
    )
    return {
        "tool": "actiscope",
        "minutes": minutes,
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["f1"]["macro"],
        "epochs": meta["metrics"]["epochs_trained"],
        "wall_minutes": round(wall, 2),
        "extra": args.extra,
        "recipe": recipe,
    }


def peer(tool: str, minutes: float, args: argparse.Namespace) -> dict:
    log = args.out / f"{tool}-{minutes:g}.log"
    command = [
        str(args.peers_python),
        str(ROOT / "bench" / "peers" / PEERS[tool]),
        "--split",
        str(args.split),
        "--minutes",
        f"{minutes:g}",
        "--size",
        str(args.size),
    ]
    wall = _run(command, log)
    result = json.loads(log.read_text().strip().splitlines()[-1])  # the peer's last line: its JSON
    return {
        "tool": tool,
        "minutes": minutes,
        "accuracy": result["test_acc"],
        "macro_f1": result["test_f1"],
        "epochs": result["epochs_done"],
        "wall_minutes": round(wall, 2),
    }


if __name__ == "__main__":
    main()
