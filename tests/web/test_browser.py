"""The web app in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_django.live_server_helper import LiveServer

from tests.web.conftest import png_bytes

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (Debian package chromium)"),
    pytest.mark.django_db(transaction=True),
]


def _photo(tmp_path: Path) -> Path:
    """A real photo from the shared data when it is there, else a picture made here."""
    from tests.conftest import SHARED_DATA

    real = sorted((SHARED_DATA / "har15" / "images").glob("*.jpg"))[:1]
    if real:
        return real[0]
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes((200, 50, 40), size=(320, 240)))
    return path


def test_upload_see_result_find_in_history_open_run(
    live_server: LiveServer, web: Path, tmp_path: Path
) -> None:
    base = live_server.url
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(base + "/")
            page.set_input_files("#file", str(_photo(tmp_path)))
            page.click("button[type=submit]")
            page.wait_for_selector(".result")
            label = page.inner_text(".result h3").split()[0]
            assert label in {"red", "green", "blue"}
            assert page.locator(".result .bar").count() == 3  # every class of the tiny model, as bars
            assert page.locator(".result .fill").first.evaluate("e => e.getBoundingClientRect().width") > 0
            assert page.locator(".result img.thumb").evaluate("e => e.naturalWidth") > 0

            page.click("text=History")
            page.wait_for_selector("table.history img.mini")
            assert label in page.inner_text("table.history tbody tr")

            page.goto(base + "/runs/run")
            curves = page.locator("img[alt='training curves']")
            curves.wait_for()
            page.wait_for_function("document.querySelector(\"img[alt='training curves']\").complete")
            assert curves.evaluate("e => e.naturalWidth") > 300
        finally:
            browser.close()
