"""Who may do what (web/access.py): on loopback everyone may do everything (the other web tests); exposed,
a change needs a logged-in user or a token, and reads and predictions do too unless they are opened."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from actiscope.web import access
from actiscope.web.classify.models import ActiveModel, Prediction
from actiscope.web.serve import is_loopback
from actiscope.web.setup import PRODUCTION_SETTINGS
from actiscope.web.users import api_token
from tests.web.conftest import png_bytes

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-enough-passphrase"


@pytest.fixture
def exposed(web: Path, settings: Settings) -> Settings:
    """The app as `serve --host 0.0.0.0` runs it: reads and predictions closed too."""
    settings.EXPOSED, settings.OPEN_READ = True, False
    return settings


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password=PASSWORD)


def _row() -> Prediction:
    return Prediction.objects.create(
        image="gone.png", model_name="m", label="red", confidence=0.9, top_k=[["red", 0.9]], latency_ms=1.0
    )


def _png() -> SimpleUploadedFile:
    return SimpleUploadedFile("photo.png", png_bytes(), content_type="image/png")


def test_anonymous_changes_on_the_pages_go_to_the_login_and_change_nothing(
    exposed: Settings, trained_run: Path
) -> None:
    client, row = Client(), _row()
    refused = client.post(f"/predictions/{row.pk}/delete", HTTP_REFERER="http://testserver/history?page=2")
    # back to the page the form was on once logged in (a POST-only URL cannot be replayed)
    assert refused.status_code == 302 and refused["Location"] == "/login?next=/history%3Fpage%3D2"
    assert Prediction.objects.filter(pk=row.pk).exists()
    foreign = client.post("/runs/run/activate", HTTP_REFERER="https://evil.example/runs")
    assert foreign.status_code == 302 and foreign["Location"] == "/login?next=/"  # a foreign page is dropped
    assert not ActiveModel.objects.exists()

    for page in ("/", "/history", "/runs", "/runs/run", f"/predictions/{row.pk}/image"):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith("/login?next=/"), page
    assert client.post("/", {"file": _png()}).status_code == 302 and Prediction.objects.count() == 1
    assert client.get("/healthz").status_code == 200  # the probes stay open
    login = client.get("/login?next=/runs")
    assert login.status_code == 200 and b'name="next" value="/runs"' in login.content


def test_a_logged_in_user_may_change_and_read(exposed: Settings, alice: User, trained_run: Path) -> None:
    client, row = Client(), _row()
    client.force_login(alice)
    forged = Client(enforce_csrf_checks=True)  # a login does not lift CSRF
    forged.force_login(alice)
    assert forged.post(f"/predictions/{row.pk}/delete").status_code == 403
    assert forged.post("/runs/run/activate").status_code == 403
    assert client.get("/history").status_code == 200
    gone = client.post(f"/predictions/{row.pk}/delete", {"next": "/history"})
    assert gone.status_code == 302 and gone["Location"] == "/history"
    assert not Prediction.objects.exists()
    assert client.post("/runs/run/activate").status_code == 302
    assert ActiveModel.objects.get().path == str(trained_run / "model")
    page = client.get("/").content.decode()
    assert "alice" in page and 'action="/logout"' in page  # who is logged in, and a way out


def test_open_reading_opens_pages_and_predictions_but_not_changes(exposed: Settings) -> None:
    exposed.OPEN_READ = True
    client = Client()
    page = client.get("/")
    assert page.status_code == 200 and b'href="/login?next=/"' in page.content
    assert client.post("/", {"file": _png()}).status_code == 200 and Prediction.objects.count() == 1
    row = Prediction.objects.get()
    assert client.get("/history").status_code == 200
    assert client.get(f"/predictions/{row.pk}/image").status_code == 200
    assert client.post(f"/predictions/{row.pk}/delete").status_code == 302
    assert client.post("/runs/run/activate").status_code == 302
    assert Prediction.objects.filter(pk=row.pk).exists() and not ActiveModel.objects.exists()


def test_every_form_that_posts_carries_a_csrf_token() -> None:
    templates = Path(access.__file__).parent / "templates"
    forms = [
        form
        for page in templates.rglob("*.html")
        for form in re.findall(r"<form[^>]*>.*?</form>", page.read_text(), flags=re.S)
        if 'method="post"' in form
    ]
    assert len(forms) >= 5 and all("{% csrf_token %}" in form for form in forms)


def test_login_page_logs_in_and_refuses_a_foreign_next(exposed: Settings, alice: User) -> None:
    wrong = Client().post("/login", {"username": "alice", "password": "nope", "next": "/history"})
    assert wrong.status_code == 200 and b'class="error"' in wrong.content
    for target, expected in (
        ("/history?label=red", "/history?label=red"),
        ("https://evil.example/phish", "/"),
        ("//evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ):
        client = Client()
        response = client.post("/login", {"username": "alice", "password": PASSWORD, "next": target})
        assert response.status_code == 302 and response["Location"] == expected, target
        assert client.get("/history").status_code == 200
    assert b'name="next" value=""' in Client().get("/login?next=https://evil.example/").content

    csrf = Client(enforce_csrf_checks=True)
    assert csrf.post("/login", {"username": "alice", "password": PASSWORD}).status_code == 403
    logged_in = Client()
    logged_in.force_login(alice)
    assert logged_in.post("/logout").status_code == 302
    assert logged_in.get("/history").status_code == 302  # logged out


def test_the_delete_page_refuses_a_foreign_next_for_a_logged_in_user(exposed: Settings, alice: User) -> None:
    client = Client()
    client.force_login(alice)
    for target in ("https://evil.example/phish", "//evil.example", "http://testserver.evil.example/"):
        gone = client.post(f"/predictions/{_row().pk}/delete", {"next": target})
        assert gone.status_code == 302 and gone["Location"] == "/history", target


def test_the_api_needs_a_token_or_a_session_when_exposed(exposed: Settings, alice: User) -> None:
    row, client = _row(), APIClient()
    for refused in (
        client.get("/api/v1/predictions"),
        client.get("/api/v1/models"),
        client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"),
        client.post("/api/v1/predict", {"file": _png()}, format="multipart"),
        client.delete(f"/api/v1/predictions/{row.pk}"),
    ):
        assert refused.status_code == 401 and refused["WWW-Authenticate"] == "Token"
        assert refused.json() == {"error": "Authentication credentials were not provided."}
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token('alice')}")
    assert client.get("/api/v1/predictions").json()["count"] == 1
    assert client.post("/api/v1/predict", {"file": _png()}, format="multipart").status_code == 201
    assert client.delete(f"/api/v1/predictions/{row.pk}").status_code == 204
    client.credentials(HTTP_AUTHORIZATION="Token wrong")
    assert client.get("/api/v1/predictions").json() == {"error": "Invalid token."}

    replaced = api_token("alice", new=True)  # the old token stops working
    client.credentials(HTTP_AUTHORIZATION=f"Token {replaced}")
    assert client.get("/api/v1/predictions").status_code == 200

    # the pages' own scripts (live.js) use the session, with CSRF checked as on the pages
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(alice)
    target = f"/api/v1/predictions/{_row().pk}"
    forged = session.delete(target)
    assert forged.status_code == 403 and "CSRF" in forged.json()["error"]
    page = session.get("/history")
    assert session.delete(target, HTTP_X_CSRFTOKEN=page.cookies["csrftoken"].value).status_code == 204


def test_open_reading_in_the_api(exposed: Settings) -> None:
    exposed.OPEN_READ = True
    client = APIClient()
    assert client.get("/api/v1/predictions").status_code == 200
    created = client.post("/api/v1/predict", {"file": _png()}, format="multipart")
    assert created.status_code == 201
    refused = client.delete(f"/api/v1/predictions/{created.json()[0]['id']}")
    assert refused.status_code == 401 and Prediction.objects.count() == 1


# Under the production settings behind TLS: `check --deploy` raises SystemCheckError on any warning; then a
# login answers with the security headers and cookies that a browser needs over HTTPS.
DEPLOYED = f"""
import json, os
from actiscope.web.setup import open_database, prepare_environment
prepare_environment(os.environ)
open_database()
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
call_command("check", deploy=True, fail_level="WARNING")
User.objects.create_user("alice", password="{PASSWORD}")
client = Client(HTTP_HOST="actions.example.org")
login = client.post("/login", {{"username": "alice", "password": "{PASSWORD}"}}, secure=True)
print(json.dumps({{
    "status": login.status_code,
    "headers": dict(login.headers),
    "cookies": {{name: [m["secure"], m["httponly"], m["samesite"]] for name, m in login.cookies.items()}},
    "plain": [client.get(path).status_code for path in ("/history", "/healthz", "/readyz")],
}}))
"""


def test_behind_tls_check_deploy_is_clean_and_answers_carry_the_security_headers(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ACTISCOPE_", "DATABASE_URL"))},
        "ACTISCOPE_DATA_DIR": str(tmp_path),
        "ACTISCOPE_HTTPS": "1",
        "ACTISCOPE_EXPOSED": "1",
        "ACTISCOPE_SECRET_KEY": "x" * 20 + "a-long-random-production-secret-key-0123456789",
        "ACTISCOPE_ALLOWED_HOSTS": "actions.example.org",
        "DJANGO_SETTINGS_MODULE": PRODUCTION_SETTINGS,
    }
    proc = subprocess.run(
        [sys.executable, "-c", DEPLOYED], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    check, printed = proc.stdout.splitlines()
    assert check == "System check identified no issues (0 silenced)."
    answer = json.loads(printed)
    assert answer["status"] == 302
    headers = answer["headers"]
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert (
        headers["Referrer-Policy"] == "same-origin" and headers["Cross-Origin-Opener-Policy"] == "same-origin"
    )
    assert answer["cookies"] == {"sessionid": [True, True, "Lax"], "csrftoken": [True, "", "Lax"]}
    # plain http goes to https, except the probes (load balancers ask them over plain http)
    assert answer["plain"] == [301, 200, 503]  # 503: no model in this empty folder, but answered


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.1.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("actions.example.org", False)],
)  # fmt: skip  # one case per line reads as a table
def test_which_hosts_are_exposed(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_on_all_addresses_asks_for_a_user_that_user_add_makes(
    trained_run: Path, tmp_path: Path
) -> None:
    """The whole path: `serve --host 0.0.0.0` says how to make a user, refuses anonymous calls, and
    accepts the token of a user that `actiscope user add` made in the same data directory."""
    port, data = _free_port(), tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACTISCOPE_", "DJANGO_", "DATABASE_URL"))}
    env["DJANGO_SETTINGS_MODULE"] = PRODUCTION_SETTINGS
    cli = [sys.executable, "-m", "actiscope.cli"]
    serve = [*cli, "serve", "--runs", str(trained_run.parent), "--host", "0.0.0.0", "--port", str(port)]
    server = subprocess.Popen(
        [*serve, "--workers", "1", "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(2)]
        assert lines[0] == (
            "no user yet, so nothing can be changed here: create one with "
            f"`actiscope user add NAME --data-dir {data}`\n"
        ), lines
        assert "serving on" in lines[1]
        added = subprocess.run(
            [*cli, "user", "add", "alice", "--password-stdin", "--data-dir", str(data)],
            input=f"{PASSWORD}\n",
            env=env,
            capture_output=True,
            text=True,
        )
        assert added.returncode == 0 and "user alice added" in added.stdout, added.stderr
        token = subprocess.run(
            [*cli, "user", "token", "alice", "--data-dir", str(data)], env=env, capture_output=True, text=True
        ).stdout.strip()
        assert len(token) == 40

        api = f"http://127.0.0.1:{port}/api/v1/predictions"
        deadline = time.monotonic() + 90
        while True:
            try:
                if _status(f"http://127.0.0.1:{port}/healthz") == 200:
                    break
            except OSError:  # not listening yet
                pass
            assert server.poll() is None and time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.5)
        assert _status(api) == 401 and _status(api, token) == 200
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_failed_logins_lock_the_user_name_out_for_a_while(
    exposed: Settings, alice: User, caplog: pytest.LogCaptureFixture
) -> None:
    """Five wrong passwords for alice: the sixth try, with the right one, is refused (429, Retry-After,
    one line) and logs nobody in; another user from the same address still logs in; once the lockout
    has passed, alice does; a success clears her count."""
    from django.core.cache import cache

    cache.clear()
    exposed.LOGIN_FAILURES, exposed.LOGIN_LOCKOUT_S = 5, 600
    User.objects.create_user("bob", password=PASSWORD)
    for _ in range(5):
        assert Client().post("/login", {"username": "alice", "password": "nope"}).status_code == 200
    assert "login: user 'alice' refused for 600 s after 5 failures" in caplog.text
    client = Client()
    refused = client.post("/login", {"username": "Alice ", "password": PASSWORD})  # the same name
    assert refused.status_code == 429 and refused["Retry-After"] == "600"
    assert (
        b"too many failed logins for this user or from this address; try again in 10 minutes"
        in refused.content
    )
    assert client.get("/history").status_code == 302  # not logged in
    bob = Client()
    assert bob.post("/login", {"username": "bob", "password": PASSWORD}).status_code == 302
    assert bob.get("/history").status_code == 200

    cache.clear()  # the lockout has passed
    for _ in range(4):
        Client().post("/login", {"username": "alice", "password": "nope"})
    assert client.post("/login", {"username": "alice", "password": PASSWORD}).status_code == 302
    assert (
        Client().post("/login", {"username": "alice", "password": "nope"}).status_code == 200
    )  # count cleared
    cache.clear()


def test_failed_logins_from_one_address_are_limited_across_user_names(exposed: Settings, alice: User) -> None:
    from django.core.cache import cache

    cache.clear()
    exposed.LOGIN_FAILURES = 2
    for n in range(8):  # four times the per-name limit, spread over names that never reach it
        assert Client().post("/login", {"username": f"guess{n}", "password": "nope"}).status_code == 200
    assert Client().post("/login", {"username": "alice", "password": PASSWORD}).status_code == 429
    other = Client(REMOTE_ADDR="192.0.2.7")
    assert other.post("/login", {"username": "alice", "password": PASSWORD}).status_code == 302
    cache.clear()
