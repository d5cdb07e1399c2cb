"""Public share links: create, use without an account, revoke, expire, throttle, framing."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.helpers import photo, png

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(project, make_version, owner):
    from webui.projects.models import Label

    Label.objects.create(project=project, name="ants")
    Label.objects.create(project=project, name="bees")
    version = make_version(project, 1)
    version.promote(owner)
    project.refresh_from_db()
    return project


def create_link(client, project, **data) -> str:
    """Create a link through the page; returns the plain token shown once on the next page."""
    response = client.post(reverse("serving:share", args=[project.pk]), data, follow=True)
    assert response.status_code == 200
    body = response.content.decode()
    match = re.search(r'value="http://testserver/s/([A-Za-z0-9_-]+)/"', body)
    assert match, "the new link is shown after creation"
    return match.group(1)


def public_url(token: str) -> str:
    return reverse("serving:public", args=[token])


def test_it_creates_a_link_that_works_without_an_account(client_for, served, editor):
    token = create_link(client_for(editor), served)
    anonymous = Client()
    response = anonymous.get(public_url(token))
    body = response.content.decode()
    assert response.status_code == 200
    assert served.name in body and "ants" in body and "bees" in body
    assert reverse("serving:public_predict", args=[token]) in body
    # It reveals nothing else: no version list, no images, no links into the app.
    assert "/projects/" not in body and "/api/" not in body and not re.search(r"\bv\d+\b", body)


def test_it_shows_the_token_only_once(client_for, served, owner):
    c = client_for(owner)
    token = create_link(c, served)
    again = c.get(reverse("serving:share", args=[served.pk])).content.decode()
    assert token not in again and token[:6] in again


def test_it_keeps_only_a_hash_of_the_token(client_for, served, owner):
    from webui.serving.models import ShareLink, hash_token

    token = create_link(client_for(owner), served)
    link = ShareLink.objects.get()
    assert link.token_hash == hash_token(token) and token not in link.token_hash
    assert len(token) >= 43  # 256 bits, URL-safe base64


def test_it_pins_a_version_and_sets_an_expiry(client_for, served, owner):
    from webui.serving.models import ShareLink

    c = client_for(owner)
    create_link(c, served, version="1", expires_days="7")
    link = ShareLink.objects.get()
    assert link.version.number == 1
    assert timedelta(days=6) < link.expires_at - timezone.now() <= timedelta(days=7)
    response = c.post(reverse("serving:share", args=[served.pk]), {"expires_days": "0"}, follow=True)
    assert "Expiry must be a whole number" in response.content.decode()
    response = c.post(reverse("serving:share", args=[served.pk]), {"version": "99"}, follow=True)
    assert "No such version" in response.content.decode()
    assert ShareLink.objects.count() == 1


def test_it_answers_404_once_revoked(client_for, served, owner, monkeypatch):
    from webui.serving import services
    from webui.serving.models import ShareLink

    evicted = []
    monkeypatch.setattr(services, "evict", lambda version_id=None: evicted.append(version_id))
    c = client_for(owner)
    token = create_link(c, served)
    assert Client().get(public_url(token)).status_code == 200
    link = ShareLink.objects.get()
    response = c.post(reverse("serving:share_revoke", args=[served.pk, link.pk]), follow=True)
    assert "revoked" in response.content.decode()
    assert Client().get(public_url(token)).status_code == 404
    assert Client().post(reverse("serving:public_predict", args=[token])).status_code == 404
    assert evicted == [served.serving_version_id]


def test_it_regenerates_a_link(client_for, served, owner):
    from webui.serving.models import ShareLink

    c = client_for(owner)
    old = create_link(c, served, expires_days="3")
    link = ShareLink.objects.get()
    response = c.post(reverse("serving:share_regenerate", args=[served.pk, link.pk]), follow=True)
    new = re.search(r'value="http://testserver/s/([A-Za-z0-9_-]+)/"', response.content.decode()).group(1)
    assert new != old
    assert Client().get(public_url(old)).status_code == 404
    assert Client().get(public_url(new)).status_code == 200
    fresh = ShareLink.objects.get(enabled=True)
    assert fresh.expires_at == link.expires_at


def test_it_answers_404_once_expired(served, owner):
    from webui.serving.models import ShareLink

    _link, token = ShareLink.create_for(served, owner, expires_at=timezone.now() - timedelta(seconds=1))
    assert Client().get(public_url(token)).status_code == 404


def test_it_answers_unknown_revoked_and_expired_tokens_identically(served, owner):
    from webui.serving.models import ShareLink

    revoked, revoked_token = ShareLink.create_for(served, owner)
    revoked.revoke()
    _expired, expired_token = ShareLink.create_for(
        served, owner, expires_at=timezone.now() - timedelta(days=1)
    )
    bodies = set()
    for token in ["x" * 43, revoked_token, expired_token, "short"]:
        response = Client().get(public_url(token))
        assert response.status_code == 404
        bodies.add(response.content)
    assert len(bodies) == 1


def test_it_throttles_token_guessing(served, owner, settings):
    from webui.serving.models import ShareLink

    settings.PINHOLE_SHARE_LOOKUP_FAILURES_PER_MINUTE = 30
    _link, token = ShareLink.create_for(served, owner)
    guesser = Client()
    statuses = [guesser.get(public_url(f"guess{i:040d}")).status_code for i in range(30)]
    assert statuses == [404] * 30
    response = guesser.get(public_url("guess-31"))
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    # Even a right guess is refused now: the throttle answers before the lookup.
    assert guesser.get(public_url(token)).status_code == 429
    other = Client(REMOTE_ADDR="10.9.8.7")
    assert other.get(public_url(token)).status_code == 200


def test_it_throttles_predictions_per_ip(served, owner, settings, monkeypatch):
    from webui.serving import views
    from webui.serving.models import ShareLink

    answer = {"label": "ants", "probability": 0.9, "top": [], "unknown": False, "unknown_score": 0.1}
    version_id = served.serving_version_id
    monkeypatch.setattr(
        views, "predict", lambda *a, **k: {**answer, "model_version": 1, "model_version_id": version_id}
    )
    settings.PINHOLE_SHARE_RATE_PER_MINUTE = 3
    _link, token = ShareLink.create_for(served, owner)
    url = reverse("serving:public_predict", args=[token])
    c = Client()
    statuses = [c.post(url, {"file": photo(png())}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = c.post(url, {"file": photo(png())})
    assert response.status_code == 429 and 0 < int(response["Retry-After"]) <= 61
    assert Client(REMOTE_ADDR="10.0.0.2").post(url, {"file": photo(png())}).status_code == 200
    # The public answer names no version.
    body = Client(REMOTE_ADDR="10.0.0.3").post(url, {"file": photo(png())}).json()
    assert "model_version" not in body and "model_version_id" not in body and body["label"] == "ants"


def test_it_lets_only_the_embed_be_framed(client_for, served, owner):
    from webui.serving.models import ShareLink

    _link, token = ShareLink.create_for(served, owner)
    embed = Client().get(reverse("serving:embed", args=[token]))
    assert embed.status_code == 200
    assert "X-Frame-Options" not in embed and "frame-ancestors *" in embed["Content-Security-Policy"]
    assert "script-src 'self'" in embed["Content-Security-Policy"]  # the rest of the policy still holds
    public = Client().get(public_url(token))
    assert public["X-Frame-Options"] == "DENY"
    share_page = client_for(owner).get(reverse("serving:share", args=[served.pk]))
    assert share_page["X-Frame-Options"] == "DENY"
    try_page = client_for(owner).get(reverse("serving:try", args=[served.pk]))
    assert try_page["X-Frame-Options"] == "DENY"
    # A dead link's embed answers 404, and that page cannot be framed.
    dead = Client().get(reverse("serving:embed", args=["no-such-token"]))
    assert dead.status_code == 404 and dead["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in dead["Content-Security-Policy"]


def test_every_page_carries_a_content_security_policy_without_inline_scripts(client_for, served, owner):
    import re

    pages = [
        reverse("login"),
        reverse("projects:list"),
        reverse("projects:detail", args=[served.pk]),
        reverse("serving:try", args=[served.pk]),
        reverse("api-tokens"),
        "/api/v1/docs/",
    ]
    c = client_for(owner)
    for url in pages:
        response = c.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "'unsafe-eval'" not in policy, url
        assert ("'unsafe-inline'" in policy) == url.startswith("/api/v1/docs/"), url  # Swagger's <style>
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy, url
        body = response.content.decode()
        # Every script comes from a file: an inline one (or an inline handler) would be blocked; and
        # our pages carry no style attribute (widths and colours are data-* attributes).
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), url
        assert not re.search(r"\son(click|submit|change|load)=", body), url
        if not url.startswith("/api/v1/docs/"):
            assert ' style="' not in body, url


def test_signed_in_pages_are_kept_by_no_shared_cache(client_for, served, owner):
    page = client_for(owner).get(reverse("projects:detail", args=[served.pk]))
    assert "private" in page["Cache-Control"] and "no-cache" in page["Cache-Control"]
    try_page = client_for(owner).get(reverse("serving:try", args=[served.pk]))
    assert "private" in try_page["Cache-Control"]


def test_it_shows_the_embed_snippet(client_for, served, owner):
    c = client_for(owner)
    response = c.post(reverse("serving:share", args=[served.pk]), {}, follow=True)
    body = response.content.decode()
    assert "&lt;iframe src=&quot;http://testserver/s/" in body and "/embed&quot;" in body


def test_it_says_not_ready_when_nothing_serves(project, owner):
    from webui.serving.models import ShareLink

    _link, token = ShareLink.create_for(project, owner)
    body = Client().get(public_url(token)).content.decode()
    assert "not ready yet" in body and "dropzone" not in body
    response = Client().post(reverse("serving:public_predict", args=[token]), {"file": photo(png())})
    assert response.status_code == 409


def test_it_keeps_share_management_to_editors(client_for, served, owner, viewer, stranger):
    from webui.serving.models import ShareLink

    link, _token = ShareLink.create_for(served, owner)
    c = client_for(viewer)
    page = c.get(reverse("serving:share", args=[served.pk]))
    assert page.status_code == 200 and "Revoke</button>" not in page.content.decode()
    assert "Create link" not in page.content.decode()
    assert c.post(reverse("serving:share", args=[served.pk])).status_code == 403
    assert c.post(reverse("serving:share_revoke", args=[served.pk, link.pk])).status_code == 403
    assert c.post(reverse("serving:share_regenerate", args=[served.pk, link.pk])).status_code == 403
    s = client_for(stranger)
    assert s.get(reverse("serving:share", args=[served.pk])).status_code == 404
    assert s.post(reverse("serving:share_revoke", args=[served.pk, link.pk])).status_code == 404
    link.refresh_from_db()
    assert link.enabled


def test_it_requires_csrf_tokens_on_share_changes(served, owner):
    from webui.serving.models import ShareLink

    link, token = ShareLink.create_for(served, owner)
    c = Client(enforce_csrf_checks=True)
    c.force_login(owner)
    assert c.post(reverse("serving:share", args=[served.pk])).status_code == 403
    assert c.post(reverse("serving:share_revoke", args=[served.pk, link.pk])).status_code == 403
    assert c.post(reverse("serving:share_regenerate", args=[served.pk, link.pk])).status_code == 403


def test_it_answers_the_embed_without_a_csrf_cookie(served, owner, monkeypatch):
    """The embed runs in another site's frame, where the browser withholds the SameSite CSRF cookie."""
    from webui.serving import views
    from webui.serving.models import ShareLink

    answer = {"label": "bees", "probability": 0.8, "top": [], "unknown": False}
    monkeypatch.setattr(views, "predict", lambda *a, **k: answer)
    _link, token = ShareLink.create_for(served, owner)
    c = Client(enforce_csrf_checks=True)
    response = c.post(reverse("serving:public_predict", args=[token]), {"file": photo(png())})
    assert response.status_code == 200 and response.json()["label"] == "bees"


@pytest.mark.slow
def test_it_predicts_on_the_public_page_with_a_real_model(trained_project, owner):
    from webui.serving.models import ShareLink

    _link, token = ShareLink.create_for(trained_project, owner)
    c = Client()
    url = reverse("serving:public_predict", args=[token])
    red = c.post(url, {"file": photo(png((210, 40, 40), seed=77))}).json()
    blue = c.post(url, {"file": photo(png((40, 40, 210), seed=78))}).json()
    assert red["label"] == "red" and blue["label"] == "blue"
    assert isinstance(red["unknown"], bool) and len(red["top"]) == 2
    assert "heatmap" not in red
    explained = c.post(url, {"file": photo(png((40, 40, 210), seed=79)), "heatmap": "1"}).json()
    assert explained["heatmap"].startswith("data:image/jpeg;base64,") and explained["heatmap_label"] == "blue"
    bad = c.post(url, {"file": photo(b"\x00" * 64, "x.jpg")})
    assert bad.status_code == 400 and "not an image" in bad.json()["detail"]
