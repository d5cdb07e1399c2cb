"""Predicting before any model serves, or with a version from elsewhere, is a readable 409."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_it_answers_409_when_nothing_serves(api_for, project, viewer, image_bytes, upload):
    response = api_for(viewer).post(
        f"/api/v1/projects/{project.pk}/predict/",
        {"file": upload("q.png", image_bytes())},
        format="multipart",
    )
    assert response.status_code == 409
    assert response.json() == {"detail": "no model serves for this project yet; train one first"}


def test_it_answers_409_for_a_version_of_another_project(
    api_for, project, owner, viewer, image_bytes, upload
):
    from webui.projects.models import Project
    from webui.training.models import ModelVersion

    other = Project.objects.create(name="Other", owner=owner)
    foreign = ModelVersion.objects.create(project=other, number=1, artifact="x", backbone="resnet18")
    response = api_for(viewer).post(
        f"/api/v1/projects/{project.pk}/predict/",
        {"file": upload("q.png", image_bytes()), "version": foreign.pk},
        format="multipart",
    )
    assert response.status_code == 409
    assert response.json()["detail"] == "this project has no such model version"


def test_it_needs_a_file(api_for, project, viewer):
    response = api_for(viewer).post(f"/api/v1/projects/{project.pk}/predict/", {}, format="multipart")
    assert response.status_code == 400
    assert "'file'" in response.json()["detail"]


def test_it_refuses_an_image_over_the_size_limit(api_for, project, viewer, settings, upload):
    settings.PINHOLE_MAX_IMAGE_MB = 0.001
    response = api_for(viewer).post(
        f"/api/v1/projects/{project.pk}/predict/", {"file": upload("q.png", b"x" * 5000)}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("too large")


def test_it_validates_top_k(api_for, project, viewer, image_bytes, upload):
    response = api_for(viewer).post(
        f"/api/v1/projects/{project.pk}/predict/",
        {"file": upload("q.png", image_bytes()), "top_k": 0},
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("top_k:")
