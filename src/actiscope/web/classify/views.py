"""Pages: classify (upload, top-5 bars, Grad-CAM on request) and history. Views parse and respond; the
work is in services."""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from actiscope.web import services
from actiscope.web.access import predicts, same_site
from actiscope.web.classify.models import Prediction


@predicts
@require_http_methods(["GET", "POST"])
def classify_page(request: HttpRequest) -> HttpResponse:
    video = services.MODEL.active_kind() == "video"
    context: dict[str, object] = {
        "max_files": settings.MAX_FILES,
        "max_mb": (settings.MAX_CLIP_BYTES if video else settings.MAX_UPLOAD_BYTES) // 2**20,
        "video": video,
    }
    status, retry_after = 200, None
    if request.method == "POST":
        try:
            services.MODEL.refuse_when_full()  # before the upload is read
            context["results"] = services.classify(request.FILES.getlist("file"), top_k=5)
        except services.ServiceError as exc:
            context["error"], status, retry_after = exc.message, exc.status, exc.retry_after
    response = render(request, "actiscope/classify.html", context, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def live_page(request: HttpRequest) -> HttpResponse:
    """The webcam page: live.js sends frames to the API's live endpoint, one at a time."""
    return render(
        request, "actiscope/live.html", {"video": services.MODEL.active_kind() == "video", "min_gap_ms": 200}
    )


def history_page(request: HttpRequest) -> HttpResponse:
    label, model = request.GET.get("label", ""), request.GET.get("model", "")
    labels, models = services.history_choices()
    page = Paginator(services.predictions(label, model), 24).get_page(request.GET.get("page"))
    context = {"page": page, "label": label, "model": model, "labels": labels, "models": models}
    return render(request, "actiscope/history.html", context)


@require_POST
def delete_page(request: HttpRequest, pk: int) -> HttpResponse:
    services.delete_prediction(get_object_or_404(Prediction, pk=pk))
    target = request.POST.get("next", "")
    return redirect(target if same_site(request, target) else "history")  # never another site (open redirect)


def prediction_image(request: HttpRequest, pk: int) -> FileResponse:
    path = services.image_path(get_object_or_404(Prediction, pk=pk))
    if not path.is_file():
        raise Http404("the stored image is gone")
    return FileResponse(path.open("rb"))


def prediction_gradcam(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The Grad-CAM overlay for a stored prediction's class, by the model that made the prediction."""
    try:
        overlay = services.explanation(get_object_or_404(Prediction, pk=pk))
    except services.ServiceError as exc:
        return HttpResponse(exc.message, status=exc.status, content_type="text/plain")
    return FileResponse(overlay.open("rb"), content_type="image/png")
