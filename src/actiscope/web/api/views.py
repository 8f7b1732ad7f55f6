"""The JSON API, versioned under /api/v1/. Views parse and respond; services do the work."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.db.models import QuerySet
from django.http import JsonResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from actiscope.web import services
from actiscope.web.api.serializers import (
    ErrorSerializer,
    LiveAnswerSerializer,
    LiveFrameSerializer,
    ModelListSerializer,
    PredictionSerializer,
    PredictRequestSerializer,
    RunDetailSerializer,
    RunListSerializer,
)
from actiscope.web.classify.models import Prediction


class PredictView(APIView):
    parser_classes = [MultiPartParser]
    predicts = True  # open with the reads (access.needs_login)

    @extend_schema(
        request={"multipart/form-data": PredictRequestSerializer},
        responses={
            201: PredictionSerializer(many=True),
            400: ErrorSerializer,
            413: ErrorSerializer,
            503: ErrorSerializer,  # no model, the queue full (with Retry-After), the database gone
            507: ErrorSerializer,  # no space left to store the upload
        },
    )
    def post(self, request: Request) -> Response:
        services.MODEL.refuse_when_full()  # before the upload is read
        # the service's one line for no file or too many comes before the form's field errors
        services.check_count(request.FILES.getlist("file"))
        form = PredictRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        rows = services.classify(form.validated_data["file"], top_k=form.validated_data["top_k"])
        return Response(PredictionSerializer(rows, many=True).data, status=status.HTTP_201_CREATED)


class LiveView(APIView):
    """One frame of the Live page's camera: nothing is stored unless `save` is set."""

    parser_classes = [MultiPartParser]
    predicts = True

    @extend_schema(
        request={"multipart/form-data": LiveFrameSerializer},
        responses={
            200: LiveAnswerSerializer,
            400: ErrorSerializer,
            413: ErrorSerializer,
            503: ErrorSerializer,  # no model, the queue full (with Retry-After), the database gone
            507: ErrorSerializer,  # no space left to store the upload
        },
    )
    def post(self, request: Request) -> Response:
        services.MODEL.refuse_when_full()  # before the frame is read
        form = LiveFrameSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        answer = services.live_frame(data["frame"], save=data["save"], session=data["session"])
        top = None if answer.top is None else [{"label": label, "probability": p} for label, p in answer.top]
        window = None if answer.window is None else dict(zip(("have", "need"), answer.window, strict=True))
        return Response(LiveAnswerSerializer({**asdict(answer), "top": top, "window": window}).data)


class PredictionList(generics.ListAPIView):
    serializer_class = PredictionSerializer

    @extend_schema(parameters=[OpenApiParameter("label", str), OpenApiParameter("model", str)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Prediction]:
        params = self.request.query_params
        return services.predictions(params.get("label", ""), params.get("model", ""))


class PredictionDetail(generics.RetrieveDestroyAPIView):
    serializer_class = PredictionSerializer
    queryset = Prediction.objects.all()

    def perform_destroy(self, instance: Prediction) -> None:
        services.delete_prediction(instance)


class ModelList(APIView):
    @extend_schema(operation_id="v1_models_list", responses={200: ModelListSerializer})
    def get(self, request: Request) -> Response:
        active, models = services.list_models()
        return Response(
            ModelListSerializer({"active": str(active) if active else None, "models": models}).data
        )


class RunList(APIView):
    @extend_schema(operation_id="v1_runs_list", responses={200: RunListSerializer})
    def get(self, request: Request) -> Response:
        return Response(RunListSerializer({"runs": services.list_runs()}).data)


class RunDetail(APIView):
    @extend_schema(responses={200: RunDetailSerializer, 404: ErrorSerializer})
    def get(self, request: Request, name: str) -> Response:
        run = services.find_run(name)
        if run is None:
            return Response({"error": f"no run named {name!r}; see /api/v1/runs"}, status=404)
        detail = {**asdict(services.run_summary(run)), "metrics": services.run_metrics(run)}
        return Response(RunDetailSerializer(detail).data)


@login_not_required  # probes answer whoever asks, exposed or not
def healthz(request: Any) -> JsonResponse:
    return JsonResponse({"status": "alive"})


@login_not_required
def readyz(request: Any) -> JsonResponse:
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any database failure means not ready
        checks["database"] = f"unreachable: {str(exc).splitlines()[0]}"
    try:
        services.MODEL.get()
        checks["model"] = "ok"
    except services.ServiceError as exc:
        checks["model"] = exc.message
    except Exception as exc:  # e.g. the database is down, so the active model cannot be looked up
        checks["model"] = f"unavailable: {str(exc).splitlines()[0]}"
    ready = all(v == "ok" for v in checks.values())
    queue = services.MODEL.admission().state()  # this worker's predictions (a full queue is still ready)
    return JsonResponse({"ready": ready, **checks, "predictions": queue}, status=200 if ready else 503)
