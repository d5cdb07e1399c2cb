"""Feature vectors and ImageNet recognition from a pretrained backbone, in the web process."""

from __future__ import annotations

import pytest

pytest.importorskip("classifier.features")

pytestmark = pytest.mark.django_db


def test_it_refuses_an_unknown_backbone(api_for, viewer, image_bytes, upload):
    response = api_for(viewer).post(
        "/api/v1/features/", {"file": upload("x.png", image_bytes()), "backbone": "vgg99"}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("unknown backbone 'vgg99'")


@pytest.mark.parametrize("endpoint", ["features", "recognize"])
def test_it_answers_400_for_a_bad_image_before_loading_anything(
    api_for, viewer, upload, endpoint, monkeypatch
):
    from webui.api.views import predict

    monkeypatch.setattr(predict, "extractor_for", lambda name: pytest.fail("no backbone for a bad image"))
    response = api_for(viewer).post(
        f"/api/v1/{endpoint}/", {"file": upload("x.jpg", b"GIF89a")}, format="multipart"
    )
    assert response.status_code == 400
    assert "image" in response.json()["detail"]


@pytest.mark.slow
def test_it_returns_the_feature_vector(api_for, viewer, image_bytes, upload):
    from classifier.backbones import BACKBONES

    response = api_for(viewer).post(
        "/api/v1/features/", {"file": upload("x.png", image_bytes())}, format="multipart"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["backbone"] == "efficientnet_lite0"
    assert body["dim"] == BACKBONES["efficientnet_lite0"].feature_dim == len(body["vector"])


@pytest.mark.slow
def test_it_recognises_imagenet_classes(api_for, viewer, image_bytes, upload):
    response = api_for(viewer).post(
        "/api/v1/recognize/", {"file": upload("x.png", image_bytes())}, format="multipart"
    )
    assert response.status_code == 200, response.json()
    top = response.json()["top"]
    assert len(top) == 5 and all(isinstance(t["label"], str) for t in top)
    assert top[0]["probability"] >= top[-1]["probability"]


def test_it_builds_one_extractor_per_backbone(monkeypatch):
    import classifier.features
    from webui.api.views import predict

    built = []

    class FakeExtractor:
        def __init__(self, backbone, **kwargs):
            built.append(backbone)

    monkeypatch.setattr(classifier.features, "Extractor", FakeExtractor)
    monkeypatch.setattr(predict, "_extractors", {})
    assert predict.extractor_for("resnet18") is predict.extractor_for("resnet18")
    predict.extractor_for("efficientnet_lite0")
    assert built == ["resnet18", "efficientnet_lite0"]
