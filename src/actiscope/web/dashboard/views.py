"""Runs dashboard: runs and their metrics, a run's curves and report, leaderboards, the gallery, and
the control that makes a run's model the active one."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from PIL import Image

from actiscope.data.video import is_video_path, preview_frame
from actiscope.errors import MediaReadError
from actiscope.web import services
from actiscope.web.classify.models import ActiveModel

RUN_FILES = {"curves.png", "eval/confusion_matrix.png", "eval/roc.png", "eval/pr.png", "eval/reliability.png",
             "eval/per_class.png", "eval/mistakes.png", "eval/report.md", "eval/metrics.json", "compare.png"}  # fmt: skip


def _run_or_404(name: str) -> Path:
    path = services.find_run(name)
    if path is None:
        raise Http404(f"no run named {name!r}")
    return path


def runs_page(request: HttpRequest) -> HttpResponse:
    leaderboards = []
    for board in sorted(Path(settings.RUNS_DIR).glob("*/leaderboard.csv")):
        with board.open(newline="", encoding="utf-8") as fh:
            leaderboards.append({"name": board.parent.name, "rows": list(csv.DictReader(fh))})
    active = services.MODEL.active_path()
    return render(request, "actiscope/runs.html", {"runs": services.list_runs(), "leaderboards": leaderboards,
                                                    "active": str(active) if active else ""})  # fmt: skip


def run_page(request: HttpRequest, name: str) -> HttpResponse:
    path = _run_or_404(name)
    summary = services.run_summary(path)
    metrics = services.run_metrics(path)
    plots = [
        f for f in sorted(RUN_FILES) if f.endswith(".png") and f != "curves.png" and (path / f).is_file()
    ]
    active = services.MODEL.active_path()
    context = {"run": summary, "metrics": metrics, "plots": plots, "has_curves": (path / "curves.png").is_file(),
               "has_report": (path / "eval" / "report.md").is_file(),
               "active": active is not None and str(active) in (str(path), str(path / "model"))}  # fmt: skip
    return render(request, "actiscope/run.html", context)


def run_file(request: HttpRequest, name: str, file: str) -> FileResponse:
    if file not in RUN_FILES:
        raise Http404("not a run file the dashboard shows")
    target = _run_or_404(name) / file
    if not target.is_file():
        raise Http404(f"{file} does not exist (yet)")
    kind = "text/plain; charset=utf-8" if file.endswith(".md") else None
    return FileResponse(target.open("rb"), content_type=kind)


@require_POST
def activate(request: HttpRequest, name: str) -> HttpResponse:
    path = _run_or_404(name)
    if not (path / "model" / "model.json").is_file():
        raise Http404("this run has no model package yet")
    ActiveModel.objects.all().delete()
    ActiveModel.objects.create(path=str(path / "model"))
    return redirect("run", name=name)


def _evaluated(path: Path) -> list[dict[str, str]]:
    file = path / "eval" / "predictions.csv"
    if not file.is_file():
        return []
    with file.open(newline="", encoding="utf-8") as fh:
        return [{"filename": r["filename"], "label": r["label"], "predicted": r["predicted"],
                 "confidence": r["confidence"]} for r in csv.DictReader(fh)]  # fmt: skip


def gallery_page(request: HttpRequest, name: str) -> HttpResponse:
    """Random test images with predicted and true labels (from the run's evaluation)."""
    path = _run_or_404(name)
    rows = _evaluated(path)
    picks = random.sample(range(len(rows)), min(12, len(rows))) if rows else []
    items = [{"index": i, **rows[i], "wrong": rows[i]["label"] != rows[i]["predicted"]} for i in picks]
    return render(request, "actiscope/gallery.html", {"run": services.run_summary(path), "items": items})


def gallery_image(request: HttpRequest, name: str, index: int) -> HttpResponse:
    """The test image, or for a clip its middle frame as a PNG."""
    rows = _evaluated(_run_or_404(name))
    if not 0 <= index < len(rows) or not Path(rows[index]["filename"]).is_file():
        raise Http404("no such test image")
    file = Path(rows[index]["filename"])
    if not is_video_path(file):
        return FileResponse(file.open("rb"))
    buffer = io.BytesIO()
    try:
        Image.fromarray(preview_frame(file)).save(buffer, format="PNG")
    except MediaReadError:
        raise Http404("the test clip cannot be read") from None
    return HttpResponse(buffer.getvalue(), content_type="image/png")
