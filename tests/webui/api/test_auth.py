"""How callers authenticate: tokens, sessions with CSRF, and JSON 401s for everyone else."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_it_accepts_a_token(project, owner):
    from webui.api.models import ApiToken

    _token, key = ApiToken.create_for(owner, "a script")
    api = APIClient()
    response = api.get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
    assert [p["id"] for p in response.json()] == [project.pk]
    created = api.post(
        "/api/v1/projects/", {"name": "By token"}, format="json", HTTP_AUTHORIZATION=f"Token {key}"
    )
    assert created.status_code == 201  # no CSRF token needed: a header token cannot be forged cross-site


def test_it_refuses_a_wrong_token_with_json(project):
    response = APIClient().get("/api/v1/projects/", HTTP_AUTHORIZATION="Token not-a-real-key")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_it_answers_anonymous_callers_with_401_json(project):
    response = Client().get(f"/api/v1/projects/{project.pk}/")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"] == "Token"


def test_it_enforces_csrf_for_session_writes(project, owner):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    assert browser.get("/api/v1/projects/").status_code == 200
    response = browser.post("/api/v1/projects/", {"name": "Forged"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    patch = browser.patch(
        f"/api/v1/projects/{project.pk}/", {"name": "Forged"}, content_type="application/json"
    )
    assert patch.status_code == 403


def test_it_accepts_session_writes_with_the_csrf_token(project, owner):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    browser.get("/accounts/login/")  # any page that sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    response = browser.post(
        "/api/v1/projects/", {"name": "Real"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201
