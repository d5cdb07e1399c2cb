"""Personal API tokens from the browser: made with a name and shown once, stored only as a hash, used by
the API, revoked by their owner only."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from webui.api.models import ApiToken, hash_key

pytestmark = pytest.mark.django_db


def _make(c, name="nightly import") -> str:
    response = c.post(reverse("api-tokens"), {"name": name})
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    return response.context["new_key"]


def test_a_token_is_made_shown_once_and_works(client_for, owner, project):
    c = client_for(owner)
    key = _make(c)
    token = ApiToken.objects.get(user=owner)
    assert key.startswith("ph_") and len(key) > 40
    assert token.key_hash == hash_key(key) and key not in repr(list(ApiToken.objects.values_list()))
    page = c.get(reverse("api-tokens")).content.decode()
    assert "nightly import" in page and token.hint in page and key not in page  # never shown again
    api = APIClient()
    response = api.get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200 and [p["id"] for p in response.json()] == [project.pk]
    assert api.get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert "ago" in c.get(reverse("api-tokens")).content.decode()


def test_a_revoked_token_is_refused_and_only_its_owner_can_revoke_it(client_for, owner, stranger):
    key = _make(client_for(owner))
    token = ApiToken.objects.get(user=owner)
    revoke = reverse("api-token-revoke", args=[token.pk])
    assert client_for(stranger).post(revoke).status_code == 404
    assert APIClient().get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    response = client_for(owner).post(revoke, follow=True)
    assert "scripts using it now get 401" in response.content.decode()
    refused = APIClient().get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {key}")
    assert refused.status_code == 401 and refused.json() == {"detail": "Invalid token."}


def test_the_page_needs_a_name_and_a_sign_in(client, client_for, owner):
    assert client.get(reverse("api-tokens"))["Location"].startswith(reverse("login"))
    response = client_for(owner).post(reverse("api-tokens"), {"name": "  "})
    assert response.status_code == 200 and not ApiToken.objects.exists()
    assert "This field is required." in response.content.decode()


def test_the_header_links_to_the_api_page_and_it_to_the_docs(client_for, owner):
    page = client_for(owner).get(reverse("projects:list")).content.decode()
    assert f'href="{reverse("api-tokens")}"' in page
    assert reverse("api:docs") in client_for(owner).get(reverse("api-tokens")).content.decode()


def test_the_command_prints_a_working_key(owner):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("create_api_token", owner.username, "--name", "cron", stdout=out)
    key = out.getvalue().strip()
    assert ApiToken.objects.get(name="cron").key_hash == hash_key(key)


def test_plain_text_tokens_made_before_are_hashed_by_the_migration(transactional_db, django_user_model):
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("migrate", "api", "0001", verbosity=0)
    user = django_user_model.objects.create_user("old")
    old = Token.objects.create(user=user)
    call_command("migrate", "api", verbosity=0)
    assert not Token.objects.exists()
    assert ApiToken.objects.get(user=user).key_hash == hash_key(old.key)
    assert APIClient().get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {old.key}").status_code == 200
