"""Runs dashboard: runs and their metrics, a run's curves and report, leaderboards, the gallery, and
the control that makes a run's model the active one. Views parse and respond; the work is in services."""

from __future__ import annotations

import io
import random
from pathlib import Path

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from PIL import Image

from actiscope.data.video import is_video_path, preview_frame
from actiscope.errors import MediaReadError
from actiscope.run import RunDir
from actiscope.web import services


def _run_or_404(name: str) -> RunDir:
    run = services.find_run(name)
    if run is None:
        raise Http404(f"no run named {name!r}")
    return run


def runs_page(request: HttpRequest) -> HttpResponse:
    runs = services.list_runs()
    active = services.MODEL.active_path()
    context = {
        "runs": runs,
        "leaderboards": services.leaderboards(),
        "searches": services.searches(),
        "active": {r.name for r in runs if services.serves(r.run, active)},
    }
    return render(request, "actiscope/runs.html", context)


def run_page(request: HttpRequest, name: str) -> HttpResponse:
    return _render_run(request, _run_or_404(name))


def _render_run(request: HttpRequest, run: RunDir, error: str = "", status: int = 200) -> HttpResponse:
    page = services.run_page(run)
    context = {"run": page.summary, "page": page, "error": error}
    return render(request, "actiscope/run.html", context, status=status)


def run_file(request: HttpRequest, name: str, file: str) -> FileResponse:
    try:
        target = services.run_file(_run_or_404(name), file)
    except services.ServiceError as exc:
        raise Http404(exc.message) from None
    kind = "text/plain; charset=utf-8" if target.suffix == ".md" else None
    return FileResponse(target.open("rb"), content_type=kind)


@require_POST
def activate(request: HttpRequest, name: str) -> HttpResponse:
    run = _run_or_404(name)
    try:
        services.activate(run)
    except services.ServiceError as exc:
        if exc.status == 404:
            raise Http404(exc.message) from None
        return _render_run(request, run, error=exc.message, status=exc.status)  # a damaged package
    return redirect("run", name=name)


def gallery_page(request: HttpRequest, name: str) -> HttpResponse:
    """Random test images with predicted and true labels (from the run's evaluation)."""
    run = _run_or_404(name)
    rows = services.evaluated(run)
    picks = random.sample(range(len(rows)), min(12, len(rows)))
    items = [(i, rows[i]) for i in picks]  # the index names the image in its URL
    return render(request, "actiscope/gallery.html", {"run": services.run_summary(run), "items": items})


def gallery_image(request: HttpRequest, name: str, index: int) -> HttpResponseBase:
    """The test image, or for a clip its middle frame as a PNG."""
    rows = services.evaluated(_run_or_404(name))
    if not 0 <= index < len(rows) or not Path(rows[index].filename).is_file():
        raise Http404("no such test image")
    file = Path(rows[index].filename)
    if not is_video_path(file):
        return FileResponse(file.open("rb"))
    buffer = io.BytesIO()
    try:
        Image.fromarray(preview_frame(file)).save(buffer, format="PNG")
    except MediaReadError:
        raise Http404("the test clip cannot be read") from None
    return HttpResponse(buffer.getvalue(), content_type="image/png")
