"""The OpenAPI schema is valid and complete; the docs page is served without third-party assets."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db


def test_it_serves_a_valid_openapi_schema():
    from drf_spectacular.validation import validate_schema

    response = Client().get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)
    paths = schema["paths"]
    assert "/api/v1/projects/{project_id}/images/" in paths
    assert (
        "multipart/form-data"
        in paths["/api/v1/projects/{project_id}/images/"]["post"]["requestBody"]["content"]
    )
    assert set(paths["/api/v1/versions/{version_id}/promote/"]["post"]["responses"]) >= {
        "200",
        "403",
        "404",
        "409",
    }


def test_it_generates_the_schema_without_warnings(tmp_path):
    # --fail-on-warn exits non-zero on any warning (a view spectacular cannot introspect).
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert (tmp_path / "schema.yml").read_text().startswith("openapi:")


def test_it_serves_swagger_ui_from_local_assets():
    response = Client().get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower() and "https://" not in html
    # Its start-up script is a file of its own (no inline script: the content security policy).
    script = Client().get("/api/v1/docs/?script=")
    assert script.status_code == 200 and "javascript" in script["Content-Type"]
    assert "/api/v1/schema/" in script.content.decode()
