"""Suggestions from a real trained model on the label page, and accepting them in bulk."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse

pytest.importorskip("classifier.predict")
pytest.importorskip("classifier.pipeline")

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

RED, BLUE = (210, 40, 40), (40, 40, 210)


def _png(colour, seed) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.integers(-40, 40, (64, 64, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype("uint8"), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def trained(project, editor, media_root, django_capture_on_commit_callbacks):
    from django.core.cache import cache
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webui.projects.services import get_or_create_label, ingest_image
    from webui.training.services import run_training, start_training

    cache.clear()
    for name, colour, base in (("red", RED, 0), ("blue", BLUE, 100)):
        label = get_or_create_label(project, name)
        for i in range(4):
            ingest_image(
                project, editor, SimpleUploadedFile(f"{name}{i}.png", _png(colour, base + i)), label=label
            )
    with django_capture_on_commit_callbacks(execute=False):
        run = start_training(project, editor, {"strategy": "linear"})
    run_training(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    project.refresh_from_db()
    assert project.serving_version is not None
    unlabeled = [
        ingest_image(project, editor, SimpleUploadedFile(f"new{i}.png", _png(colour, 500 + i))).image
        for i, colour in enumerate([RED, RED, BLUE])
    ]
    return project, unlabeled


def test_it_shows_the_models_suggestion_on_unlabeled_images(client_for, trained, viewer):
    project, unlabeled = trained
    page = client_for(viewer).get(reverse("projects:label", args=[project.pk]), {"show": "unlabeled"})
    tiles = {t.pk: t for t in page.context["tiles"]}
    assert set(tiles) == {i.pk for i in unlabeled}
    assert [tiles[i.pk].suggestion["label"] for i in unlabeled] == ["red", "red", "blue"]
    assert all(0.5 <= tiles[i.pk].suggestion["probability"] <= 1 for i in unlabeled)
    assert "red? " in page.content.decode()


def test_it_accepts_suggestions_above_the_threshold(client_for, trained, editor):
    project, unlabeled = trained
    response = client_for(editor).post(
        reverse("projects:accept-suggestions", args=[project.pk]), {"threshold": 50}, follow=True
    )
    assert "Labelled 3 of 3" in response.content.decode()
    labels = dict(project.images.filter(pk__in=[i.pk for i in unlabeled]).values_list("pk", "label__name"))
    assert [labels[i.pk] for i in unlabeled] == ["red", "red", "blue"]


def test_it_caps_how_many_suggestions_one_click_accepts(trained):
    from webui.projects.services import accept_suggestions

    project, _unlabeled = trained
    done = accept_suggestions(project, project.serving_version, 0.5, limit=2)
    assert (done.labelled, done.considered, done.remaining) == (2, 2, 1)
    assert project.images.filter(label__isnull=True).count() == 1


def test_it_accepts_nothing_below_the_threshold(trained):
    from webui.projects.services import accept_suggestions

    project, _unlabeled = trained
    done = accept_suggestions(project, project.serving_version, 1.01)
    assert done.labelled == 0 and project.images.filter(label__isnull=True).count() == 3
