"""Suggestions from a real trained model on the label page, worked out by a job, and accepting them in bulk."""

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
    from webui.projects.ingest import ingest_image

    unlabeled = [
        ingest_image(trained_project, editor, photo(png(colour, 500 + i), f"new{i}.png")).image
        for i, colour in enumerate([RED, RED, BLUE])
    ]
    return trained_project, unlabeled


@pytest.fixture
def suggested(trained, django_capture_on_commit_callbacks):
    """`trained` once a worker has worked out the serving version's suggestions."""
    from webui.serving import suggestions

    project, _unlabeled = trained
    with django_capture_on_commit_callbacks(execute=False):
        job = suggestions.request_refresh(project.serving_version)
    suggestions.run_refresh(job.pk)
    return trained


def test_a_page_queues_the_suggestions_a_worker_works_out(
    client_for, trained, viewer, django_capture_on_commit_callbacks
):
    from webui.serving.suggestions import run_refresh

    project, unlabeled = trained
    c = client_for(viewer)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        page = c.get(reverse("projects:label", args=[project.pk]), {"show": "unlabeled"})
    job = page.context["refresh"]
    assert job.status == "queued" and len(queued) == 1  # the request only asks
    assert all(t.suggestion is None for t in page.context["tiles"])
    assert reverse("projects:suggestion-refresh", args=[project.pk, job.pk]) in page.content.decode()
    again = c.get(reverse("projects:label", args=[project.pk]))
    assert again.context["refresh"].pk == job.pk  # one refresh per version at a time
    run_refresh(job.pk)
    status = c.get(reverse("projects:suggestion-refresh", args=[project.pk, job.pk])).json()
    assert status["status"] == "succeeded" and status["message"] == "3 pictures looked at"
    page = c.get(reverse("projects:label", args=[project.pk]), {"show": "unlabeled"})
    assert page.context["refresh"] is None
    assert [t.suggestion["label"] for t in sorted(page.context["tiles"], key=lambda t: t.pk)] == [
        "red",
        "red",
        "blue",
    ]


def test_it_shows_the_models_suggestion_on_unlabeled_images(client_for, suggested, viewer):
    project, unlabeled = suggested
    page = client_for(viewer).get(reverse("projects:label", args=[project.pk]), {"show": "unlabeled"})
    tiles = {t.pk: t for t in page.context["tiles"]}
    assert set(tiles) == {i.pk for i in unlabeled}
    assert [tiles[i.pk].suggestion["label"] for i in unlabeled] == ["red", "red", "blue"]
    assert all(0.5 <= tiles[i.pk].suggestion["probability"] <= 1 for i in unlabeled)
    assert "red? " in page.content.decode()


def test_it_accepts_suggestions_above_the_threshold(client_for, suggested, editor):
    project, unlabeled = suggested
    response = client_for(editor).post(
        reverse("projects:accept-suggestions", args=[project.pk]), {"threshold": 50}, follow=True
    )
    assert "Labelled 3 of 3" in response.content.decode()
    labels = dict(project.images.filter(pk__in=[i.pk for i in unlabeled]).values_list("pk", "label__name"))
    assert [labels[i.pk] for i in unlabeled] == ["red", "red", "blue"]


def test_it_caps_how_many_suggestions_one_click_accepts(suggested):
    from webui.serving.suggestions import accept

    project, _unlabeled = suggested
    done = accept(project, project.serving_version, 0.5, limit=2)
    assert (done.labelled, done.considered, done.remaining, done.pending) == (2, 2, 1, 0)
    assert project.images.filter(label__isnull=True).count() == 1


def test_it_accepts_only_what_has_a_suggestion_and_queues_the_rest(
    client_for, trained, editor, django_capture_on_commit_callbacks
):
    project, unlabeled = trained
    with django_capture_on_commit_callbacks(execute=False):
        response = client_for(editor).post(
            reverse("projects:accept-suggestions", args=[project.pk]), {"threshold": 50}, follow=True
        )
    assert "Labelled 0 of 3" in response.content.decode()
    assert "3 have no suggestion yet" in response.content.decode()
    assert project.suggestion_refreshes.filter(status="queued").count() == 1


def test_it_accepts_nothing_below_the_threshold(suggested):
    from webui.serving.suggestions import accept

    project, _unlabeled = suggested
    done = accept(project, project.serving_version, 1.01)
    assert done.labelled == 0 and project.images.filter(label__isnull=True).count() == 3


def test_it_lists_the_models_guesses_surest_first(client_for, suggested, viewer):
    project, unlabeled = suggested
    page = client_for(viewer).get(reverse("projects:label", args=[project.pk]), {"show": "suggested"})
    tiles = page.context["tiles"]
    assert {t.pk for t in tiles} == {i.pk for i in unlabeled}  # unlabeled only, every guess known here
    confidences = [t.suggestion["probability"] for t in tiles]
    assert confidences == sorted(confidences, reverse=True)
    assert "surest first" in page.content.decode()


def test_it_explains_that_guesses_need_a_model(client_for, project, viewer, editor):
    from webui.projects.ingest import ingest_image

    ingest_image(project, editor, photo(png(RED, 1), "a.png"))
    page = client_for(viewer).get(reverse("projects:label", args=[project.pk]), {"show": "suggested"})
    assert page.status_code == 200 and not page.context["tiles"]
    assert "Train a model first" in page.content.decode()
