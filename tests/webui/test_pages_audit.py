"""Results page: each audit finding comes with its one-click fix, and the calibration is reported."""

from __future__ import annotations

import pytest

from webui.projects.ingest import ingest_image
from webui.projects.labels import get_or_create_label
from webui.projects.models import Image

pytestmark = pytest.mark.django_db


@pytest.fixture
def audited(project, owner, make_version, media_root):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.helpers import png

    ants, bees = get_or_create_label(project, "ants"), get_or_create_label(project, "bees")
    images = [
        ingest_image(
            project, owner, SimpleUploadedFile(f"i{i}.png", png((200, 40, 40), seed=i)), label=ants
        ).image
        for i in range(4)
    ]
    version = make_version(project, 1)
    version.metrics = {
        **version.metrics,
        "ece": 0.031,
        "mislabeled": [{"key": images[0].sha256, "given": "ants", "predicted": "bees", "confidence": 0.93}],
        "near_duplicates": [{"a": images[1].sha256, "b": images[2].sha256, "similarity": 0.99}],
        "outliers": [{"key": images[3].sha256, "label": "ants", "score": 0.9}],
    }
    version.save(update_fields=["metrics"])
    return version, images, bees


def test_it_offers_the_suggested_label_in_one_click(client_for, owner, project, audited):
    version, images, bees = audited
    page = client_for(owner).get(f"/projects/{project.pk}/versions/{version.number}/").content.decode()
    assert "Label it bees" in page and f'name="label" value="{bees.pk}"' in page
    assert "Photos unlike the rest" in page and "Copies of the same photo" in page
    assert "within <strong>3.1</strong> percentage points" in page
    response = client_for(owner).post(
        f"/projects/{project.pk}/images/{images[0].pk}/label/",
        {"label": str(bees.pk)},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    images[0].refresh_from_db()
    assert images[0].label_id == bees.pk


def test_it_deletes_a_copy_in_one_click(client_for, owner, project, audited):
    _version, images, _bees = audited
    response = client_for(owner).post(
        f"/projects/{project.pk}/images/{images[2].pk}/delete/", HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and "Deleted" in response.content.decode()
    assert not Image.objects.filter(pk=images[2].pk).exists()
    assert Image.objects.filter(pk=images[1].pk).exists()  # its original stays


def test_it_lets_viewers_see_findings_but_not_fix_them(client_for, viewer, project, audited):
    version, images, _bees = audited
    page = client_for(viewer).get(f"/projects/{project.pk}/versions/{version.number}/").content.decode()
    assert "Photos unlike the rest" in page and "Delete this photo" not in page
    response = client_for(viewer).post(f"/projects/{project.pk}/images/{images[2].pk}/delete/")
    assert response.status_code in (403, 404)
    assert Image.objects.filter(pk=images[2].pk).exists()
