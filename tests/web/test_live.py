"""The Live page: camera frames through the API's live endpoint, stored only when saved; and in a real
headless Chromium with a fake camera (a y4m file made here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from actiscope.web.classify.models import Prediction
from tests.web.conftest import png_bytes, stored_files

CHROMIUM = Path("/usr/bin/chromium")


def _frame(data: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile("frame.jpg", png_bytes() if data is None else data, content_type="image/jpeg")


@pytest.mark.django_db
def test_a_frame_is_predicted_and_kept_only_when_saved(web: Path) -> None:
    page = Client().get("/live")
    assert page.status_code == 200 and b"live.js" in page.content and b"/api/v1/live" in page.content
    client = APIClient()
    answer = client.post("/api/v1/live", {"frame": _frame()}, format="multipart")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["top"][0]["label"] == "red" and len(body["top"]) == 3 and body["saved"] is None
    assert body["latency_ms"] > 0 and Prediction.objects.count() == 0 and stored_files(web) == []
    saved = client.post("/api/v1/live", {"frame": _frame(), "save": "true"}, format="multipart").json()
    assert Prediction.objects.get().pk == saved["saved"] and len(stored_files(web)) == 1
    bad = client.post("/api/v1/live", {"frame": _frame(b"not an image")}, format="multipart")
    assert bad.status_code == 400 and "frame.jpg" in bad.json()["error"]
    assert Prediction.objects.count() == 1


def _y4m(
    path: Path, colour: tuple[int, int, int], frames: int = 30, size: tuple[int, int] = (160, 120)
) -> Path:
    """A fake camera: `frames` frames of one colour in YUV 4:2:0 (Chromium's --use-file-for-fake-video-capture)."""
    r, g, b = colour
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u, v = 128 + (b - y) * 0.564, 128 + (r - y) * 0.713
    w, h = size
    rng = np.random.default_rng(0)
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            luma = np.clip(y + rng.normal(0, 4, (h, w)), 0, 255).astype(np.uint8)
            fh.write(b"FRAME\n" + luma.tobytes())
            fh.write(
                np.full((h // 2, w // 2), u, np.uint8).tobytes()
                + np.full((h // 2, w // 2), v, np.uint8).tobytes()
            )
    return path


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (Debian package chromium)")
@pytest.mark.django_db(transaction=True)
def test_live_page_with_a_fake_camera(
    live_server: object, web: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Playwright's sync API runs an event loop in this thread; the test's own ORM reads are still synchronous
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    camera = _y4m(tmp_path / "camera.y4m", (220, 40, 40))
    args = [
        "--no-sandbox",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    ]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = browser.new_page()
            page.goto(live_server.url + "/live")  # type: ignore[attr-defined]  # pytest-django's server object
            page.wait_for_function(
                "Number(document.getElementById('live').dataset.answered || 0) >= 3", timeout=60000
            )
            state = page.evaluate("({...document.getElementById('live').dataset})")
            assert state["maxInFlight"] == "1"  # never two requests at once
            assert int(state["sent"]) - int(state["answered"]) <= 1
            assert page.inner_text("#status") == "live" and Prediction.objects.count() == 0
            page.click("#save")
            page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('saved')", timeout=30000
            )
            assert Prediction.objects.count() == 1 and Prediction.objects.get().label == "red"
            page.click("#pause")
            paused = int(page.evaluate("document.getElementById('live').dataset.sent"))
            page.wait_for_timeout(1500)
            assert int(page.evaluate("document.getElementById('live').dataset.sent")) <= paused + 1
        finally:
            browser.close()
