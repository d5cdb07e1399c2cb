"""Fixtures for the REST API tests: API clients per user, in-memory images, a project with data."""

from __future__ import annotations

import pytest


@pytest.fixture
def api_for():
    """An APIClient signed in (by session) as the given user, or anonymous for None."""
    from rest_framework.test import APIClient

    def make(user):
        api = APIClient()
        api.default_format = "json"  # multipart is asked for explicitly where a test uploads
        if user is not None:
            api.force_login(user)
        return api

    return make


@pytest.fixture
def labelled_project(project, owner, media_root, image_bytes, upload):
    """The shared project with two labels of two images each: enough to start a training."""
    from webui.projects.ingest import ingest_image
    from webui.projects.labels import get_or_create_label

    for index, (name, colour) in enumerate([("ants", (200, 40, 40)), ("bees", (40, 40, 200))]):
        label = get_or_create_label(project, name)
        for seed in range(2):
            data = image_bytes(colour, seed=index * 10 + seed)
            ingest_image(project, owner, upload(f"{name}{seed}.png", data), label=label)
    return project


@pytest.fixture
def serving_history(labelled_project, make_version, owner):
    """v1 served first, then v2 was promoted: v2 serves and rollback has somewhere to go."""
    v1 = make_version(labelled_project, 1)
    v2 = make_version(labelled_project, 2)
    v1.promote(owner)
    v2.promote(owner)
    labelled_project.refresh_from_db()
    return v1, v2
