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
    split.add_argument("--val", type=float, default=0.15)
    split.add_argument("--test", type=float, default=0.15)
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--near-distance", type=int, default=4, metavar="BITS")
    split.add_argument("--workers", type=int, default=None)
    split.set_defaults(handler=run_split)


def run_inspect(args: argparse.Namespace) -> int:
    from actiscope.data.formats import load_dataset
    from actiscope.data.inspect import inspect_dataset, write_report

    dataset = load_dataset(args.data, args.format, images=args.images)
    report = inspect_dataset(dataset, max_distance=args.near_distance, workers=args.workers)
    print_inspect(report)
    if args.out:
        for path in write_report(report, dataset, args.out):
            print(f"wrote {path}")
    return 1 if report.has_problems else 0


def run_split(args: argparse.Namespace) -> int:
    from actiscope.data.formats import load_dataset
    from actiscope.data.split import SPLITS, make_split

    dataset = load_dataset(args.data, args.format, images=args.images)
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
