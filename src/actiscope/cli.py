"""The `actiscope` command: one subcommand per library call; handlers parse, call, and print.

Every user mistake ends as one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from actiscope import __version__
from actiscope.errors import ActiscopeError

if TYPE_CHECKING:
    from actiscope.config import TrainConfig
    from actiscope.data.inspect import InspectReport


class UsageError(ActiscopeError):
    pass


log = logging.getLogger("actiscope")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="inspect and split datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=ArgumentParser)

    inspect = data_sub.add_parser("inspect", help="what is in a dataset and what is wrong with it")
    _add_dataset_args(inspect)
    inspect.add_argument("--out", type=Path, help="folder for inspect.json and samples.png")
    inspect.add_argument(
        "--near-distance",
        type=int,
        default=4,
        metavar="BITS",
        help="perceptual-hash distance that counts as a near duplicate (-1: exact only)",
    )
    inspect.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores)")
    inspect.set_defaults(handler=cmd_data_inspect)

    split = data_sub.add_parser("split", help="stratified, duplicate-aware train/val/test split")
    _add_dataset_args(split)
    split.add_argument("--out", type=Path, required=True, help="the split manifest to write (split.json)")
    split.add_argument("--val", type=float, default=0.15)
    split.add_argument("--test", type=float, default=0.15)
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--near-distance", type=int, default=4, metavar="BITS")
    split.add_argument("--workers", type=int, default=None)
    split.set_defaults(handler=cmd_data_split)


def _add_dataset_args(parser: argparse.ArgumentParser) -> None:
    from actiscope.data.formats import READERS

    parser.add_argument("data", type=Path, metavar="DATA", help="dataset folder or CSV file")
    parser.add_argument("--format", choices=sorted(READERS), help="dataset layout (default: detected)")
    parser.add_argument("--images", type=Path, help="image folder of a CSV dataset, when not beside the CSV")


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from actiscope.data.formats import load_dataset
    from actiscope.data.inspect import inspect_dataset, write_report

    dataset = load_dataset(args.data, args.format, images=args.images)
    report = inspect_dataset(dataset, max_distance=args.near_distance, workers=args.workers)
    _print_inspect(report)
    if args.out:
        for path in write_report(report, dataset, args.out):
            print(f"wrote {path}")
    return 1 if report.has_problems else 0


def _print_inspect(r: InspectReport) -> None:
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
    stats = r.image_stats
    if stats:
        w, h = stats["width"], stats["height"]
        print(
            f"{r.kind} size: width {w['min']}-{w['max']} (median {w['median']:g}), "
            f"height {h['min']}-{h['max']} (median {h['median']:g}); "
            + (f"modes {stats['modes']}" if "modes" in stats else f"codecs {stats['formats']}")
        )
        if "duration_s" in stats:
            d, fps = stats["duration_s"], stats["fps"]
            print(f"clip length: {d['min']:g}-{d['max']:g} s (median {d['median']:g}); "
                  f"frame rate {fps['min']:g}-{fps['max']:g} fps")  # fmt: skip
    problems = [
        (r.unreadable, "unreadable files", lambda u: f"{u['path']}: {u['reason']}"),
        (r.missing, "CSV rows naming missing files", lambda m: f"row {m['row']}: {m['filename']}"),
        (r.label_typos, "labels that look like typos",
         lambda t: f"{t['label']!r} ({t['count']}) looks like {t['looks_like']!r}"),
        (r.leakage, "duplicate groups that leak (cross splits or carry different labels)",
         lambda g: f"{g.kind}: " + ", ".join(f"{f} [{lab}/{s or '-'}]" for f, lab, s in zip(g.files, g.labels, g.splits, strict=True))),
    ]  # fmt: skip
    for items, title, fmt in problems:
        if items:
            print(f"{len(items)} {title}:")
            for item in items[:20]:
                print(f"  {fmt(item)}")
            if len(items) > 20:
                print(f"  ... and {len(items) - 20} more (all in inspect.json)")
    harmless = len(r.duplicates) - len(r.leakage)
    if harmless:
        print(f"{harmless} duplicate groups within one split and label (harmless, but they weigh double)")
    if r.ignored:
        print(f"{len(r.ignored)} files ignored (not images or clips), e.g. {r.ignored[0]}")
    print(
        "problems found: files that cannot be used or leakage"
        if r.has_problems
        else "clean: no unusable files, no leakage"
    )


def cmd_data_split(args: argparse.Namespace) -> int:
    from actiscope.data.formats import load_dataset
    from actiscope.data.split import SPLITS, make_split

    dataset = load_dataset(args.data, args.format, images=args.images)
    manifest = make_split(dataset, val=args.val, test=args.test, seed=args.seed,
                          max_distance=args.near_distance, workers=args.workers)  # fmt: skip
    manifest.save(args.out)
    counts = manifest.counts()
    print(", ".join(f"{s} {sum(counts[s].values())}" for s in SPLITS) + f" ({len(manifest.classes)} classes)")
    for item in manifest.dropped:
        print(f"dropped {item['path']}: {item['reason']}")
    print(f"wrote {args.out}")
    return 0


TRAIN_HELP = {
    "model": "architecture from `actiscope models`, or timm/<name>",
    "split": "an existing split.json (default: a new stratified split of DATA)",
    "weights": "none | imagenet | auto (imagenet where it can be had here, else none) | PATH to a state-dict "
    "file (torchvision or timm key names)",
    "mode": "scratch | linear (frozen backbone, cached features) | finetune (the default with --weights)",
    "views": "linear: feature passes per training image, the image and then augmented views",
    "head_epochs": "finetune: head-only epochs before the backbone trains, on its features computed once",
    "backbone_lr_mult": "finetune: backbone learning rate = lr x this",
    "freeze": "finetune: fraction of the backbone's layers (input side first) kept frozen: faster, and "
    "early layers are generic",
    "augment": "none | light | standard | strong",
    "balance": "none | oversample | weights | trim",
    "precision": "auto (bf16 where this CPU computes it natively and it measured faster and sound) | 32 | bf16",
    "time_limit": "minutes; stops cleanly and keeps the best model",
    "early_stopping": "patience in epochs (0: off)",
    "ask": "on a terminal, every N epochs ask whether to stop or go on",
    "crop_person": "Stanford 40: crop each image to its person box",
    "cache": "decoded-image cache (--no-cache decodes every epoch)",
    "out": "parent folder of run directories",
    "name": "run name (default: model and time)",
    "export": "after training, add ONNX (onnx) and an accuracy-checked int8 model (int8) to the package",
}


def _add_train_options(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """One option per TrainConfig field, typed from its default: the config is the single source."""
    import dataclasses

    from actiscope.config import TrainConfig

    for f in dataclasses.fields(TrainConfig):
        if f.name in ("data", *skip):
            continue
        flag = "--" + f.name.replace("_", "-")
        helptext = TRAIN_HELP.get(f.name)
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=helptext)
            continue
        kind = {"int": int, "float": float}.get(str(f.type).split("|")[0].strip(), str)  # "int | None" -> int
        parser.add_argument(flag, type=kind, default=None, help=helptext)


def _train_config(args: argparse.Namespace, data: str) -> tuple[TrainConfig, list[str]]:
    """The configuration the options and the recipe give, and the lines that say what was chosen."""
    import dataclasses

    from actiscope.config import TrainConfig

    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None and f.name != "data"
    }
    lines = []
    if given.get("weights") == "auto":
        from actiscope.models.weights import resolve_auto

        given["weights"], why = resolve_auto(given.get("model", TrainConfig.model))
        if why:
            lines.append(f"training from scratch: {why}")
    config, recipe = TrainConfig.recipe(data, scratch_recipe=bool(lines), **given)
    return config, [*lines, *([recipe] if recipe else [])]


def cmd_models(args: argparse.Namespace) -> int:
    import torch

    from actiscope.models.registry import ActionModel, list_models

    entries = list_models(args.kind)
    print(f"{'name':<20} {'kind':<6} {'params':>9} {'input':>9}  description")
    for entry in entries:
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


def _add_weights_commands(sub: argparse._SubParsersAction) -> None:
    weights = sub.add_parser("weights", help="pretrained weights on this machine: list them, import a file")
    weights_sub = weights.add_subparsers(dest="weights_command", required=True, parser_class=ArgumentParser)
    store_help = "the weights store (default: $ACTISCOPE_WEIGHTS, else ~/.cache/actiscope/weights)"

    listing = weights_sub.add_parser("list", help="per model: are its published weights here, from where")
    listing.add_argument("--store", type=Path, help=store_help)
    listing.set_defaults(handler=cmd_weights_list)

    load = weights_sub.add_parser("import", help="check a published weights file and keep it for offline use")
    load.add_argument("file", type=Path, metavar="FILE", help="a .safetensors or torch state-dict file")
    load.add_argument("--model", required=True, help="the architecture it is for (see `actiscope models`)")
    load.add_argument("--store", type=Path, help=store_help)
    load.set_defaults(handler=cmd_weights_import)


def cmd_weights_list(args: argparse.Namespace) -> int:
    from actiscope.models.store import weights_store
    from actiscope.models.weights import weights_availability

    store = weights_store(args.store)
    print(f"{'name':<20} {'weights':<12}  available here")
    for row in weights_availability(store):
        print(f"{row.model:<20} {row.weights or '-':<12}  {row.where}")
    print(f"store: {store.root}")
    return 0


def cmd_weights_import(args: argparse.Namespace) -> int:
    from actiscope.models.store import weights_store
    from actiscope.models.weights import HUB_LABELS, import_weights

    stored = import_weights(args.file, args.model, weights_store(args.store))
    print(f"stored {stored.architecture} {HUB_LABELS[stored.name]} weights: {stored.file}")
    print(f"sha256 {stored.sha256}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from actiscope.engine.fit import resume_config, train

    chosen: list[str] = []
    if args.resume:
        config = resume_config(args.resume, epochs=args.epochs, time_limit=args.time_limit)
    elif args.data is None:
        raise UsageError("train needs DATA (a dataset folder or CSV), or --resume RUN")
    else:
        config, chosen = _train_config(args, str(args.data))
    result = train(config, resume=args.resume, announce=chosen)
    m = result.metrics
    print(f"run: {result.run_dir}")
    print(f"test accuracy {m.get('test_acc', float('nan')):.4f}, macro-F1 {m.get('test_f1', float('nan')):.4f} "
          f"(best epoch {m.get('best_epoch')} of {result.epochs}); model package: {result.run_dir / 'model'}")  # fmt: skip
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from actiscope.predict import (
        Predictor,
        collect_inputs,
        predict_rows,
        timeline_rows,
        write_predictions_csv,
    )

    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {args.top_k}")
    predictor = Predictor.load(args.model, backend=args.backend)
    kind = predictor.meta.kind
    what = "clips" if kind == "video" else "images"
    if args.timeline and kind != "video":
        raise UsageError(f"--timeline needs a video model; {args.model} is an image model")
    files, skipped = collect_inputs(args.inputs, kind)
    if not files:
        raise UsageError(f"no {what} to predict in " + ", ".join(map(str, args.inputs)))
    if skipped:
        log.info("skipped %d files that are not %s by extension (e.g. %s)", len(skipped), what, skipped[0])
    start = time.perf_counter()
    if args.timeline:
        rows = timeline_rows(predictor, files, window=args.window, stride=args.stride, top_k=args.top_k)
    else:
        with tqdm(total=len(files), unit=what[:-1], disable=not sys.stderr.isatty(), file=sys.stderr) as bar:
            rows = predict_rows(predictor, files, top_k=args.top_k, batch_size=args.batch_size,
                                workers=args.workers, progress=bar)  # fmt: skip
    seconds = time.perf_counter() - start
    failed = [r for r in rows if r.get("error")]
    if args.out:
        write_predictions_csv(rows, args.out, top_k=args.top_k, submission=args.format == "submission",
                              timeline=args.timeline)  # fmt: skip
        print(f"wrote {args.out}")
    else:
        _print_predictions(rows, args.top_k)
    done = f"{len(files) - len(failed)} {what}" + (
        f", {len(rows) - len(failed)} windows" if args.timeline else ""
    )
    print(f"{done} predicted, {len(failed)} failed, {len(files) / seconds:.1f} {what}/s "
          f"({predictor.backend} backend)")  # fmt: skip
    for row in failed[:10]:
        print(f"  failed: {row['filename']}: {row['error']}", file=sys.stderr)
    return min(len(failed), 125)  # the exit status is the number of files that failed (capped)


def _print_predictions(rows: list[dict[str, object]], top_k: int) -> None:
    width = min(60, max(len(str(r["filename"])) for r in rows))
    for row in rows:
        name = str(row["filename"])[-width:]
        if "start" in row:
            name = f"{name}  {float(row['start']):7.2f}-{float(row['end']):7.2f} s"  # type: ignore[arg-type]
        if row.get("error"):
            print(f"{name:<{width}}  error: {row['error']}")
            continue
        ranked = [f"{row['label']} {float(row['confidence']):.3f}"]  # type: ignore[arg-type]
        ranked += [
            f"{row[f'top{k}_label']} {float(row[f'top{k}_confidence']):.3f}"
            for k in range(2, top_k + 1)
            if f"top{k}_label" in row
        ]  # type: ignore[arg-type]
        print(f"{name:<{width}}  " + "  ".join(ranked))


def cmd_export(args: argparse.Namespace) -> int:
    from actiscope.export import export

    result = export(args.model, args.format, out=args.out, quantize=args.quantize)
    print(f"wrote {result.path}")
    if result.max_prob_diff is not None:
        print(f"largest probability difference, PyTorch vs {args.format}: {result.max_prob_diff:.2e} "
              f"on {result.check_source}")  # fmt: skip
    if result.int8:
        q = result.int8
        print(f"int8 on {int(q['test_images'])} test inputs: accuracy {q['fp32_accuracy']:.4f} -> {q['int8_accuracy']:.4f}, "
              f"{q['fp32_images_per_s']:.1f} -> {q['int8_images_per_s']:.1f} images/s "
              f"({q['int8_images_per_s'] / q['fp32_images_per_s']:.2f}x)")  # fmt: skip
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from actiscope.evaluate.report import evaluate

    result = evaluate(args.model, args.data, split=args.split, out=args.out, tta=args.tta, backend=args.backend,
                      data_format=args.format, batch_size=args.batch_size, workers=args.workers)  # fmt: skip
    m = result.metrics

    def show(value: object) -> str:
        return "undefined" if value is None else f"{value:.4f}"

    print(f"{m['images']} images of {m['data']} ({m['backend']} backend{', flip TTA' if m['tta'] else ''})")
    print(f"accuracy {show(m['accuracy'])}  balanced accuracy {show(m['balanced_accuracy'])}  "
          f"macro-F1 {show(m['f1']['macro'])}  weighted-F1 {show(m['f1']['weighted'])}")  # fmt: skip
    topk = "  ".join(f"top-{k} {show(v)}" for k, v in m["top_k_accuracy"].items())
    print(f"{topk}  kappa {show(m['cohen_kappa'])}  log loss {show(m['log_loss'])}  "
          f"ECE {show(m['expected_calibration_error'])}".strip())  # fmt: skip
    for note in m["undefined"]:
        print(f"  undefined: {note}")
    if m["unreadable"]:
        print(f"{m['unreadable']} unreadable image(s) not evaluated, listed in metrics.json", file=sys.stderr)
        for u in m["unreadable_files"][:5]:
            print(f"  unreadable: {u['path']}: {u['error']}", file=sys.stderr)
    print(f"report: {result.out / 'report.md'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from actiscope.evaluate.compare import compare

    base, chosen = _train_config(args, str(args.data))  # its model, name and out are not options of compare
    for line in chosen:
        log.info(line)
    result = compare(base, args.models.split(","), out=args.out, select=args.select, ensemble=args.ensemble)
    print((result.out / "leaderboard.md").read_text(encoding="utf-8"))
    failed = [r for r in result.rows if r.status != "done"]
    if result.best is None:
        print("actiscope: error: every architecture failed; see the status column above", file=sys.stderr)
        return 1
    print(f"best by {args.select}: {result.best.model}; its package: {result.out / 'best'}")
    return 1 if failed else 0


def cmd_explain(args: argparse.Namespace) -> int:
    from actiscope.explain import explain

    out = args.out or Path(f"{args.image.stem}.{args.method.replace('+', 'p')}.png")
    result = explain(args.model, args.image, out=out, class_name=args.class_name, method=args.method)
    for rank, (label, prob) in enumerate(result.top, start=1):
        print(f"{rank}. {label} {prob:.3f}")
    print(f"{args.method} for {result.target!r}: {out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Apply migrations, then hand the process to gunicorn (a production WSGI server)."""
    import os
    import socket
    import sqlite3

    from actiscope.package import package_dir

    if args.model is not None:
        package_dir(args.model)  # a wrong path is a one-line error now, not a 503 later
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {args.host}:{args.port} ({exc.strerror}); choose another --port"
            ) from None
    os.environ["ACTISCOPE_RUNS"] = str(args.runs.expanduser().resolve())
    if args.model is not None:
        os.environ["ACTISCOPE_MODEL"] = str(args.model.expanduser().resolve())
    if args.data_dir is not None:
        os.environ["ACTISCOPE_DATA_DIR"] = str(args.data_dir.expanduser().resolve())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "actiscope.web.settings")
    os.environ.setdefault("ACTISCOPE_INFERENCE_THREADS", str(max(1, (os.cpu_count() or 1) // args.workers)))
    import django
    from django.core.management import call_command
    from django.db.utils import Error as DatabaseError

    try:
        django.setup()
        call_command("migrate", interactive=False, verbosity=0)
    except (DatabaseError, sqlite3.Error, OSError) as exc:
        raise UsageError(
            f"the database is not usable: {str(exc).splitlines()[0]}; check DATABASE_URL or --data-dir"
        ) from None
    from django.conf import settings

    print(f"actiscope serving on http://{args.host}:{args.port}/  (runs: {settings.RUNS_DIR}, "
          f"data: {settings.DATA_DIR}, {args.workers} workers); Ctrl-C stops", flush=True)  # fmt: skip
    command = [sys.executable, "-m", "gunicorn", "actiscope.web.wsgi:application", "--bind", f"{args.host}:{args.port}",
               "--workers", str(args.workers), "--timeout", "120", "--graceful-timeout", "10",
               "--access-logfile", "-" if args.verbose else "/dev/null"]  # fmt: skip
    os.execv(sys.executable, command)
    return 0  # not reached


def _add_inference_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx", "onnx-int8"),
        default="auto",
        help="auto: int8 ONNX if its accuracy check passed at export, else ONNX, else PyTorch",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="decoding processes running beside inference")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="actiscope", description="Recognise human actions in images and clips.")
    parser.add_argument("--version", action="version", version=f"actiscope {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    _add_data_commands(sub)

    models = sub.add_parser("models", help="list the architectures in the registry")
    models.add_argument("--kind", choices=("image", "video"))
    models.set_defaults(handler=cmd_models)
    _add_weights_commands(sub)

    train = sub.add_parser("train", help="train a model; writes a run directory with a deployable package")
    train.add_argument("data", type=Path, nargs="?", metavar="DATA", help="dataset folder or CSV file")
    train.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in this directory")
    _add_train_options(train)
    train.set_defaults(handler=cmd_train)

    predict = sub.add_parser("predict", help="predict images or clips: files, folders, CSV or list files")
    predict.add_argument("model", type=Path, metavar="MODEL", help="model package or run directory")
    predict.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image (or clip) files, folders, a CSV with a filename column, or a .txt list",
    )
    predict.add_argument(
        "--timeline", action="store_true", help="video: slide a window over each clip, one row per window"
    )
    predict.add_argument("--window", type=float, default=2.0, help="--timeline window, seconds")
    predict.add_argument("--stride", type=float, default=1.0, help="--timeline step, seconds")
    predict.add_argument("--out", type=Path, help="write a CSV here (default: print a table)")
    predict.add_argument("--top-k", type=int, default=3)
    _add_inference_args(predict)
    predict.add_argument(
        "--format",
        choices=("full", "submission"),
        default="full",
        help="submission: only filename,label (a Kaggle submission)",
    )
    predict.set_defaults(handler=cmd_predict)

    compare = sub.add_parser("compare", help="train several architectures on one split and rank them")
    compare.add_argument("data", type=Path, metavar="DATA", help="dataset folder or CSV file")
    compare.add_argument(
        "--models", required=True, help="comma-separated registry names (see `actiscope models`)"
    )
    compare.add_argument("--out", type=Path, default=Path("compare"), help="folder for runs and leaderboard")
    compare.add_argument("--select", choices=("accuracy", "macro_f1"), default="accuracy")
    compare.add_argument(
        "--ensemble", type=int, default=0, metavar="K", help="also average the K best models"
    )
    _add_train_options(compare, skip=("model", "name", "out"))
    compare.set_defaults(handler=cmd_compare)

    evaluate = sub.add_parser("evaluate", help="metrics, plots and report.md on a test split or dataset")
    evaluate.add_argument("model", type=Path, metavar="MODEL", help="model package or run directory")
    evaluate.add_argument(
        "data", type=Path, nargs="?", metavar="DATA", help="labelled dataset (default: the run's split.json)"
    )
    evaluate.add_argument("--split", default="test", help="which split of the run or dataset (default: test)")
    evaluate.add_argument("--out", type=Path, help="folder for the report (default: RUN/eval)")
    evaluate.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    evaluate.add_argument("--format", help="dataset format when not detected (folder, csv, stanford40)")
    _add_inference_args(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    serve = sub.add_parser("serve", help="the web app and JSON API (gunicorn), with the runs dashboard")
    serve.add_argument("--runs", type=Path, default=Path("runs"), help="the runs the dashboard shows")
    serve.add_argument("--model", type=Path, help="model package or run to serve (default: the newest run)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=2, help="worker processes (each loads the model once)")
    serve.add_argument(
        "--data-dir", type=Path, help="database, uploads and secret key (default: $ACTISCOPE_DATA_DIR)"
    )
    serve.set_defaults(handler=cmd_serve)

    explain = sub.add_parser("explain", help="Grad-CAM heat map: where the model looked")
    explain.add_argument("model", type=Path, metavar="MODEL", help="model package or run directory")
    explain.add_argument("image", type=Path, metavar="IMAGE")
    explain.add_argument("--out", type=Path, help="overlay PNG (default: IMAGE_STEM.gradcam.png here)")
    explain.add_argument(
        "--class", dest="class_name", metavar="NAME", help="explain this class (default: top-1)"
    )
    explain.add_argument("--method", choices=("gradcam", "gradcam++"), default="gradcam")
    explain.set_defaults(handler=cmd_explain)

    export = sub.add_parser("export", help="export a model package to ONNX or TorchScript")
    export.add_argument("model", type=Path, metavar="MODEL", help="model package or run directory")
    export.add_argument("--format", choices=("onnx", "torchscript"), required=True)
    export.add_argument("--out", type=Path, help="default: into the package, where --backend onnx finds it")
    export.add_argument(
        "--quantize", choices=("int8",), help="ONNX Runtime static int8, calibrated on training images"
    )
    export.set_defaults(handler=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our library's messages go to the stderr of this call (Lightning keeps its own handler); a handler
    # from an earlier call in the same process may hold a stream that is gone.
    for stale in list(log.handlers):
        log.removeHandler(stale)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(stream)
    log.propagate = False  # a root handler another library installed would print every line twice
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ActiscopeError as exc:
        print(f"actiscope: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("actiscope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`actiscope models | head`): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
