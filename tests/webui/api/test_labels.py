"""Labels over the API: unique names ignoring case, colours, renaming, deleting."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_it_creates_a_label_with_a_colour_and_order(api_for, project, editor):
    response = api_for(editor).post(
        f"/api/v1/projects/{project.pk}/labels/", {"name": " Wasps ", "colour": "#A1B2C3", "order": 7}
    )
    assert response.status_code == 201
    assert {k: response.json()[k] for k in ("name", "colour", "order", "image_count")} == {
        "name": "Wasps",
        "colour": "#a1b2c3",
        "order": 7,
        "image_count": 0,
    }


def test_it_refuses_a_name_that_differs_only_in_case(api_for, project, editor):
    api = api_for(editor)
    assert api.post(f"/api/v1/projects/{project.pk}/labels/", {"name": "Bees"}).status_code == 201
    response = api.post(f"/api/v1/projects/{project.pk}/labels/", {"name": "bEES"})
    assert response.status_code == 400
    assert response.json()["detail"] == "name: this project already has a label named 'bEES'"
    assert project.labels.count() == 1


def test_it_allows_the_same_name_in_another_project(api_for, project, owner):
    from webui.projects.models import Label, Project

    other = Project.objects.create(name="Other", owner=owner)
    Label.objects.create(project=other, name="bees")
    assert api_for(owner).post(f"/api/v1/projects/{project.pk}/labels/", {"name": "Bees"}).status_code == 201


@pytest.mark.parametrize("colour", ["red", "#12345", "#1234567", "#gggggg", "123456"])
def test_it_refuses_colours_that_are_not_rrggbb(api_for, project, editor, colour):
    response = api_for(editor).post(f"/api/v1/projects/{project.pk}/labels/", {"name": "x", "colour": colour})
    assert response.status_code == 400
    assert "#rrggbb" in response.json()["detail"]


def test_it_renames_but_not_onto_another_label(api_for, project, editor):
    from webui.projects.models import Label

    ants = Label.objects.create(project=project, name="ants")
    Label.objects.create(project=project, name="bees")
    api = api_for(editor)
    assert api.patch(f"/api/v1/labels/{ants.pk}/", {"name": "ANTS"}).json()["name"] == "ANTS"
    clash = api.patch(f"/api/v1/labels/{ants.pk}/", {"name": "Bees"})
    assert clash.status_code == 400
    assert "already has a label" in clash.json()["detail"]


def test_it_unlabels_images_when_their_label_is_deleted(api_for, labelled_project, editor):
    ants = labelled_project.labels.get(name="ants")
    assert api_for(editor).delete(f"/api/v1/labels/{ants.pk}/").status_code == 204
    assert labelled_project.images.filter(label__isnull=True).count() == 2
    listed = api_for(editor).get(f"/api/v1/projects/{labelled_project.pk}/labels/").json()
    assert [(label["name"], label["image_count"]) for label in listed] == [("bees", 2)]
