"""Endpoints that run a model are rate-limited per user, with Retry-After on 429."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def slow_rate(settings):
    settings.PINHOLE_API_PREDICT_RATE = "2/min"


def _predict(api, project, image_bytes, upload):
    return api.post(
        f"/api/v1/projects/{project.pk}/predict/",
        {"file": upload("x.png", image_bytes())},
        format="multipart",
    )


def test_it_throttles_predictions_per_user(slow_rate, api_for, project, viewer, editor, image_bytes, upload):
    api = api_for(viewer)
    codes = [_predict(api, project, image_bytes, upload).status_code for _ in range(2)]
    assert codes == [409, 409]  # nothing serves yet: past access, before the limit
    limited = _predict(api, project, image_bytes, upload)
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert "throttled" in limited.json()["detail"].lower()
    assert _predict(api_for(editor), project, image_bytes, upload).status_code == 409  # others unaffected


def test_it_throttles_the_backbone_endpoints_too(slow_rate, api_for, viewer, upload):
    api = api_for(viewer)
    for _ in range(2):
        api.post("/api/v1/features/", {"file": upload("x.jpg", b"nope")}, format="multipart")
    assert (
        api.post("/api/v1/recognize/", {"file": upload("x.jpg", b"nope")}, format="multipart").status_code
        == 429
    )


def test_it_defaults_to_twenty_per_second():
    from django.conf import settings

    from webui.lib.rates import Rate

    assert Rate(20, 1) == settings.PINHOLE_API_PREDICT_RATE
