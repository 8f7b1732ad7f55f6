"""Pages: classify (upload, top-5 bars, Grad-CAM on request) and history. Views parse and respond."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from actiscope.errors import ActiscopeError
from actiscope.web import services
from actiscope.web.classify.models import Prediction


@require_http_methods(["GET", "POST"])
def classify_page(request: HttpRequest) -> HttpResponse:
    video = services.MODEL.active_kind() == "video"
    context: dict[str, object] = {
        "max_files": settings.MAX_FILES,
        "max_mb": (settings.MAX_CLIP_BYTES if video else settings.MAX_UPLOAD_BYTES) // 2**20,
        "video": video,
    }
    status = 200
    if request.method == "POST":
        try:
            context["results"] = services.classify(request.FILES.getlist("file"), top_k=5)
        except services.ServiceError as exc:
            context["error"], status = exc.message, exc.status
    return render(request, "actiscope/classify.html", context, status=status)


def history_page(request: HttpRequest) -> HttpResponse:
    rows = Prediction.objects.all()
    label, model = request.GET.get("label", ""), request.GET.get("model", "")
    if label:
        rows = rows.filter(label=label)
    if model:
        rows = rows.filter(model_name=model)
    page = Paginator(rows, 24).get_page(request.GET.get("page"))
    context = {
        "page": page, "label": label, "model": model,
        "labels": Prediction.objects.order_by("label").values_list("label", flat=True).distinct(),
        "models": Prediction.objects.order_by("model_name").values_list("model_name", flat=True).distinct(),
    }  # fmt: skip
    return render(request, "actiscope/history.html", context)


@require_POST
def delete_page(request: HttpRequest, pk: int) -> HttpResponse:
    services.delete_prediction(get_object_or_404(Prediction, pk=pk))
    return redirect(request.POST.get("next") or "history")


def prediction_image(request: HttpRequest, pk: int) -> FileResponse:
    path = services.image_path(get_object_or_404(Prediction, pk=pk))
    if not path.is_file():
        raise Http404("the stored image is gone")
    return FileResponse(path.open("rb"))


def prediction_gradcam(request: HttpRequest, pk: int) -> HttpResponse:
    """The Grad-CAM overlay for a stored prediction's class, made on request with the active model."""
    from actiscope.explain import explain

    row = get_object_or_404(Prediction, pk=pk)
    cache = Path(settings.MEDIA_ROOT) / "gradcam" / f"{row.pk}.png"
    if not cache.is_file():
        model = services.MODEL.active_path()
        if model is None:
            return HttpResponse("no active model", status=503, content_type="text/plain")
        cache.parent.mkdir(parents=True, exist_ok=True)
        try:
            explain(model, services.image_path(row), out=cache, class_name=row.label)
        except ActiscopeError as exc:
            return HttpResponse(f"Grad-CAM unavailable: {exc}", status=409, content_type="text/plain")
    return FileResponse(cache.open("rb"), content_type="image/png")
