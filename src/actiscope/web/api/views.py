"""The JSON API, versioned under /api/v1/. Views parse and respond; services do the work."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import JsonResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from actiscope.web import services
from actiscope.web.api.serializers import ErrorSerializer, PredictionSerializer, PredictRequestSerializer
from actiscope.web.classify.models import Prediction


class PredictView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": PredictRequestSerializer},
                   responses={201: PredictionSerializer(many=True), 400: ErrorSerializer, 413: ErrorSerializer,
                              503: ErrorSerializer})  # fmt: skip
    def post(self, request: Request) -> Response:
        files = request.FILES.getlist("file")
        try:
            top_k = int(request.data.get("top_k", request.query_params.get("top_k", 5)))
        except (TypeError, ValueError):
            raise ValidationError({"top_k": "must be a whole number"}) from None
        if not 1 <= top_k <= 100:
            raise ValidationError({"top_k": "must be between 1 and 100"})
        rows = services.classify(files, top_k=top_k)
        return Response(PredictionSerializer(rows, many=True).data, status=status.HTTP_201_CREATED)


class PredictionList(generics.ListAPIView):
    serializer_class = PredictionSerializer

    @extend_schema(parameters=[OpenApiParameter("label", str), OpenApiParameter("model", str)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        rows = Prediction.objects.all()
        if label := self.request.query_params.get("label"):
            rows = rows.filter(label=label)
        if model := self.request.query_params.get("model"):
            rows = rows.filter(model_name=model)
        return rows


class PredictionDetail(generics.RetrieveDestroyAPIView):
    serializer_class = PredictionSerializer
    queryset = Prediction.objects.all()

    def perform_destroy(self, instance: Prediction) -> None:
        services.delete_prediction(instance)


class ModelList(APIView):
    @extend_schema(operation_id="v1_models_list", responses={200: dict})
    def get(self, request: Request) -> Response:
        active = services.MODEL.active_path()
        models = [
            {"run": r["name"], "architecture": r["architecture"], "path": r["path"] + "/model",
             "test_accuracy": r["test_accuracy"], "active": active is not None and str(active) in (r["path"], r["path"] + "/model")}
            for r in services.list_runs() if r["has_model"]
        ]  # fmt: skip
        return Response({"active": str(active) if active else None, "models": models})


class RunList(APIView):
    @extend_schema(operation_id="v1_runs_list", responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({"runs": services.list_runs()})


class RunDetail(APIView):
    @extend_schema(responses={200: dict, 404: ErrorSerializer})
    def get(self, request: Request, name: str) -> Response:
        path = services.find_run(name)
        if path is None:
            return Response({"error": f"no run named {name!r}; see /api/v1/runs"}, status=404)
        return Response({**services.run_summary(path), "metrics": services.run_metrics(path)})


def healthz(request: Any) -> JsonResponse:
    return JsonResponse({"status": "alive"})


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
    return JsonResponse({"ready": ready, **checks}, status=200 if ready else 503)
