"""`actiscope weights list` and `actiscope weights import`: pretrained weights on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from actiscope.cli.arguments import ArgumentParser

STORE_HELP = "the weights store (default: $ACTISCOPE_WEIGHTS, else ~/.cache/actiscope/weights)"


def register(sub: argparse._SubParsersAction[ArgumentParser]) -> None:
    weights = sub.add_parser("weights", help="pretrained weights on this machine: list them, import a file")
    weights_sub = weights.add_subparsers(dest="weights_command", required=True, parser_class=ArgumentParser)

    listing = weights_sub.add_parser("list", help="per model: are its published weights here, from where")
    listing.add_argument("--store", type=Path, help=STORE_HELP)
    listing.set_defaults(handler=run_list)

    load = weights_sub.add_parser("import", help="check a published weights file and keep it for offline use")
    load.add_argument("file", type=Path, metavar="FILE", help="a .safetensors or torch state-dict file")
    load.add_argument("--model", required=True, help="the architecture it is for (see `actiscope models`)")
    load.add_argument("--store", type=Path, help=STORE_HELP)
    load.set_defaults(handler=run_import)


def run_list(args: argparse.Namespace) -> int:
    from actiscope.models.store import weights_store
    from actiscope.models.weights import weights_availability

    store = weights_store(args.store)
    print(f"{'name':<20} {'weights':<12}  available here")
    for row in weights_availability(store):
        print(f"{row.model:<20} {row.weights or '-':<12}  {row.where}")
    print(f"store: {store.root}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from actiscope.models.store import weights_store
    from actiscope.models.weights import HUB_LABELS, import_weights

    stored = import_weights(args.file, args.model, weights_store(args.store))
    print(f"stored {stored.architecture} {HUB_LABELS[stored.name]} weights: {stored.file}")
    print(f"sha256 {stored.sha256}")
    return 0
