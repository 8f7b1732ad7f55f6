"""`actiscope data inspect` and `actiscope data split`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, cast

from actiscope.cli.arguments import ArgumentParser, add_dataset_args

if TYPE_CHECKING:
    from actiscope.data.inspect import DuplicateGroup, InspectReport

SHOWN = 20  # items of each problem list printed; inspect.json has them all


def register(sub: argparse._SubParsersAction[ArgumentParser]) -> None:
    data = sub.add_parser("data", help="inspect and split datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=ArgumentParser)

    inspect = data_sub.add_parser("inspect", help="what is in a dataset and what is wrong with it")
    add_dataset_args(inspect)
    inspect.add_argument("--out", type=Path, help="folder for inspect.json and samples.png")
    inspect.add_argument(
        "--near-distance",
        type=int,
        default=4,
        metavar="BITS",
        help="perceptual-hash distance that counts as a near duplicate (-1: exact only)",
    )
    inspect.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores)")
    inspect.set_defaults(handler=run_inspect)

    split = data_sub.add_parser("split", help="stratified, duplicate-aware train/val/test split")
    add_dataset_args(split)
    split.add_argument("--out", type=Path, required=True, help="the split manifest to write (split.json)")
    split.add_argument("--val", type=float, default=0.15, help="fraction held out for validation")
    split.add_argument("--test", type=float, default=0.15, help="fraction held out for the test")
    split.add_argument("--seed", type=int, default=0, help="random seed of the split")
    split.add_argument(
        "--near-distance",
        type=int,
        default=4,
        metavar="BITS",
        help="perceptual-hash distance at which near duplicates are kept in one split (-1: exact only)",
    )
    split.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores)")
    split.add_argument(
        "--exclude",
        type=Path,
        metavar="FILE",
        help="leave these files out: `data audit`'s audit.csv as reviewed, or a list of paths",
    )
    split.set_defaults(handler=run_split)

    audit = data_sub.add_parser(
        "audit", help="rank the images whose given label is least likely (k-fold confident learning)"
    )
    add_dataset_args(audit)
    audit.add_argument(
        "--model",
        default="mobilenet_v2",
        help="backbone whose ImageNet features are used; without pretrained weights the audit trains "
        "its own small CNN (default: %(default)s)",
    )
    audit.add_argument(
        "--weights",
        default="auto",
        help="auto (imagenet where it can be had here, else none), imagenet, a weights file, or none (a "
        "small CNN trained from scratch per fold: minutes, and weaker) (default: %(default)s)",
    )
    audit.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: %(default)s)")
    audit.add_argument("--seed", type=int, default=0, help="fold assignment seed (default: %(default)s)")
    audit.add_argument(
        "--show", type=int, default=30, help="images in the picture grid (default: %(default)s)"
    )
    audit.add_argument("--image-size", type=int, default=None, help="input size (default: the model's own)")
    audit.add_argument(
        "--time-limit",
        type=float,
        default=10.0,
        metavar="MINUTES",
        help="without pretrained weights: the minutes that training the folds from scratch may take in all "
        "(decoding and scoring come on top) (default: %(default)s)",
    )
    audit.add_argument(
        "--out",
        type=Path,
        default=Path("audit"),
        help="folder for audit.csv, audit.png, audit.json (default: %(default)s)",
    )
    audit.set_defaults(handler=run_audit)


def run_inspect(args: argparse.Namespace) -> int:
    from actiscope.api import inspect
    from actiscope.cli.progress import Progress

    with Progress("inspect", "file") as progress:
        result = inspect(
            args.data,
            format=args.format,
            images=args.images,
            near_distance=args.near_distance,
            workers=args.workers,
            progress=progress,
        )
    print_inspect(result.report)
    if args.out:
        for path in result.save(args.out):
            print(f"wrote {path}")
    return 1 if result.has_problems else 0


def run_split(args: argparse.Namespace) -> int:
    from actiscope.data.formats import load_dataset
    from actiscope.data.split import SPLITS, make_split

    dataset = load_dataset(args.data, args.format, images=args.images)
    if args.exclude:
        from actiscope.data.exclude import read_exclusions, without

        dataset = without(dataset, read_exclusions(args.exclude))
        print(dataset.notes[-1])
    manifest = make_split(
        dataset,
        val=args.val,
        test=args.test,
        seed=args.seed,
        max_distance=args.near_distance,
        workers=args.workers,
    )
    manifest.save(args.out)
    counts = manifest.counts()
    print(", ".join(f"{s} {sum(counts[s].values())}" for s in SPLITS) + f" ({len(manifest.classes)} classes)")
    for item in manifest.dropped:
        print(f"dropped {item['path']}: {item['reason']}")
    print(f"wrote {args.out}")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from actiscope.evaluate.audit import audit

    result = audit(
        args.data,
        out=args.out,
        model=args.model,
        weights=args.weights,
        data_format=args.format,
        images=args.images,
        folds=args.folds,
        seed=args.seed,
        show=args.show,
        image_size=args.image_size,
        time_limit=args.time_limit,
    )
    first, fitted = ("features", "heads") if result.method == "features" else ("decoding", "CNNs")
    print(
        f"{result.images} images, {len(result.classes)} classes: {first} {result.feature_s} s, "
        f"{result.folds}-fold {fitted} {result.fit_s} s, out-of-sample accuracy {result.accuracy:.3f}"
    )
    print(
        f"{len(result.issues)} images whose given label is unlikely; the first {min(10, len(result.issues))}:"
    )
    for issue in result.issues[:10]:
        print(
            f"  {issue.rank:3d}. {issue.file}: given {issue.given} ({issue.p_given:.2f}), "
            f"suggested {issue.suggested} ({issue.p_suggested:.2f})"
        )
    for line in result.unreadable:
        print(f"unreadable: {line}")
    print(
        f"wrote {result.table} (set exclude to no where the given label is right, then train or split "
        f"with --exclude {result.table}), {result.grid}, {result.summary}"
    )
    return 0


def print_inspect(r: InspectReport) -> None:
    print(f"{r.root}: {r.format} layout, {r.kind}s, {r.num_files} files, {len(r.classes)} classes")
    for note in r.notes:
        print(f"  note: {note}")
    if r.classes:
        width = max(len(c) for c in r.classes)
        for name, count in r.classes.items():
            print(f"  {name:<{width}}  {count}")
        print(f"imbalance ratio (largest/smallest class): {r.imbalance_ratio:.2f}")
    if r.splits:
        print("splits defined by the layout: " + ", ".join(f"{k} {v}" for k, v in sorted(r.splits.items())))
    if r.image_stats:
        _print_media_stats(r.kind, r.image_stats)

    _print_list("unreadable files", [f"{u['path']}: {u['reason']}" for u in r.unreadable])
    _print_list("CSV rows naming missing files", [f"row {m['row']}: {m['filename']}" for m in r.missing])
    typos = [f"{t['label']!r} ({t['count']}) looks like {t['looks_like']!r}" for t in r.label_typos]
    _print_list("labels that look like typos", typos)
    leaks = [_group_line(g) for g in r.leakage]
    _print_list("duplicate groups that leak (cross splits or carry different labels)", leaks)
    harmless = len(r.duplicates) - len(r.leakage)
    if harmless:
        print(f"{harmless} duplicate groups within one split and label (harmless, but they weigh double)")
    if r.ignored:
        print(f"{len(r.ignored)} files ignored (not images or clips), e.g. {r.ignored[0]}")
    if r.has_problems:
        print("problems found: files that cannot be used or leakage")
    else:
        print("clean: no unusable files, no leakage")


def _print_media_stats(kind: str, stats: dict[str, object]) -> None:
    """Frame sizes, and for clips their length and frame rate."""
    w, h = _summary(stats, "width"), _summary(stats, "height")
    counts = f"modes {stats['modes']}" if "modes" in stats else f"codecs {stats['formats']}"
    print(
        f"{kind} size: width {w['min']}-{w['max']} (median {w['median']:g}), "
        f"height {h['min']}-{h['max']} (median {h['median']:g}); {counts}"
    )
    if "duration_s" in stats:
        d, fps = _summary(stats, "duration_s"), _summary(stats, "fps")
        print(
            f"clip length: {d['min']:g}-{d['max']:g} s (median {d['median']:g}); "
            f"frame rate {fps['min']:g}-{fps['max']:g} fps"
        )


def _summary(stats: dict[str, object], key: str) -> dict[str, float]:
    # `data.inspect.image_statistics` gives each measured quantity as {"min", "median", "max"}
    return cast("dict[str, float]", stats[key])


def _group_line(group: DuplicateGroup) -> str:
    members = zip(group.files, group.labels, group.splits, strict=True)
    return f"{group.kind}: " + ", ".join(f"{file} [{label}/{split or '-'}]" for file, label, split in members)


def _print_list(title: str, lines: list[str]) -> None:
    if not lines:
        return
    print(f"{len(lines)} {title}:")
    for line in lines[:SHOWN]:
        print(f"  {line}")
    if len(lines) > SHOWN:
        print(f"  ... and {len(lines) - SHOWN} more (all in inspect.json)")
