"""fastai peer for transfer learning: `vision_learner(dls, mobilenet_v2)` + `fine_tune` with the very
ImageNet weights actiscope uses, on actiscope's split and time budget.

The shared safetensors file is written as a plain state dict into torchvision's hub cache under the name
torchvision expects, so fastai finds it offline (the hub checks a hash only when it downloads). fastai's
defaults otherwise: 224 px squished like actiscope's preprocessing at --size, aug_transforms, batch 64,
fine_tune's frozen epoch then unfrozen epochs; a callback stops it at the budget (a minute left for the
test pass).

    /tmp/peers/bin/python bench/peers/fastai_transfer.py --split split.json --minutes 10 [--model squeezenet1_0]
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
from common import fastai_setup, fastai_test_score

WEIGHTS = Path(__file__).resolve().parents[3] / "shared" / "data" / "weights"


def install_weights(model: str) -> None:
    """torchvision's hub cache gets the shared file under the name of each of its downloads."""
    import torch
    import torchvision
    from safetensors.torch import load_file

    os.environ.setdefault("TORCH_HOME", tempfile.mkdtemp(prefix="fastai-hub-"))
    state = load_file(str(WEIGHTS / f"{model}-imagenet.safetensors"))
    for weights in torchvision.models.get_model_weights(model):  # fastai's pretrained=True asks for V1
        target = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, target)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", required=True)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--epochs", type=int, default=0, help="unfrozen epochs (default: from the budget)")
    parser.add_argument("--size", type=int, default=160)
    args = parser.parse_args()
    start = time.time()
    budget = args.minutes * 60
    install_weights(args.model)

    import torchvision
    from fastai.vision.all import accuracy, default_split, imagenet_stats, vision_learner
    from fastai.vision.learner import model_meta

    dls, budget_stop, test = fastai_setup(args.split, args.size, start + budget)
    arch = getattr(torchvision.models, args.model)
    # torchvision's mobilenet_v2 and squeezenet are (features, classifier) and not in fastai's model_meta:
    # its body is the features, its split and ImageNet statistics the defaults
    model_meta.setdefault(arch, {"cut": -1, "split": default_split, "stats": imagenet_stats})
    learn = vision_learner(dls, arch, metrics=accuracy)
    epochs = args.epochs or max(1, int(args.minutes // 2))
    learn.fine_tune(epochs, cbs=[budget_stop])
    result = fastai_test_score(learn, dls, test)
    print(
        json.dumps(
            {
                "tool": "fastai",
                "model": args.model,
                "pretrained": "shared ImageNet file",
                "image_size": args.size,
                "epochs": epochs,
                "epochs_done": learn.epoch + 1,
                "wall_minutes": round((time.time() - start) / 60, 2),
                **result,
            }
        )
    )


if __name__ == "__main__":
    main()
