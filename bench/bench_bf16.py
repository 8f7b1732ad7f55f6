"""fp32 vs bf16 autocast per registry family on this CPU: training and inference images/s, whether bf16
stays finite and agrees with fp32, and what `--precision auto` chooses here.

    .venv/bin/python bench/bench_bf16.py [--families resnet18,r3d_18] [--steps 2]

Each figure comes from `actiscope.hardware`'s own probe (the one `auto` runs), on random input of the
shape below, from the same initial weights each way. On a CPU without native bf16 the bf16 figures are
emulation (8-60x slower) and `auto` never probes. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from actiscope.hardware import choose_precision, cpu_info, probe_inference, probe_training
from actiscope.models.registry import create_model, example_input

# family -> (image size, frames, batch): images at 112 px, clips of 8 frames at 32 px, so emulated bf16
# still finishes on a CPU without it.
FAMILIES = {
    "simple-cnn": (112, None, 16),
    "resnet18": (112, None, 16),
    "mobilenet_v2": (112, None, 16),
    "efficientnet_b0": (112, None, 16),
    "convnext_tiny": (112, None, 16),
    "convlstm": (32, 8, 4),
    "cnn-lstm": (32, 8, 4),
    "r3d_18": (32, 8, 4),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated registry names")
    parser.add_argument("--steps", type=int, default=2, help="timed steps each way (after one warm-up)")
    args = parser.parse_args()
    cpu = cpu_info()
    print(
        f"# {cpu.model}, {torch.get_num_threads()} threads, native bf16: {cpu.bf16_flags or 'none'}, "
        f"torch {torch.__version__}, {platform.machine()}"
    )
    print(
        "| family | input | train fp32 img/s | train bf16 img/s | bf16 speed-up | finite | loss diff "
        "| infer fp32 img/s | infer bf16 img/s | speed-up | max prob diff | auto (train) | auto (infer) |"
    )
    print("|" + " --- |" * 13)
    rows = []
    cache = Path(tempfile.mkdtemp()) / "precision.json"  # auto measures afresh, not from an old cache
    for name in args.families.split(","):
        size, frames, batch = FAMILIES[name]
        torch.manual_seed(0)
        model = create_model(name, 15, image_size=size, frames=frames)
        x = example_input(model.data_config, batch)
        began = time.perf_counter()
        train = probe_training(model, x, steps=args.steps)
        infer = probe_inference(model, x, steps=args.steps)
        auto_train = choose_precision("auto", "cpu", model=model, example=x, cache=cache)
        auto_infer = choose_precision("auto", "cpu", model=model, example=x, training=False, cache=cache)
        shape = f"{frames}x{size}" if frames else str(size)
        row = {
            "family": name,
            "input": shape,
            "batch": batch,
            "train_fp32": batch / train.fp32_s,
            "train_bf16": batch / train.bf16_s,
            "train_speedup": train.speedup,
            "train_finite": train.finite,
            "loss_difference": train.loss_difference,
            "infer_fp32": batch / infer.fp32_s,
            "infer_bf16": batch / infer.bf16_s,
            "infer_speedup": infer.speedup,
            "infer_finite": infer.finite,
            "prob_difference": infer.loss_difference,
            "auto_train": auto_train.line(),
            "auto_infer": auto_infer.line(),
            "seconds": time.perf_counter() - began,
        }
        rows.append(row)
        print(
            f"| {name} | {shape} b{batch} | {row['train_fp32']:.1f} | {row['train_bf16']:.1f} | "
            f"{train.speedup:.2f}x | {train.finite and infer.finite} | {train.loss_difference:.4f} | "
            f"{row['infer_fp32']:.1f} | {row['infer_bf16']:.1f} | {infer.speedup:.2f}x | "
            f"{infer.loss_difference:.4f} | {auto_train.precision} | {auto_infer.precision} |",
            flush=True,
        )
    print(
        "\n" + "\n".join(f"{r['family']}: train {r['auto_train']}; inference {r['auto_infer']}" for r in rows)
    )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
