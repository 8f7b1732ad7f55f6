"""`actiscope models`: the architectures in the registry."""

from __future__ import annotations

import argparse

from actiscope.cli.arguments import ArgumentParser

KINDS = ("image", "video")


def register(sub: argparse._SubParsersAction[ArgumentParser]) -> None:
    models = sub.add_parser("models", help="list the architectures in the registry")
    models.add_argument(
        "--kind", choices=KINDS, help="only the models for images or for clips (default: both)"
    )
    models.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from actiscope.models.registry import ActionModel, list_models

    print(f"{'name':<20} {'kind':<6} {'params':>9} {'input':>9}  description")
    for entry in list_models(args.kind):
        with torch.device("meta"):  # count parameters without allocating them
            params = sum(p.numel() for p in ActionModel(entry, 1000).parameters())
        config = entry.data_config
        shape = f"{config.frames}x{config.image_size}" if config.frames else str(config.image_size)
        print(f"{entry.name:<20} {entry.kind:<6} {params / 1e6:>8.1f}M {shape:>9}  {entry.description}")
    if args.kind in (None, "image"):
        print(
            f"{'timm/<name>':<20} {'image':<6} {'':>9} {'':>9}  any timm model, e.g. timm/vit_small_patch16_224"
        )
    return 0
