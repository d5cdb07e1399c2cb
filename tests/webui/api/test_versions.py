"""Model versions over the API: list, promote, roll back, delete, download."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from webui.projects.models import Project

pytestmark = pytest.mark.django_db


def _serving(project) -> int | None:
    return Project.objects.get(pk=project.pk).serving_version_id


def test_it_lists_versions_with_the_serving_flag(api_for, labelled_project, serving_history, viewer):
    listed = api_for(viewer).get(f"/api/v1/projects/{labelled_project.pk}/versions/").json()
    assert [(v["number"], v["serving"]) for v in listed] == [(2, True), (1, False)]
    assert set(listed[0]) == {
        "id",
        "number",
        "project",
        "backbone",
        "strategy",
        "labels",
        "metrics",
        "serving",
        "created",
        "size",
        "answer_threshold",
        "label_thresholds",
    }
    assert listed[0]["labels"] == ["ants", "bees"] and listed[0]["size"] > 0


def test_it_promotes_a_version(api_for, labelled_project, serving_history, editor):
    v1, _v2 = serving_history
    response = api_for(editor).post(f"/api/v1/versions/{v1.pk}/promote/")
    assert response.status_code == 200
    assert response.json()["serving"] is True
    assert _serving(labelled_project) == v1.pk


def test_it_refuses_to_promote_a_broken_artifact(
    api_for, labelled_project, serving_history, editor, media_root
):
    v1, v2 = serving_history
    onnx = next(p for p in (media_root / v1.artifact).iterdir() if p.name == "model.onnx")
    onnx.write_bytes(onnx.read_bytes()[:10])
    response = api_for(editor).post(f"/api/v1/versions/{v1.pk}/promote/")
    assert response.status_code == 409
    assert response.json()["detail"].startswith("v1 cannot serve")
    assert _serving(labelled_project) == v2.pk


def test_it_rolls_back_to_the_previous_version(api_for, labelled_project, serving_history, editor):
    v1, _v2 = serving_history
    response = api_for(editor).post(f"/api/v1/projects/{labelled_project.pk}/rollback/")
    assert response.status_code == 200
    assert (response.json()["number"], response.json()["serving"]) == (1, True)
    assert _serving(labelled_project) == v1.pk


def test_it_refuses_a_rollback_with_nowhere_to_go(api_for, labelled_project, make_version, editor, owner):
    make_version(labelled_project, 1).promote(owner)
    response = api_for(editor).post(f"/api/v1/projects/{labelled_project.pk}/rollback/")
    assert response.status_code == 409
    assert "nothing to roll back to" in response.json()["detail"]


def test_it_refuses_a_rollback_when_nothing_serves(api_for, labelled_project, editor):
    response = api_for(editor).post(f"/api/v1/projects/{labelled_project.pk}/rollback/")
    assert response.status_code == 409
    assert response.json()["detail"] == "nothing serves yet, so there is nothing to roll back"


def test_it_refuses_to_delete_the_serving_version(api_for, labelled_project, serving_history, editor):
    _v1, v2 = serving_history
    response = api_for(editor).delete(f"/api/v1/versions/{v2.pk}/")
    assert response.status_code == 409
    assert "serving version" in response.json()["detail"]
    assert labelled_project.versions.filter(pk=v2.pk).exists()


def test_it_deletes_a_version_that_does_not_serve_and_its_files(
    api_for, labelled_project, serving_history, editor, media_root, django_capture_on_commit_callbacks
):
    v1, _v2 = serving_history
    with django_capture_on_commit_callbacks(execute=True):
        assert api_for(editor).delete(f"/api/v1/versions/{v1.pk}/").status_code == 204
    assert not labelled_project.versions.filter(pk=v1.pk).exists()
    assert not any((media_root / v1.artifact).glob("*"))


def test_it_downloads_a_version_as_a_zip(api_for, labelled_project, serving_history, viewer):
    _v1, v2 = serving_history
    response = api_for(viewer).get(f"/api/v1/versions/{v2.pk}/download/", HTTP_ACCEPT="application/zip")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="hive-survey-v2.zip"'
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert "hive-survey-v2/manifest.json" in archive.namelist()
    assert json.loads(archive.read("hive-survey-v2/manifest.json"))["labels"] == ["ants", "bees"]
