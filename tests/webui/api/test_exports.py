"""Exports of a version over the API and on the version page: queued, made by the worker's service,
checked, listed, downloaded; refused with a reason; strangers see nothing."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.urls import reverse

from webui.training.exports import run_export


@pytest.fixture
def version(trained_project):
    return trained_project.serving_version


def _queue(api, version, fmt, capture):
    with capture(execute=False) as callbacks:
        answer = api.post(f"/api/v1/versions/{version.pk}/exports/", {"format": fmt}, format="json")
    return answer, callbacks


def test_an_export_is_queued_made_checked_and_downloaded(
    api_for, version, editor, viewer, django_capture_on_commit_callbacks
):
    refused, _ = _queue(api_for(viewer), version, "openvino", django_capture_on_commit_callbacks)
    assert refused.status_code == 403  # making one is for owners and editors
    queued, callbacks = _queue(api_for(editor), version, "openvino", django_capture_on_commit_callbacks)
    assert queued.status_code == 202, queued.json()
    assert queued.json()["status"] == "queued" and queued.json()["download"] is None
    assert len(callbacks) == 1
    run_export(queued.json()["id"])
    api = api_for(viewer)  # members follow and download what was made

    detail = api.get(f"/api/v1/versions/{version.pk}/exports/{queued.json()['id']}/").json()
    assert detail["status"] == "succeeded", detail["error"]
    parity = detail["parity"]
    # Checked on the pictures the version was scored on, not the fixed sample photos.
    assert parity["passed"] and parity["method"] == "answers" and 0 < parity["pictures"] < 64
    assert parity["max_difference"] <= 1e-4 and parity["top_agreement"] == 1.0
    assert detail["size"] > 0

    download = api.get(detail["download"])
    assert download.status_code == 200
    assert f"-v{version.number}-openvino.zip" in download["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    names = set(archive.namelist())
    assert {
        "model.xml",
        "model.bin",
        "pinhole.json",
        "labels.txt",
        "README.md",
        "predict.py",
        "pinhole_pixels.py",
    } <= names
    info = json.loads(archive.read("pinhole.json"))
    assert info["labels"] == version.labels and info["format"] == "openvino"
    assert [row["format"] for row in api.get(f"/api/v1/versions/{version.pk}/exports/").json()] == [
        "openvino"
    ]


def test_asking_again_returns_the_same_export(api_for, version, editor, django_capture_on_commit_callbacks):
    api = api_for(editor)
    first, _ = _queue(api, version, "onnx", django_capture_on_commit_callbacks)
    again, callbacks = _queue(api, version, "onnx", django_capture_on_commit_callbacks)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"] and not callbacks


@pytest.mark.parametrize(
    "fmt, message", [("keras", "use one of onnx, onnx-int8"), ("tfjs", "onnxruntime-web"), ("", "format")]
)
def test_a_format_pinhole_does_not_offer_is_refused_with_the_reason(api_for, version, editor, fmt, message):
    answer = api_for(editor).post(f"/api/v1/versions/{version.pk}/exports/", {"format": fmt}, format="json")
    assert answer.status_code == 400 and message in answer.json()["detail"]


def test_an_unfinished_export_cannot_be_downloaded(
    api_for, version, editor, viewer, django_capture_on_commit_callbacks
):
    queued, _ = _queue(api_for(editor), version, "onnx", django_capture_on_commit_callbacks)
    answer = api_for(viewer).get(f"/api/v1/versions/{version.pk}/exports/{queued.json()['id']}/download/")
    assert answer.status_code == 409 and "queued" in answer.json()["detail"]


def test_a_failed_export_says_why_and_may_be_asked_for_again(
    api_for, version, editor, django_capture_on_commit_callbacks, monkeypatch
):
    """A planted fault: the converter writes a graph leaning towards one label; the check refuses it."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from classifier.exporting import convert

    def faulty(source, out, fmt, info):
        model = onnx.load(str(source))
        for init in model.graph.initializer:
            if init.name == "pinhole_head_bias":
                shift = np.zeros(numpy_helper.to_array(init).shape, np.float32)
                shift[0] = 3.0
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + shift, init.name))
        onnx.save(model, str(out / fmt.model_file))
        return [fmt.model_file]

    monkeypatch.setitem(convert.CONVERTERS, "onnx", faulty)
    api = api_for(editor)
    queued, _ = _queue(api, version, "onnx", django_capture_on_commit_callbacks)
    run_export(queued.json()["id"])
    failed = api.get(f"/api/v1/versions/{version.pk}/exports/{queued.json()['id']}/").json()
    assert failed["status"] == "failed" and "does not answer as the version does" in failed["error"]
    assert failed["download"] is None
    monkeypatch.undo()
    again, callbacks = _queue(api, version, "onnx", django_capture_on_commit_callbacks)
    assert again.status_code == 202 and again.json()["id"] != queued.json()["id"] and len(callbacks) == 1


def test_strangers_see_no_export(api_for, version, editor, stranger, django_capture_on_commit_callbacks):
    queued, _ = _queue(api_for(editor), version, "onnx", django_capture_on_commit_callbacks)
    api = api_for(stranger)
    base = f"/api/v1/versions/{version.pk}/exports/"
    assert api.get(base).status_code == 404
    assert api.post(base, {"format": "onnx"}, format="json").status_code == 404
    assert api.get(f"{base}{queued.json()['id']}/").status_code == 404
    assert api.get(f"{base}{queued.json()['id']}/download/").status_code == 404


def test_the_version_page_offers_every_format_and_makes_one(
    client, client_for, version, editor, viewer, django_capture_on_commit_callbacks
):
    as_viewer = client_for(viewer).get(reverse("training:version", args=[version.project_id, version.number]))
    assert "owner and editors can make" in as_viewer.content.decode()
    assert 'name="format"' not in as_viewer.content.decode()
    client.force_login(editor)
    page = reverse("training:version", args=[version.project_id, version.number])
    html = client.get(page).content.decode()
    for title in ("ONNX (fp32)", "ONNX (int8)", "OpenVINO IR", "TensorFlow Lite (LiteRT)", "Core ML"):
        assert title in html
    assert "not made yet" in html
    with django_capture_on_commit_callbacks(execute=False):
        answer = client.post(
            reverse("training:exports", args=[version.project_id, version.number]), {"format": "onnx"}
        )
    assert answer.status_code == 302 and answer["Location"].endswith("#exports")
    export = version.exports.get()
    card = client.get(reverse("training:exports", args=[version.project_id, version.number])).content.decode()
    assert 'hx-trigger="every 2s"' in card  # the card follows the export while it is made
    run_export(export.pk)
    html = client.get(page).content.decode()
    assert f"/api/v1/versions/{version.pk}/exports/{export.pk}/download/" in html
    assert "same label on 100% of" in html and 'hx-trigger="every 2s"' not in html


def test_deleting_a_version_deletes_its_exported_zips(
    api_for, version, editor, owner, make_version, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    queued, _ = _queue(api_for(editor), version, "onnx", django_capture_on_commit_callbacks)
    run_export(queued.json()["id"])
    stored = version.exports.get().file
    assert default_storage.exists(stored)
    make_version(version.project, version.number + 1).promote(owner)  # a serving version cannot go
    version.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        version.delete()
    assert not default_storage.exists(stored)
