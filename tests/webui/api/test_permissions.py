"""Every API endpoint against owner / editor / viewer / stranger / anonymous.

Anonymous callers get 401, strangers 404 (they cannot learn that an id exists), viewers 403 on writes,
and members with enough rights get the endpoint's success code. Errors are always JSON with `detail`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from webui.projects.models import Project
from webui.serving.models import BatchPrediction
from webui.training.models import TrainingRun, VersionExport

pytestmark = pytest.mark.django_db

READ, WRITE, OWNER, ANY_USER = "read", "write", "owner", "any user"
ROLES = ["owner", "editor", "viewer", "stranger", "anonymous"]


@dataclass
class World:
    project: Any
    label: Any
    image: Any
    run: Any
    v1: Any
    v2: Any
    batch: Any
    export: Any
    png: bytes


@pytest.fixture
def world(labelled_project, serving_history, image_bytes):
    v1, v2 = serving_history
    return World(
        project=labelled_project,
        label=labelled_project.labels.get(name="ants"),
        image=labelled_project.images.first(),
        run=TrainingRun.objects.create(project=labelled_project, params={}),
        v1=v1,
        v2=v2,
        batch=BatchPrediction.objects.create(project=labelled_project, version=v2),
        export=VersionExport.objects.create(version=v2, format="onnx"),
        png=image_bytes((10, 200, 10), seed=99),
    )


def _no_serving(w: World) -> None:
    Project.objects.filter(pk=w.project.pk).update(serving_version=None)


def _file(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


# (name, method, path, body, access, success code)
ENDPOINTS = [
    ("projects-list", "get", lambda w: "/api/v1/projects/", None, ANY_USER, 200),
    ("projects-create", "post", lambda w: "/api/v1/projects/", lambda w: {"name": "New"}, ANY_USER, 201),
    ("project-get", "get", lambda w: f"/api/v1/projects/{w.project.pk}/", None, READ, 200),
    (
        "project-patch",
        "patch",
        lambda w: f"/api/v1/projects/{w.project.pk}/",
        lambda w: {"description": "bees and ants"},
        WRITE,
        200,
    ),
    ("project-delete", "delete", lambda w: f"/api/v1/projects/{w.project.pk}/", None, OWNER, 204),
    ("labels-list", "get", lambda w: f"/api/v1/projects/{w.project.pk}/labels/", None, READ, 200),
    (
        "labels-create",
        "post",
        lambda w: f"/api/v1/projects/{w.project.pk}/labels/",
        lambda w: {"name": "wasps"},
        WRITE,
        201,
    ),
    ("label-get", "get", lambda w: f"/api/v1/labels/{w.label.pk}/", None, READ, 200),
    (
        "label-patch",
        "patch",
        lambda w: f"/api/v1/labels/{w.label.pk}/",
        lambda w: {"colour": "#123456"},
        WRITE,
        200,
    ),
    ("label-delete", "delete", lambda w: f"/api/v1/labels/{w.label.pk}/", None, WRITE, 204),
    ("images-list", "get", lambda w: f"/api/v1/projects/{w.project.pk}/images/", None, READ, 200),
    (
        "images-upload",
        "post",
        lambda w: f"/api/v1/projects/{w.project.pk}/images/",
        lambda w: {"files": [_file("new.png", w.png)]},
        WRITE,
        201,
    ),
    ("image-get", "get", lambda w: f"/api/v1/images/{w.image.pk}/", None, READ, 200),
    ("dataset", "get", lambda w: f"/api/v1/projects/{w.project.pk}/dataset/", None, READ, 200),
    (
        "image-patch",
        "patch",
        lambda w: f"/api/v1/images/{w.image.pk}/",
        lambda w: {"split": "test"},
        WRITE,
        200,
    ),
    ("image-delete", "delete", lambda w: f"/api/v1/images/{w.image.pk}/", None, WRITE, 204),
    ("train", "post", lambda w: f"/api/v1/projects/{w.project.pk}/train/", lambda w: {}, WRITE, 202),
    ("runs-list", "get", lambda w: f"/api/v1/projects/{w.project.pk}/runs/", None, READ, 200),
    ("run-get", "get", lambda w: f"/api/v1/runs/{w.run.pk}/", None, READ, 200),
    ("run-cancel", "post", lambda w: f"/api/v1/runs/{w.run.pk}/cancel/", None, WRITE, 200),
    ("versions-list", "get", lambda w: f"/api/v1/projects/{w.project.pk}/versions/", None, READ, 200),
    ("version-get", "get", lambda w: f"/api/v1/versions/{w.v2.pk}/", None, READ, 200),
    ("version-delete", "delete", lambda w: f"/api/v1/versions/{w.v1.pk}/", None, WRITE, 204),
    ("version-promote", "post", lambda w: f"/api/v1/versions/{w.v1.pk}/promote/", None, WRITE, 200),
    (
        "version-threshold",
        "post",
        lambda w: f"/api/v1/versions/{w.v2.pk}/threshold/",
        lambda w: {"threshold": 0.8},
        WRITE,
        200,
    ),
    ("version-download", "get", lambda w: f"/api/v1/versions/{w.v2.pk}/download/", None, READ, 200),
    ("rollback", "post", lambda w: f"/api/v1/projects/{w.project.pk}/rollback/", None, WRITE, 200),
    # Access is decided before any model loads: with nothing serving, members reach NoModel (409).
    (
        "predict",
        "post",
        lambda w: f"/api/v1/projects/{w.project.pk}/predict/",
        lambda w: {"file": _file("x.png", w.png)},
        READ,
        409,
    ),
    # The batch is queued, not run: its task is only enqueued on commit, which a test never reaches.
    (
        "batch-create",
        "post",
        lambda w: f"/api/v1/projects/{w.project.pk}/predictions/",
        lambda w: {"scope": "all"},
        READ,
        202,
    ),
    ("batch-get", "get", lambda w: f"/api/v1/predictions/{w.batch.pk}/", None, READ, 200),
    ("export-list", "get", lambda w: f"/api/v1/versions/{w.v2.pk}/exports/", None, READ, 200),
    # Owners and editors make exports (a worker's time); the queued onnx export is returned again (200).
    (
        "export-create",
        "post",
        lambda w: f"/api/v1/versions/{w.v2.pk}/exports/",
        lambda w: {"format": "onnx"},
        WRITE,
        200,
    ),
    ("export-detail", "get", lambda w: f"/api/v1/versions/{w.v2.pk}/exports/{w.export.pk}/", None, READ, 200),
    # Still queued: members learn it cannot be downloaded yet.
    (
        "export-download",
        "get",
        lambda w: f"/api/v1/versions/{w.v2.pk}/exports/{w.export.pk}/download/",
        None,
        READ,
        409,
    ),
    # Garbage bytes: signed-in callers get past access to the image check (400), no backbone loads.
    (
        "features",
        "post",
        lambda w: "/api/v1/features/",
        lambda w: {"file": _file("x.jpg", b"nope")},
        ANY_USER,
        400,
    ),
    (
        "recognize",
        "post",
        lambda w: "/api/v1/recognize/",
        lambda w: {"file": _file("x.jpg", b"nope")},
        ANY_USER,
        400,
    ),
]
MULTIPART = {"images-upload", "predict", "features", "recognize"}


def expected_status(access: str, role: str, success: int) -> int:
    if role == "anonymous":
        return 401
    if access == ANY_USER:
        return success
    if role == "stranger":
        return 404
    if role == "viewer" and access in (WRITE, OWNER):
        return 403
    if role == "editor" and access == OWNER:
        return 403
    return success


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("name", "method", "path", "body", "access", "success"),
    [pytest.param(*case, id=case[0]) for case in ENDPOINTS],
)
def test_it_enforces_roles_on_every_endpoint(
    request, api_for, world, role, name, method, path, body, access, success
):
    if name == "predict":
        _no_serving(world)
    user = None if role == "anonymous" else request.getfixturevalue(role)
    api = api_for(user)
    kwargs = {}
    if body is not None:
        kwargs = {"data": body(world), "format": "multipart" if name in MULTIPART else "json"}
    response = getattr(api, method)(path(world), **kwargs)

    expected = expected_status(access, role, success)
    assert response.status_code == expected, response.content[:500]
    if expected >= 400:
        assert response["Content-Type"].startswith("application/json")
        assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    if expected == 401:
        assert response["WWW-Authenticate"].startswith("Token")


def test_it_covers_every_api_route():
    """A new endpoint must join the sweep above."""
    from django.urls import get_resolver

    resolver = get_resolver()
    api_patterns = [p for p in resolver.url_patterns if str(p.pattern) == "api/v1/"][0].url_patterns
    names = {p.name for p in api_patterns} - {"schema", "docs"}
    swept = {
        "project-list",
        "project-detail",
        "label-list",
        "label-detail",
        "image-list",
        "dataset",
        "image-detail",
        "train",
        "run-list",
        "run-detail",
        "run-cancel",
        "version-list",
        "version-detail",
        "version-promote",
        "version-threshold",
        "version-download",
        "rollback",
        "predict",
        "features",
        "recognize",
        "batch-create",
        "batch-detail",
        "export-list",
        "export-detail",
        "export-download",
    }
    assert names == swept
    assert len(ENDPOINTS) == 36


@pytest.mark.parametrize("role", ["stranger", "anonymous"])
def test_it_answers_unknown_ids_like_hidden_ones(api_for, world, request, role):
    user = None if role == "anonymous" else request.getfixturevalue(role)
    api = api_for(user)
    missing = world.project.pk + 1000
    expected = 401 if role == "anonymous" else 404
    assert api.get(f"/api/v1/projects/{missing}/").status_code == expected
    assert api.get(f"/api/v1/versions/{world.v2.pk + 1000}/").status_code == expected
