"""The web app with a video model: a clip upload gets its top-k and a timeline; bad uploads get one line
and nothing is stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from actiscope.data.synthetic import moving_square_frames, write_clip
from actiscope.data.video import VideoLimits
from actiscope.web import services
from actiscope.web.classify.models import Prediction
from tests.web.conftest import png_bytes, stored_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def video_web(settings: Settings, tmp_path: Path, video_runs: dict[str, Path]) -> Path:
    settings.RUNS_DIR = video_runs["convlstm"].parent
    settings.MEDIA_ROOT = tmp_path / "uploads"
    settings.ACTISCOPE_MODEL = str(video_runs["convlstm"])
    services.MODEL = services.ModelService()
    return tmp_path / "uploads"


def clip_bytes(tmp_path: Path, directions: list[str]) -> bytes:
    rng = np.random.default_rng(3)
    path = tmp_path / "upload.avi"
    write_clip(path, np.concatenate([moving_square_frames(d, rng) for d in directions]))
    return path.read_bytes()


def test_clip_upload_gets_top_k_and_timeline(video_web: Path, tmp_path: Path) -> None:
    data = clip_bytes(tmp_path, ["left", "left", "left"])  # 48 frames at 12 fps: 4 s
    upload = SimpleUploadedFile("my clip.avi", data, content_type="video/x-msvideo")
    response = APIClient().post("/api/v1/predict", {"file": upload, "top_k": 3}, format="multipart")
    assert response.status_code == 201, response.content
    (body,) = response.json()
    assert body["kind"] == "clip" and body["label"] == "left" and len(body["top_k"]) == 3
    timeline = body["timeline"]
    assert [(w["start"], w["end"]) for w in timeline] == [(0, 2), (1, 3), (2, 4)]
    # 2-second windows straddle the 1.33-second clips here: the labels are checked where windows align
    # with the action, in test_video_flows; here the app's part: every window, a class and a probability
    assert all(w["label"] in ("down", "left", "right", "up") and 0 < w["probability"] <= 1 for w in timeline)
    (stored,) = stored_files(video_web)
    assert stored.suffix == ".avi" and stored.read_bytes() == data

    page = Client().get("/history")
    assert b"<video" in page.content
    media = Client().get(body["image_url"])
    assert media.status_code == 200 and b"".join(media.streaming_content) == data


def test_classify_page_asks_for_clips_and_shows_the_timeline(video_web: Path, tmp_path: Path) -> None:
    client = Client()
    page = client.get("/")
    assert b'accept="video/*"' in page.content and b"clip" in page.content
    data = clip_bytes(tmp_path, ["up", "up"])
    response = client.post("/", {"file": SimpleUploadedFile("c.avi", data)})
    assert response.status_code == 200 and b"Timeline" in response.content and b"<video" in response.content


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("photo.png", png_bytes(), "photo.png: not a video"),
        ("fake.mp4", b"\x00\x00\x00\x18ftypmp42" + b"x" * 300, "fake.mp4: not a video"),
    ],
)
def test_bad_clip_uploads_are_one_line_and_nothing_is_stored(
    video_web: Path, name: str, data: bytes, message: str
) -> None:
    upload = SimpleUploadedFile(name, data)
    response = APIClient().post("/api/v1/predict", {"file": upload}, format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith(message) and "upload a video" in error and "\n" not in error
    assert Prediction.objects.count() == 0 and stored_files(video_web) == []


def test_clip_over_the_limits_is_refused(video_web: Path, tmp_path: Path, settings: Settings) -> None:
    settings.VIDEO_LIMITS = VideoLimits(max_seconds=1)  # ACTISCOPE_MAX_CLIP_SECONDS=1, as settings read it
    upload = SimpleUploadedFile("long.avi", clip_bytes(tmp_path, ["left", "right"]))
    response = APIClient().post("/api/v1/predict", {"file": upload}, format="multipart")
    assert response.status_code == 400 and "over the limit of 1 s" in response.json()["error"]
    assert Prediction.objects.count() == 0


def _png(pixels: np.ndarray) -> SimpleUploadedFile:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return SimpleUploadedFile("frame.png", buffer.getvalue(), content_type="image/png")


def test_live_frames_fill_a_sliding_window_then_get_the_clip_prediction(video_web: Path) -> None:
    from actiscope.data.video import resize_frame

    predictor, _ = services.MODEL.serving()
    need, size = int(predictor.preprocess.frames or 0), predictor.preprocess.image_size
    rng = np.random.default_rng(11)
    camera = np.concatenate([moving_square_frames("left", rng), moving_square_frames("up", rng)])
    client = APIClient()

    def send(i: int, session: str = "browser-one") -> dict:
        answer = client.post(
            "/api/v1/live", {"frame": _png(camera[i]), "session": session}, format="multipart"
        )
        assert answer.status_code == 200, answer.content
        return answer.json()

    for i in range(need - 1):
        body = send(i)
        assert body["top"] is None and body["window"] == {"have": i + 1, "need": need}
    assert send(0, "browser-two")["window"]["have"] == 1  # each browser has its own window
    for last in range(need - 1, need + 3):  # full, then sliding: always the last `need` frames
        body = send(last)
        window = np.stack([resize_frame(f, size) for f in camera[last + 1 - need : last + 1]])
        (expected,) = predictor.predict([window], top_k=5)
        assert body["window"] == {"have": need, "need": need}
        assert [t["label"] for t in body["top"]] == [label for label, _ in expected.top_k]
        assert [t["probability"] for t in body["top"]] == pytest.approx(
            [p for _, p in expected.top_k], abs=1e-5
        )
        if last == need - 1:
            assert body["top"][0]["label"] == "left"  # the first full window is the whole "left" clip
    bad = client.post("/api/v1/live", {"frame": _png(camera[0]), "session": "x"}, format="multipart")
    assert bad.status_code == 400 and "session" in bad.json()["error"]
    assert Prediction.objects.count() == 0 and stored_files(video_web) == []
