"""Projects over the API: create, list by membership, change settings, delete (owner only)."""

from __future__ import annotations

import pytest

from webui.projects.models import Project

pytestmark = pytest.mark.django_db


def test_it_creates_a_project_owned_by_its_creator_with_labels(api_for, stranger):
    response = api_for(stranger).post(
        "/api/v1/projects/", {"name": "Birds", "description": "garden", "labels": ["robin", "wren", "Robin"]}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "name",
        "description",
        "task_type",
        "backbone",
        "auto_promote",
        "role",
        "serving_version",
        "serving_version_id",
        "image_count",
        "label_count",
        "created",
    }
    assert body["task_type"] == "single_label"
    assert (body["role"], body["label_count"], body["image_count"], body["serving_version"]) == (
        "owner",
        2,
        0,
        None,
    )
    assert Project.objects.get(pk=body["id"]).owner == stranger


def test_it_needs_a_name(api_for, owner):
    response = api_for(owner).post("/api/v1/projects/", {"description": "no name"})
    assert response.status_code == 400
    assert response.json()["detail"] == "name: This field is required."


@pytest.mark.parametrize(("who", "role"), [("owner", "owner"), ("editor", "editor"), ("viewer", "viewer")])
def test_it_lists_projects_with_the_callers_role(request, api_for, labelled_project, who, role):
    listed = api_for(request.getfixturevalue(who)).get("/api/v1/projects/").json()
    assert [(p["id"], p["role"], p["image_count"], p["label_count"]) for p in listed] == [
        (labelled_project.pk, role, 4, 2)
    ]


def test_it_lists_nothing_of_others_for_a_stranger(api_for, project, stranger):
    assert api_for(stranger).get("/api/v1/projects/").json() == []


def test_it_reports_the_serving_version(api_for, labelled_project, serving_history, viewer):
    _v1, v2 = serving_history
    body = api_for(viewer).get(f"/api/v1/projects/{labelled_project.pk}/").json()
    assert (body["serving_version"], body["serving_version_id"]) == (2, v2.pk)


def test_it_lets_editors_change_settings(api_for, project, editor):
    response = api_for(editor).patch(
        f"/api/v1/projects/{project.pk}/", {"name": "Renamed", "backbone": "resnet18", "auto_promote": False}
    )
    assert response.status_code == 200
    project.refresh_from_db()
    assert (project.name, project.backbone, project.auto_promote) == ("Renamed", "resnet18", False)


def test_it_refuses_an_unknown_backbone_naming_the_choices(api_for, project, editor):
    response = api_for(editor).patch(f"/api/v1/projects/{project.pk}/", {"backbone": "vgg99"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("backbone: unknown backbone 'vgg99'; choose one of")
    assert "efficientnet_lite0" in response.json()["detail"]


def test_it_lets_only_the_owner_delete(api_for, labelled_project, serving_history, editor, owner):
    url = f"/api/v1/projects/{labelled_project.pk}/"
    refused = api_for(editor).delete(url)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Only the project's owner can do this."
    assert api_for(owner).delete(url).status_code == 204
    assert not Project.objects.filter(pk=labelled_project.pk).exists()


def test_it_removes_stored_files_with_the_project(
    api_for, labelled_project, serving_history, owner, media_root, django_capture_on_commit_callbacks
):
    assert any(p.is_file() for p in media_root.rglob("*"))
    with django_capture_on_commit_callbacks(execute=True):
        assert api_for(owner).delete(f"/api/v1/projects/{labelled_project.pk}/").status_code == 204
    assert not any(p.is_file() for p in media_root.rglob("*"))
