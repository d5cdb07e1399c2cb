"""The label page: filters, bulk apply, label management, and suggestions without a usable model."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _png(seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (16, 16, 3)).astype("uint8"), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def images(project, owner, media_root):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webui.projects.ingest import ingest_image
    from webui.projects.labels import get_or_create_label

    ants = get_or_create_label(project, "ants")
    get_or_create_label(project, "bees")
    made = []
    for seed in range(6):
        label = ants if seed < 2 else None
        made.append(
            ingest_image(project, owner, SimpleUploadedFile(f"{seed}.png", _png(seed)), label=label).image
        )
    return made


def _apply(client, project, ids, label, json=True):
    headers = {"HTTP_ACCEPT": "application/json"} if json else {}
    return client.post(
        reverse("projects:label-apply", args=[project.pk]),
        {"images": ",".join(str(i) for i in ids), "label": label},
        **headers,
    )


def test_it_filters_unlabeled_and_per_label(client_for, project, images, viewer):
    c = client_for(viewer)
    ants = project.labels.get(name="ants")
    unlabeled = c.get(reverse("projects:label", args=[project.pk]), {"show": "unlabeled"}).context["tiles"]
    assert {i.pk for i in unlabeled} == {i.pk for i in images[2:]}
    labelled = c.get(reverse("projects:label", args=[project.pk]), {"show": "label", "label": ants.pk})
    assert {i.pk for i in labelled.context["tiles"]} == {i.pk for i in images[:2]}
    everything = c.get(reverse("projects:label", args=[project.pk]), {"show": "bogus"})
    assert everything.context["show"] == "all" and len(everything.context["tiles"]) == 6


def test_it_paginates_sixty_at_a_time(client_for, project, owner, media_root):
    from webui.projects.models import Image

    Image.objects.bulk_create(
        Image(project=project, file=f"x/{i}.png", sha256=f"{i:064x}", width=1, height=1, format="PNG")
        for i in range(61)
    )
    page = client_for(owner).get(reverse("projects:label", args=[project.pk]), {"page": 2})
    assert len(page.context["tiles"]) == 1 and "Page 2 of 2" in page.content.decode()


def test_it_applies_a_label_to_many_images_at_once(client_for, project, images, editor):
    bees = project.labels.get(name="bees")
    ids = [i.pk for i in images[2:5]]
    response = _apply(client_for(editor), project, ids, str(bees.pk))
    assert response.status_code == 200
    assert response.json() == {
        "changed": 3,
        "label": {"id": bees.pk, "name": "bees", "colour": bees.colour},
        "deleted": False,
    }
    assert set(project.images.filter(label=bees).values_list("pk", flat=True)) == set(ids)
    assert all(i.labeled_at for i in project.images.filter(label=bees))


def test_it_unlabels_and_deletes_in_bulk(
    client_for, project, images, editor, django_capture_on_commit_callbacks
):
    c = client_for(editor)
    assert _apply(c, project, [images[0].pk, images[1].pk], "none").json()["changed"] == 2
    assert project.images.filter(label__isnull=True).count() == 6
    with django_capture_on_commit_callbacks(execute=True):
        assert _apply(c, project, [images[5].pk], "delete").json()["deleted"] is True
    assert project.images.count() == 5


def test_it_ignores_images_and_labels_of_other_projects(
    client_for, project, images, editor, stranger, media_root
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webui.projects.ingest import ingest_image
    from webui.projects.labels import get_or_create_label
    from webui.projects.models import Project

    theirs = Project.objects.create(name="Theirs", owner=stranger)
    their_image = ingest_image(theirs, stranger, SimpleUploadedFile("t.png", _png(50))).image
    their_label = get_or_create_label(theirs, "secret")
    c = client_for(editor)
    assert (
        _apply(c, project, [their_image.pk], str(project.labels.get(name="ants").pk)).json()["changed"] == 0
    )
    assert _apply(c, project, [images[3].pk], str(their_label.pk)).status_code == 400
    their_image.refresh_from_db()
    assert their_image.label_id is None


def test_it_redirects_back_without_javascript(client_for, project, images, editor):
    bees = project.labels.get(name="bees")
    response = client_for(editor).post(
        reverse("projects:label-apply", args=[project.pk]),
        {"images": [images[2].pk, images[3].pk], "label": bees.pk, "next": "/projects/?x=1"},
    )
    assert response.status_code == 302 and response["Location"] == "/projects/?x=1"
    evil = client_for(editor).post(
        reverse("projects:label-apply", args=[project.pk]),
        {"images": images[2].pk, "label": bees.pk, "next": "https://evil.example/"},
    )
    assert evil["Location"] == reverse("projects:label", args=[project.pk])


def test_it_adds_renames_recolours_and_deletes_labels(client_for, project, images, editor):
    c = client_for(editor)
    c.post(reverse("projects:label-create", args=[project.pk]), {"name": " wasps ", "colour": "#123456"})
    wasps = project.labels.get(name="wasps")
    assert wasps.colour == "#123456"
    duplicate = c.post(reverse("projects:label-create", args=[project.pk]), {"name": "ANTS"}, follow=True)
    assert "already a label called" in duplicate.content.decode()
    c.post(
        reverse("projects:label-update", args=[project.pk, wasps.pk]),
        {"name": "hornets", "colour": "#ABCDEF"},
    )
    wasps.refresh_from_db()
    assert (wasps.name, wasps.colour) == ("hornets", "#abcdef")
    bad = c.post(
        reverse("projects:label-update", args=[project.pk, wasps.pk]), {"name": "x", "colour": "red;}"}
    )
    assert bad.status_code == 302
    wasps.refresh_from_db()
    assert wasps.colour == "#abcdef"
    ants = project.labels.get(name="ants")
    c.post(reverse("projects:label-delete", args=[project.pk, ants.pk]))
    assert not project.labels.filter(name="ants").exists()
    assert project.images.count() == 6 and project.images.filter(label__isnull=True).count() == 6


def test_it_refuses_to_change_a_label_through_another_project(client_for, project, images, stranger):
    from webui.projects.models import Project

    theirs = Project.objects.create(name="Theirs", owner=stranger)
    ants = project.labels.get(name="ants")
    response = client_for(stranger).post(
        reverse("projects:label-update", args=[theirs.pk, ants.pk]), {"name": "x"}
    )
    assert response.status_code == 404
    ants.refresh_from_db()
    assert ants.name == "ants"


def test_it_says_when_there_is_no_model_to_accept_suggestions_from(client_for, project, images, editor):
    response = client_for(editor).post(
        reverse("projects:accept-suggestions", args=[project.pk]), {"threshold": 80}, follow=True
    )
    assert "There is no model yet" in response.content.decode()
    assert project.images.filter(label__isnull=True).count() == 4


def test_it_shows_no_suggestions_when_the_model_cannot_load(
    client_for, project, images, editor, make_version
):
    version = make_version(project, 1)  # a checked artifact whose ONNX graph is not a real one
    version.promote(editor)
    c = client_for(editor)
    page = c.get(reverse("projects:label", args=[project.pk]), {"show": "unlabeled"})
    assert page.status_code == 200 and all(t.suggestion is None for t in page.context["tiles"])
    response = c.post(
        reverse("projects:accept-suggestions", args=[project.pk]), {"threshold": 50}, follow=True
    )
    assert "Labelled 0 of 4" in response.content.decode()
    invalid = c.post(
        reverse("projects:accept-suggestions", args=[project.pk]), {"threshold": 10}, follow=True
    )
    assert "between 50 and 100" in invalid.content.decode()


def test_it_lists_likely_mislabeled_images_with_the_models_label(
    client_for, project, images, editor, make_version
):
    version = make_version(project, 1)
    version.metrics = {
        "mislabeled": [
            {"key": images[1].sha256, "given": "ants", "predicted": "bees", "confidence": 0.97, "index": 1},
            {"key": "0" * 64, "given": "ants", "predicted": "bees", "confidence": 0.9, "index": 2},
        ]
    }
    version.save()
    version.promote(editor)
    page = client_for(editor).get(reverse("projects:label", args=[project.pk]), {"show": "mislabeled"})
    tiles = page.context["tiles"]
    assert [t.pk for t in tiles] == [images[1].pk]
    assert tiles[0].suggestion["label"] == "bees" and tiles[0].suggestion["percent"] == 97
    assert tiles[0].suggestion["label_obj"] == project.labels.get(name="bees")
    assert "bees? 97%" in page.content.decode()
