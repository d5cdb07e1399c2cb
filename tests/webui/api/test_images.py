"""Listing, relabelling, pinning the split of, and deleting images."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_it_sets_and_clears_an_image_label_by_name(api_for, labelled_project, editor):
    image = labelled_project.images.filter(label__name="ants").first()
    api = api_for(editor)
    response = api.patch(f"/api/v1/images/{image.pk}/", {"label": "bees"})
    assert response.status_code == 200
    assert response.json()["label"] == "bees"
    assert response.json()["label_id"] == labelled_project.labels.get(name="bees").pk
    image.refresh_from_db()
    assert image.label.name == "bees" and image.labeled_at is not None

    cleared = api.patch(f"/api/v1/images/{image.pk}/", {"label": None})
    assert cleared.json()["label"] is None and cleared.json()["label_id"] is None


def test_it_creates_a_missing_label_when_labelling(api_for, labelled_project, editor):
    image = labelled_project.images.first()
    response = api_for(editor).patch(f"/api/v1/images/{image.pk}/", {"label": "Wasps"})
    assert response.json()["label"] == "Wasps"
    assert labelled_project.labels.filter(name="Wasps").exists()


def test_it_pins_the_split_and_refuses_unknown_ones(api_for, labelled_project, editor):
    image = labelled_project.images.first()
    api = api_for(editor)
    assert api.patch(f"/api/v1/images/{image.pk}/", {"split": "test"}).json()["split"] == "test"
    bad = api.patch(f"/api/v1/images/{image.pk}/", {"split": "validation"})
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("split:")


def test_it_filters_by_label_and_unlabelled(api_for, labelled_project, viewer):
    one = labelled_project.images.filter(label__name="bees").first()
    labelled_project.images.filter(pk=one.pk).update(label=None, labeled_at=None)
    api = api_for(viewer)
    base = f"/api/v1/projects/{labelled_project.pk}/images/"
    ants = api.get(base, {"label": "ANTS"}).json()
    assert ants["count"] == 2 and {i["label"] for i in ants["results"]} == {"ants"}
    unlabelled = api.get(base, {"unlabeled": "true"}).json()
    assert unlabelled["count"] == 1 and unlabelled["results"][0]["label"] is None


def test_it_paginates_with_limit_and_offset(api_for, labelled_project, viewer):
    base = f"/api/v1/projects/{labelled_project.pk}/images/"
    page = api_for(viewer).get(base, {"limit": 3}).json()
    assert page["count"] == 4 and len(page["results"]) == 3 and page["next"]
    rest = api_for(viewer).get(base, {"limit": 3, "offset": 3}).json()
    assert len(rest["results"]) == 1 and rest["next"] is None


def test_it_deletes_the_row_then_the_file(
    api_for, labelled_project, editor, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    image = labelled_project.images.first()
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(editor).delete(f"/api/v1/images/{image.pk}/")
    assert response.status_code == 204
    assert not labelled_project.images.filter(pk=image.pk).exists()
    assert not default_storage.exists(image.file.name)


@pytest.mark.parametrize("label", [0, True, ["ants"], {"name": "ants"}])
def test_it_refuses_a_label_that_is_not_text(api_for, labelled_project, editor, label):
    # Found by the schema fuzzer: DRF's CharField would have created a label called "0".
    image = labelled_project.images.first()
    before = (image.label_id, labelled_project.labels.count())
    response = api_for(editor).patch(f"/api/v1/images/{image.pk}/", {"label": label}, format="json")
    assert response.status_code == 400 and "label" in response.json()["detail"]
    image.refresh_from_db()
    assert (image.label_id, labelled_project.labels.count()) == before


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"unlabeled": "null"}, "unlabeled must be true or false"),
        ({"offset": "null"}, "offset must be a whole number of at least 0"),
        ({"limit": "0"}, "limit must be a whole number of at least 1"),
        ({"limit": "-5"}, "limit must be a whole number"),
    ],
)
def test_it_refuses_query_values_it_cannot_read(api_for, labelled_project, viewer, query, message):
    response = api_for(viewer).get(f"/api/v1/projects/{labelled_project.pk}/images/", query)
    assert response.status_code == 400 and message in response.json()["detail"]


def test_it_takes_json_bodies_outside_uploads(api_for, project, editor):
    response = api_for(editor).patch(
        f"/api/v1/projects/{project.pk}/", {"auto_promote": "0"}, format="multipart"
    )
    assert response.status_code == 415
    project.refresh_from_db()
    assert project.auto_promote is True
