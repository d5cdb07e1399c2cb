"""Share links that let visitors run the model on their own device: opt-in, its settings, its model
(with the "none of these" check inside), and nothing for links that do not allow it."""

from __future__ import annotations

import io

import onnxruntime as ort
import pytest
from django.test import Client
from django.urls import reverse

from tests.helpers import photo, png

pytestmark = pytest.mark.django_db


def test_the_owner_opts_in_when_making_the_link(client_for, trained_project, owner):
    from webui.serving.models import ShareLink

    client = client_for(owner)
    client.post(reverse("serving:share", args=[trained_project.pk]), {"on_device": "on"})
    client.post(reverse("serving:share", args=[trained_project.pk]), {})
    assert sorted(ShareLink.objects.values_list("on_device", flat=True)) == [False, True]
    page = client.get(reverse("serving:share", args=[trained_project.pk])).content.decode()
    assert page.count("also on the visitor&#x27;s device") + page.count("also on the visitor's device") == 1


def test_a_link_without_it_offers_and_hands_out_nothing(trained_project, owner):
    from webui.serving.models import ShareLink

    _link, token = ShareLink.create_for(trained_project, owner)
    c = Client()
    page = c.get(reverse("serving:public", args=[token]))
    assert b"Run on this device" not in page.content and b"ondevice.js" not in page.content
    assert "wasm-unsafe-eval" not in page["Content-Security-Policy"]
    assert c.get(reverse("serving:public_device", args=[token])).status_code == 404
    version = trained_project.serving_version
    assert c.get(reverse("serving:public_model", args=[token, version.pk])).status_code == 404
    assert c.get(reverse("serving:public_device", args=["no-such-token"])).status_code == 404


def test_the_device_gets_the_versions_settings_and_a_model_that_answers_as_the_server(trained_project, owner):
    from webui.serving.models import ShareLink

    _link, token = ShareLink.create_for(trained_project, owner, on_device=True)
    c = Client()
    page = c.get(reverse("serving:public", args=[token]))
    assert (
        b"Run on this device" in page.content and b"vendor/onnxruntime-web/ort.wasm.min.mjs" in page.content
    )
    assert "'wasm-unsafe-eval'" in page["Content-Security-Policy"]
    version = trained_project.serving_version
    config = c.get(reverse("serving:public_device", args=[token])).json()
    assert config["labels"] == version.labels and config["model_version"] == version.number
    assert config["preprocessing"]["crop"] == 224 and config["task_type"] == "single_label"
    assert config["model_url"] == reverse("serving:public_model", args=[token, version.pk])

    model = c.get(config["model_url"])
    assert model.status_code == 200 and "immutable" in model["Cache-Control"]
    graph = b"".join(model.streaming_content)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["probabilities", "unknown_score", "unknown"]

    from classifier.preprocessing import Preprocessing, load_rgb, preprocess

    prep = Preprocessing.from_dict(config["preprocessing"])
    url = reverse("serving:public_predict", args=[token])
    for seed, colour in ((81, (210, 40, 40)), (82, (40, 40, 210))):
        data = png(colour, seed=seed, size=(96, 80))
        server = c.post(url, {"file": photo(data)}).json()
        batch = preprocess(load_rgb(io.BytesIO(data), target_size=prep.resize), prep)[None]
        probabilities, _score, unknown = session.run(None, {"images": batch})
        by_label = dict(zip(config["labels"], probabilities[0], strict=True))
        assert max(by_label, key=by_label.get) == server["label"]
        # The server may run the same graph in bf16 (engines.py: within about 0.016 of fp32).
        assert abs(by_label[server["label"]] - server["probability"]) < 0.02
        assert bool(unknown[0, 0] > 0.5) == server["unknown"]
    # A page older than a promotion asks for a version the link no longer answers with.
    stale = c.get(reverse("serving:public_model", args=[token, version.pk + 999]))
    assert stale.status_code == 409 and "reload the page" in stale.json()["detail"]


def test_models_handed_out_are_limited_per_address(trained_project, owner, settings):
    from webui.serving.models import ShareLink

    settings.PINHOLE_SHARE_MODELS_PER_HOUR = 2
    _link, token = ShareLink.create_for(trained_project, owner, on_device=True)
    url = reverse("serving:public_model", args=[token, trained_project.serving_version.pk])
    c = Client()
    assert [c.get(url).status_code for _ in range(3)] == [200, 200, 429]
