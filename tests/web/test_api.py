from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from actiscope.web import services
from actiscope.web.classify.models import Prediction
from tests.conftest import truncated_jpeg
from tests.web.conftest import png_bytes, stored_files

pytestmark = pytest.mark.django_db


def _file(name: str = "photo.png", data: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes() if data is None else data, content_type="image/png")


def test_predict_store_list_get_delete(web: Path) -> None:
    client = APIClient()
    response = client.post(
        "/api/v1/predict", {"file": _file("my <b>photo.png"), "top_k": 2}, format="multipart"
    )
    assert response.status_code == 201, response.content
    (body,) = response.json()
    assert body["label"] == "red" and len(body["top_k"]) == 2 and body["top_k"][0]["label"] == "red"
    assert body["model_name"] == "run (simple-cnn)" and body["latency_ms"] > 0 and body["model_version"]
    assert body["original_name"] == "my <b>photo.png"  # JSON carries it as data; pages escape it
    (stored,) = stored_files(web)
    assert stored.suffix == ".png" and "photo" not in stored.name  # a generated name

    listed = client.get("/api/v1/predictions").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == body["id"]
    assert client.get(f"/api/v1/predictions/{body['id']}").json()["label"] == "red"
    assert client.get("/api/v1/predictions?label=blue").json()["count"] == 0
    assert client.delete(f"/api/v1/predictions/{body['id']}").status_code == 204
    assert Prediction.objects.count() == 0 and stored_files(web) == []
    assert client.get(f"/api/v1/predictions/{body['id']}").json() == {
        "error": "No Prediction matches the given query."
    }


def test_several_images_in_one_request(web: Path) -> None:
    files = [_file("a.png", png_bytes((220, 40, 40))), _file("b.png", png_bytes((40, 60, 220)))]
    response = APIClient().post("/api/v1/predict", {"file": files}, format="multipart")
    assert response.status_code == 201
    assert [r["label"] for r in response.json()] == ["red", "blue"] and len(stored_files(web)) == 2


def _bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buffer, format="PNG")  # 100 megapixels in a few kilobytes
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("missing", 400, "no file: send an image (or a clip, for a video model) in the form field 'file'"),
        ("text", 400, "notes.jpg: "),
        ("truncated", 400, "truncated"),
        ("bomb", 400, "decompression bomb"),
        ("too_big", 413, "over the 0 MB upload limit"),
        ("too_many", 400, "too many files: 3 in one request; the limit is 2"),
        ("bad_top_k", 400, "top_k: must be a whole number"),
        ("zero_top_k", 400, "top_k: must be between 1 and 100"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(
    web: Path, settings: Settings, tmp_path: Path, case: str, status: int, message: str
) -> None:
    data: dict[str, object] = {}
    if case == "text":
        data["file"] = _file("notes.jpg", b"this is not an image at all")
    elif case == "truncated":
        data["file"] = _file("cut.jpg", truncated_jpeg(tmp_path / "cut.jpg").read_bytes())
    elif case == "bomb":
        data["file"] = _file("bomb.png", _bomb())
    elif case == "too_big":
        settings.MAX_UPLOAD_BYTES = 1000
        data["file"] = _file("big.png", png_bytes(size=(400, 400)) + b"\0" * 2000)
    elif case == "too_many":
        settings.MAX_FILES = 2
        data["file"] = [_file(f"{i}.png") for i in range(3)]
    elif case == "bad_top_k":
        data |= {"file": _file(), "top_k": "many"}
    elif case == "zero_top_k":
        data |= {"file": _file(), "top_k": "0"}
    response = APIClient().post("/api/v1/predict", data, format="multipart")
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error and "\n" not in error
    assert Prediction.objects.count() == 0 and stored_files(web) == []


def test_models_runs_and_run_detail(web: Path) -> None:
    client = APIClient()
    models = client.get("/api/v1/models").json()
    assert models["models"][0]["run"] == "run" and models["models"][0]["architecture"] == "simple-cnn"
    runs = client.get("/api/v1/runs").json()["runs"]
    assert [r["name"] for r in runs] == ["run"] and runs[0]["status"] == "finished"
    detail = client.get("/api/v1/runs/run").json()
    assert detail["test_accuracy"] is not None and "metrics" in detail
    assert client.get("/api/v1/runs/nope").status_code == 404


def test_health_and_readiness(web: Path, settings: Settings, tmp_path: Path) -> None:
    client = APIClient()
    assert client.get("/healthz").json() == {"status": "alive"}
    ready = client.get("/readyz")
    idle = {"running": 0, "waiting": 0, "slots": 2, "queue": 8}  # this worker's predictions, the limits
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "database": "ok", "model": "ok", "predictions": idle}
    settings.RUNS_DIR = tmp_path / "empty"
    services.MODEL = services.ModelService()  # a process started on an empty runs folder
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503 and "no model to serve" in not_ready.json()["model"]
    response = client.post("/api/v1/predict", {"file": _file()}, format="multipart")
    assert response.status_code == 503 and "no model to serve" in response.json()["error"]


def test_schema_and_docs_use_local_assets(web: Path) -> None:
    client = APIClient()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/predict" in schema.content.decode()
    docs = client.get("/api/docs/").content.decode()
    assert "swagger" in docs.lower() and "/static/drf_spectacular_sidecar/" in docs
    assert "cdn" not in docs.lower() and "https://" not in docs


def _untyped(
    schema: Any, components: dict[str, Any], where: str, seen: frozenset[str] = frozenset()
) -> list[str]:
    """Where `schema` holds a value of no declared shape: {} or an object without properties."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return (
            [] if name in seen else _untyped(components[name], components, f"{where}({name})", seen | {name})
        )
    found = []
    for key in ("allOf", "oneOf", "anyOf"):
        for i, part in enumerate(schema.get(key, [])):
            found += _untyped(part, components, f"{where}.{key}[{i}]", seen)
    if "items" in schema:
        found += _untyped(schema["items"], components, f"{where}[]", seen)
    for name, field in schema.get("properties", {}).items():
        found += _untyped(field, components, f"{where}.{name}", seen)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        found += _untyped(extra, components, f"{where}{{}}", seen)
    shaped = any(k in schema for k in ("properties", "items", "allOf", "oneOf", "anyOf", "enum")) or (
        isinstance(extra, dict) and bool(extra)
    )
    if not shaped and schema.get("type") in (None, "object"):
        found.append(where)
    return found


def test_the_schema_types_every_response(web: Path) -> None:
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]
    untyped, checked = [], 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code == "204":
                    continue
                content = response.get("content", {}).get("application/json")
                if content is None or "schema" not in content:
                    untyped.append(f"{method.upper()} {path} {code}: no schema")
                    continue
                checked += 1
                untyped += _untyped(content["schema"], components, f"{method.upper()} {path} {code}")
    assert checked >= 10 and untyped == []
    free_form = {"type": "object", "properties": {"runs": {"type": "object", "additionalProperties": {}}}}
    assert _untyped(free_form, {}, "example") == ["example.runs"]  # what `responses={200: dict}` produced


def test_run_detail_passes_metrics_on_whole_and_the_schema_names_every_key(
    web: Path, trained_run: Path
) -> None:
    from actiscope.evaluate.report import evaluate
    from actiscope.run import RunDir
    from actiscope.web.api.serializers import MetricsSerializer

    evaluate(trained_run, backend="torch", workers=0)
    written = json.loads(RunDir(trained_run).eval.metrics.read_text())
    metrics = APIClient().get("/api/v1/runs/run").json()["metrics"]
    assert metrics == written
    documented = MetricsSerializer().fields
    assert set(documented) == set(written)
    assert set(documented["model"].fields) == set(written["model"])
    assert set(documented["per_class"].child.fields) == set(written["per_class"][0])


def test_the_database_is_the_one_configured() -> None:
    from django.db import connection

    expected = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    assert connection.vendor == expected
