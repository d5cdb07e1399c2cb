"""Fixtures shared by every Django test: the owner / editor / viewer / stranger cast and a project."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def _unhashed_static_files(request):
    """Pages render without `collectstatic` having run (the ML-core tests never touch Django)."""
    if "classifier" in request.path.parts or not request.config.pluginmanager.hasplugin("django"):
        yield
        return
    settings = request.getfixturevalue("settings")
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # PBKDF2 costs half a second per user, and most tests create four.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Rate-limit counters and cached predictions must not leak from one test into the next.
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def media_root(settings, tmp_path):
    """Each test gets its own storage directory."""
    storages = dict(settings.STORAGES)
    storages["default"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "media")},
    }
    settings.STORAGES = storages
    settings.PINHOLE_MODEL_CACHE = tmp_path / "cache"
    return tmp_path / "media"


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, **extra):
        return django_user_model.objects.create_user(username=username, password="pw-" + username, **extra)

    return make


@pytest.fixture
def owner(make_user):
    return make_user("olive")


@pytest.fixture
def editor(make_user):
    return make_user("eddie")


@pytest.fixture
def viewer(make_user):
    return make_user("vera")


@pytest.fixture
def stranger(make_user):
    return make_user("sam")


@pytest.fixture
def project(owner, editor, viewer):
    from webui.projects.models import Membership, Project, Role

    project = Project.objects.create(name="Hive survey", owner=owner)
    Membership.objects.create(project=project, user=editor, role=Role.EDITOR)
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    return project


@pytest.fixture
def client_for(client):
    """A client signed in as the given user (or anonymous for None)."""
    from django.test import Client

    def make(user):
        c = Client()
        if user is not None:
            c.force_login(user)
        return c

    return make


@pytest.fixture
def make_version(media_root, tmp_path):
    """A ModelVersion whose artifact is a real, checked artifact directory in storage."""
    import numpy as np

    from classifier.artifacts import write_artifact
    from webui.training.artifacts import artifact_prefix, store_artifact
    from webui.training.models import ModelVersion

    def make(project, number: int, *, accuracy: float = 0.9, labels=("ants", "bees")) -> ModelVersion:
        local = write_artifact(
            tmp_path / f"artifact-{project.pk}-{number}",
            manifest={"labels": list(labels), "backbone": {"name": "efficientnet_lite0"}, "metrics": {}},
            arrays={"head.weight": np.zeros((len(labels), 4), dtype=np.float32)},
            files={"model.onnx": b"not a real graph; only checksums are verified here"},
        )
        prefix = artifact_prefix(project.pk, f"v{number}-test")
        size = store_artifact(local, prefix)
        return ModelVersion.objects.create(
            project=project,
            number=number,
            artifact=prefix,
            backbone="efficientnet_lite0",
            labels=list(labels),
            metrics={"accuracy": accuracy},
            size=size,
        )

    return make


@pytest.fixture
def image_bytes():
    """Encoded noise images: image_bytes(colour=(r, g, b), fmt="PNG", size=(w, h), seed=0)."""
    from tests.helpers import png

    def make(colour=(200, 40, 40), fmt="PNG", size=(32, 24), seed=0) -> bytes:
        return png(colour, seed=seed, size=size, fmt=fmt)

    return make


@pytest.fixture
def upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    def make(name: str, data: bytes, content_type: str = "application/octet-stream"):
        return SimpleUploadedFile(name, data, content_type=content_type)

    return make


@pytest.fixture
def trained_project(project, editor, media_root, django_capture_on_commit_callbacks):
    """The project with a real serving version (red vs blue, 4 photos each), trained in-process.

    The Celery task is captured, not run: the test calls the service the task would call.
    """
    pytest.importorskip("classifier.pipeline")
    from tests.helpers import BLUE, RED, photo, png
    from webui.projects.ingest import ingest_image
    from webui.projects.labels import get_or_create_label
    from webui.training.services import run_training, start_training

    for name, colour, base in (("red", RED, 0), ("blue", BLUE, 100)):
        label = get_or_create_label(project, name)
        for i in range(4):
            ingest_image(project, editor, photo(png(colour, seed=base + i), f"{name}{i}.png"), label=label)
    with django_capture_on_commit_callbacks(execute=False):
        run = start_training(project, editor, {"strategy": "linear"})
    run_training(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    project.refresh_from_db()
    assert project.serving_version is not None
    return project
