"""Suggestions from a real trained model on the label page, and accepting them in bulk."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytest.importorskip("classifier.predict")
pytest.importorskip("classifier.pipeline")

from tests.helpers import BLUE, RED, photo, png

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def trained(trained_project, editor):
    """The trained project plus three new unlabeled photos (red, red, blue)."""
    from django.core.cache import cache

    from webui.projects.services import ingest_image

    cache.clear()
    unlabeled = [
        ingest_image(trained_project, editor, photo(png(colour, 500 + i), f"new{i}.png")).image
        for i, colour in enumerate([RED, RED, BLUE])
    ]
    return trained_project, unlabeled


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


def test_it_lists_the_models_guesses_surest_first(client_for, trained, viewer):
    project, unlabeled = trained
    page = client_for(viewer).get(reverse("projects:label", args=[project.pk]), {"show": "suggested"})
    tiles = page.context["tiles"]
    assert {t.pk for t in tiles} == {i.pk for i in unlabeled}  # unlabeled only, every guess known here
    confidences = [t.suggestion["probability"] for t in tiles]
    assert confidences == sorted(confidences, reverse=True)
    assert "surest first" in page.content.decode()


def test_it_explains_that_guesses_need_a_model(client_for, project, viewer, editor):
    from webui.projects.services import ingest_image

    ingest_image(project, editor, photo(png(RED, 1), "a.png"))
    page = client_for(viewer).get(reverse("projects:label", args=[project.pk]), {"show": "suggested"})
    assert page.status_code == 200 and not page.context["tiles"]
    assert "Train a model first" in page.content.decode()
