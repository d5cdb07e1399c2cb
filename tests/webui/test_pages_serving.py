"""Try it page: access, the pretrained network before any training, the serving model after."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.helpers import photo, png

pytestmark = pytest.mark.django_db


def test_it_sends_anonymous_visitors_to_sign_in(client, project):
    for url in [reverse("serving:try", args=[project.pk]), reverse("serving:share", args=[project.pk])]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    response = client.post(reverse("serving:predict", args=[project.pk]), {"file": photo(png())})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_it_hides_the_try_page_from_strangers(client_for, project, stranger):
    c = client_for(stranger)
    assert c.get(reverse("serving:try", args=[project.pk])).status_code == 404
    assert c.post(reverse("serving:predict", args=[project.pk]), {"file": photo(png())}).status_code == 404


@pytest.mark.parametrize("who", ["owner", "editor", "viewer"])
def test_it_shows_the_try_page_to_members(request, client_for, project, who):
    body = (
        client_for(request.getfixturevalue(who))
        .get(reverse("serving:try", args=[project.pk]))
        .content.decode()
    )
    assert 'capture="environment"' in body and 'accept="image/*"' in body
    assert "pinhole/try.js" in body and "what the pretrained network recognises" in body


def test_it_refuses_a_missing_or_bad_file(client_for, project, viewer):
    c = client_for(viewer)
    url = reverse("serving:predict", args=[project.pk])
    response = c.post(url)
    assert response.status_code == 400 and "Choose a photo" in response.json()["detail"]
    response = c.post(url, {"file": photo(b"\x00garbage" * 8, "x.jpg")})
    assert response.status_code == 400 and "not an image" in response.json()["detail"]


def test_it_requires_csrf_tokens(project, viewer):
    c = Client(enforce_csrf_checks=True)
    c.force_login(viewer)
    assert c.post(reverse("serving:predict", args=[project.pk]), {"file": photo(png())}).status_code == 403


def test_it_recognises_imagenet_classes_before_any_training(
    client_for, project, viewer, media_root, monkeypatch
):
    import classifier.recognition

    seen = {}

    def fake_recognize(sources, *, backbone, top_k, onnx_dir):
        seen.update(backbone=backbone, top_k=top_k, onnx_dir=onnx_dir, n=len(sources))
        return [[("honeycomb", 0.7), ("bee", 0.2), ("ant", 0.05)]]

    monkeypatch.setattr(classifier.recognition, "recognize", fake_recognize)
    response = client_for(viewer).post(reverse("serving:predict", args=[project.pk]), {"file": photo(png())})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["mode"] == "pretrained" and body["top"][0] == {"label": "honeycomb", "probability": 0.7}
    assert seen["top_k"] == 5 and seen["n"] == 1 and str(seen["onnx_dir"]).endswith("onnx")


def test_it_throttles_a_flood_of_tries(client_for, project, viewer, settings, monkeypatch):
    import classifier.recognition

    monkeypatch.setattr(classifier.recognition, "recognize", lambda *a, **k: [[("bee", 1.0)]])
    settings.PINHOLE_TRY_RATE_PER_MINUTE = 2
    c = client_for(viewer)
    url = reverse("serving:predict", args=[project.pk])
    assert [c.post(url, {"file": photo(png())}).status_code for _ in range(2)] == [200, 200]
    response = c.post(url, {"file": photo(png())})
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


@pytest.mark.slow
def test_it_runs_the_pretrained_network_for_real(client_for, project, viewer, media_root):
    pytest.importorskip("onnxruntime")
    response = client_for(viewer).post(reverse("serving:predict", args=[project.pk]), {"file": photo(png())})
    assert response.status_code == 200, response.content
    top = response.json()["top"]
    assert len(top) == 5 and 0 < top[0]["probability"] <= 1


@pytest.mark.slow
def test_it_answers_with_the_serving_model(client_for, trained_project, viewer):
    c = client_for(viewer)
    body = c.get(reverse("serving:try", args=[trained_project.pk])).content.decode()
    assert "the serving version" in body and "Ask the pretrained network instead" in body
    response = c.post(
        reverse("serving:predict", args=[trained_project.pk]), {"file": photo(png((40, 40, 210)))}
    )
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["mode"] == "model" and answer["label"] == "blue" and answer["model_version"] == 1
    assert {row["label"] for row in answer["top"]} == {"red", "blue"}
    assert "heatmap" not in answer  # only when asked: it costs one more pass of the network
    assert "Show where it looked" in body
    tiny = c.post(reverse("serving:predict", args=[trained_project.pk]), {"file": photo(png(size=(1, 1)))})
    assert tiny.status_code == 400 and "1x1 pixels" in tiny.json()["detail"]


@pytest.mark.slow
def test_it_shows_where_the_answer_came_from_when_asked(client_for, trained_project, viewer):
    import base64
    import io

    from PIL import Image

    data = png((40, 40, 210))
    response = client_for(viewer).post(
        reverse("serving:predict", args=[trained_project.pk]), {"file": photo(data), "heatmap": "1"}
    )
    answer = response.json()
    prefix = "data:image/jpeg;base64,"
    assert answer["heatmap"].startswith(prefix) and answer["heatmap_label"] == answer["label"] == "blue"
    picture = Image.open(io.BytesIO(base64.b64decode(answer["heatmap"][len(prefix) :])))
    assert picture.format == "JPEG" and picture.size == Image.open(io.BytesIO(data)).size  # the photo's own


def test_it_explains_a_serving_model_that_cannot_load(client_for, project, viewer, make_version):
    # Checksums intact, contents unusable (no preprocessing, a graph ONNX Runtime refuses): a 409 that
    # says so, never a 500.
    make_version(project, 1).promote()
    response = client_for(viewer).post(
        reverse("serving:predict", args=[project.pk]), {"file": photo(png((200, 30, 30), 1), "a.png")}
    )
    assert response.status_code == 409
    assert "The serving model cannot answer: v1 cannot serve" in response.json()["detail"]


def test_the_try_page_shows_how_to_ask_from_a_script_with_the_real_address(
    client_for, project, viewer, make_version
):
    import re

    from django.urls import resolve

    body = client_for(viewer).get(reverse("serving:try", args=[project.pk])).content.decode()
    assert 'id="from-a-script"' not in body  # nothing serves yet: no snippet to try
    make_version(project, 1).promote()
    body = client_for(viewer).get(reverse("serving:try", args=[project.pk])).content.decode()
    urls = set(re.findall(r"http://testserver(/api/v1/[^\s\"<]+)", body))
    assert len(urls) == 1, urls  # curl and Python name the same address
    match = resolve(urls.pop())
    assert match.view_name == "api:predict" and match.kwargs == {"project_id": project.pk}
    assert reverse("api-tokens") in body and "PINHOLE_TOKEN" in body
