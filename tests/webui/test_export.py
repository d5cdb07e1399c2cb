"""A project's labelled photos out as a dataset zip, and back in through the zip import."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.helpers import BLUE, RED, photo, png
from webui.projects.export import folder_name
from webui.projects.ingest import ingest_image
from webui.projects.labels import get_or_create_label, set_label

pytestmark = pytest.mark.django_db


@pytest.fixture
def labelled(project, owner, media_root):
    """Two photos of "red car", one of "blue/sky", one unlabeled: {name: image}."""
    red, blue = get_or_create_label(project, "red car"), get_or_create_label(project, "blue/sky")
    images = {
        "r0": ingest_image(project, owner, photo(png(RED, 1), "r0.png"), label=red).image,
        "r1": ingest_image(project, owner, photo(png(RED, 2), "road trip.png"), label=red).image,
        "b0": ingest_image(project, owner, photo(png(BLUE, 3), "b0.png"), label=blue).image,
        "u": ingest_image(project, owner, photo(png((9, 9, 9), 4), "u.png")).image,
    }
    return project, images


def _unzip(response) -> zipfile.ZipFile:
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith("attachment;")
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_the_export_is_one_folder_per_label_with_a_manifest_and_the_stored_bytes(
    client_for, labelled, viewer
):
    project, images = labelled
    archive = _unzip(client_for(viewer).get(reverse("projects:export", args=[project.pk])))
    names = sorted(archive.namelist())
    assert {"labels.csv", "README.txt"} <= set(names)
    photos = [n for n in names if n not in ("labels.csv", "README.txt")]
    assert len(photos) == 3 and {n.split("/")[0] for n in photos} == {"red car", "blue_sky"}
    rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    assert {(r["label"], r["sha256"]) for r in rows} == {
        (image.label.name, image.sha256) for key, image in images.items() if key != "u"
    }
    for row in rows:
        image = project.images.get(sha256=row["sha256"])
        with default_storage.open(image.file.name, "rb") as handle:
            assert archive.read(row["file"]) == handle.read()
    assert any("road_trip" in name for name in photos)
    assert "3 photos, every labelled photo" in archive.read("README.txt").decode()


def test_an_exported_zip_imports_back_as_the_same_photos_and_labels(client_for, labelled, owner):
    from webui.projects.imports import run_zip_import, start_zip_import
    from webui.projects.models import Project

    project, images = labelled
    data = b"".join(client_for(owner).get(reverse("projects:export", args=[project.pk])).streaming_content)
    other = Project.objects.create(name="Copy", owner=owner)
    job = start_zip_import(
        other, owner, SimpleUploadedFile("dataset.zip", data, content_type="application/zip")
    )
    run_zip_import(job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded" and not job.rejected, (job.message, job.rejected)
    back = {image.sha256: image.label.name for image in other.images.select_related("label")}
    # A label with a slash comes back as its folder name; every other label as it was.
    assert back == {image.sha256: folder_name(image.label.name) for k, image in images.items() if k != "u"}


def test_a_versions_training_set_is_what_it_learned_with_the_labels_it_had(
    client_for, labelled, owner, make_version
):
    project, images = labelled
    version = make_version(project, 1)
    version.learned = [
        [images["r0"].sha256, "red car"],
        [images["b0"].sha256, "blue/sky"],
        ["f" * 64, "red car"],
    ]
    version.save()
    set_label(
        project.images.filter(pk=images["r0"].pk), project.labels.get(name="blue/sky")
    )  # relabelled since
    response = client_for(owner).get(reverse("projects:export", args=[project.pk]), {"version": 1})
    assert 'filename="hive-survey-v1-training-set.zip"' in response["Content-Disposition"]
    archive = _unzip(response)
    rows = {r["sha256"]: r["label"] for r in csv.DictReader(io.StringIO(archive.read("labels.csv").decode()))}
    assert rows == {images["r0"].sha256: "red car", images["b0"].sha256: "blue/sky"}
    assert "1 photos it learned from have been deleted since" in archive.read("README.txt").decode()
    assert (
        client_for(owner).get(reverse("projects:export", args=[project.pk]), {"version": 9}).status_code
        == 404
    )


def test_a_photo_whose_file_has_gone_is_left_out(client_for, labelled, owner):
    project, images = labelled
    default_storage.delete(images["r0"].file.name)
    archive = _unzip(client_for(owner).get(reverse("projects:export", args=[project.pk])))
    rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    assert len(rows) == 2 and images["r0"].sha256 not in {r["sha256"] for r in rows}


@pytest.mark.slow
def test_a_training_keeps_what_its_version_learned_from(trained_project):
    version = trained_project.serving_version
    learned = dict(version.learned)
    assert len(learned) == 8 and set(learned.values()) == {"red", "blue"}
    assert learned == {i.sha256: i.label.name for i in trained_project.images.select_related("label")}


def test_the_api_gives_the_same_dataset(labelled, owner, make_version):
    from rest_framework.test import APIClient

    project, images = labelled
    api = APIClient()
    api.force_login(owner)
    response = api.get(f"/api/v1/projects/{project.pk}/dataset/", HTTP_ACCEPT="application/zip")
    archive = _unzip(response)
    assert len([n for n in archive.namelist() if "/" in n]) == 3
    version = make_version(project, 1)
    version.learned = [[images["b0"].sha256, "blue/sky"]]
    version.save()
    archive = _unzip(api.get(f"/api/v1/projects/{project.pk}/dataset/", {"version": version.pk}))
    assert [n for n in archive.namelist() if "/" in n][0].startswith("blue_sky/")
    refused = api.get(f"/api/v1/projects/{project.pk}/dataset/", {"version": "x"})
    assert refused.status_code == 400 and "version id" in refused.json()["detail"]


def test_the_api_refuses_a_parameter_it_does_not_know(labelled, owner):
    from rest_framework.test import APIClient

    project, _images = labelled
    api = APIClient()
    api.force_login(owner)
    refused = api.get(f"/api/v1/projects/{project.pk}/dataset/", {"versoin": "1"})
    assert refused.status_code == 400 and "unknown parameter 'versoin'" in refused.json()["detail"]
