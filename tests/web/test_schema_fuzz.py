"""schemathesis against the OpenAPI schema: no generated request may make the API answer 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from actiscope.web.wsgi import application  # noqa: E402

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case, web: Path) -> None:
    response = case.call()
    assert response.status_code < 500, f"{case!r} -> {response.status_code}: {response.text[:300]}"
